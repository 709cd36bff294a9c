//go:build unix

package httplimit_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/httpkit/httplimit"
)

// The flood test runs its server in a child process (this test binary again) whose
// open-file limit is lowered to floodNOFILE, so that connections really exhaust file
// descriptors there, as 20,000 half-open connections do to a server with the usual limit.
const (
	floodServerEnv = "HTTPLIMIT_FLOOD_SERVER" // "protected" or "plain"
	floodNOFILE    = 64
	floodAttackers = 6 // source addresses 127.0.0.2 ...
	floodSilent    = 6 // per address: connect and send nothing
	floodPartial   = 3 // per address: send part of a request header, then nothing
	floodSlow      = 3 // per address: a POST whose body trickles at 10 bytes/s
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(floodServerEnv); mode != "" {
		floodServer(mode)
		return
	}
	os.Exit(m.Run())
}

// floodServer is the child: a server configured like lumen serve's (timeouts of
// cmd/lumen/serve.go), with ("protected") or without ("plain") a Limiter, whose handlers
// need a file descriptor each (as QIDO, WADO and STOW do). It prints its address and
// serves until its standard input closes.
func floodServer(mode string) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	rl.Cur = floodNOFILE
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	dir := os.Getenv("HTTPLIMIT_FLOOD_DIR")
	var lim *httplimit.Limiter
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ok", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.CreateTemp(dir, "q-*")
		if err != nil {
			http.Error(w, "cannot open a file: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		f.Close()
		os.Remove(f.Name())
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		if lim != nil {
			json.NewEncoder(w).Encode(lim.Stats())
		}
	})
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.CreateTemp(dir, ".tmp-*")
		if err != nil {
			http.Error(w, "cannot open a file: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		defer os.Remove(f.Name())
		defer f.Close()
		n, err := io.Copy(f, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, n)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second, ReadTimeout: 5 * time.Minute, WriteTimeout: 30 * time.Minute}
	if mode == "protected" {
		lim = &httplimit.Limiter{
			MaxConns: 32, MaxConnsPerAddr: 8,
			MaxUploadsPerAddr: 2, MinUploadRate: 1024, UploadGrace: 200 * time.Millisecond, UploadRateWindow: 200 * time.Millisecond,
		}
		lim.ConfigureServer(srv)
		ln = lim.Listener(ln)
	}
	fds, _ := os.ReadDir("/proc/self/fd")
	fmt.Fprintf(os.Stderr, "flood server (%s): %d files open of %d\n", mode, len(fds), floodNOFILE)
	fmt.Println(ln.Addr().String())
	go srv.Serve(ln)
	io.Copy(io.Discard, os.Stdin)
}

// TestFloodLegitimateClientServed: while six attacker addresses hold half-open
// connections (silent, or a partial header) and slow uploads, reconnecting as soon as the
// server drops them, a legitimate client on 127.0.0.1 still gets its GETs answered and
// its upload stored. Without the limits the attack exhausts the server's file
// descriptors (accept fails) and the legitimate client waits until its timeout:
// HTTPLIMIT_UNPROTECTED=1 runs the same attack against the plain server to show that.
func TestFloodLegitimateClientServed(t *testing.T) {
	mode := "protected"
	if os.Getenv("HTTPLIMIT_UNPROTECTED") != "" {
		mode = "plain"
	}
	addr := startFloodServer(t, mode)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var up atomic.Int64
	for a := range floodAttackers {
		src := netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + a)})
		for kind, n := range map[string]int{"silent": floodSilent, "partial": floodPartial, "slow": floodSlow} {
			for range n {
				wg.Go(func() { attack(ctx, src, addr, kind, &up) })
			}
		}
	}
	defer func() {
		cancel()
		wg.Wait()
	}()
	// Let every attacker connect once, and the flood settle.
	total := int64(floodAttackers * (floodSilent + floodPartial + floodSlow))
	for deadline := time.Now().Add(20 * time.Second); up.Load() < total; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d attackers connected", up.Load(), total)
		}
	}
	time.Sleep(500 * time.Millisecond)

	client := &http.Client{
		Timeout: 10 * time.Second, // a hang, not a speed limit: answers take milliseconds
		Transport: &http.Transport{
			DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}).DialContext,
			DisableKeepAlives: true, // every request needs a new connection
		},
	}
	for i := range 5 {
		resp, err := client.Get("http://" + addr + "/ok")
		if err != nil {
			t.Fatalf("legitimate GET %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != "ok" {
			t.Fatalf("legitimate GET %d: %s %q", i, resp.Status, b)
		}
	}
	body := bytes.Repeat([]byte("lumen"), 256<<10/5)
	resp, err := client.Post("http://"+addr+"/upload", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("legitimate upload: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || string(b) != fmt.Sprint(len(body)) {
		t.Fatalf("legitimate upload: %s %q", resp.Status, b)
	}
	// The attack did reach the limits.
	resp, err = client.Get("http://" + addr + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st httplimit.Stats
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("server under attack: %+v", st)
	if st.ConnsEvicted == 0 || st.UploadsTooSlow == 0 && st.UploadsRefusedPerAddr == 0 {
		t.Fatalf("the attack did not reach the connection limits: %+v", st)
	}
}

// startFloodServer starts the child server and returns its address; the child stops
// when the test ends.
func startFloodServer(t *testing.T, mode string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), floodServerEnv+"="+mode, "HTTPLIMIT_FLOOD_DIR="+t.TempDir())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &syncWriter{w: &stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
		for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
			t.Log(l)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("flood server: %v", err)
	}
	return strings.TrimSpace(line)
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// attack keeps one hostile connection of the given kind open from src, reconnecting
// whenever the server drops it, until ctx ends. up counts attackers that connected.
func attack(ctx context.Context, src netip.Addr, addr, kind string, up *atomic.Int64) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 2 * time.Second}
	first := true
	for ctx.Err() == nil {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			if first {
				up.Add(1)
				first = false
			}
			stop := context.AfterFunc(ctx, func() { c.Close() })
			switch kind {
			case "partial":
				io.WriteString(c, "GET /ok HTTP/1.1\r\nHost: lumen\r\nX-Pad: ")
			case "slow":
				io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: lumen\r\nContent-Length: 1048576\r\n\r\n")
				go func() {
					for {
						time.Sleep(100 * time.Millisecond)
						if _, err := c.Write([]byte{'x'}); err != nil {
							return
						}
					}
				}()
			}
			io.Copy(io.Discard, c) // until the server drops the connection
			stop()
			c.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}
