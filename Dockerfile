# syntax=docker/dockerfile:1

# Lumen container image.
#
#   docker build -t lumen:dev .
#   docker run --rm -p 8080:8080 -p 11112:11112 -v lumen-data:/var/lib/lumen lumen:dev
#
# Configuration comes from LUMEN_* environment variables (see compose.yaml) or
# a YAML file named by LUMEN_CONFIG. Prefer those over a --config flag: the
# HEALTHCHECK below runs `lumen healthcheck` with the container's environment
# only, so it finds http.addr the same way `lumen serve` did only if the
# configuration is not given on the command line.

# ---------------------------------------------------------------------------
# Build stage: a static binary. JPEG 2000 is decoded by Debian's OpenJPEG and rendered
# JPEGs are encoded by Debian's libjpeg-turbo, both linked in statically through cgo
# (build tags openjpeg and libjpeg); everything else is pure Go (SQLite is the
# modernc.org driver). netgo and osusergo keep glibc's resolver and user lookup out of
# the static binary. The stage runs on the target platform (C code is compiled), so a
# multi-arch build emulates the other architectures.
FROM golang:1.26-bookworm AS build

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libopenjp2-7-dev libjpeg62-turbo-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Module download in its own layer: it is rebuilt only when go.mod or go.sum
# change, not on every source edit.
COPY go.mod go.sum ./
RUN go mod download && go mod verify

COPY . .

RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=1 go build -tags 'openjpeg libjpeg netgo osusergo' -trimpath \
    -ldflags='-s -w -linkmode external -extldflags "-static -lm"' -o /out/lumen ./cmd/lumen

# The data directory, created here because the final image has no shell. It
# is copied with the runtime user's ownership so that the volume Docker
# initialises from it is writable.
RUN mkdir -p /out/data

# ---------------------------------------------------------------------------
# Final stage: distroless static (CA certificates, tzdata, /etc/passwd with
# the nonroot user 65532; no shell, no package manager, no curl).
FROM gcr.io/distroless/static-debian12:nonroot

ARG VERSION=dev
LABEL org.opencontainers.image.title="Lumen" \
      org.opencontainers.image.description="Lumen, a DICOM archive (PACS) with DICOMweb and DIMSE interfaces" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/lumenpacs/lumen" \
      org.opencontainers.image.version="$VERSION"

COPY --from=build /out/lumen /usr/local/bin/lumen
COPY --from=build --chown=65532:65532 /out/data /var/lib/lumen

# Numeric, so that runtimes that check runAsNonRoot can verify it without
# reading /etc/passwd.
USER 65532:65532
WORKDIR /var/lib/lumen

ENV LUMEN_DATA_DIR=/var/lib/lumen

# 8080: HTTP (DICOMweb, /healthz, /readyz, /metrics). 11112: DICOM DIMSE.
EXPOSE 8080 11112

VOLUME ["/var/lib/lumen"]

# Liveness only (/healthz); readiness (/readyz) depends on the index and the
# store and is for orchestrators, not for restarting the container.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["/usr/local/bin/lumen", "healthcheck"]

ENTRYPOINT ["/usr/local/bin/lumen"]
CMD ["serve"]
