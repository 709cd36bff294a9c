package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/testdata/gen"
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
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := string(b)
	for _, want := range []string{
		`lumen_http_request_duration_seconds_bucket{code="200",method="POST",route="/dicom-web/studies",le=`,
		`lumen_http_request_duration_seconds_count{code="200",method="GET",route="/dicom-web/studies"} 1`,
		`lumen_http_request_duration_seconds_count{code="200",method="GET",route="/dicom-web/studies/:study/metadata"} 1`,
		`lumen_http_request_duration_seconds_count{code="404",method="GET",route="/dicom-web/studies/:study/metadata"} 1`,
		`lumen_dimse_operation_duration_seconds_count{operation="C-ECHO",status="0x0000"} 1`,
		`lumen_queue_jobs{kind="thumbnails"}`,
		`lumen_ingest_objects_total{outcome="stored"} 2`,
		`lumen_ingest_stage_duration_seconds_count{stage="store"} 2`,
		`lumen_ingest_stage_duration_seconds_count{stage="index"} 2`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(m, corpus[0].StudyUID) {
		t.Error("a UID appears in /metrics")
	}
}
