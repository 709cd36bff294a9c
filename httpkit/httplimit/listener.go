package httplimit

import (
	"container/list"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
)

// Listener returns ln limited to MaxConns open connections overall and MaxConnsPerAddr
// per client address. Accept never blocks on the limits: a connection beyond them is
// admitted in place of one without a request in progress (see the package
// documentation; only once ConfigureServer has run), or else closed at once, and Accept
// goes on to the next. Wrap the plain TCP listener, before any TLS listener, so that
// connections count from the moment they are accepted.
func (l *Limiter) Listener(ln net.Listener) net.Listener {
	l.init()
	return &listener{Listener: ln, l: l}
}

type listener struct {
	net.Listener
	l *Limiter
}

func (ln *listener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if lc := ln.l.admit(c); lc != nil {
			return lc, nil
		}
	}
}

// addrConns are the open connections of one (grouped) client address.
type addrConns struct {
	addr netip.Addr
	n    int
	// waiting holds the connections without a request in a handler, the one that has
	// waited longest first.
	waiting list.List
}

// conn is an admitted connection.
type conn struct {
	net.Conn
	l    *Limiter
	a    *addrConns
	once sync.Once
	// Guarded by l.mu:
	busy     int           // requests in a handler
	waiting  *list.Element // in a.waiting when busy is 0 and not released
	released bool          // no longer counted (closed or evicted)
}

// remoteAddr returns the connection's peer address, or the zero Addr.
func remoteAddr(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr()
	}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr()
	}
	return netip.Addr{}
}

// admit counts c in, or closes it and returns nil.
func (l *Limiter) admit(c net.Conn) *conn {
	peer := remoteAddr(c)
	key := l.group(peer)
	exempt := l.exempt(peer)
	maxAll, maxAddr := l.maxConns(), l.maxConnsPerAddr()
	l.mu.Lock()
	a := l.addrs[key]
	n := 0
	if a != nil {
		n = a.n
	}
	var victim *conn
	switch {
	case !exempt && maxAddr > 0 && n >= maxAddr:
		if victim = l.own(a); victim == nil {
			l.mu.Unlock()
			l.refusedPerAddr.Add(1)
			refuse(c)
			return nil
		}
	case maxAll > 0 && l.conns >= maxAll:
		if victim = l.victim(n); victim == nil {
			victim = l.own(a)
		}
		if victim == nil {
			l.mu.Unlock()
			l.refusedOverall.Add(1)
			refuse(c)
			return nil
		}
	}
	if victim != nil {
		l.releaseLocked(victim)
		if a = l.addrs[key]; a != nil {
			n = a.n
		} else {
			n = 0
		}
	}
	if a == nil {
		a = &addrConns{addr: key}
		l.addrs[key] = a
	}
	lc := &conn{Conn: c, l: l, a: a}
	l.setLevel(a, n+1)
	lc.waiting = a.waiting.PushBack(lc)
	l.conns++
	l.nonBusy++
	l.mu.Unlock()
	if victim != nil {
		l.evicted.Add(1)
		victim.Conn.Close()
	}
	return lc
}

// refuse closes a connection that is not admitted, with a reset rather than an orderly
// close: nothing of it is worth keeping (in TIME_WAIT) on this side.
func refuse(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// own picks, for a client that wants one more connection than it may have, its own
// connection that has waited longest without a request in progress (an idle keep-alive
// connection of another user behind the same NAT, say), or nil.
func (l *Limiter) own(a *addrConns) *conn {
	if a == nil || !l.evict.Load() {
		return nil
	}
	if e := a.waiting.Front(); e != nil {
		return e.Value.(*conn)
	}
	return nil
}

// victim picks the connection to close so that a client already holding n connections
// can have one more: of the most loaded address holding at least n+2 connections and
// one without a request in progress, the connection that has waited longest. Only with
// ConfigureServer are requests in progress known; without it nothing is evicted.
func (l *Limiter) victim(n int) *conn {
	if !l.evict.Load() || l.nonBusy == 0 {
		return nil
	}
	lvls := make([]int, 0, len(l.levels))
	for lvl := range l.levels {
		if lvl >= n+2 {
			lvls = append(lvls, lvl)
		}
	}
	slices.Sort(lvls)
	for _, lvl := range slices.Backward(lvls) {
		for a := range l.levels[lvl] {
			if e := a.waiting.Front(); e != nil {
				return e.Value.(*conn)
			}
		}
	}
	return nil
}

// setLevel sets a's connection count, keeping the sets of addresses by count.
func (l *Limiter) setLevel(a *addrConns, to int) {
	if from := a.n; from > 0 {
		set := l.levels[from]
		delete(set, a)
		if len(set) == 0 {
			delete(l.levels, from)
		}
	}
	a.n = to
	if to > 0 {
		set := l.levels[to]
		if set == nil {
			set = map[*addrConns]struct{}{}
			l.levels[to] = set
		}
		set[a] = struct{}{}
	}
}

// releaseLocked stops counting c.
func (l *Limiter) releaseLocked(c *conn) {
	if c.released {
		return
	}
	c.released = true
	a := c.a
	l.setLevel(a, a.n-1)
	l.conns--
	if c.waiting != nil {
		a.waiting.Remove(c.waiting)
		c.waiting = nil
		l.nonBusy--
	}
	if a.n == 0 {
		delete(l.addrs, a.addr)
	}
}

// enter marks a request of c in progress; false if c was evicted meanwhile.
func (l *Limiter) enter(c *conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.released {
		return false
	}
	if c.waiting != nil {
		c.a.waiting.Remove(c.waiting)
		c.waiting = nil
		l.nonBusy--
	}
	c.busy++
	return true
}

// leave ends a request of c.
func (l *Limiter) leave(c *conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c.busy--
	if c.busy == 0 && !c.released {
		c.waiting = c.a.waiting.PushBack(c)
		l.nonBusy++
	}
}

// Close closes the connection and stops counting it.
func (c *conn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.releaseLocked(c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// ReadFrom keeps the connection's own ReadFrom (sendfile for files) available to
// net/http.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

type writerOnly struct{ io.Writer }

// CloseWrite half-closes the connection when the underlying one can (net/http uses it
// to close gracefully).
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
