package main

import (
	"context"
	"fmt"
	"io"
	"net"
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

// TestHTTPLimits: lumen serve wires the HTTP limits. An address over its connection cap
// does not keep another out; a STOW body that trickles below the minimum rate is cut
// with 408 and the reason; a second upload from one address over its budget gets 429;
// and the refusals are counted in /metrics.
func TestHTTPLimits(t *testing.T) {
	s := startLumen(t, func(c *Config) {
		c.DIMSE.Addr = ""
		c.HTTP.MaxConnsPerAddr, c.HTTP.MaxUploadsPerAddr = 4, 1
		c.HTTP.MinUploadRate, c.HTTP.UploadRateWindow, c.HTTP.UploadGrace = 1000, 300*time.Millisecond, -1
	})
	base := "http://" + s.addr.HTTP
	dial := func(ip string) net.Conn {
		c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).Dial("tcp", s.addr.HTTP)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// Ten silent connections from 127.0.0.2; the service is there for 127.0.0.3.
	for i := 0; i < 10; i++ {
		dial("127.0.0.2")
	}
	cl := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}).DialContext}, Timeout: 10 * time.Second}
	resp, err := cl.Get(base + "/dicom-web/studies")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("a client beside a connection flood: %v %v", err, resp)
	}
	resp.Body.Close()
	// A STOW trickling a byte at a time from 127.0.0.4, and a second upload from there.
	slow := dial("127.0.0.4")
	fmt.Fprintf(slow, "POST /dicom-web/studies HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/related; type=\"application/dicom\"; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\nContent-Type: application/dicom\r\n\r\n")
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				slow.Write([]byte("x"))
			}
		}
	}()
	defer close(stop)
	time.Sleep(100 * time.Millisecond) // the trickling upload holds the address's one upload place
	second := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.4")}}).DialContext}, Timeout: 10 * time.Second}
	resp, err = second.Post(base+"/dicom-web/studies", `multipart/related; type="application/dicom"; boundary=b`, strings.NewReader("--b--\r\n"))
	if err != nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a second upload from one address over its budget: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	answer, _ := io.ReadAll(slow)
	if !strings.HasPrefix(string(answer), "HTTP/1.1 408") || !strings.Contains(string(answer), "too slowly") {
		t.Errorf("a trickling STOW body: %.300q, want 408 saying it arrived too slowly", answer)
	}
	_, m := get(t, base+"/metrics")
	for _, want := range []string{`lumen_http_connections_refused_total{reason="evicted"}`, `lumen_http_uploads_refused_total{reason="per_address"} 1`, `lumen_http_uploads_refused_total{reason="too_slow"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
