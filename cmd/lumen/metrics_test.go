package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/sqlite"
	"github.com/lumenpacs/lumen/service/audit"
	"github.com/lumenpacs/lumen/service/metrics"
	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/prometheus/client_golang/prometheus"
)

// TestMetrics checks the Prometheus histograms: per HTTP route (the pattern, not the
// path), per DIMSE operation with its status, and the queue depth.
func TestMetrics(t *testing.T) {
	s := startLumen(t, nil)
	base := "http://" + s.addr.HTTP
	corpus, err := gen.Corpus(41)
	if err != nil {
		t.Fatal(err)
	}
	stowAll(t, base+"/dicom-web", corpus[:2])
	for _, p := range []string{"/dicom-web/studies", "/dicom-web/studies/" + corpus[0].StudyUID + "/metadata", "/dicom-web/studies/1.2.3.404/metadata"} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	c, err := dimse.Dial(context.Background(), s.addr.DIMSE, dimse.DialConfig{Contexts: []dimse.ProposedContext{{AbstractSyntax: dimse.VerificationSOPClass, TransferSyntaxes: []string{dimse.ImplicitVRLittleEndian}}}})
	if err != nil {
		t.Fatal(err)
	}
	c.Echo(context.Background())
	c.Release()
	wants := []string{
		`lumen_http_request_duration_seconds_bucket{code="200",method="POST",route="/dicom-web/studies",le=`,
		`lumen_http_request_duration_seconds_count{code="200",method="GET",route="/dicom-web/studies"} 1`,
		`lumen_http_request_duration_seconds_count{code="200",method="GET",route="/dicom-web/studies/:study/metadata"} 1`,
		`lumen_http_request_duration_seconds_count{code="404",method="GET",route="/dicom-web/studies/:study/metadata"} 1`,
		`lumen_dimse_operation_duration_seconds_count{operation="C-ECHO",status="0x0000"} 1`,
		`lumen_queue_jobs{kind="thumbnails"}`,
		`lumen_ingest_objects_total{outcome="stored"} 2`,
		`lumen_ingest_stage_duration_seconds_count{stage="store"} 2`,
		`lumen_ingest_stage_duration_seconds_count{stage="index"} 2`,
	}
	// A request is counted once its handler has returned, which can be after the
	// client has read the whole answer: read /metrics until every series is there.
	var m string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m = string(b)
		if !slices.ContainsFunc(wants, func(w string) bool { return !strings.Contains(m, w) }) || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range wants {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s; its series of that name:\n%s", want, seriesOf(m, want[:strings.IndexAny(want, "{")]))
		}
	}
	if strings.Contains(m, corpus[0].StudyUID) {
		t.Error("a UID appears in /metrics")
	}
}

// TestMetricsCardinality: what a peer chooses never becomes a label value. Requests with
// 300 invented methods, 300 unmatched paths and query strings, and DIMSE operations
// with invented command fields leave the number of series unchanged beyond a fixed set.
func TestMetricsCardinality(t *testing.T) {
	s := startLumen(t, nil)
	base := "http://" + s.addr.HTTP
	series := func() int {
		t.Helper()
		_, m := httpDo(t, http.MethodGet, base+"/metrics", "", nil)
		return strings.Count(m, "lumen_http_request_duration_seconds_count{")
	}
	for i := 0; i < 300; i++ {
		for _, r := range []struct{ method, path string }{
			{fmt.Sprintf("X%dMETHOD", i), "/dicom-web/studies"},
			{http.MethodGet, fmt.Sprintf("/nowhere/%d?x=%d", i, i)},
			{http.MethodGet, fmt.Sprintf("/dicom-web/studies/1.2.%d/series/1.%d/nothing/%d", i, i, i)},
		} {
			req, _ := http.NewRequest(r.method, base+r.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	if n := series(); n > 12 {
		_, m := httpDo(t, http.MethodGet, base+"/metrics", "", nil)
		var lines []string
		for _, l := range strings.Split(m, "\n") {
			if strings.HasPrefix(l, "lumen_http_request_duration_seconds_count{") {
				lines = append(lines, l)
			}
		}
		t.Fatalf("%d HTTP series after invented methods and paths (want a handful):\n%s", n, strings.Join(lines[:min(20, len(lines))], "\n"))
	}
	reg := prometheus.NewRegistry()
	observe := metrics.DIMSE(reg)
	for f := 0; f < 300; f++ {
		observe(dimse.OperationName(uint16(0x0F00+f)), time.Millisecond, dimse.StatusUnrecognizedOperation)
	}
	mf, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(mf[0].GetMetric()); n != 1 {
		t.Fatalf("%d DIMSE series after 300 invented command fields, want 1 (operation \"other\")", n)
	}
}

// TestRecoverPanics: a handler that panics answers 500, is audited as such, and the
// server goes on serving the next request.
func TestRecoverPanics(t *testing.T) {
	idx, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	x := audit.New(idx, nil, discardLogger())
	e := echo.New()
	e.Use(x.HTTP(httpAction, httpActor), metrics.Recover(discardLogger()))
	e.GET("/dicom-web/studies/:study", func(c echo.Context) error {
		var list []int
		return c.String(http.StatusOK, fmt.Sprint(list[len(c.Param("study"))])) // index out of range
	})
	srv := httptest.NewServer(e)
	defer srv.Close()
	for i := 0; i < 2; i++ {
		resp, err := http.Get(srv.URL + "/dicom-web/studies/1.2.3")
		if err != nil {
			t.Fatalf("request %d: %v (the server went away)", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusInternalServerError {
			t.Fatalf("request %d: %d, want 500", i, resp.StatusCode)
		}
	}
	rows, err := x.Search(context.Background(), index.AuditQuery{})
	if err != nil || len(rows) != 2 || rows[0].Outcome != "500" || rows[0].StudyInstanceUID != "1.2.3" {
		t.Fatalf("audit rows: %+v %v", rows, err)
	}
	x.Close()
}

// seriesOf returns the lines of the exposition m that give a value of the metric name
// (its _count and _sum for a histogram's name with the suffix), to tell what a test
// found instead of what it wanted.
func seriesOf(m, name string) string {
	var out []string
	for _, l := range strings.Split(m, "\n") {
		if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
