//go:build unix

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/archive/archivetest"
	"github.com/lumenpacs/lumen/archive/fs"
	"github.com/lumenpacs/lumen/index/postgres"
	"github.com/lumenpacs/lumen/index/postgres/pgtest"
	"github.com/lumenpacs/lumen/index/sqlindex"
	"github.com/lumenpacs/lumen/index/sqlite"
	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// BenchmarkIngestCPU measures the server's own CPU per ingested instance: Lumen runs in
// the benchmark process, the clients in other processes (DCMTK storescu for C-STORE,
// curl for STOW-RS, 50 instances per request), so getrusage(RUSAGE_SELF) around the
// transfer counts the server alone (receive, parse, hash, durable write, index commit,
// and the runtime's GC). server-cpu-ms/inst is that CPU per instance, including the
// background work the instances cause after their acknowledgement (the studies'
// thumbnail jobs, made due at once rather than after the quiet period, and the audit
// trail's writes): it is read once the job queue is empty. ack-cpu-ms/inst is the CPU
// of the transfer alone (up to the last acknowledgement); client-cpu-ms/inst the
// clients' (getrusage(RUSAGE_CHILDREN)), which shares the machine's cores with the
// server; instances/s the throughput of the transfer. LUMEN_BENCH_CPUPROFILE=file
// writes a CPU profile of the transfer and the background work (the server's side; not
// the set-up).
//
// The disk sub-benchmarks are the durable-put limit of the same disk in the same run:
// archive/fs puts of the same size under fresh keys (create + write + fsync + rename +
// directory fsync; disk-serve: with the store options of lumen serve) by 1 and 4 writers, the objects spread over 256 directories (each
// put fsyncs its directory alone), or sharing the directory of the current second as
// ingest's keys do (concurrent puts share their directory fsyncs).
//
//	go test ./cmd/lumen -run '^$' -bench IngestCPU -benchtime 400x
func BenchmarkIngestCPU(b *testing.B) {
	// 5KB-studies: each instance a study (and patient) of its own, as small-instance
	// traffic mostly is; the other sizes send one series.
	sizes := []struct {
		name       string
		rows, cols int
		studies    bool
	}{{"512KiB", 512, 512, false}, {"5KB", 40, 40, false}, {"5KB-studies", 40, 40, true}}
	for _, be := range []string{"fs+sqlite", "fs+postgres"} {
		for _, size := range sizes {
			for _, proto := range []string{"cstore", "stow"} {
				for _, clients := range []int{1, 4} {
					b.Run(fmt.Sprintf("%s/%s/%s/clients=%d", be, proto, size.name, clients), func(b *testing.B) {
						benchIngestCPU(b, be, proto, size.rows, size.cols, clients, size.studies)
					})
				}
			}
		}
	}
	for _, writers := range []int{1, 4} {
		for _, dirs := range []string{"spread", "second"} {
			b.Run(fmt.Sprintf("disk/512KiB/writers=%d/dirs=%s", writers, dirs), func(b *testing.B) {
				benchDiskLimit(b, 512<<10, writers, dirs == "second", fs.Options{})
			})
			// The same puts as lumen serve makes them (fsOptions).
			b.Run(fmt.Sprintf("disk-serve/512KiB/writers=%d/dirs=%s", writers, dirs), func(b *testing.B) {
				benchDiskLimit(b, 512<<10, writers, dirs == "second", fsOptions(FSConfig{}))
			})
		}
	}
}

// newBenchCopies prepares copies of one generated CT instance of rows × cols.
func newBenchCopies(b *testing.B, rows, cols int) *gen.Copies {
	objs, err := gen.CTSeries(gen.Options{Seed: 4242}, 1, rows, cols)
	if err != nil {
		b.Fatal(err)
	}
	c, err := gen.NewCopies(objs[0])
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// smallStudy is instance n of run as a one-instance study of a patient of its own.
func smallStudy(b *testing.B, run string, n, rows, cols int) []byte {
	objs, err := gen.CTSeries(gen.Options{Seed: uint64(4242 + n), StudyID: fmt.Sprint(n), AccessionNumber: fmt.Sprintf("R%sN%09d", run, n),
		Patient: gen.Patient{ID: fmt.Sprintf("SMALL%s%09d", run, n), Name: "Small^Instance", BirthDate: "19800101", Sex: "O"}}, 1, rows, cols)
	if err != nil {
		b.Fatal(err)
	}
	return objs[0].Data
}

// clientDir is a directory for the clients' input files: in memory (/dev/shm) when the
// machine has it, so that writing and removing them neither loads the disk under test
// nor leaves recently freed inodes for the store's new files to step over.
func clientDir(b *testing.B) string {
	if dir, err := os.MkdirTemp("/dev/shm", "lumen-bench-"); err == nil {
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

// cpuTime is the user + system CPU time so far of the process (RUSAGE_SELF) or of its
// children that have ended (RUSAGE_CHILDREN).
func cpuTime(b *testing.B, who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var ingestCPURun atomic.Int64

// benchIngestCPU sends b.N instances of rows × cols by clients clients: copies of one
// instance of one series, or, with studies, one-instance studies of patients of their own.
func benchIngestCPU(b *testing.B, backend, proto string, rows, cols, clients int, studies bool) {
	var storescu, curl string
	if proto == "cstore" {
		storescu = tools.DCMTK(b, "storescu")
	} else {
		curl = tools.Require(b, "curl", "curl")
	}
	tpl := newBenchCopies(b, rows, cols)
	run := fmt.Sprintf("%04d", ingestCPURun.Add(1)%10000)
	work := clientDir(b)
	// Each client's share: files (storescu) or request bodies of 50 parts (curl).
	const perRequest = 50
	type share struct {
		dir    string
		bodies []string
	}
	shares := make([]share, clients)
	boundary := "lumen-bench-boundary"
	for c := range shares {
		shares[c].dir = filepath.Join(work, fmt.Sprintf("client%d", c))
		if err := os.MkdirAll(shares[c].dir, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	var body *os.File
	var mw *multipart.Writer
	inBody := 0
	flush := func(c int) {
		if body == nil {
			return
		}
		if err := mw.Close(); err != nil {
			b.Fatal(err)
		}
		body.Close()
		shares[c].bodies = append(shares[c].bodies, body.Name())
		body, mw, inBody = nil, nil, 0
	}
	for c := range shares {
		for n := c; n < b.N; n += clients {
			data := tpl.Copy(run, int64(n))
			if studies {
				data = smallStudy(b, run, n, rows, cols)
			}
			if proto == "cstore" {
				if err := os.WriteFile(filepath.Join(shares[c].dir, fmt.Sprintf("%09d.dcm", n)), data, 0o644); err != nil {
					b.Fatal(err)
				}
				continue
			}
			if body == nil {
				f, err := os.Create(filepath.Join(shares[c].dir, fmt.Sprintf("body%09d", n)))
				if err != nil {
					b.Fatal(err)
				}
				body, mw = f, multipart.NewWriter(f)
				mw.SetBoundary(boundary)
			}
			pw, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
			if err != nil {
				b.Fatal(err)
			}
			pw.Write(data)
			if inBody++; inBody == perRequest {
				flush(c)
			}
		}
		flush(c)
	}
	s := startLumen(b, func(c *Config) {
		if backend == "fs+postgres" {
			c.Index.Backend, c.Index.Postgres.DSN = "postgres", pgtest.Schema(b)
		}
		// Steady state: the day's 256 fan-out directories exist (a running archive makes
		// them with its first instances of the day), so the figures are not those of the
		// day's first few hundred instances, each of which creates a directory.
		day := filepath.Join(c.Store.FS.Dir, filepath.FromSlash(path.Dir(path.Dir(ingest.NewBlobKey(time.Now())))))
		for i := range 256 {
			if err := os.MkdirAll(filepath.Join(day, fmt.Sprintf("%02x", i)), 0o750); err != nil {
				b.Fatal(err)
			}
		}
	})
	queue := openBenchQueue(b, s.c)
	host, port := splitAddr(s.addr.DIMSE)
	stowURL := "http://" + s.addr.HTTP + "/dicom-web/studies"
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	b.SetBytes(int64(tpl.Size()))
	b.ReportAllocs() // the server's: the clients run in processes of their own
	b.ResetTimer()
	if path := os.Getenv("LUMEN_BENCH_CPUPROFILE"); path != "" && b.N > 1 {
		// The transfer only (not the set-up above, which writes the client's files).
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	cpu0, ccpu0, wall0 := cpuTime(b, syscall.RUSAGE_SELF), cpuTime(b, syscall.RUSAGE_CHILDREN), time.Now()
	for c := range min(clients, b.N) {
		wg.Go(func() {
			if proto == "cstore" {
				cmd := exec.Command(storescu, "-aet", "BENCH", "-aec", "LUMEN", host, port, "+sd", "+r", shares[c].dir)
				cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
				out, err := cmd.CombinedOutput()
				if err != nil || bytes.Contains(out, []byte("E: ")) {
					errs <- fmt.Errorf("storescu: %v\n%s", err, out)
				}
				return
			}
			for _, f := range shares[c].bodies {
				out, err := exec.Command(curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect:",
					"-H", `Content-Type: multipart/related; type="application/dicom"; boundary=`+boundary,
					"--data-binary", "@"+f, stowURL).CombinedOutput()
				if err != nil || strings.TrimSpace(string(out)) != "200" {
					errs <- fmt.Errorf("curl: %v: %s", err, out)
					return
				}
			}
		})
	}
	wg.Wait()
	ackCPU, wall := cpuTime(b, syscall.RUSAGE_SELF)-cpu0, time.Since(wall0)
	ccpu := cpuTime(b, syscall.RUSAGE_CHILDREN) - ccpu0
	settleBackground(b, queue)
	cpu := cpuTime(b, syscall.RUSAGE_SELF) - cpu0
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	if got := storedCount(b, s.addr.HTTP); got != b.N {
		b.Fatalf("%d instances stored, want %d", got, b.N)
	}
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "server-cpu-ms/inst")
	b.ReportMetric(float64(ackCPU.Microseconds())/1000/float64(b.N), "ack-cpu-ms/inst")
	b.ReportMetric(float64(ccpu.Microseconds())/1000/float64(b.N), "client-cpu-ms/inst")
	b.ReportMetric(float64(b.N)/wall.Seconds(), "instances/s")
}

// openBenchQueue opens a second handle on the server's index, for settleBackground.
func openBenchQueue(b *testing.B, c *Config) *sqlindex.DB {
	ctx := context.Background()
	var x *sqlindex.DB
	var err error
	if c.Index.Backend == "postgres" {
		x, err = postgres.Open(ctx, c.Index.Postgres.DSN)
	} else {
		x, err = sqlite.Open(ctx, c.Index.SQLite.Path)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { x.Close() })
	return x
}

// settleBackground makes the queued jobs due now (the thumbnail jobs otherwise wait for
// their study's quiet period) and waits until the server's job worker has done them all,
// then for the audit trail's last batch.
func settleBackground(b *testing.B, x *sqlindex.DB) {
	ctx := context.Background()
	if _, err := x.SQL().ExecContext(ctx, `UPDATE jobs SET not_before = 0`); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		counts, err := x.JobCounts(ctx)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, c := range counts {
			n += c
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("background jobs not done after 5 minutes: %v", counts)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the audit trail's linger and its write; thumbnails' store writes
}

// storedCount reads lumen_ingest_objects_total{outcome="stored"} from the metrics.
func storedCount(b *testing.B, httpAddr string) int {
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(text), "\n") {
		if v, ok := strings.CutPrefix(line, `lumen_ingest_objects_total{outcome="stored"} `); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return 0
}

// benchDiskLimit is the disk's durable-put limit: archive/fs puts (the store opened with
// opts) of size bytes under fresh keys, by writers concurrent writers, spread over 256
// directories (each put fsyncs its directory alone), or, with second, in the directory
// of the current second as ingest's keys are (concurrent puts share their directory
// fsyncs).
func benchDiskLimit(b *testing.B, size, writers int, second bool, opts fs.Options) {
	s, err := fs.Open(filepath.Join(b.TempDir(), "blobs"), opts)
	if err != nil {
		b.Fatal(err)
	}
	archivetest.BenchPuts(b, s, size, writers, second)
}
