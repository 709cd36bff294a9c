package httplimit_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/httpkit/httplimit"
)

// hang bounds every wait of these tests: reaching it means the server hangs, not that
// it is slow.
const hang = 10 * time.Second

// serve runs h on 127.0.0.1 behind lim, configured like lumen serve's server.
func serve(t *testing.T, lim *httplimit.Limiter, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadTimeout: 5 * time.Minute, WriteTimeout: 30 * time.Minute}
	lim.ConfigureServer(srv)
	go srv.Serve(lim.Listener(ln))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// from returns a dialer bound to the loopback address src ("127.0.0.2").
func from(src string) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: hang}
}

// dial opens a connection from src to addr and sends what it is given.
func dial(t *testing.T, src, addr, send string) net.Conn {
	t.Helper()
	c, err := from(src).Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if send != "" {
		if _, err := io.WriteString(c, send); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// client returns an HTTP client whose connections come from src, one per request.
func client(src string) *http.Client {
	return &http.Client{Timeout: hang, Transport: &http.Transport{DialContext: from(src).DialContext, DisableKeepAlives: true}}
}

// closedByServer reports whether the server closes c (rather than leaving it open).
func closedByServer(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(hang))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return true
}

// refused reports whether a new connection from src is closed at once (reset, maybe
// before the dial returns).
func refused(t *testing.T, src, addr string) bool {
	t.Helper()
	c, err := from(src).Dial("tcp", addr)
	if err != nil {
		return true
	}
	defer c.Close()
	return closedByServer(t, c)
}

// stillServed reports whether c, open and silent so far, still gets a request answered.
func stillServed(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetDeadline(time.Now().Add(hang))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: lumen\r\n\r\n"); err != nil {
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func ok(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }

func get(t *testing.T, src, url string) (*http.Response, error) {
	t.Helper()
	resp, err := client(src).Get(url)
	if err == nil {
		io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	return resp, err
}

// TestConnsPerAddr: beyond MaxConnsPerAddr, a new connection takes the place of the
// address's own connection that has waited longest without a request in progress, or
// is closed at once when all are busy; other addresses are served, and exempt addresses
// (a proxy in front) are not capped.
func TestConnsPerAddr(t *testing.T) {
	release := make(chan struct{})
	var entered atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/", ok)
	mux.HandleFunc("/block", func(w http.ResponseWriter, r *http.Request) {
		entered.Add(1)
		<-release
	})
	lim := &httplimit.Limiter{MaxConns: 100, MaxConnsPerAddr: 3, ExemptAddrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.9/32")}}
	addr := serve(t, lim, mux)

	var silent []net.Conn
	for range 3 {
		silent = append(silent, dial(t, "127.0.0.2", addr, ""))
		time.Sleep(10 * time.Millisecond) // distinct ages
	}
	waitFor(t, func() bool { return lim.Stats().Conns == 3 })
	extra := dial(t, "127.0.0.2", addr, "")
	if !closedByServer(t, silent[0]) {
		t.Fatal("beyond MaxConnsPerAddr, the oldest silent connection of the address was kept")
	}
	if !stillServed(t, extra) || !stillServed(t, silent[1]) {
		t.Fatal("an admitted connection was not served")
	}
	if st := lim.Stats(); st.ConnsEvicted != 1 || st.Conns != 3 {
		t.Fatalf("stats = %+v", st)
	}
	for _, c := range append(silent, extra) {
		c.Close()
	}
	waitFor(t, func() bool { return lim.Stats().Conns == 0 })

	// All three busy: the next connection is closed at once.
	done := make(chan struct{})
	for range 3 {
		go func() {
			get(t, "127.0.0.2", "http://"+addr+"/block")
			done <- struct{}{}
		}()
	}
	waitFor(t, func() bool { return entered.Load() == 3 })
	if !refused(t, "127.0.0.2", addr) {
		t.Fatal("a connection beyond MaxConnsPerAddr was kept open")
	}
	if st := lim.Stats(); st.ConnsRefusedPerAddr != 1 || st.Conns != 3 || st.ConnsEvicted != 1 {
		t.Fatalf("stats = %+v", st)
	}
	if resp, err := get(t, "127.0.0.3", "http://"+addr+"/"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("another address: %v %v", resp, err)
	}
	for range 5 {
		if c := dial(t, "127.0.0.9", addr, ""); !stillServed(t, c) {
			t.Fatal("an exempt address was capped")
		}
	}
	close(release)
	for range 3 {
		<-done
	}
}

// TestEvictAtOverallCap: at MaxConns, a new client displaces the connection of the
// most loaded address that has waited longest without a request in progress; a
// connection with a request in progress is never displaced, and when all are busy the
// new connection is closed at once.
func TestEvictAtOverallCap(t *testing.T) {
	release := make(chan struct{})
	var entered atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/", ok)
	mux.HandleFunc("/block", func(w http.ResponseWriter, r *http.Request) {
		entered.Add(1)
		<-release
		io.WriteString(w, "done")
	})
	lim := &httplimit.Limiter{MaxConns: 4, MaxConnsPerAddr: 10}
	addr := serve(t, lim, mux)

	// Idle and silent connections of 127.0.0.2 give way, the oldest first.
	var silent []net.Conn
	for range 4 {
		silent = append(silent, dial(t, "127.0.0.2", addr, ""))
		time.Sleep(10 * time.Millisecond) // distinct ages
	}
	waitFor(t, func() bool { return lim.Stats().Conns == 4 })
	if resp, err := get(t, "127.0.0.3", "http://"+addr+"/"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("new client at the cap: %v %v", resp, err)
	}
	if !closedByServer(t, silent[0]) {
		t.Fatal("the oldest silent connection was not the one evicted")
	}
	for _, c := range silent[1:] {
		if !stillServed(t, c) {
			t.Fatal("a younger connection was evicted")
		}
	}
	if st := lim.Stats(); st.ConnsEvicted != 1 {
		t.Fatalf("stats = %+v", st)
	}

	// Busy connections are never evicted.
	for _, c := range silent[1:] {
		c.Close()
	}
	waitFor(t, func() bool { return lim.Stats().Conns == 0 })
	results := make(chan error, 4)
	for range 4 {
		go func() {
			resp, err := get(t, "127.0.0.2", "http://"+addr+"/block")
			if err == nil && resp.StatusCode != http.StatusOK {
				err = errors.New(resp.Status)
			}
			results <- err
		}()
	}
	waitFor(t, func() bool { return entered.Load() == 4 })
	if _, err := get(t, "127.0.0.3", "http://"+addr+"/"); err == nil {
		t.Fatal("a new client was admitted although every connection is busy")
	}
	if st := lim.Stats(); st.ConnsRefusedOverall != 1 || st.ConnsEvicted != 1 {
		t.Fatalf("stats = %+v", st)
	}
	close(release)
	for range 4 {
		if err := <-results; err != nil {
			t.Fatalf("a busy request failed: %v", err)
		}
	}
}

// TestEvictTLS: behind TLS the limiter still knows which connections are busy.
func TestEvictTLS(t *testing.T) {
	release := make(chan struct{})
	var entered atomic.Int32
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			entered.Add(1)
			<-release
		}
		io.WriteString(w, "ok")
	}))
	lim := &httplimit.Limiter{MaxConns: 2, MaxConnsPerAddr: 10}
	ts.Listener = lim.Listener(ts.Listener)
	lim.ConfigureServer(ts.Config)
	ts.StartTLS()
	defer ts.Close()
	defer close(release)
	tlsClient := func(src string) *http.Client {
		tr := ts.Client().Transport.(*http.Transport).Clone()
		tr.DialContext = from(src).DialContext
		tr.DisableKeepAlives = true
		return &http.Client{Transport: tr, Timeout: hang}
	}
	for range 2 {
		go tlsClient("127.0.0.2").Get(ts.URL + "/block")
	}
	waitFor(t, func() bool { return entered.Load() == 2 })
	if _, err := tlsClient("127.0.0.3").Get(ts.URL + "/"); err == nil {
		t.Fatal("a busy TLS connection was evicted")
	}
	if st := lim.Stats(); st.ConnsRefusedOverall != 1 || st.ConnsEvicted != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

// TestUploadBudget: request bodies being received count per client address (429
// beyond) and overall (503 beyond), answered at once with Retry-After and a reason;
// requests without a body are not counted.
func TestUploadBudget(t *testing.T) {
	var lim *httplimit.Limiter
	mux := http.NewServeMux()
	mux.HandleFunc("/", ok)
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	lim = &httplimit.Limiter{MaxUploads: 2, MaxUploadsPerAddr: 1, MinUploadRate: -1, RetryAfter: 3 * time.Second}
	addr := serve(t, lim, mux)
	url := "http://" + addr + "/upload"
	// Two uploads in progress, from two addresses, their bodies arriving slowly.
	slow := func(src string) net.Conn {
		return dial(t, src, addr, "POST /upload HTTP/1.1\r\nHost: lumen\r\nContent-Length: 10\r\n\r\nab")
	}
	s2 := slow("127.0.0.2")
	waitFor(t, func() bool { return lim.Stats().Uploads == 1 })
	s3 := slow("127.0.0.3")
	waitFor(t, func() bool { return lim.Stats().Uploads == 2 })

	post := func(src string) (int, string, string) {
		t.Helper()
		resp, err := client(src).Post(url, "application/octet-stream", strings.NewReader("0123456789"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, resp.Header.Get("Retry-After"), body.Error
	}
	if code, ra, reason := post("127.0.0.2"); code != http.StatusTooManyRequests || ra != "3" || !strings.Contains(reason, "too many uploads from your address") {
		t.Fatalf("second upload from one address: %d Retry-After %q %q", code, ra, reason)
	}
	if code, ra, reason := post("127.0.0.4"); code != http.StatusServiceUnavailable || ra != "3" || !strings.Contains(reason, "maximum of 2 uploads") {
		t.Fatalf("upload beyond MaxUploads: %d Retry-After %q %q", code, ra, reason)
	}
	if resp, err := get(t, "127.0.0.2", "http://"+addr+"/"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("a GET from an address with an upload in progress: %v %v", resp, err)
	}
	// The slow uploads finish; the budget is free again.
	for _, c := range []net.Conn{s2, s3} {
		io.WriteString(c, "cdefghij")
		c.SetReadDeadline(time.Now().Add(hang))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("slow upload: %v %v", resp, err)
		}
	}
	waitFor(t, func() bool { return lim.Stats().Uploads == 0 })
	if code, _, reason := post("127.0.0.2"); code != http.StatusCreated {
		t.Fatalf("upload after the others finished: %d %q", code, reason)
	}
	if st := lim.Stats(); st.UploadsRefusedPerAddr != 1 || st.UploadsRefusedOverall != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

// TestUploadClientAddr: the upload caps count by ClientAddr when it is set (a trusted
// proxy's header, say), by the socket's address otherwise.
func TestUploadClientAddr(t *testing.T) {
	lim := &httplimit.Limiter{MaxUploadsPerAddr: 1, MinUploadRate: -1,
		ClientAddr: func(r *http.Request) string { return r.Header.Get("X-Test-Client") }}
	addr := serve(t, lim, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	dial(t, "127.0.0.2", addr, "POST / HTTP/1.1\r\nHost: lumen\r\nX-Test-Client: a\r\nContent-Length: 10\r\n\r\nab")
	waitFor(t, func() bool { return lim.Stats().Uploads == 1 })
	for _, who := range []string{"a", "b"} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/", strings.NewReader("0123456789"))
		req.Header.Set("X-Test-Client", who)
		resp, err := client("127.0.0.2").Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[string]int{"a": http.StatusTooManyRequests, "b": http.StatusOK}[who]; resp.StatusCode != want {
			t.Fatalf("client %s: %s, want %d", who, resp.Status, want)
		}
	}
}

// TestMinUploadRate: a body that trickles, or stops, is cut with ErrUploadTooSlow and
// its connection closed; a fast body passes, and so does one whose handler is slow
// between reads (only waiting for the client counts), or slow after reading it all.
func TestMinUploadRate(t *testing.T) {
	type result struct {
		n   int64
		err error
	}
	results := make(chan result, 1)
	var pause atomic.Int64 // the handler's pause between 4 KiB reads
	var after atomic.Int64 // the handler's pause after the body
	mux := http.NewServeMux()
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		var n int64
		var err error
		buf := make([]byte, 4<<10)
		for {
			time.Sleep(time.Duration(pause.Load()))
			var m int
			m, err = r.Body.Read(buf)
			n += int64(m)
			if err != nil {
				break
			}
		}
		if err == io.EOF {
			err = nil
			r.Body.Read(buf) // once more past the end, as some readers do
		}
		time.Sleep(time.Duration(after.Load()))
		if err == nil {
			err = r.Context().Err() // the request must survive a slow handler
		}
		results <- result{n, err}
		switch {
		case errors.Is(err, httplimit.ErrUploadTooSlow):
			http.Error(w, err.Error(), http.StatusRequestTimeout)
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadRequest)
		default:
			w.WriteHeader(http.StatusCreated)
		}
	})
	lim := &httplimit.Limiter{MinUploadRate: 1000, UploadRateWindow: 100 * time.Millisecond, UploadGrace: 100 * time.Millisecond}
	addr := serve(t, lim, mux)
	const header = "POST /upload HTTP/1.1\r\nHost: lumen\r\nContent-Length: 100000\r\n\r\n"

	t.Run("trickle", func(t *testing.T) {
		c := dial(t, "127.0.0.2", addr, header)
		go func() { // 50 bytes/s, a twentieth of the minimum
			for {
				time.Sleep(20 * time.Millisecond)
				if _, err := c.Write([]byte{'x'}); err != nil {
					return
				}
			}
		}()
		if r := <-results; !errors.Is(r.err, httplimit.ErrUploadTooSlow) {
			t.Fatalf("trickling body: %d bytes, %v", r.n, r.err)
		}
		if !closedByServer(t, c) {
			t.Fatal("the connection of a too slow body stays open")
		}
	})
	t.Run("stalled", func(t *testing.T) {
		c := dial(t, "127.0.0.2", addr, header+"some bytes, then nothing")
		if r := <-results; !errors.Is(r.err, httplimit.ErrUploadTooSlow) {
			t.Fatalf("stalled body: %d bytes, %v", r.n, r.err)
		}
		if !closedByServer(t, c) {
			t.Fatal("the connection of a stalled body stays open")
		}
	})
	post := func(t *testing.T, size int) {
		t.Helper()
		resp, err := client("127.0.0.3").Post("http://"+addr+"/upload", "application/octet-stream", strings.NewReader(strings.Repeat("x", size)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if r := <-results; r.err != nil || r.n != int64(size) || resp.StatusCode != http.StatusCreated {
			t.Fatalf("%s: %d bytes, %v", resp.Status, r.n, r.err)
		}
	}
	t.Run("fast", func(t *testing.T) { post(t, 4<<20) })
	t.Run("slow handler", func(t *testing.T) {
		pause.Store(int64(150 * time.Millisecond)) // longer than grace and window together
		defer pause.Store(0)
		post(t, 16<<10)
	})
	t.Run("slow after the body", func(t *testing.T) {
		after.Store(int64(500 * time.Millisecond))
		defer after.Store(0)
		post(t, 16<<10)
	})
	if st := lim.Stats(); st.UploadsTooSlow != 2 || st.Uploads != 0 {
		t.Fatalf("stats = %+v", st)
	}

	// The server's own ReadTimeout still bounds the body, and (as in net/http) no
	// longer applies once the body is read.
	t.Run("server ReadTimeout", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: mux, ReadTimeout: 300 * time.Millisecond}
		lim := &httplimit.Limiter{MinUploadRate: 1000, UploadRateWindow: time.Hour, UploadGrace: time.Hour}
		lim.ConfigureServer(srv)
		go srv.Serve(lim.Listener(ln))
		defer srv.Close()
		after.Store(int64(600 * time.Millisecond))
		defer after.Store(0)
		resp, err := client("127.0.0.3").Post("http://"+ln.Addr().String()+"/upload", "application/octet-stream", strings.NewReader("small"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if r := <-results; r.err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("%s: %d bytes, %v", resp.Status, r.n, r.err)
		}
		after.Store(0)
		c := dial(t, "127.0.0.2", ln.Addr().String(), header+"some bytes, then nothing")
		if r := <-results; r.err == nil || errors.Is(r.err, httplimit.ErrUploadTooSlow) {
			t.Fatalf("stalled body under ReadTimeout: %d bytes, %v", r.n, r.err)
		}
		closedByServer(t, c)
	})
}

// TestConfigureServer: the recommended timeouts are set where none are, and explicit
// ones are kept.
func TestConfigureServer(t *testing.T) {
	srv := &http.Server{ReadHeaderTimeout: 3 * time.Second}
	(&httplimit.Limiter{}).ConfigureServer(srv)
	if srv.ReadHeaderTimeout != 3*time.Second || srv.IdleTimeout != httplimit.DefaultIdleTimeout || srv.MaxHeaderBytes != httplimit.DefaultMaxHeaderBytes || srv.Handler == nil || srv.ConnContext == nil {
		t.Fatalf("server = %+v", srv)
	}
	srv = &http.Server{}
	(&httplimit.Limiter{}).ConfigureServer(srv)
	if srv.ReadHeaderTimeout != httplimit.DefaultReadHeaderTimeout {
		t.Fatalf("ReadHeaderTimeout = %v", srv.ReadHeaderTimeout)
	}
	if n := httplimit.DefaultMaxConns(); n < 64 || n > httplimit.DefaultMaxConnsCeiling {
		t.Fatalf("DefaultMaxConns() = %d", n)
	}
}

// waitFor polls cond until it holds, failing the test after hang.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("timed out waiting")
		case <-time.After(5 * time.Millisecond):
		}
	}
}
