# Lumen — the two set-up commands are `make run` and `make test`.

GO            ?= go
GOPATH        := $(shell $(GO) env GOPATH)
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
MINIO         := $(GOPATH)/bin/minio
STATICCHECK   := honnef.co/go/tools/cmd/staticcheck@v0.8.2
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS       := -s -w -X main.version=$(VERSION)
# Go skips directories named testdata in ./...; name the generator packages explicitly.
PKGS          := ./... ./testdata/gen ./testdata/cmd/gencorpus ./testdata/cmd/peerbench ./testdata/tools
# JPEG 2000 is decoded by Debian's OpenJPEG through cgo (build tag openjpeg, package
# libopenjp2-7-dev); without its headers Lumen builds as pure Go and answers JPEG 2000
# objects with a placeholder. Rendered JPEGs are encoded by Debian's libjpeg-turbo through
# cgo (build tag libjpeg, package libjpeg62-turbo-dev: jpeglib.h and libjpeg.a); without
# it by Go's image/jpeg, slower. `make TAGS= build` forces the pure-Go build.
LIBJPEG_A      = $(shell pkg-config --variable=libdir libjpeg 2>/dev/null)/libjpeg.a
TAGS          ?= $(strip $(shell pkg-config --exists libopenjp2 2>/dev/null && echo openjpeg) \
                 $(shell pkg-config --exists libjpeg 2>/dev/null && [ -f '$(LIBJPEG_A)' ] && echo libjpeg))
FUZZTIME      ?= 20s
BENCHTIME     ?= 3s

.PHONY: all build run test provision tools bench bench-orthanc bench-scale soak lint fuzz docker clean

all: build

## build: bin/lumen, a static binary either way (with OpenJPEG and libjpeg-turbo linked in
## statically).
build:
	@if [ -n "$(TAGS)" ]; then set -x; \
		CGO_ENABLED=1 $(GO) build -tags '$(TAGS) netgo osusergo' -trimpath \
			-ldflags '$(LDFLAGS) -linkmode external -extldflags "-static -lm"' -o bin/lumen ./cmd/lumen; \
	else set -x; \
		CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/lumen ./cmd/lumen; \
	fi

## run: start Lumen on the embedded default (./data: filesystem store + SQLite), HTTP on :8080.
run: build
	./bin/lumen serve

## test: every test, against real services (PostgreSQL, MinIO, DCMTK), provisioned first.
test: provision
	$(GO) test -tags '$(TAGS)' -race -count=1 -timeout 20m $(PKGS)

## provision: install what the tests need (OS packages when root, the MinIO server binary,
## a PostgreSQL on loopback). Idempotent.
provision:
	@MINIO_VERSION=$(MINIO_VERSION) bash .ci/provision

tools: provision

## bench: BenchmarkIngest (fs+SQLite, fs+PostgreSQL, MinIO+PostgreSQL; 1 and 4 writers),
## the store benchmarks, BenchmarkImportCT (lumen import of 2,000 512 KB CT instances),
## BenchmarkIngestLargeMultiframe (one 1 GiB instance; peak RSS of the process),
## BenchmarkCStore (1 and 4 associations), BenchmarkFindStudies (100,000 studies),
## BenchmarkQueryShapes (QIDO-RS study shapes, 8 clients at once and C-FIND's first
## pending response at 100,000 studies, both indexes), the DICOMweb and rendering
## benchmarks (WADO-RS retrieval of a 151-instance CT study over loopback:
## BenchmarkWADORetrieve; BenchmarkRendered: /rendered of a 512×512 CT and a 640×480 RGB
## US frame, JPEG and PNG), the EMR chart (200 studies) and widget (first
## thumbnail in Chromium), the HL7 v2 parser (BenchmarkParseA08) and ADT A08 over one MLLP
## connection end to end (BenchmarkHL7A08, fs+SQLite), the A40 merge at 1,000 studies with
## 1,000 to 100,000 instances (BenchmarkMergePatients, both backends) and the correction of
## a metadata object (BenchmarkCorrectMetadata).
bench: provision
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 60m ./dcm ./archive/... ./service/... ./hl7
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench 'ImportCT|LargeMultiframe' -benchtime 1x -timeout 60m ./cmd/lumen
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench 'CStore' -benchtime 300x -timeout 30m ./cmd/lumen
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench 'FindStudies' -benchtime 500x -timeout 30m ./cmd/lumen
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench 'QueryShapes' -benchtime 300x -timeout 30m ./cmd/lumen
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench 'QIDOStudyList|SeriesMetadata' -benchtime 300x -timeout 30m ./cmd/lumen
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench 'Thumbnail' -benchtime 300x ./dicomweb
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench 'Rendered' -benchtime 300x ./dicomweb
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench 'CineGIF' -benchtime 1x ./dicomweb
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench 'WADORetrieve' -benchtime 30x -count 3 ./dicomweb
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench 'BenchmarkChart' -benchtime 300x ./cmd/lumen
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench 'WidgetFirstThumbnail' -benchtime 20x ./cmd/lumen
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench 'HL7A08' -benchtime 3000x ./cmd/lumen
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench 'MergePatients' -benchtime 20x -timeout 30m ./index/sqlite ./index/postgres
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench 'CorrectMetadata' ./index

## bench-orthanc: Lumen (bin/lumen, fs+SQLite) and Orthanc 1.10 with its DICOMweb plugin
## (Debian) side by side on loopback, alternating, with the machine's limits measured in
## the same run (durable 512 KiB puts with 1 and 4 writers and the CPU per durable put,
## loopback TCP, SHA-256): C-STORE (DCMTK storescu, 1 and 4 associations), server CPU per
## instance, STOW-RS, WADO-RS, /rendered, C-MOVE and C-GET, small-instance ingest (also
## from senders with Nagle's algorithm on), then QIDO-RS shapes, 8 concurrent clients and
## the first C-FIND response at BENCH_STUDIES one-instance studies filled by real ingest.
## One table of medians over BENCH_ROUNDS rounds (testdata/cmd/peerbench). Nothing is
## removed until the run ends: about 15 GB of disk for the defaults.
BENCH_ROUNDS  ?= 3
BENCH_STUDIES ?= 100000
bench-orthanc: build
	bash .ci/bench-orthanc bin/lumen -rounds $(BENCH_ROUNDS) -studies $(BENCH_STUDIES)

## bench-scale: Lumen alone on each index backend (SQLite, PostgreSQL): lumen import and
## C-STORE (storescu, 4 associations) of 10,000 small instances into an empty index and into
## one already holding SCALE_INSTANCES (default 1,000,000) instances filled by lumen import
## of generated studies, the two alternating over 3 rounds; QIDO-RS shapes and C-FIND p95 at
## that size (testdata/cmd/peerbench -scale). SCALE_WORK=dir keeps the filled indexes there,
## and a later run with the same SCALE_WORK measures on them without filling again.
SCALE_INSTANCES ?= 1000000
SCALE_WORK      ?=
bench-scale: build provision
	go build -o bin/peerbench ./testdata/cmd/peerbench
	./bin/peerbench -lumen bin/lumen -scale $(SCALE_INSTANCES) $(if $(SCALE_WORK),-work $(SCALE_WORK))

## soak: lumen serve under 32 concurrent associations and 64 HTTP clients for
## SOAK_DURATION (default 2m), while an attacker holds idle TCP connections, idle
## associations under a known AE, slow uploads and half-open HTTP connections and floods
## unauthenticated requests (SOAK_ATTACK=off: without it): no failure, memory growth
## bounded (TestSoak).
SOAK_DURATION ?= 2m
SOAK_ATTACK   ?= on
soak: provision
	LUMEN_SOAK_DURATION=$(SOAK_DURATION) LUMEN_SOAK_ATTACK=$(SOAK_ATTACK) $(GO) test -tags '$(TAGS) soak' -run '^TestSoak$$' -count=1 -v -timeout 60m ./cmd/lumen

lint:
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || (echo "gofmt: files above need formatting" && exit 1)
	@$(GO) mod tidy -diff || (echo "go mod tidy would change go.mod/go.sum (above): run it" && exit 1)
	$(GO) vet $(PKGS)
	$(GO) vet -tags 'openjpeg libjpeg' ./render/... ./dcm/codec/...
	$(GO) vet -tags soak ./cmd/lumen
	$(GO) run $(STATICCHECK) -tags '$(TAGS)' $(PKGS)

## fuzz: each fuzz target for FUZZTIME.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./dcm
	$(GO) test -run '^$$' -fuzz '^FuzzCharsetDecode$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./dcm
	$(GO) test -run '^$$' -fuzz '^FuzzParseDigest$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./dcm
	$(GO) test -run '^$$' -fuzz '^FuzzDecodePDU$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./dimse
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeCommand$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./dimse
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./dcm/codec/ljpeg
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./dcm/codec/jls
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./dcm/codec/jpegext
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./hl7/mllp
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./hl7
	$(GO) test -run '^$$' -fuzz '^FuzzEscape$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./hl7

docker:
	docker build -t lumen:$(VERSION) -t lumen:dev .

clean:
	rm -rf bin
