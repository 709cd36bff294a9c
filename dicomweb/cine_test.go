package dicomweb_test

import (
	"bytes"
	"image/gif"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/dicomweb"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// TestCineGIF checks the animated GIF of cines: frame count (within the cap), frame
// delay from FrameTime or the frame rate, and size within the cap.
func TestCineGIF(t *testing.T) {
	xa, err := gen.XACine(gen.Options{Seed: 8}, 10, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	us, err := gen.USCine(gen.Options{Seed: 8}, 12, 48, 64)
	if err != nil {
		t.Fatal(err)
	}
	long, err := gen.XACine(gen.Options{Seed: 9}, 300, 32, 32)
	if err != nil {
		t.Fatal(err)
	}
	big, err := gen.XACine(gen.Options{Seed: 10}, 3, 512, 512)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "sqlite", nil)
	for _, o := range []gen.Object{xa, us, long, big} {
		if code, resp := e.stow(t, "/studies", o.Data); code != http.StatusOK {
			t.Fatalf("STOW %s: %d %v", o.Name, code, resp)
		}
	}
	get := func(o gen.Object, q string) *gif.GIF {
		t.Helper()
		resp := e.do(t, http.MethodGet, instanceURL(e, o)+"/rendered"+q, nil, "Accept", "image/gif")
		b := readAll(t, resp)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/gif" {
			t.Fatalf("%s: %d %s", o.Name, resp.StatusCode, b)
		}
		g, err := gif.DecodeAll(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	// XA: FrameTime 66.67 ms → 7/100 s; 10 frames.
	g := get(xa, "")
	if len(g.Image) != 10 || g.Delay[0] != 7 || g.Image[0].Bounds().Dx() != 64 {
		t.Fatalf("XA cine: %d frames, delay %d, width %d", len(g.Image), g.Delay[0], g.Image[0].Bounds().Dx())
	}
	// US (RGB, 30 frames/s): 12 colour frames, 3/100 s.
	g = get(us, "")
	if len(g.Image) != 12 || g.Delay[0] != 3 {
		t.Fatalf("US cine: %d frames, delay %d", len(g.Image), g.Delay[0])
	}
	// 300 frames → the cap, each delay doubled so the loop keeps its duration.
	g = get(long, "")
	if len(g.Image) != dicomweb.CineMaxFrames || g.Delay[0] != 13 {
		t.Fatalf("long cine: %d frames (cap %d), delay %d", len(g.Image), dicomweb.CineMaxFrames, g.Delay[0])
	}
	// 512×512 → the size cap; a viewport asks for less.
	if g = get(big, ""); g.Image[0].Bounds().Dx() != dicomweb.CineMaxSize {
		t.Fatalf("big cine width %d", g.Image[0].Bounds().Dx())
	}
	if g = get(big, "?viewport=100,100"); g.Image[0].Bounds().Dx() != 100 {
		t.Fatalf("viewport width %d", g.Image[0].Bounds().Dx())
	}
}

// BenchmarkCineGIF renders a 500-frame 256×256 RGB US cine to an animated GIF and reports
// the peak Go heap growth during the request.
func BenchmarkCineGIF(b *testing.B) {
	us, err := gen.USCine(gen.Options{Seed: 5}, 500, 256, 256)
	if err != nil {
		b.Fatal(err)
	}
	e := newEnv(b, "sqlite", nil)
	if code, resp := e.stow(b, "/studies", us.Data); code != http.StatusOK {
		b.Fatalf("STOW: %d %v", code, resp)
	}
	us.Data = nil
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	done := make(chan struct{})
	peakc := make(chan uint64)
	go func() {
		peak := uint64(0)
		defer func() { peakc <- peak }()
		var m runtime.MemStats
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
		}
	}()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp := e.do(b, http.MethodGet, instanceURL(e, us)+"/rendered", nil, "Accept", "image/gif")
		readAll(b, resp)
		if resp.StatusCode != http.StatusOK {
			b.Fatal(resp.StatusCode)
		}
	}
	b.StopTimer()
	close(done)
	peak := <-peakc
	b.ReportMetric(float64(peak-min(peak, before.HeapInuse))/1e6, "peak-heap-MB")
}
