package mllp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

// adt returns an ADT-shaped message with control ID id.
func adt(id string) []byte {
	return []byte("MSH|^~\\&|SENDER|FAC|LUMEN|FAC|20250101120000||ADT^A08^ADT_A01|" + id + "|P|2.5\r" +
		"EVN|A08|20250101120000\r" +
		"PID|1||12345^^^HOSP^MR||DOE^JANE||19700101|F\r")
}

// controlID cuts MSH-10 out of a message, byte by byte (the tests have no HL7 parser).
func controlID(msg []byte) string {
	seg, _, _ := bytes.Cut(msg, []byte("\r"))
	if len(seg) < 4 || !bytes.HasPrefix(seg, []byte("MSH")) {
		return ""
	}
	fields := bytes.Split(seg, seg[3:4])
	if len(fields) < 10 {
		return ""
	}
	return string(fields[9])
}

// ackFor returns an original-mode acknowledgement of msg with code (AA, AR...).
func ackFor(msg []byte, code string) []byte {
	id := controlID(msg)
	return []byte("MSH|^~\\&|LUMEN|FAC|SENDER|FAC|20250101120000||ACK^A08^ACK|ACK" + id + "|P|2.5\r" +
		"MSA|" + code + "|" + id + "\r")
}

// acked returns the control ID an acknowledgement acknowledges, and its code.
func acked(ack []byte) (code, id string) {
	for seg := range bytes.SplitSeq(ack, []byte("\r")) {
		if f := bytes.Split(seg, []byte("|")); len(f) >= 3 && string(f[0]) == "MSA" {
			return string(f[1]), string(f[2])
		}
	}
	return "", ""
}

// ackHandler acknowledges every message with AA.
var ackHandler = HandlerFunc(func(_ context.Context, msg []byte, _ ConnInfo) []byte { return ackFor(msg, "AA") })

// testLogger logs to t at Debug, so that a failing test shows what the server did.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// start serves s on a loopback port (wrapped by wrap when set) until the test ends, and
// returns the address.
func start(t testing.TB, s *Server, wrap func(net.Listener) net.Listener) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if wrap != nil {
		ln = wrap(ln)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return addr
}

// dial connects a Client or fails the test; the client is closed at the end.
func dial(t testing.TB, addr string, cfg *tls.Config) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// send sends msg and returns the acknowledgement, failing the test on error.
func send(t testing.TB, c *Client, msg []byte) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := c.Send(ctx, msg)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	return ack
}

// selfSigned returns a server certificate for 127.0.0.1 and a client configuration
// that trusts it.
func selfSigned(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mllp test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}, MinVersion: tls.VersionTLS12}
	client = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return server, client
}

// waitClosed waits until the peer closes nc (a read returns an error) and returns how
// long that took; it fails the test after limit.
func waitClosed(t testing.TB, nc net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	begin := time.Now()
	nc.SetReadDeadline(begin.Add(limit))
	buf := make([]byte, 64)
	for {
		_, err := nc.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %v", limit)
		}
		return time.Since(begin)
	}
}

// waitFor polls cond until it holds, failing the test after 5 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("CTRL%04d", i+1)
	}
	return out
}

func tlsListener(ln net.Listener, cfg *tls.Config) net.Listener { return tls.NewListener(ln, cfg) }

// logBuffer collects log lines (at Info and above) for tests that check what is logged.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
