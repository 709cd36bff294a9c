package mllp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/testdata/tools"
)

// recorder acknowledges every message and records their control IDs in order.
type recorder struct {
	mu   sync.Mutex
	seen []string
}

func (r *recorder) HandleMessage(_ context.Context, msg []byte, _ ConnInfo) []byte {
	r.mu.Lock()
	r.seen = append(r.seen, controlID(msg))
	r.mu.Unlock()
	return ackFor(msg, "AA")
}

func (r *recorder) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

func TestServerMessagesInOrder(t *testing.T) {
	rec := &recorder{}
	addr := start(t, &Server{Handler: rec, Logger: testLogger(t)}, nil)
	c := dial(t, addr, nil)
	want := ids(100)
	for _, id := range want {
		code, got := acked(send(t, c, adt(id)))
		if code != "AA" || got != id {
			t.Fatalf("sent %s, acknowledged %s %s", id, code, got)
		}
	}
	// A sender that sends ahead (all frames in one write) is answered in order too.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var all bytes.Buffer
	ahead := ids(150)[100:]
	for _, id := range ahead {
		WriteFrame(&all, adt(id))
	}
	if _, err := nc.Write(all.Bytes()); err != nil {
		t.Fatal(err)
	}
	r := NewReader(nc, 0)
	for _, id := range ahead {
		ack, err := r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if _, got := acked(ack); got != id {
			t.Fatalf("sent %s, acknowledged %s", id, got)
		}
	}
	if got := strings.Join(rec.ids(), ","); got != strings.Join(ids(150), ",") {
		t.Fatalf("handled in the order %s", got)
	}
}

func TestServerConcurrentConnections(t *testing.T) {
	var inHandler, most atomic.Int64
	h := HandlerFunc(func(_ context.Context, msg []byte, _ ConnInfo) []byte {
		n := inHandler.Add(1)
		defer inHandler.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(time.Millisecond)
		return ackFor(msg, "AA")
	})
	s := &Server{Handler: h, MaxConns: 64, MaxConnsPerHost: 64}
	addr := start(t, s, nil)
	const conns, each = 50, 20
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := Dial(ctx, addr, nil)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := range each {
				id := ids(conns * each)[i*each+j]
				ack, err := c.Send(ctx, adt(id))
				if err != nil {
					errs <- err
					return
				}
				if _, got := acked(ack); got != id {
					errs <- errors.New("sent " + id + ", acknowledged " + got)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := s.Stats(); st.Messages != conns*each || st.Accepted != conns {
		t.Errorf("stats %+v", st)
	}
	if most.Load() < 2 {
		t.Errorf("at most %d handlers ran at once: connections were not served concurrently", most.Load())
	}
}

func TestServerMaxConns(t *testing.T) {
	s := &Server{Handler: ackHandler, MaxConns: 3, MaxConnsPerHost: 2, Logger: testLogger(t)}
	addr := start(t, s, nil)
	// Two connections from 127.0.0.1 are served; a third from the same host is not.
	a, b := dial(t, addr, nil), dial(t, addr, nil)
	send(t, a, adt("A"))
	send(t, b, adt("B"))
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	waitClosed(t, third, 5*time.Second)
	if st := s.Stats(); st.RefusedPerHost != 1 || st.Active != 2 {
		t.Fatalf("stats %+v", st)
	}
	// From another loopback address the third place is free, the fourth is not.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	other, err := d.Dial("tcp", addr)
	if err != nil {
		tools.Missing(t, "no second loopback address (127.0.0.2): "+err.Error()) // fails under CI=true
	}
	defer other.Close()
	oc := &Client{nc: other, r: NewReader(other, 0), w: NewWriter(other)}
	send(t, oc, adt("C"))
	fourth, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer fourth.Close()
	waitClosed(t, fourth, 5*time.Second)
	if st := s.Stats(); st.RefusedMax != 1 || st.Active != 3 {
		t.Fatalf("stats %+v", st)
	}
	// A place freed is taken again.
	a.Close()
	waitFor(t, "the closed connection to be forgotten", func() bool { return s.Stats().Active == 2 })
	send(t, dial(t, addr, nil), adt("D"))
}

func TestServerAllow(t *testing.T) {
	var asked atomic.Int64
	s := &Server{Handler: ackHandler, Logger: testLogger(t), Allow: func(remote net.Addr) bool {
		asked.Add(1)
		return !strings.HasPrefix(remote.String(), "127.0.0.1:")
	}}
	addr := start(t, s, nil)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	WriteFrame(nc, adt("X"))
	waitClosed(t, nc, 5*time.Second)
	if st := s.Stats(); st.RefusedAllow != 1 || st.Messages != 0 || asked.Load() != 1 {
		t.Fatalf("stats %+v, Allow asked %d times", st, asked.Load())
	}
}

func TestServerIdleTimeout(t *testing.T) {
	s := &Server{Handler: ackHandler, IdleTimeout: 200 * time.Millisecond, Logger: testLogger(t)}
	addr := start(t, s, nil)
	c := dial(t, addr, nil)
	send(t, c, adt("1"))
	// Whitespace does not keep a connection alive.
	c.nc.Write([]byte("\r\n"))
	if d := waitClosed(t, c.nc, 5*time.Second); d > 2*time.Second {
		t.Fatalf("closed after %v", d)
	}
}

func TestServerSlowloris(t *testing.T) {
	var handled atomic.Int64
	s := &Server{
		Handler:     HandlerFunc(func(context.Context, []byte, ConnInfo) []byte { handled.Add(1); return nil }),
		IdleTimeout: time.Minute, ReadTimeout: 300 * time.Millisecond, Logger: testLogger(t),
	}
	addr := start(t, s, nil)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	begin := time.Now()
	msg := append([]byte{StartBlock}, adt("SLOW")...)
	for _, b := range msg {
		if _, err := nc.Write([]byte{b}); err != nil {
			break // cut off
		}
		if time.Since(begin) > 3*time.Second {
			t.Fatal("a frame trickling for 3 s was not cut off")
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitClosed(t, nc, 5*time.Second)
	if d := time.Since(begin); d > 2*time.Second {
		t.Fatalf("cut off after %v, ReadTimeout is 300 ms", d)
	}
	if handled.Load() != 0 || s.Stats().FramingErrors != 1 {
		t.Fatalf("handled %d, stats %+v", handled.Load(), s.Stats())
	}
}

func TestServerFramingErrorsClose(t *testing.T) {
	s := &Server{Handler: ackHandler, Logger: testLogger(t)}
	addr := start(t, s, nil)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	waitClosed(t, nc, 5*time.Second)
	// A peer that hangs up inside a frame.
	nc2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc2.Write([]byte("\x0bMSH|^~\\&|half"))
	nc2.Close()
	waitFor(t, "two framing errors", func() bool { return s.Stats().FramingErrors == 2 })
}

// tooLarge answers frames over the limit with AR.
type tooLarge struct {
	recorder
	head []byte
	size int
}

func (h *tooLarge) HandleTooLarge(_ context.Context, head []byte, size int, _ ConnInfo) []byte {
	h.head, h.size = head, size
	return ackFor(head, "AR")
}

func TestServerTooLarge(t *testing.T) {
	h := &tooLarge{}
	s := &Server{Handler: h, MaxMessageBytes: 1 << 10, Logger: testLogger(t)}
	addr := start(t, s, nil)
	c := dial(t, addr, nil)
	big := append(adt("BIG"), strings.Repeat("OBX|1|TX|||"+strings.Repeat("x", 200)+"\r", 20)...)
	if code, id := acked(send(t, c, big)); code != "AR" || id != "BIG" {
		t.Fatalf("too large: %s %s, want AR BIG", code, id)
	}
	if len(h.head) != 1<<10 || h.size != len(big) {
		t.Fatalf("head %d bytes, size %d; want 1024 and %d", len(h.head), h.size, len(big))
	}
	// The connection goes on.
	if code, id := acked(send(t, c, adt("SMALL"))); code != "AA" || id != "SMALL" {
		t.Fatalf("next: %s %s", code, id)
	}
	if got := h.ids(); len(got) != 1 || got[0] != "SMALL" {
		t.Fatalf("HandleMessage saw %v", got)
	}

	// A handler without HandleTooLarge: the connection is closed.
	s2 := &Server{Handler: &recorder{}, MaxMessageBytes: 1 << 10, Logger: testLogger(t)}
	c2 := dial(t, start(t, s2, nil), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c2.Send(ctx, big); !errors.Is(err, io.ErrUnexpectedEOF) || ctx.Err() != nil {
		t.Fatalf("err %v, want the connection closed before the deadline", err)
	}
	if st := s2.Stats(); st.TooLarge != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestServerShutdownWaitsForHandler(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var handlerCtx context.Context
	h := HandlerFunc(func(ctx context.Context, msg []byte, _ ConnInfo) []byte {
		if controlID(msg) == "SLOW" {
			handlerCtx = ctx
			close(entered)
			<-release
		}
		return ackFor(msg, "AA")
	})
	s := &Server{Handler: h, Logger: testLogger(t)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	addr := ln.Addr().String()

	idle := dial(t, addr, nil)
	send(t, idle, adt("FIRST"))
	busy := dial(t, addr, nil)
	acks := make(chan []byte, 1)
	go func() {
		ack, err := busy.Send(context.Background(), adt("SLOW"))
		if err != nil {
			t.Error(err)
		}
		acks <- ack
	}()
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	// The idle connection is closed at once, and no new connection is served.
	waitClosed(t, idle.nc, 5*time.Second)
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
	if nc, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		waitClosed(t, nc, 5*time.Second)
		nc.Close()
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v while a handler was running", err)
	case <-time.After(200 * time.Millisecond):
	}
	if handlerCtx.Err() != nil {
		t.Fatal("the handler's context was cancelled before Shutdown's deadline")
	}
	close(release)
	if code, id := acked(<-acks); code != "AA" || id != "SLOW" {
		t.Fatalf("in-flight message acknowledged %s %s", code, id)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	waitClosed(t, busy.nc, 5*time.Second)
	if err := s.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

func TestServerShutdownDeadline(t *testing.T) {
	entered := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, msg []byte, _ ConnInfo) []byte {
		close(entered)
		<-ctx.Done() // a handler that returns only when told to
		return nil
	})
	s := &Server{Handler: h, Logger: testLogger(t)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	c := dial(t, ln.Addr().String(), nil)
	go c.Send(context.Background(), adt("STUCK"))
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	begin := time.Now()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want the deadline", err)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	if st := s.Stats(); st.Active != 0 {
		t.Fatalf("stats after Shutdown %+v", st)
	}
}

func TestServerHandlerPanic(t *testing.T) {
	h := HandlerFunc(func(_ context.Context, msg []byte, _ ConnInfo) []byte {
		switch controlID(msg) {
		case "BOOM":
			panic("handler bug (the message content may be in here)")
		case "NIL":
			var none []byte
			_ = none[len(msg)] // a runtime error
		}
		return ackFor(msg, "AA")
	})
	var logs logBuffer
	s := &Server{Handler: h, Logger: logs.logger()}
	addr := start(t, s, nil)
	for _, id := range []string{"BOOM", "NIL"} {
		c := dial(t, addr, nil)
		send(t, c, adt("BEFORE"))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.Send(ctx, adt(id))
		if !errors.Is(err, io.ErrUnexpectedEOF) || ctx.Err() != nil {
			t.Fatalf("%s: err %v, want the connection closed", id, err)
		}
		cancel()
		// The server goes on.
		if _, got := acked(send(t, dial(t, addr, nil), adt("AFTER"))); got != "AFTER" {
			t.Fatalf("after the panic: %s", got)
		}
	}
	if st := s.Stats(); st.Panics != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Logged at Error, without the handler's own panic text or any message content.
	out := logs.String()
	if strings.Count(out, "handler panicked") != 2 || !strings.Contains(out, "index out of range") {
		t.Errorf("log:\n%s", out)
	}
	if strings.Contains(out, "content may be") || strings.Contains(out, "DOE^JANE") {
		t.Errorf("the log above Debug holds the panic text or message content:\n%s", out)
	}
}

func TestServerConnInfoAndContext(t *testing.T) {
	infos := make(chan ConnInfo, 4)
	ctxs := make(chan context.Context, 4)
	h := HandlerFunc(func(ctx context.Context, msg []byte, c ConnInfo) []byte {
		infos <- c
		ctxs <- ctx
		return ackFor(msg, "AA")
	})
	addr := start(t, &Server{Handler: h}, nil)
	c1, c2 := dial(t, addr, nil), dial(t, addr, nil)
	send(t, c1, adt("1"))
	send(t, c2, adt("2"))
	send(t, c1, adt("3"))
	a, b, a2 := <-infos, <-infos, <-infos
	if a.ID == 0 || a.ID == b.ID || a.ID != a2.ID || a.TLS != nil {
		t.Fatalf("IDs %d %d %d, TLS %v", a.ID, b.ID, a2.ID, a.TLS)
	}
	if a.RemoteAddr.String() != c1.nc.LocalAddr().String() || a.LocalAddr.String() != addr {
		t.Fatalf("addresses %v %v, want %v %v", a.RemoteAddr, a.LocalAddr, c1.nc.LocalAddr(), addr)
	}
	ctx1 := <-ctxs
	<-ctxs
	<-ctxs
	c1.Close()
	select {
	case <-ctx1.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the connection's context was not cancelled when it closed")
	}
}

func TestServerTLS(t *testing.T) {
	serverCfg, clientCfg := selfSigned(t)
	infos := make(chan ConnInfo, 1)
	h := HandlerFunc(func(_ context.Context, msg []byte, c ConnInfo) []byte {
		select {
		case infos <- c:
		default:
		}
		return ackFor(msg, "AA")
	})
	addr := start(t, &Server{Handler: h, Logger: testLogger(t)}, func(ln net.Listener) net.Listener {
		return tlsListener(ln, serverCfg)
	})
	c := dial(t, addr, clientCfg)
	for _, id := range ids(5) {
		if _, got := acked(send(t, c, adt(id))); got != id {
			t.Fatalf("sent %s, acknowledged %s", id, got)
		}
	}
	info := <-infos
	if info.TLS == nil || !info.TLS.HandshakeComplete {
		t.Fatalf("ConnInfo.TLS = %v", info.TLS)
	}
	// A client without TLS gets nowhere.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	WriteFrame(nc, adt("PLAIN"))
	waitClosed(t, nc, 5*time.Second)
	// A client that does not trust the certificate fails.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := Dial(ctx, addr, clientCfg.Clone()); err != nil {
		t.Fatalf("trusting client: %v", err)
	}
	untrusting := clientCfg.Clone()
	untrusting.RootCAs = nil
	if c, err := Dial(ctx, addr, untrusting); err == nil {
		c.Close()
		t.Fatal("a client that does not trust the certificate connected")
	}
}

// truncated refuses frames cut short with AR.
type truncated struct {
	recorder
	heads [][]byte
}

func (h *truncated) HandleTruncated(_ context.Context, head []byte, _ ConnInfo) []byte {
	h.mu.Lock()
	h.heads = append(h.heads, head)
	h.mu.Unlock()
	return ackFor(head, "AR")
}

// TestServerTruncated: a frame the sender stalls in is answered AR from its head and the
// connection closes; a frame the sender abandons for a new one is not answered (the
// sender waits for the new one's answer only) and the connection goes on.
func TestServerTruncated(t *testing.T) {
	h := &truncated{}
	s := &Server{Handler: h, ReadTimeout: 300 * time.Millisecond, Logger: testLogger(t)}
	addr := start(t, s, nil)

	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write(append([]byte{StartBlock}, adt("STALL")...))
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	ack, err := NewReader(nc, 0).ReadFrame()
	if code, id := acked(ack); err != nil || code != "AR" || id != "STALL" {
		t.Fatalf("stalled frame: %q %v, want AR STALL", ack, err)
	}
	waitClosed(t, nc, 5*time.Second)

	nc2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	half := adt("HALF")[:40]
	nc2.Write(append(append([]byte{StartBlock}, half...), append(append([]byte{StartBlock}, adt("WHOLE")...), EndBlock, CarriageReturn)...))
	r := NewReader(nc2, 0)
	nc2.SetReadDeadline(time.Now().Add(5 * time.Second))
	ack, err = r.ReadFrame()
	if code, id := acked(ack); err != nil || code != "AA" || id != "WHOLE" {
		t.Fatalf("after an abandoned frame: %q %v, want AA WHOLE", ack, err)
	}
	NewWriter(nc2).WriteFrame(adt("NEXT"))
	ack, err = r.ReadFrame()
	if code, id := acked(ack); err != nil || code != "AA" || id != "NEXT" {
		t.Fatalf("the connection did not go on: %q %v", ack, err)
	}
	if got := h.ids(); len(got) != 2 || got[0] != "WHOLE" || got[1] != "NEXT" {
		t.Fatalf("handled %v", got)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.heads) != 1 || controlID(h.heads[0]) != "STALL" {
		t.Fatalf("HandleTruncated saw %q", h.heads)
	}
	if st := s.Stats(); st.FramingErrors != 2 {
		t.Fatalf("stats %+v", st)
	}
}
