package dicomweb_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// retrieveStudyInstances is the size of the study BenchmarkWADORetrieve retrieves: 151
// 512×512 16-bit CT instances, 75.7 MiB.
const retrieveStudyInstances = 151

// retrieveClientEnv, when set, makes the test binary BenchmarkWADORetrieve's client
// process (TestMain): its value is a retrieveJob.
const retrieveClientEnv = "LUMEN_BENCH_RETRIEVE_CLIENT"

// TestMain runs the tests, or the client of BenchmarkWADORetrieve when the benchmark
// starts the test binary as its client process.
func TestMain(m *testing.M) {
	if job := os.Getenv(retrieveClientEnv); job != "" {
		os.Exit(retrieveClient(job))
	}
	os.Exit(m.Run())
}

// BenchmarkWADORetrieve measures WADO-RS RetrieveStudy (multipart/related;
// type="application/dicom"; transfer-syntax=*) of a 151-instance 512×512 CT study
// (75.7 MiB) stored through STOW-RS on the filesystem store (SQLite index), its files
// in the page cache, over loopback TCP (httptest.NewServer: net/http's server on a
// real socket). The client is another process, as a viewer or proxy is: the test
// binary itself, with a plain http.Client reading each answer whole with a 256 KiB
// buffer, after one warm-up round. "study": one study at a time; "4-studies-parallel":
// four studies at once on four connections, the figure is the aggregate.
//
// MiB/s is body bytes over the client's wall time; server-cpu-ms/op is the user+system
// CPU of the benchmark process (the server) per operation, client-cpu-ms/op the
// client process's (warm-up included in both): the steadier figures on a busy machine.
func BenchmarkWADORetrieve(b *testing.B) {
	e := newEnv(b, "sqlite", nil)
	var urls []string
	var sizes []int64
	for i := range 4 {
		uid, n := stowCTStudy(b, e, uint64(170+i))
		urls, sizes = append(urls, e.base+"/studies/"+uid), append(sizes, n)
		checkRetrievedStudy(b, e, uid, n)
	}
	b.Run("study", func(b *testing.B) { benchRetrieve(b, retrieveJob{URLs: urls, MinBytes: sizes, Parallel: 1}) })
	b.Run("4-studies-parallel", func(b *testing.B) { benchRetrieve(b, retrieveJob{URLs: urls, MinBytes: sizes, Parallel: 4}) })
}

// retrieveJob is what the client process does: Rounds rounds (after one warm-up
// round) of Parallel retrievals at once, of URLs in turn (at least MinBytes each).
type retrieveJob struct {
	URLs     []string
	MinBytes []int64
	Parallel int
	Rounds   int
}

// retrieveResult is what the client process reports.
type retrieveResult struct {
	Bytes int64         // body bytes of the timed rounds
	Wall  time.Duration // of the timed rounds
	CPU   time.Duration // the process's, warm-up included
	Err   string
}

func benchRetrieve(b *testing.B, job retrieveJob) {
	job.Rounds = b.N
	runtime.GC() // the garbage of the set-up is not the server's work
	spec, _ := json.Marshal(job)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), retrieveClientEnv+"="+string(spec))
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	cpu0 := tools.CPUTime(syscall.RUSAGE_SELF)
	err := cmd.Run()
	server := tools.CPUTime(syscall.RUSAGE_SELF) - cpu0
	var res retrieveResult
	if jerr := json.Unmarshal(out.Bytes(), &res); err != nil || jerr != nil || res.Err != "" {
		b.Fatalf("client process: %v %v %s\n%s%s", err, jerr, res.Err, out.Bytes(), stderr.Bytes())
	}
	ops := float64(b.N) // of "4-studies-parallel": four studies at once
	b.ReportMetric(float64(res.Wall.Nanoseconds())/ops, "ns/op")
	b.ReportMetric(float64(res.Bytes)/(1<<20)/res.Wall.Seconds(), "MiB/s")
	b.ReportMetric(float64(server.Microseconds())/1000/(ops+1), "server-cpu-ms/op")
	b.ReportMetric(float64(res.CPU.Microseconds())/1000/(ops+1), "client-cpu-ms/op")
}

// retrieveClient runs a retrieveJob (given as JSON) and prints its retrieveResult;
// the exit status is 0.
func retrieveClient(spec string) int {
	var job retrieveJob
	res := retrieveResult{}
	defer func() { _ = json.NewEncoder(os.Stdout).Encode(&res) }()
	if err := json.Unmarshal([]byte(spec), &job); err != nil {
		res.Err = err.Error()
		return 0
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8, DisableCompression: true}}
	var mu sync.Mutex
	get := func(i int) int64 {
		req, _ := http.NewRequest(http.MethodGet, job.URLs[i], nil)
		req.Header.Set("Accept", `multipart/related; type="application/dicom"; transfer-syntax=*`)
		resp, err := client.Do(req)
		if err == nil {
			defer resp.Body.Close()
		}
		var n int64
		if err == nil {
			n, err = io.CopyBuffer(countingWriter{}, resp.Body, make([]byte, 256<<10))
		}
		if err == nil && (resp.StatusCode != http.StatusOK || n < job.MinBytes[i]) {
			err = fmt.Errorf("status %d, %d bytes (at least %d expected)", resp.StatusCode, n, job.MinBytes[i])
		}
		if err != nil {
			mu.Lock()
			res.Err = err.Error()
			mu.Unlock()
		}
		return n
	}
	round := func(r int) int64 {
		if job.Parallel <= 1 {
			return get(r % len(job.URLs))
		}
		var wg sync.WaitGroup
		var total int64
		for p := range job.Parallel {
			wg.Go(func() {
				n := get((r + p) % len(job.URLs))
				mu.Lock()
				total += n
				mu.Unlock()
			})
		}
		wg.Wait()
		return total
	}
	round(0) // warm-up: connections, the server's buffers
	t0 := time.Now()
	for r := range job.Rounds {
		res.Bytes += round(r)
	}
	res.Wall = time.Since(t0)
	res.CPU = tools.CPUTime(syscall.RUSAGE_SELF)
	return 0
}

// stowCTStudy stores a generated retrieveStudyInstances-instance 512×512 CT study
// through STOW-RS (in requests of 25 instances) and returns its UID and the bytes of
// its instances.
func stowCTStudy(b testing.TB, e *env, seed uint64) (string, int64) {
	objs, err := gen.CTSeries(gen.Options{Seed: seed}, retrieveStudyInstances, 512, 512)
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for i := 0; i < len(objs); i += 25 {
		var files [][]byte
		for _, o := range objs[i:min(i+25, len(objs))] {
			files = append(files, o.Data)
			n += int64(len(o.Data))
		}
		if code, resp := e.stow(b, "/studies", files...); code != http.StatusOK {
			b.Fatalf("STOW: %d %v", code, resp)
		}
	}
	return objs[0].StudyUID, n
}

// checkRetrievedStudy retrieves a study and checks that its parts are the stored
// instances, byte for byte in total, each with its Content-Length.
func checkRetrievedStudy(b *testing.B, e *env, study string, want int64) {
	resp := e.do(b, http.MethodGet, e.base+"/studies/"+study, nil, "Accept", `multipart/related; type="application/dicom"; transfer-syntax=*`)
	parts := readParts(b, resp, "application/dicom")
	if len(parts) != retrieveStudyInstances {
		b.Fatalf("%d parts, want %d", len(parts), retrieveStudyInstances)
	}
	var n int64
	for _, p := range parts {
		if p.header.Get("Content-Length") != fmt.Sprint(len(p.body)) || !bytes.HasPrefix(p.body[128:], []byte("DICM")) {
			b.Fatalf("part Content-Length %s for %d bytes", p.header.Get("Content-Length"), len(p.body))
		}
		n += int64(len(p.body))
	}
	if n != want {
		b.Fatalf("%d bytes of instances retrieved, %d stored", n, want)
	}
}

// countingWriter discards what it is given; it has no ReadFrom, so that io.CopyBuffer
// reads with the caller's buffer.
type countingWriter struct{}

func (countingWriter) Write(p []byte) (int, error) { return len(p), nil }
