package dicomweb_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/testdata/gen"
)

// BenchmarkThumbnail renders the thumbnail of a 512×512 16-bit CT instance (JPEG, 128 px)
// over HTTP, every request a first render (no thumbnail cache yet), and reports p50/p95.
func BenchmarkThumbnail(b *testing.B) {
	objs, err := gen.CTSeries(gen.Options{Seed: 4}, 1, 512, 512)
	if err != nil {
		b.Fatal(err)
	}
	e := newEnv(b, "sqlite", nil)
	if code, resp := e.stow(b, "/studies", objs[0].Data); code != http.StatusOK {
		b.Fatalf("STOW: %d %v", code, resp)
	}
	u := instanceURL(e, objs[0]) + "/thumbnail"
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		resp := e.do(b, http.MethodGet, u, nil)
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
