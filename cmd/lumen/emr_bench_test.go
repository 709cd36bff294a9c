package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// manyStudies stores n one-image CT studies of one patient on n days, and fetches each
// study's thumbnail once so that it is cached.
func manyStudies(b *testing.B, base string, p gen.Patient, n int) {
	b.Helper()
	var objs []gen.Object
	day := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		o, err := gen.CTSeries(gen.Options{Seed: uint64(i + 1), Patient: p, StudyID: fmt.Sprint(i), AccessionNumber: fmt.Sprintf("B%05d", i),
			StudyDate: day.AddDate(0, 0, i).Format("20060102"), StudyDescription: fmt.Sprintf("CT study %d", i)}, 1, 64, 64)
		if err != nil {
			b.Fatal(err)
		}
		objs = append(objs, o...)
		if len(objs) == 50 || i == n-1 {
			stowAll(b, base+"/dicom-web", objs)
			objs = nil
		}
	}
}

func timedGet(b *testing.B, u string) time.Duration {
	start := time.Now()
	httpGet(b, u, "*/*")
	return time.Since(start)
}

// BenchmarkChart measures the chart API and the widget for a patient with 200 studies
// (SQLite, thumbnails cached): latency percentiles of one request at a time.
func BenchmarkChart(b *testing.B) {
	s := startLumen(b, nil)
	base := "http://" + s.addr.HTTP
	p := gen.Patient{ID: "BENCH-200", Issuer: "LUMEN-TEST", Name: "Bench^Two Hundred", BirthDate: "19500101", Sex: "O"}
	manyStudies(b, base, p, 200)
	api := base + "/emr/v1/patients/BENCH-200/studies?issuer=LUMEN-TEST&limit=200"
	widget := base + "/emr/v1/patients/BENCH-200/chart?issuer=LUMEN-TEST"
	// Cache every thumbnail, as the background worker would have.
	resp, err := http.Get(api)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if n := strings.Count(string(body), `"thumbnailUrl"`); n != 200 {
		b.Fatalf("%d studies in the chart", n)
	}
	for _, part := range strings.Split(string(body), `"thumbnailUrl":"`)[1:] {
		timedGet(b, part[:strings.Index(part, `"`)])
	}
	var apiT, widgetT []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		apiT = append(apiT, timedGet(b, api))
		widgetT = append(widgetT, timedGet(b, widget))
	}
	b.StopTimer()
	percentiles(b, apiT, "api-")
	percentiles(b, widgetT, "widget-")
}

// BenchmarkWidgetFirstThumbnail measures, in headless Chromium on loopback, the time
// from navigation start to the first thumbnail received on the widget, for a study just
// received whose thumbnails the background worker has rendered.
func BenchmarkWidgetFirstThumbnail(b *testing.B) {
	chromium := tools.Require(b, "chromium", "Chromium")
	s := startLumen(b, nil)
	base := "http://" + s.addr.HTTP
	p := gen.Patient{ID: "BENCH-NEW", Issuer: "LUMEN-TEST", Name: "Bench^New", BirthDate: "19500101", Sex: "O"}
	objs, err := gen.ChartPatient(3, p, 20)
	if err != nil {
		b.Fatal(err)
	}
	stowAll(b, base+"/dicom-web", objs)
	series := map[string]bool{}
	for _, o := range objs {
		series[o.SeriesUID] = true
	}
	// Wait for the background worker (quiet period, then rendering) to store the
	// thumbnail of each series.
	deadline := time.Now().Add(60 * time.Second)
	for {
		n := 0
		filepath.WalkDir(filepath.Join(s.c.Store.FS.Dir, "thumbnails"), func(_ string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
		if n >= len(series) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the background worker rendered %d of %d thumbnails", n, len(series))
		}
		time.Sleep(200 * time.Millisecond)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.WindowSize(1200, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	widget := base + "/emr/v1/patients/BENCH-NEW/chart?issuer=LUMEN-TEST"
	var firsts []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bctx, cancel := chromedp.NewContext(actx) // a fresh tab: no memory cache
		ctx, cancel2 := context.WithTimeout(bctx, 30*time.Second)
		err := chromedp.Do(ctx, chromedp.Navigate(widget), chromedp.WaitVisible(chromedp.CSS(`[role=tablist]`)))
		if err == nil {
			var ms float64
			ms, err = chromedp.Run(ctx, chromedp.Poll[float64](`(() => {
				const t = performance.getEntriesByType('resource').filter(e => e.name.includes('/thumbnail') && e.responseEnd > 0).map(e => e.responseEnd);
				return t.length ? Math.min(...t) : 0; })()`, chromedp.WithPollingTimeout(20*time.Second)))
			firsts = append(firsts, time.Duration(ms*float64(time.Millisecond)))
		}
		cancel2()
		cancel()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	percentiles(b, firsts, "first-thumb-")
}
