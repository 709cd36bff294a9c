package mllp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("mllp: Server closed")

// Defaults of the zero Server.
const (
	DefaultMaxConns        = 64
	DefaultMaxConnsPerHost = 8
	DefaultIdleTimeout     = 5 * time.Minute
	DefaultReadTimeout     = 30 * time.Second
	DefaultWriteTimeout    = 30 * time.Second
)

// ConnInfo describes the connection a message came on.
type ConnInfo struct {
	// ID numbers the server's connections from 1, in the order accepted (it names the
	// connection in the server's log).
	ID uint64
	// RemoteAddr and LocalAddr are the connection's addresses.
	RemoteAddr, LocalAddr net.Addr
	// TLS is the state of the TLS connection when the listener is a TLS listener
	// (the handshake is complete), nil otherwise.
	TLS *tls.ConnectionState
}

// Handler handles the messages of a Server. HandleMessage receives one message (the
// bytes of one frame, which it may keep) and returns the acknowledgement to send back
// (nil or empty: nothing is sent). The server calls it for one message of a connection
// at a time, in the order received, and writes the acknowledgement only after it
// returns: HandleMessage returns only once what the message asks for is durable, so that
// an acknowledgement never promises what a crash could lose. Messages of different
// connections are handled concurrently.
//
// ctx is cancelled when the connection is closed and when Shutdown's deadline passes;
// the handler then returns promptly. A panic closes the connection (the server goes
// on).
type Handler interface {
	HandleMessage(ctx context.Context, msg []byte, c ConnInfo) []byte
}

// TooLargeHandler is implemented by a Handler that answers frames over the server's
// MaxMessageBytes (an HL7 application answers AR). head is the message's first bytes
// (HeadBytes, or MaxMessageBytes when that is smaller: enough to read the MSH segment),
// size the length of the whole message; the return value is sent like HandleMessage's,
// and the connection goes on with the next frame. Without this method the server
// closes the connection on such a frame.
type TooLargeHandler interface {
	HandleTooLarge(ctx context.Context, head []byte, size int, c ConnInfo) []byte
}

// TruncatedHandler is implemented by handlers that answer a frame cut short while the
// sender can still read the answer: the sender stalled inside it past ReadTimeout (the
// connection closes after the answer). A frame the sender abandoned for a new one
// (ErrStartedOver) is not answered: the sender waits for the new frame's answer, and
// the connection goes on. head holds the frame's first bytes (at most
// HeadBytes), from which the handler may read the header to answer a refusal; nothing
// of the message may be applied. A nil answer sends nothing.
type TruncatedHandler interface {
	HandleTruncated(ctx context.Context, head []byte, c ConnInfo) []byte
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, msg []byte, c ConnInfo) []byte

// HandleMessage calls f.
func (f HandlerFunc) HandleMessage(ctx context.Context, msg []byte, c ConnInfo) []byte {
	return f(ctx, msg, c)
}

// Server is an MLLP acceptor: it reads frames from each connection, hands them to
// Handler one at a time and writes back what Handler returns. Configure it before
// Serve; the zero value of each limit means its default, a negative value none.
type Server struct {
	// Handler handles the messages (required).
	Handler Handler
	// MaxConns caps the connections served at once; more are closed at once and
	// counted (default 64).
	MaxConns int
	// MaxConnsPerHost caps the connections of one remote IP address (default 8).
	MaxConnsPerHost int
	// IdleTimeout closes a connection that starts no frame for this long after the
	// previous acknowledgement (default 5 minutes).
	IdleTimeout time.Duration
	// ReadTimeout bounds the reading of one frame, from its start block to its end
	// block, and the TLS handshake: a sender trickling bytes is cut off (default 30 s).
	ReadTimeout time.Duration
	// WriteTimeout bounds the writing of one acknowledgement (default 30 s).
	WriteTimeout time.Duration
	// MaxMessageBytes bounds one message (default DefaultMaxMessageBytes, 1 MiB).
	MaxMessageBytes int
	// Allow, when set, decides which remote addresses may connect (the host policy);
	// a refused connection is closed at once and counted.
	Allow func(remote net.Addr) bool
	// Logger receives connection events: refusals, timeouts, framing errors, handler
	// panics (nil: none). Message content is never logged above Debug.
	Logger *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	perHost   map[string]int
	closing   atomic.Bool
	wg        sync.WaitGroup
	lastID    atomic.Uint64
	refusedAt time.Time // last log line about refusals, under mu
	refused   int       // refusals since that line, under mu
	stats     struct {
		accepted, refusedAllow, refusedMax, refusedHost atomic.Uint64
		messages, tooLarge, framing, panics             atomic.Uint64
	}
}

// Stats counts what a Server has done since it started.
type Stats struct {
	Active         int    // connections being served
	Accepted       uint64 // connections served
	RefusedAllow   uint64 // connections refused by Allow
	RefusedMax     uint64 // connections refused by MaxConns
	RefusedPerHost uint64 // connections refused by MaxConnsPerHost
	Messages       uint64 // messages handed to the handler
	TooLarge       uint64 // frames over MaxMessageBytes
	FramingErrors  uint64 // connections closed on ErrBadStart or ErrTruncated
	Panics         uint64 // handler panics
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	active := len(s.conns)
	s.mu.Unlock()
	return Stats{
		Active:         active,
		Accepted:       s.stats.accepted.Load(),
		RefusedAllow:   s.stats.refusedAllow.Load(),
		RefusedMax:     s.stats.refusedMax.Load(),
		RefusedPerHost: s.stats.refusedHost.Load(),
		Messages:       s.stats.messages.Load(),
		TooLarge:       s.stats.tooLarge.Load(),
		FramingErrors:  s.stats.framing.Load(),
		Panics:         s.stats.panics.Load(),
	}
}

func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

func (s *Server) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// refusalLogEvery paces the log lines about refused connections: a flood of connections
// does not flood the log (each line counts those refused since the last).
const refusalLogEvery = 5 * time.Second

// Serve accepts connections on ln (a TCP listener, or a TLS listener wrapping one) and
// serves each on its own goroutine until Shutdown; it then returns ErrServerClosed.
// Connections beyond the limits, or refused by Allow, are closed at once.
func (s *Server) Serve(ln net.Listener) error {
	if s.Handler == nil {
		return errors.New("mllp: Server.Handler is nil")
	}
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[*conn]struct{}{}
		s.perHost = map[string]int{}
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Temporary failures (EMFILE, ENFILE, ENOBUFS...): back off and go on, as
			// net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log().Warn("mllp: accept failed; retrying", "err", err, "delay", delay.String())
			time.Sleep(delay)
			continue
		}
		delay = 0
		if s.Allow != nil && !s.Allow(nc.RemoteAddr()) {
			s.stats.refusedAllow.Add(1)
			nc.Close()
			s.logRefusal(nc.RemoteAddr(), "host not allowed")
			continue
		}
		host := hostOf(nc.RemoteAddr())
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		why := ""
		if m := orDefault(s.MaxConns, DefaultMaxConns); m > 0 && len(s.conns) >= m {
			why = "MaxConns reached"
			s.stats.refusedMax.Add(1)
		} else if m := orDefault(s.MaxConnsPerHost, DefaultMaxConnsPerHost); m > 0 && s.perHost[host] >= m {
			why = "MaxConnsPerHost reached"
			s.stats.refusedHost.Add(1)
		}
		if why != "" {
			s.mu.Unlock()
			nc.Close()
			s.logRefusal(nc.RemoteAddr(), why)
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		c := &conn{s: s, nc: nc, host: host, ctx: ctx, cancel: cancel, id: s.lastID.Add(1)}
		s.conns[c] = struct{}{}
		s.perHost[host]++
		s.wg.Add(1)
		s.mu.Unlock()
		s.stats.accepted.Add(1)
		go func() {
			defer s.wg.Done()
			c.serve()
		}()
	}
}

// logRefusal logs a refused connection, at most one line per refusalLogEvery.
func (s *Server) logRefusal(remote net.Addr, why string) {
	s.mu.Lock()
	s.refused++
	now := time.Now()
	if now.Sub(s.refusedAt) < refusalLogEvery {
		s.mu.Unlock()
		return
	}
	n := s.refused
	s.refused = 0
	s.refusedAt = now
	s.mu.Unlock()
	s.log().Warn("mllp: connection refused", "remote", remote.String(), "why", why, "refused", n)
}

// hostOf returns the IP address of a remote address (the whole address if it has no
// port).
func hostOf(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

// Shutdown stops accepting connections, closes those waiting between messages, and
// lets each connection that is reading a frame or running its handler finish that
// message (acknowledgement included) before closing it, like http.Server.Shutdown.
// When ctx ends first, it cancels the connections' contexts, closes them, waits for
// their handlers to return and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.closeIfIdle()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for c := range s.conns {
		c.cancel()
		c.nc.Close()
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}

// conn is one connection being served.
type conn struct {
	s      *Server
	nc     net.Conn
	host   string
	id     uint64
	ctx    context.Context
	cancel context.CancelFunc
	info   ConnInfo

	mu   sync.Mutex
	busy bool // reading a frame, handling it or writing its acknowledgement; under mu
}

// closeIfIdle makes a connection waiting for a frame stop waiting (Shutdown).
func (c *conn) closeIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.busy {
		c.nc.SetReadDeadline(time.Unix(1, 0))
	}
}

// idle marks the connection as waiting for the next frame; false when the server is
// shutting down.
func (c *conn) idle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.s.closing.Load() {
		return false
	}
	c.busy = false
	c.nc.SetReadDeadline(deadline(orDefault(c.s.IdleTimeout, DefaultIdleTimeout)))
	return true
}

// frameStarted marks the connection busy when a start block arrives, and gives the
// frame ReadTimeout to arrive whole.
func (c *conn) frameStarted() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy = true
	c.nc.SetReadDeadline(deadline(orDefault(c.s.ReadTimeout, DefaultReadTimeout)))
}

// deadline returns the time d from now, or none for a negative d.
func deadline(d time.Duration) time.Time {
	if d < 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

func (c *conn) serve() {
	s := c.s
	log := s.log().With("conn", c.id, "remote", c.nc.RemoteAddr().String())
	defer func() {
		c.cancel()
		c.nc.Close()
		s.mu.Lock()
		delete(s.conns, c)
		if s.perHost[c.host]--; s.perHost[c.host] <= 0 {
			delete(s.perHost, c.host)
		}
		s.mu.Unlock()
	}()
	c.info = ConnInfo{ID: c.id, RemoteAddr: c.nc.RemoteAddr(), LocalAddr: c.nc.LocalAddr()}
	if tc, ok := c.nc.(*tls.Conn); ok {
		tc.SetDeadline(deadline(orDefault(s.ReadTimeout, DefaultReadTimeout)))
		if err := tc.HandshakeContext(c.ctx); err != nil {
			log.Info("mllp: TLS handshake failed", "err", err)
			return
		}
		tc.SetDeadline(time.Time{})
		st := tc.ConnectionState()
		c.info.TLS = &st
	}
	log.Debug("mllp: connection opened")
	r := NewReader(c.nc, orDefault(s.MaxMessageBytes, DefaultMaxMessageBytes))
	r.started = c.frameStarted
	w := NewWriter(c.nc)
	for {
		if !c.idle() {
			log.Debug("mllp: connection closed by shutdown")
			return
		}
		msg, err := r.ReadFrame()
		var ack []byte
		var ok, closeAfter bool
		switch {
		case err == nil:
			s.stats.messages.Add(1)
			log.Debug("mllp: message", "bytes", len(msg))
			ack, ok = c.call(log, func() []byte { return s.Handler.HandleMessage(c.ctx, msg, c.info) })
		case errors.Is(err, ErrTooLarge):
			s.stats.tooLarge.Add(1)
			size := r.size
			th, can := s.Handler.(TooLargeHandler)
			if !can {
				log.Warn("mllp: frame over MaxMessageBytes; closing", "err", err)
				return
			}
			log.Warn("mllp: frame over MaxMessageBytes", "err", err)
			ack, ok = c.call(log, func() []byte { return th.HandleTooLarge(c.ctx, msg, size, c.info) })
		case errors.Is(err, io.EOF):
			log.Debug("mllp: connection closed by the peer")
			return
		case s.closing.Load() && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrBadStart):
			log.Debug("mllp: connection closed by shutdown")
			return
		case errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, ErrTruncated):
			log.Info("mllp: idle connection closed", "after", orDefault(s.IdleTimeout, DefaultIdleTimeout).String())
			return
		case errors.Is(err, ErrStartedOver):
			// The sender abandoned the frame and sent a new one, which is read next. It
			// waits for the answer to the new frame only: answering the abandoned one
			// would shift every answer after it by one.
			s.stats.framing.Add(1)
			log.Warn("mllp: frame abandoned by the sender", "err", err)
			continue
		case errors.Is(err, ErrTruncated) && len(msg) > 0 && errors.Is(err, os.ErrDeadlineExceeded):
			// The sender stalled inside a frame: the handler may refuse the message
			// before the connection closes.
			s.stats.framing.Add(1)
			log.Warn("mllp: frame truncated", "err", err)
			th, can := s.Handler.(TruncatedHandler)
			if !can {
				return
			}
			ack, ok = c.call(log, func() []byte { return th.HandleTruncated(c.ctx, msg, c.info) })
			closeAfter = true
		case errors.Is(err, ErrTruncated), errors.Is(err, ErrBadStart):
			s.stats.framing.Add(1)
			log.Warn("mllp: framing error; closing", "err", err)
			return
		default:
			log.Info("mllp: read failed; closing", "err", err)
			return
		}
		if !ok {
			return
		}
		if len(ack) > 0 {
			c.nc.SetWriteDeadline(deadline(orDefault(s.WriteTimeout, DefaultWriteTimeout)))
			if err := w.WriteFrame(ack); err != nil {
				log.Warn("mllp: writing the acknowledgement failed; closing", "err", err)
				return
			}
		}
		if closeAfter {
			return
		}
	}
}

// call runs a handler, recovering a panic (ok false: the connection closes).
func (c *conn) call(log *slog.Logger, f func() []byte) (ack []byte, ok bool) {
	defer func() {
		if v := recover(); v != nil {
			c.s.stats.panics.Add(1)
			// A runtime error says nothing of the message; any other value might (a
			// handler's own panic text), so it goes to Debug only.
			if re, isRuntime := v.(runtime.Error); isRuntime {
				log.Error("mllp: handler panicked; closing the connection", "panic", re.Error(), "stack", string(debug.Stack()))
			} else {
				log.Error("mllp: handler panicked; closing the connection", "panic_type", fmt.Sprintf("%T", v), "stack", string(debug.Stack()))
				log.Debug("mllp: handler panic value", "panic", fmt.Sprint(v))
			}
			ack, ok = nil, false
		}
	}()
	return f(), true
}
