// Command peerbench measures Lumen and Orthanc side by side on loopback and prints one
// table: every figure of both servers, the machine's limits measured in the same run
// (durable 512 KiB puts with 1 and 4 writers and the CPU per durable put, loopback
// throughput with 1 and 4 connections, SHA-256 and BLAKE3 per core) and Lumen's share of each
// limit. `make bench-orthanc` runs it (.ci/bench-orthanc installs Orthanc, its
// DICOMweb plugin and DCMTK).
//
// Each round starts both servers afresh, in alternating order, and runs the same work
// against each: C-STORE with DCMTK storescu (1 and 4 associations; CT 512² slices,
// 4 studies), STOW-RS with 4 clients, WADO-RS of one study and of 4 studies in
// parallel, /rendered of CT slices (JPEG) and of a 640×480 RGB ultrasound frame, C-MOVE
// and C-GET of one study to DCMTK (storescp and getscu, storing nothing), and C-STORE
// of small (5 KB) instances with 4 associations (with TCP_NODELAY set in storescu, then
// with Nagle's algorithm left on, DCMTK's default). Server CPU is read from /proc (user
// plus system time of the server process, background work included). The figures are
// the medians of the rounds. Then, when -studies is not 0, each server is filled by
// real ingest (storescu, 4 associations) with that many one-instance studies and the
// QIDO-RS shapes, 8 concurrent QIDO clients and the first C-FIND pending response are
// measured, again alternating, for -rounds rounds.
//
// With -retrieval only the retrieval figures are taken (WADO-RS, C-MOVE, C-GET, each
// with the server CPU per MiB), -repeat times per round, with loopback TCP and DCMTK
// storescu to storescp as the limits; -baseline measures another Lumen binary in
// Orthanc's place, for an A/B of two builds.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"
)

// cfg holds the command line.
type cfg struct {
	lumen, orthanc, plugin string
	work                   string
	studies, rounds        int
	ctPerStudy, small      int
	queries                int
	lumenOnly              bool
	// retrieval limits each round to the retrieval figures; baseline is a second Lumen
	// binary measured in Orthanc's place; repeat is how often each retrieval figure is
	// taken per round and server.
	retrieval bool
	baseline  string
	repeat    int
	// lumenIndex is appended to Lumen's configuration (the index section), and
	// lumenConfig after it (-lumen-config).
	lumenIndex, lumenConfig string
	// The -scale run.
	scale, probe, scaleRounds int
	backends                  string
	pgDSN                     string
	// keep is set when -work names the work directory: it and the -scale fill are kept.
	keep bool
}

func main() {
	var c cfg
	flag.StringVar(&c.lumen, "lumen", "", "path of the lumen binary (required)")
	flag.StringVar(&c.orthanc, "orthanc", "Orthanc", "Orthanc executable")
	flag.StringVar(&c.plugin, "dicomweb-plugin", "/usr/share/orthanc/plugins/libOrthancDicomWeb.so", "Orthanc's DICOMweb plugin")
	flag.StringVar(&c.work, "work", "", "work directory (default: a new one under $TMPDIR, removed at the end)")
	flag.IntVar(&c.rounds, "rounds", 3, "rounds; figures are their medians")
	flag.IntVar(&c.ctPerStudy, "ct", 150, "CT 512² instances in each of the 4 CT studies")
	flag.IntVar(&c.small, "small", 2000, "small (5 KB) instances for the small-instance ingest figure")
	flag.IntVar(&c.studies, "studies", 100000, "one-instance studies for the query figures (0: skip them)")
	flag.IntVar(&c.queries, "queries", 40, "requests per QIDO shape per round and server")
	flag.BoolVar(&c.lumenOnly, "lumen-only", false, "measure Lumen alone (no Orthanc)")
	flag.BoolVar(&c.retrieval, "retrieval", false, "only the retrieval figures (WADO-RS, C-MOVE, C-GET and the server CPU per MiB of each) on the 4 CT studies stored with 4 associations, and as limits loopback TCP and DCMTK storescu to storescp (--ignore, and storing)")
	flag.StringVar(&c.baseline, "baseline", "", "path of another lumen binary, measured in Orthanc's place (an A/B of two builds, alternating each round)")
	flag.IntVar(&c.repeat, "repeat", 1, "with -retrieval: times each retrieval figure is taken per round and server (all are samples of the medians)")
	flag.IntVar(&c.scale, "scale", 0, "instead: Lumen alone, ingest rates into an empty index and into one holding this many instances, and query latencies there (make bench-scale)")
	flag.IntVar(&c.probe, "probe", 10000, "with -scale: instances of each rate measurement")
	flag.StringVar(&c.backends, "backends", "sqlite,postgres", "with -scale: index backends")
	flag.StringVar(&c.pgDSN, "pg-dsn", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "with -scale: PostgreSQL (schemas lumen_scale and lumen_scale_empty are made; dropped at the end unless -work is given)")
	portOffset := flag.Int("port-offset", 0, "add this to every loopback port the run uses")
	flag.StringVar(&c.lumenConfig, "lumen-config", "", "YAML appended to Lumen's configuration (of -baseline's too), e.g. \"store:\\n  fs:\\n    direct_io: true\\n\"; it must not repeat a top-level key the run writes (data_dir, http, dimse, log; index with -scale)")
	flag.IntVar(&c.scaleRounds, "scale-rounds", 3, "with -scale: rounds of the rate measurements, empty and full alternating")
	flag.Parse()
	shiftPorts(*portOffset)
	if c.lumen == "" {
		log.Fatal("peerbench: -lumen is required")
	}
	log.SetFlags(log.Ltime)
	// DCMTK, and Orthanc through it, waits for delayed ACKs (about 40 ms per exchange)
	// unless TCP_NODELAY is set: every process started here inherits it.
	os.Setenv("TCP_NODELAY", "1")
	c.keep = c.work != ""
	if !c.keep {
		d, err := os.MkdirTemp("", "lumen-peerbench.")
		if err != nil {
			log.Fatal(err)
		}
		c.work = d
	}
	if err := os.MkdirAll(c.work, 0o755); err != nil {
		log.Fatal(err)
	}
	var err error
	if c.lumen, err = filepath.Abs(c.lumen); err != nil {
		log.Fatal(err)
	}
	if c.baseline != "" {
		if c.baseline, err = filepath.Abs(c.baseline); err != nil {
			log.Fatal(err)
		}
	}
	t0 := time.Now()
	var tab *table
	if c.scale > 0 {
		tab, err = runScale(&c)
	} else {
		tab, err = run(&c)
	}
	if !c.keep {
		os.RemoveAll(c.work)
	}
	if tab != nil {
		tab.print(os.Stdout)
	}
	if err != nil {
		log.Fatal(err)
	}
	if c.scale > 0 {
		fmt.Printf("\nrun took %s\n", time.Since(t0).Round(time.Second))
	} else {
		fmt.Printf("\n%d rounds, medians; run took %s\n", c.rounds, time.Since(t0).Round(time.Second))
	}
}
