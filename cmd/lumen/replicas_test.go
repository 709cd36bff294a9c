package main

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/archive/s3/miniotest"
	"github.com/lumenpacs/lumen/index/postgres/pgtest"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// TestReplicas runs two Lumen servers on one PostgreSQL schema and one MinIO bucket: a
// study stored through one is found and retrieved through the other, and its thumbnail
// job is done once, by whichever replica claims it.
func TestReplicas(t *testing.T) {
	dsn := pgtest.Schema(t)
	srv := miniotest.Shared(t)
	sc := srv.Config(miniotest.BucketName())
	shared := func(c *Config) {
		c.Index.Backend, c.Index.Postgres.DSN = "postgres", dsn
		c.Store.Backend = "s3"
		c.Store.S3.Endpoint, c.Store.S3.Bucket, c.Store.S3.AccessKey, c.Store.S3.SecretKey = sc.Endpoint, sc.Bucket, sc.AccessKey, sc.SecretKey
	}
	var logs [2]syncBuffer
	a := startLumenLogged(t, shared, slog.New(slog.NewJSONHandler(&logs[0], nil)))
	b := startLumenLogged(t, shared, slog.New(slog.NewJSONHandler(&logs[1], nil)))
	corpus, err := gen.Corpus(43)
	if err != nil {
		t.Fatal(err)
	}
	var study []gen.Object
	for _, o := range corpus {
		if o.StudyUID == corpus[0].StudyUID {
			study = append(study, o)
		}
	}
	stowAll(t, "http://"+a.addr.HTTP+"/dicom-web", study)
	bBase := "http://" + b.addr.HTTP + "/dicom-web"
	code, body := httpDo(t, http.MethodGet, bBase+"/studies?StudyInstanceUID="+study[0].StudyUID+"&includefield=00201208", "", nil)
	if code != http.StatusOK || !strings.Contains(body, study[0].StudyUID) {
		t.Fatalf("QIDO on the other replica: %d %.200s", code, body)
	}
	o := study[len(study)/2]
	code, body = httpDo(t, http.MethodGet, bBase+"/studies/"+o.StudyUID+"/series/"+o.SeriesUID+"/instances/"+o.SOPInstanceUID, "", nil,
		"Accept", `multipart/related; type="application/dicom"; transfer-syntax=*`)
	if code != http.StatusOK || !bytes.Contains([]byte(body), o.Data[132:]) {
		t.Fatalf("WADO-RS on the other replica: %d, the instance is not in the answer", code)
	}
	// The study's thumbnail job (due after the index's 10 s quiet period) runs once.
	deadline := time.Now().Add(40 * time.Second)
	count := func() int {
		return strings.Count(logs[0].String(), "study thumbnails rendered") + strings.Count(logs[1].String(), "study thumbnails rendered")
	}
	for count() == 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // a second run, if any, would happen now
	if n := count(); n != 1 {
		t.Fatalf("the thumbnail job ran %d times across the replicas", n)
	}
	// Either replica now serves the thumbnail from the shared cache.
	for _, base := range []string{"http://" + a.addr.HTTP, "http://" + b.addr.HTTP} {
		resp, err := http.Get(base + "/dicom-web/studies/" + o.StudyUID + "/thumbnail")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Warning") != "" {
			t.Fatalf("thumbnail on %s: %d %s", base, resp.StatusCode, resp.Header.Get("Warning"))
		}
	}
}
