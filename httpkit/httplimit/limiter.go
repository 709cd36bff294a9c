package httplimit

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Limiter and of the server settings ConfigureServer makes.
const (
	// DefaultMaxConnsCeiling bounds the default of MaxConns (see DefaultMaxConns).
	DefaultMaxConnsCeiling = 16384
	// DefaultMaxConnsPerAddr is the default of Limiter.MaxConnsPerAddr: generous, since
	// one address may be a whole hospital behind NAT.
	DefaultMaxConnsPerAddr = 256
	// DefaultIPv6PrefixLen is the default of Limiter.IPv6PrefixLen: a client's IPv6
	// network (one address of a /64 costs an attacker nothing).
	DefaultIPv6PrefixLen = 64
	// DefaultMaxUploads is the default of Limiter.MaxUploads.
	DefaultMaxUploads = 256
	// DefaultMaxUploadsPerAddr is the default of Limiter.MaxUploadsPerAddr.
	DefaultMaxUploadsPerAddr = 16
	// DefaultMinUploadRate is the default of Limiter.MinUploadRate, in bytes per second.
	DefaultMinUploadRate = 4 << 10
	// DefaultUploadRateWindow is the default of Limiter.UploadRateWindow.
	DefaultUploadRateWindow = 30 * time.Second
	// DefaultUploadGrace is the default of Limiter.UploadGrace.
	DefaultUploadGrace = 30 * time.Second
	// DefaultRetryAfter is the default of Limiter.RetryAfter.
	DefaultRetryAfter = 10 * time.Second

	// DefaultReadHeaderTimeout is the http.Server.ReadHeaderTimeout ConfigureServer sets
	// when none is set: a request header (and a TLS handshake) must arrive whole in it.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultIdleTimeout is the http.Server.IdleTimeout ConfigureServer sets when none is
	// set: how long a keep-alive connection may wait for its next request.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxHeaderBytes is the http.Server.MaxHeaderBytes ConfigureServer sets when
	// none is set (net/http's own default is 1 MiB).
	DefaultMaxHeaderBytes = 64 << 10
)

// DefaultMaxConns is the default of Limiter.MaxConns: half the process's open-file limit
// (the other half stays for stored files, the index, DIMSE and the rest), at least 64 and
// at most DefaultMaxConnsCeiling.
func DefaultMaxConns() int {
	n := openFileLimit() / 2
	return min(max(n, 64), DefaultMaxConnsCeiling)
}

// Limiter bounds connections and uploads of HTTP clients (see the package
// documentation). Set the fields, then wrap the listener with Listener and configure the
// server with ConfigureServer; do not change the fields afterwards. Zero values are the
// documented defaults; a negative count or rate turns that limit off. Safe for
// concurrent use.
type Limiter struct {
	// MaxConns caps the open connections overall (default DefaultMaxConns()).
	MaxConns int
	// MaxConnsPerAddr caps the open connections of one client address (default
	// DefaultMaxConnsPerAddr).
	MaxConnsPerAddr int
	// ExemptAddrs are client networks the per-address caps (connections and uploads) do
	// not apply to: a reverse proxy or load balancer in front, whose one address carries
	// everyone's connections. They still count towards the overall caps.
	ExemptAddrs []netip.Prefix
	// IPv6PrefixLen groups IPv6 client addresses into networks of this prefix length for
	// the per-address caps (default DefaultIPv6PrefixLen; 128: each address alone).
	IPv6PrefixLen int

	// MaxUploads caps the request bodies being received at once, overall (default
	// DefaultMaxUploads); beyond, 503 Service Unavailable.
	MaxUploads int
	// MaxUploadsPerAddr caps the request bodies being received at once from one client
	// address (default DefaultMaxUploadsPerAddr); beyond, 429 Too Many Requests.
	MaxUploadsPerAddr int
	// MinUploadRate is the slowest a request body may arrive, in bytes per second
	// (default DefaultMinUploadRate): after UploadGrace, every UploadRateWindow of
	// waiting for the body must bring MinUploadRate × UploadRateWindow bytes, or the
	// body read fails with ErrUploadTooSlow and the connection is closed. Only time spent
	// waiting for the client counts, not the handler's own work between reads.
	MinUploadRate int64
	// UploadRateWindow is the window MinUploadRate is measured over (default, and when
	// not positive, DefaultUploadRateWindow).
	UploadRateWindow time.Duration
	// UploadGrace lengthens the first window: a body may start slowly (default
	// DefaultUploadGrace; negative: none).
	UploadGrace time.Duration
	// RetryAfter is the Retry-After of a refused upload (default, and when not
	// positive, DefaultRetryAfter).
	RetryAfter time.Duration
	// ClientAddr returns the client address of a request for the upload caps. Default:
	// the socket's peer address (r.RemoteAddr; IPv6 grouped by IPv6PrefixLen). Set it to
	// honour a trusted proxy's forwarding header; never trust such a header from anyone.
	ClientAddr func(r *http.Request) string

	once        sync.Once
	defMaxConns int         // DefaultMaxConns(), once
	evict       atomic.Bool // ConfigureServer ran: handlers mark their connections busy

	mu        sync.Mutex
	conns     int                             // open connections
	nonBusy   int                             // open connections without a request in a handler
	addrs     map[netip.Addr]*addrConns       // by grouped client address
	levels    map[int]map[*addrConns]struct{} // addresses by their number of connections
	uploads   int
	addrLoads map[string]int // uploads by client address

	refusedPerAddr, refusedOverall, evicted               atomic.Uint64
	uploadsRefusedPerAddr, uploadsRefusedOverall, tooSlow atomic.Uint64
}

func (l *Limiter) init() {
	l.once.Do(func() {
		l.addrs = map[netip.Addr]*addrConns{}
		l.levels = map[int]map[*addrConns]struct{}{}
		l.addrLoads = map[string]int{}
		l.defMaxConns = DefaultMaxConns()
	})
}

// limit returns v, or def when v is 0, or 0 (no limit) when v is negative.
func limit[T int | int64 | time.Duration](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

func (l *Limiter) maxConns() int {
	if l.MaxConns == 0 {
		return l.defMaxConns
	}
	return max(l.MaxConns, 0)
}

func (l *Limiter) maxConnsPerAddr() int { return limit(l.MaxConnsPerAddr, DefaultMaxConnsPerAddr) }
func (l *Limiter) maxUploads() int      { return limit(l.MaxUploads, DefaultMaxUploads) }
func (l *Limiter) maxUploadsPerAddr() int {
	return limit(l.MaxUploadsPerAddr, DefaultMaxUploadsPerAddr)
}
func (l *Limiter) minUploadRate() int64 { return limit(l.MinUploadRate, DefaultMinUploadRate) }
func (l *Limiter) uploadRateWindow() time.Duration {
	if l.UploadRateWindow <= 0 {
		return DefaultUploadRateWindow
	}
	return l.UploadRateWindow
}
func (l *Limiter) uploadGrace() time.Duration { return limit(l.UploadGrace, DefaultUploadGrace) }
func (l *Limiter) retryAfter() time.Duration {
	if l.RetryAfter <= 0 {
		return DefaultRetryAfter
	}
	return l.RetryAfter
}

// group maps a client address to the address the per-address caps count it under.
func (l *Limiter) group(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		bits := l.IPv6PrefixLen
		if bits <= 0 || bits > 128 {
			bits = DefaultIPv6PrefixLen
		}
		if p, err := a.WithZone("").Prefix(bits); err == nil {
			return p.Addr()
		}
	}
	return a
}

func (l *Limiter) exempt(a netip.Addr) bool {
	for _, p := range l.ExemptAddrs {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Stats are a Limiter's current load and counts of refusals since it was made.
type Stats struct {
	// Conns is the number of open connections; Uploads of bodies being received.
	Conns, Uploads int
	// ConnsRefusedPerAddr counts connections closed at once because their address had
	// MaxConnsPerAddr open; ConnsRefusedOverall because MaxConns were open and none could
	// give way.
	ConnsRefusedPerAddr, ConnsRefusedOverall uint64
	// ConnsEvicted counts connections without a request in progress closed to admit a
	// client holding fewer connections.
	ConnsEvicted uint64
	// UploadsRefusedPerAddr counts 429 answers (MaxUploadsPerAddr), UploadsRefusedOverall
	// 503 answers (MaxUploads).
	UploadsRefusedPerAddr, UploadsRefusedOverall uint64
	// UploadsTooSlow counts request bodies cut for arriving slower than MinUploadRate.
	UploadsTooSlow uint64
}

// Stats returns the current load and the refusal counts, for metrics.
func (l *Limiter) Stats() Stats {
	l.init()
	l.mu.Lock()
	conns, uploads := l.conns, l.uploads
	l.mu.Unlock()
	return Stats{
		Conns: conns, Uploads: uploads,
		ConnsRefusedPerAddr: l.refusedPerAddr.Load(), ConnsRefusedOverall: l.refusedOverall.Load(),
		ConnsEvicted:          l.evicted.Load(),
		UploadsRefusedPerAddr: l.uploadsRefusedPerAddr.Load(), UploadsRefusedOverall: l.uploadsRefusedOverall.Load(),
		UploadsTooSlow: l.tooSlow.Load(),
	}
}

type connKey struct{}

// ConfigureServer prepares srv for the limits: it wraps srv.Handler (or
// http.DefaultServeMux) with Handler, records each connection in its context so that a
// connection with a request in progress is never evicted (without this, the Listener
// only refuses, never evicts), and sets ReadHeaderTimeout, IdleTimeout and
// MaxHeaderBytes to DefaultReadHeaderTimeout, DefaultIdleTimeout and
// DefaultMaxHeaderBytes where they are zero. Call it before srv serves.
func (l *Limiter) ConfigureServer(srv *http.Server) {
	l.init()
	if srv.ReadHeaderTimeout == 0 {
		srv.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if srv.IdleTimeout == 0 {
		srv.IdleTimeout = DefaultIdleTimeout
	}
	if srv.MaxHeaderBytes == 0 {
		srv.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	h := srv.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	srv.Handler = l.Handler(h)
	prev := srv.ConnContext
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if prev != nil {
			ctx = prev(ctx, c)
		}
		if lc := findConn(c); lc != nil && lc.l == l {
			ctx = context.WithValue(ctx, connKey{}, lc)
		}
		return ctx
	}
	l.evict.Store(true)
}

// findConn finds the Limiter's connection under c (a *tls.Conn, say).
func findConn(c net.Conn) *conn {
	for range 8 {
		switch v := c.(type) {
		case *conn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}
