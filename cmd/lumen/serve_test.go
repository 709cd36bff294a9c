package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeWithoutConfiguration runs the real binary in an empty directory with no
// configuration file: it must create ./data (filesystem store and SQLite) and be ready.
func TestServeWithoutConfiguration(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cmd := exec.Command(lumenBin, "serve")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LUMEN_HTTP_ADDR="+addr, "LUMEN_DIMSE_ADDR="+freeAddr(t))
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var code int
	var body string
	for range 100 {
		code, body = get(t, "http://"+addr+"/readyz")
		if code == http.StatusOK {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != http.StatusOK || !strings.Contains(body, `"index":"ok"`) || !strings.Contains(body, `"store":"ok"`) {
		t.Fatalf("/readyz = %d %s\nlogs:\n%s", code, body, logs.String())
	}
	if code, _ := get(t, "http://"+addr+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d", code)
	}
	if code, body := get(t, "http://"+addr+"/metrics"); code != http.StatusOK || !strings.Contains(body, "lumen_ingest_objects_total") && !strings.Contains(body, "lumen_ingest_bytes_total") {
		t.Fatalf("/metrics = %d", code)
	}
	// DICOMweb is served by default at /dicom-web (empty archive: an empty result).
	if code, body := get(t, "http://"+addr+"/dicom-web/studies"); code != http.StatusOK || strings.TrimSpace(body) != "[]" {
		t.Fatalf("/dicom-web/studies = %d %s", code, body)
	}
	for _, p := range []string{"data/index.db", "data/blobs"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Fatalf("%s not created: %v", p, err)
		}
	}
	// The health check command probes the same server.
	hc := exec.Command(lumenBin, "healthcheck")
	hc.Dir = dir
	hc.Env = append(os.Environ(), "LUMEN_HTTP_ADDR="+addr)
	if out, err := hc.CombinedOutput(); err != nil {
		t.Fatalf("healthcheck: %v %s", err, out)
	}
	// Graceful shutdown on SIGTERM, exit status 0.
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if !strings.Contains(logs.String(), `"msg":"lumen stopped"`) {
		t.Fatalf("logs are not JSON or lack the shutdown line:\n%s", logs.String())
	}
}

func TestReadyzReportsFailure(t *testing.T) {
	dir := t.TempDir()
	c := testConfig(t, dir)
	c.HTTP.Addr = "127.0.0.1:0"
	c.DIMSE.Addr = "127.0.0.1:0"
	ready := make(chan listening, 1)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, c, discardLogger(), ready) }()
	addr := (<-ready).HTTP
	if code, _ := get(t, "http://"+addr+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d", code)
	}
	// The blob directory becomes unusable: readiness says so.
	os.RemoveAll(c.Store.FS.Dir)
	os.WriteFile(c.Store.FS.Dir, []byte("not a directory"), 0o644)
	code, body := get(t, "http://"+addr+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"index":"ok"`) {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
