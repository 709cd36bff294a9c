package dicomweb_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/testdata/gen"
)

// retrieveStudyInstances is the size of the study BenchmarkWADORetrieve retrieves: 151
// 512×512 16-bit CT instances, about 76 MiB.
const retrieveStudyInstances = 151

// BenchmarkWADORetrieve measures WADO-RS RetrieveStudy (multipart/related;
// type="application/dicom"; transfer-syntax=*) of a 151-instance 512×512 CT study
// (about 76 MiB) from the filesystem store, its files in the page cache, over a real
// loopback TCP connection (httptest.NewServer: net/http's own listener, the socket
// path the server takes in production), read whole by a plain http.Client with a
// 256 KiB read buffer. "study": one study at a time; "4-studies-parallel": four
// studies retrieved at once on four connections, the figure is the aggregate.
// MiB/s is body bytes over wall time; cpu-ms/op is the process's user+system CPU time
// (client and server together) per operation, the steadier figure on a busy machine.
func BenchmarkWADORetrieve(b *testing.B) {
	e := newEnv(b, "sqlite", nil)
	var studies []string
	var studyBytes []int64
	for i := range 4 {
		uid, n := stowCTStudy(b, e, uint64(170+i))
		studies, studyBytes = append(studies, uid), append(studyBytes, n)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8, DisableCompression: true}}
	b.Cleanup(client.CloseIdleConnections)
	get := func(b *testing.B, study string, minBytes int64) int64 {
		req, _ := http.NewRequest(http.MethodGet, e.base+"/studies/"+study, nil)
		req.Header.Set("Accept", `multipart/related; type="application/dicom"; transfer-syntax=*`)
		resp, err := client.Do(req)
		if err != nil {
			b.Error(err)
			return 0
		}
		defer resp.Body.Close()
		n, err := io.CopyBuffer(countingWriter{}, resp.Body, make([]byte, 256<<10))
		if err != nil || resp.StatusCode != http.StatusOK || n < minBytes {
			b.Errorf("GET study: status %d, %d bytes (at least %d expected), %v", resp.StatusCode, n, minBytes, err)
		}
		return n
	}
	// Warm: every file read once, and the answer checked part by part.
	for i, s := range studies {
		checkRetrievedStudy(b, e, s, studyBytes[i])
	}
	b.Run("study", func(b *testing.B) {
		var total int64
		cpu0 := cpuTime()
		t0 := time.Now()
		for i := 0; b.Loop(); i++ {
			total += get(b, studies[i%len(studies)], studyBytes[i%len(studies)])
		}
		reportThroughput(b, total, time.Since(t0), cpuTime()-cpu0)
	})
	b.Run("4-studies-parallel", func(b *testing.B) {
		var total int64
		var mu sync.Mutex
		cpu0 := cpuTime()
		t0 := time.Now()
		for b.Loop() {
			var wg sync.WaitGroup
			for i, s := range studies {
				wg.Go(func() {
					n := get(b, s, studyBytes[i])
					mu.Lock()
					total += n
					mu.Unlock()
				})
			}
			wg.Wait()
		}
		reportThroughput(b, total, time.Since(t0), cpuTime()-cpu0)
	})
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
// instances, byte for byte, each with its Content-Length.
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

// cpuTime is the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportThroughput reports MiB/s of body bytes over wall time, and CPU ms per op.
func reportThroughput(b *testing.B, total int64, wall, cpu time.Duration) {
	b.ReportMetric(float64(total)/(1<<20)/wall.Seconds(), "MiB/s")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
}
