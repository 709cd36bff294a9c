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
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/testdata/tools"
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

// netnsClient makes a network namespace with a veth pair (this side hostIP/30, the
// namespace's side clientIP/30), removed when the test ends, and returns a function
// running curl in the namespace: a client with an address of its own, not loopback.
func netnsClient(t *testing.T, hostIP, clientIP string) func(url string) (int, string) {
	t.Helper()
	ip := tools.Require(t, "ip", "iproute2")
	curl := tools.Require(t, "curl", "curl")
	if os.Geteuid() != 0 {
		tools.Missing(t, "root, to make a network namespace")
	}
	ns := fmt.Sprintf("lumen-t%d", os.Getpid()%100000)
	host, peer := ns+"a", ns+"b"
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	exec.Command(ip, "netns", "del", ns).Run() // a leftover of a killed run
	run("netns", "add", ns)
	t.Cleanup(func() { exec.Command(ip, "link", "del", host).Run(); exec.Command(ip, "netns", "del", ns).Run() })
	run("link", "add", host, "type", "veth", "peer", "name", peer)
	run("link", "set", peer, "netns", ns)
	run("addr", "add", hostIP+"/30", "dev", host)
	run("link", "set", host, "up")
	run("-n", ns, "addr", "add", clientIP+"/30", "dev", peer)
	run("-n", ns, "link", "set", peer, "up")
	run("-n", ns, "link", "set", "lo", "up")
	return func(url string) (int, string) {
		out, err := exec.Command(ip, "netns", "exec", ns, curl, "-s", "-m", "10", "-w", "\n%{http_code}", url).Output()
		if err != nil {
			t.Fatalf("curl %s from the namespace: %v %s", url, err, out)
		}
		body, code := "", string(out)
		if i := strings.LastIndexByte(string(out), '\n'); i >= 0 {
			body, code = string(out[:i]), string(out[i+1:])
		}
		n, _ := strconv.Atoi(code)
		return n, body
	}
}

// TestDevModeRemote: without authentication, a client on another address (in a network
// namespace of the test's own) gets 403 saying how to turn authentication on, while
// health checks answer; http.allow_remote_without_auth opens the server knowingly.
func TestDevModeRemote(t *testing.T) {
	const hostIP, clientIP = "10.213.77.1", "10.213.77.2"
	curl := netnsClient(t, hostIP, clientIP)
	for _, open := range []bool{false, true} {
		s := startLumen(t, func(c *Config) {
			c.HTTP.Addr, c.DIMSE.Addr = hostIP+":0", ""
			c.HTTP.AllowRemoteWithoutAuth = open
		})
		base := "http://" + s.addr.HTTP
		code, body := curl(base + "/dicom-web/studies")
		switch {
		case !open && (code != http.StatusForbidden || !strings.Contains(body, "auth.mode: on")):
			t.Errorf("a remote client without authentication: %d %s, want 403 saying how to turn authentication on", code, body)
		case open && code != http.StatusOK:
			t.Errorf("a remote client with http.allow_remote_without_auth: %d %s", code, body)
		}
		if code, _ := curl(base + "/healthz"); code != http.StatusOK {
			t.Errorf("/healthz from a remote client: %d", code)
		}
		s.stop()
	}
}

// TestStartLine: the line lumen serve prints on a terminal says where everything is.
func TestStartLine(t *testing.T) {
	c := testConfig(t, "/srv/lumen")
	got := startLine(c, listening{HTTP: "[::]:8080", DIMSE: "[::]:11112"})
	want := "Lumen is running: viewer http://localhost:8080/viewer/ · DICOMweb http://localhost:8080/dicom-web · DICOM LUMEN@localhost:11112 · data /srv/lumen · authentication off (this machine only)"
	if got != want {
		t.Errorf("start line:\n got %s\nwant %s", got, want)
	}
	c.Auth.Mode, c.DICOMweb.PublicURL = "on", "https://pacs.example.org/"
	if got := startLine(c, listening{HTTP: "10.0.0.5:8080"}); !strings.HasPrefix(got, "Lumen is running: viewer https://pacs.example.org/viewer/ · DICOMweb https://pacs.example.org/dicom-web · data") || !strings.HasSuffix(got, "authentication on") {
		t.Errorf("start line with a public URL and auth on: %s", got)
	}
	s := startLumen(t, nil)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get("http://" + s.addr.HTTP + "/")
	if err != nil || resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/viewer/" {
		t.Fatalf("/: %v %v, want a redirect to /viewer/", err, resp)
	}
	resp.Body.Close()
}
