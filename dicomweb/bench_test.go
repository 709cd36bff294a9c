package dicomweb_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// BenchmarkThumbnail measures the thumbnail of a 512×512 16-bit CT instance (JPEG, about
// 128 px) over HTTP: "first" asks for a new size each time (a render every request),
// "cached" asks for the same thumbnail again (the in-memory cache). p50/p95.
func BenchmarkThumbnail(b *testing.B) {
	for _, mode := range []string{"first", "cached"} {
		b.Run(mode, func(b *testing.B) { benchThumbnail(b, mode == "first") })
	}
	b.Run("xa-1024-30frames-jpeg-lossless", benchThumbnailXA)
}

// benchThumbnailXA: the first-render thumbnail (middle frame) of a 1024×1024, 30-frame
// XA cine compressed with DCMTK's dcmcjpeg (JPEG Lossless SV1, as XA usually is).
func benchThumbnailXA(b *testing.B) {
	xa, err := gen.XACine(gen.Options{Seed: 12}, 30, 1024, 1024)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	in, out := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "out.dcm")
	os.WriteFile(in, xa.Data, 0o644)
	if o, err := exec.Command(dcmtk(b, "dcmcjpeg"), in, out).CombinedOutput(); err != nil {
		b.Fatalf("dcmcjpeg: %v %s", err, o)
	}
	xa.Data, _ = os.ReadFile(out)
	e := newEnv(b, "sqlite", nil)
	if code, resp := e.stow(b, "/studies", xa.Data); code != http.StatusOK {
		b.Fatalf("STOW: %d %v", code, resp)
	}
	u := instanceURL(e, xa) + "/thumbnail"
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		resp := e.do(b, http.MethodGet, fmt.Sprintf("%s?viewport=%d,%d", u, 64+i%4000, 64+i%4000), nil)
		readAll(b, resp)
		lat = append(lat, time.Since(t0))
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Warning") != "" {
			b.Fatal(resp.StatusCode, resp.Header.Get("Warning"))
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
}

func benchThumbnail(b *testing.B, first bool) {
	objs, err := gen.CTSeries(gen.Options{Seed: 4}, 1, 512, 512)
	if err != nil {
		b.Fatal(err)
	}
	e := newEnv(b, "sqlite", nil)
	if code, resp := e.stow(b, "/studies", objs[0].Data); code != http.StatusOK {
		b.Fatalf("STOW: %d %v", code, resp)
	}
	u := instanceURL(e, objs[0]) + "/thumbnail"
	readAll(b, e.do(b, http.MethodGet, u, nil)) // warm: the cached case starts cached
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		url := u
		if first {
			url = fmt.Sprintf("%s?viewport=%d,%d", u, 64+i%4000, 64+i%4000)
		}
		t0 := time.Now()
		resp := e.do(b, http.MethodGet, url, nil)
		readAll(b, resp)
		lat = append(lat, time.Since(t0))
		if resp.StatusCode != http.StatusOK {
			b.Fatal(resp.StatusCode)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
}

// BenchmarkQIDOIncludeField measures one QIDO-RS page of 50 CT instances over HTTP
// (SQLite index): "none" asks for the default attributes only (the index record),
// "ImageType" for one attribute only the stored metadata holds, "all" for
// includefield=all (every stored attribute merged with the record's).
func BenchmarkQIDOIncludeField(b *testing.B) {
	objs, err := gen.CTSeries(gen.Options{Seed: 15}, 50, 64, 64)
	if err != nil {
		b.Fatal(err)
	}
	e := newEnv(b, "sqlite", nil)
	files := make([][]byte, len(objs))
	for i, o := range objs {
		files[i] = o.Data
	}
	if code, resp := e.stow(b, "/studies", files...); code != http.StatusOK {
		b.Fatalf("STOW: %d %v", code, resp)
	}
	u := e.base + "/studies/" + objs[0].StudyUID + "/instances"
	for _, c := range []struct{ name, query string }{
		{"none", ""},
		{"ImageType", "?includefield=ImageType"},
		{"all", "?includefield=all"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				resp := e.do(b, http.MethodGet, u+c.query, nil, "Accept", "application/dicom+json")
				body := readAll(b, resp)
				if resp.StatusCode != http.StatusOK || len(body) < 2 {
					b.Fatal(resp.StatusCode)
				}
			}
		})
	}
}

// BenchmarkRendered measures one /rendered request through the HTTP handler (SQLite
// index, filesystem store) for a 512×512 16-bit CT (stored window) and a 640×480 RGB
// ultrasound frame, as JPEG (the default, quality 90) and as PNG. p50-ms and p95-ms are
// timed on the server's side (from the handler's start to its return), client-p50-ms by
// the client; cpu-ms/op is the process's CPU time (user and system, client included)
// per request, the figure least disturbed by other work on the machine.
func BenchmarkRendered(b *testing.B) {
	ct, err := gen.CTSeries(gen.Options{Seed: 4}, 1, 512, 512)
	if err != nil {
		b.Fatal(err)
	}
	us, err := gen.USCine(gen.Options{Seed: 5}, 2, 480, 640)
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan time.Duration, 1)
	e := newWrappedEnv(b, "sqlite", nil, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t0 := time.Now()
			h.ServeHTTP(w, r)
			if strings.HasSuffix(r.URL.Path, "/rendered") {
				served <- time.Since(t0)
			}
		})
	})
	if code, resp := e.stow(b, "/studies", ct[0].Data, us.Data); code != http.StatusOK {
		b.Fatalf("STOW: %d %v", code, resp)
	}
	for _, c := range []struct {
		name, url, media string
	}{
		{"ct-512x512-16bit/jpeg", instanceURL(e, ct[0]) + "/rendered", "image/jpeg"},
		{"ct-512x512-16bit/png", instanceURL(e, ct[0]) + "/rendered?accept=image/png", "image/png"},
		{"us-640x480-rgb/jpeg", instanceURL(e, us) + "/frames/1/rendered", "image/jpeg"},
		{"us-640x480-rgb/png", instanceURL(e, us) + "/frames/1/rendered?accept=image/png", "image/png"},
	} {
		b.Run(c.name, func(b *testing.B) {
			get := func() (time.Duration, time.Duration) {
				t0 := time.Now()
				resp := e.do(b, http.MethodGet, c.url, nil)
				body := readAll(b, resp)
				client := time.Since(t0)
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != c.media || len(body) < 1000 {
					b.Fatalf("%d %s, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
				}
				return <-served, client
			}
			get() // warm
			lat := make([]time.Duration, 0, b.N)
			cl := make([]time.Duration, 0, b.N)
			cpu0 := tools.CPUTime(syscall.RUSAGE_SELF)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				srv, cli := get()
				lat = append(lat, srv)
				cl = append(cl, cli)
			}
			b.StopTimer()
			cpu := tools.CPUTime(syscall.RUSAGE_SELF) - cpu0
			slices.Sort(lat)
			slices.Sort(cl)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
			b.ReportMetric(float64(cl[len(cl)/2].Microseconds())/1000, "client-p50-ms")
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}
