package httplimit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"time"
)

// ErrUploadTooSlow is returned (wrapped) by the reads of a request body that arrives
// slower than Limiter.MinUploadRate. The connection is closed after the response; a
// handler that sees it may answer 408 Request Timeout, though the client is likely not
// to read the answer.
var ErrUploadTooSlow = errors.New("httplimit: request body arrives too slowly")

// Handler returns next with the upload limits: a request with a body counts towards
// MaxUploads and MaxUploadsPerAddr while next handles it (beyond them it is answered
// 503 or 429 with Retry-After and a reason, its body unread), and its body reads fail
// with ErrUploadTooSlow when it arrives slower than MinUploadRate. With ConfigureServer
// (which installs it) it also marks the request's connection busy, so that it is not
// evicted.
func (l *Limiter) Handler(next http.Handler) http.Handler {
	l.init()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := r.Context().Value(connKey{}).(*conn); ok {
			if !l.enter(c) {
				return // evicted between reading the header and here: the connection is closed
			}
			defer l.leave(c)
		}
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		addr := l.clientAddr(r)
		if code, reason := l.acquireUpload(addr); code != 0 {
			l.refuse(w, r, code, reason)
			return
		}
		defer l.releaseUpload(addr)
		if rate := l.minUploadRate(); rate > 0 {
			fr := l.newFloorReader(w, r, rate)
			r.Body = fr
			defer fr.done()
		}
		next.ServeHTTP(w, r)
	})
}

// clientAddr returns the client address of r for the upload caps.
func (l *Limiter) clientAddr(r *http.Request) string {
	if l.ClientAddr != nil {
		return l.ClientAddr(r)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return l.group(a).String()
	}
	return host
}

// acquireUpload counts an upload from addr in, or returns the status and reason to
// refuse it with.
func (l *Limiter) acquireUpload(addr string) (int, string) {
	maxAll, maxAddr := l.maxUploads(), l.maxUploadsPerAddr()
	exempt := false
	if a, err := netip.ParseAddr(addr); err == nil {
		exempt = l.exempt(a)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !exempt && maxAddr > 0 && l.addrLoads[addr] >= maxAddr {
		l.uploadsRefusedPerAddr.Add(1)
		return http.StatusTooManyRequests, fmt.Sprintf("too many uploads from your address at once (at most %d); retry when one has finished", maxAddr)
	}
	if maxAll > 0 && l.uploads >= maxAll {
		l.uploadsRefusedOverall.Add(1)
		return http.StatusServiceUnavailable, fmt.Sprintf("the server is receiving its maximum of %d uploads at once; retry later", maxAll)
	}
	l.uploads++
	l.addrLoads[addr]++
	return 0, ""
}

func (l *Limiter) releaseUpload(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.uploads--
	if l.addrLoads[addr]--; l.addrLoads[addr] <= 0 {
		delete(l.addrLoads, addr)
	}
}

// refuse answers a request whose body will not be read and closes its HTTP/1
// connection after the answer. net/http reads up to 256 KiB of the unread body first,
// so that a client still sending it gets to read the answer; that takes at most one
// UploadRateWindow, not the client's pace.
func (l *Limiter) refuse(w http.ResponseWriter, r *http.Request, code int, reason string) {
	h := w.Header()
	h.Set("Retry-After", strconv.Itoa(int(math.Ceil(l.retryAfter().Seconds()))))
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	if r.ProtoMajor == 1 {
		h.Set("Connection", "close")
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(l.uploadRateWindow()))
	}
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": reason})
}

// floorReader is a request body that fails when it arrives slower than a minimum rate.
// It measures only the time spent waiting in Read, and enforces the rate with the
// connection's read deadline, so that a client sending nothing at all is cut too.
type floorReader struct {
	body  io.ReadCloser
	rc    *http.ResponseController
	l     *Limiter
	quota int64         // bytes due per window
	win   time.Duration // the window
	hard  time.Time     // the server's own ReadTimeout deadline, or zero
	left  time.Duration // waiting time left in the current window
	need  int64         // bytes still due in the current window
	// deadlines: the connection's read deadline can be set; eof: the body was read to
	// its end.
	deadlines, eof bool
	err            error
}

func (l *Limiter) newFloorReader(w http.ResponseWriter, r *http.Request, rate int64) *floorReader {
	win := l.uploadRateWindow()
	quota := max(1, int64(float64(rate)*win.Seconds()))
	f := &floorReader{body: r.Body, rc: http.NewResponseController(w), l: l, quota: quota, win: win,
		left: l.uploadGrace() + win, need: quota, deadlines: true}
	if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok && srv.ReadTimeout > 0 {
		f.hard = time.Now().Add(srv.ReadTimeout)
	}
	return f
}

func (f *floorReader) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	if f.eof {
		// Past the end net/http reads in the background (to notice the client going
		// away) with no deadline; one of ours expiring there would cancel the request.
		return 0, io.EOF
	}
	if f.left <= 0 {
		return 0, f.trip()
	}
	start := time.Now()
	dl, own := start.Add(f.left), true
	if !f.hard.IsZero() && f.hard.Before(dl) {
		dl, own = f.hard, false
	}
	if f.deadlines {
		if err := f.rc.SetReadDeadline(dl); err != nil {
			f.deadlines = false // only the reads that return are checked
		}
	}
	n, err := f.body.Read(p)
	f.left -= time.Since(start)
	if f.need -= int64(n); f.need <= 0 {
		f.left, f.need = f.win, f.quota
	}
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, io.EOF):
		f.eof = true // and net/http has cleared the read deadline
		return n, err
	case own && errors.Is(err, os.ErrDeadlineExceeded):
		return n, f.trip()
	}
	return n, err
}

// trip fails the body for good and stops reading from the connection.
func (f *floorReader) trip() error {
	f.err = fmt.Errorf("%w: fewer than %d bytes arrived in %v of waiting (minimum %d bytes/s)",
		ErrUploadTooSlow, f.quota, f.win, f.l.minUploadRate())
	f.l.tooSlow.Add(1)
	if f.deadlines {
		_ = f.rc.SetReadDeadline(time.Now()) // net/http must not wait for the rest either
	}
	return f.err
}

// done is called when the handler returns. A body the handler left unread (in part or
// whole) gets one more window for net/http to read (up to 256 KiB of) its rest, so that
// the connection can be reused; a slower client is cut off. (A body read to its end needs nothing:
// net/http cleared the deadline when it reached the end.)
func (f *floorReader) done() {
	if f.eof || f.err != nil || !f.deadlines {
		return
	}
	dl := time.Now().Add(f.win)
	if !f.hard.IsZero() && f.hard.Before(dl) {
		dl = f.hard
	}
	_ = f.rc.SetReadDeadline(dl)
}

func (f *floorReader) Close() error { return f.body.Close() }
