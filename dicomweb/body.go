package dicomweb

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/labstack/echo/v4"
)

// bodyWriteSize is the size of the writes of a retrieval, and of the pieces in which
// files go to the connection zero-copy. On loopback (a reverse proxy or a client on
// the same host, and the benchmarks) 32 KiB writes cost the least CPU per byte on the
// reference machine: 64 KiB writes, and sendfile of whole files (which the kernel
// sends in 64 KiB steps), cost 40-60 % more (docs/benchmarks.md).
const bodyWriteSize = 32 << 10

var bodyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, bodyWriteSize); return &b }}

// zeroCopyBytes counts the bytes that went to a connection zero-copy (for tests).
var zeroCopyBytes atomic.Int64

// errPartLength reports a part whose stored object did not have the length its part
// header (and the response's Content-Length) announced.
var errPartLength = errors.New("dicomweb: the stored object's length differs from the one recorded")

// body writes the body of a response that retrieves stored objects. What is written
// is gathered into bodyWriteSize writes, part headers and boundaries with the data
// around them. When the response's length was announced in its Content-Length
// (net/http then does not chunk the body) and the response writer can take a reader
// (net/http's can: sendfile from a file), the stored files (the *os.File that
// archive/fs hands out, recognised as a syscall.Conn) go to the connection zero-copy,
// without passing through the process: a part's first bytes fill the gathered write
// that holds its header, the rest goes by sendfile.
//
// Parts are announced with begin (the bytes before them, and their length or -1), and
// closed with end: a part that takes more or fewer bytes than announced is an error
// (errPartLength), as the Content-Length promised its size.
type body struct {
	r      *echo.Response
	rf     io.ReaderFrom // the response writer's, when files may go zero-copy
	buf    *[]byte
	remain int64 // bytes the current part still takes; -1: not known
}

// newBody starts the body of r (its status written): zeroCopy when r has a
// Content-Length. Call release when done.
func newBody(r *echo.Response, zeroCopy bool) *body {
	b := &body{r: r, buf: bodyBuffers.Get().(*[]byte), remain: -1}
	if rf, ok := r.Writer.(io.ReaderFrom); ok && zeroCopy {
		b.rf = rf
	}
	return b
}

// release returns the buffer; the body is not used after it.
func (b *body) release() {
	if b.buf != nil {
		*b.buf = (*b.buf)[:0]
		bodyBuffers.Put(b.buf)
		b.buf = nil
	}
}

// abort breaks the transfer off (abort) after writing what was gathered, so that the
// client has every byte that was ready.
func (b *body) abort() {
	if b.Flush() == nil {
		_ = http.NewResponseController(b.r.Writer).Flush()
	}
	abort()
}

// begin starts a part of length bytes (-1: not known) after the bytes of head (its
// delimiter and header).
func (b *body) begin(head []byte, length int64) error {
	b.remain = -1
	if _, err := b.gather(head); err != nil {
		return err
	}
	b.remain = length
	return nil
}

// end closes the current part, checking its length.
func (b *body) end() error {
	if b.remain > 0 {
		return fmt.Errorf("%w: %d bytes short", errPartLength, b.remain)
	}
	b.remain = -1
	return nil
}

// take counts n bytes of the current part, and says how many of them it may take
// (errPartLength when not all).
func (b *body) take(n int) (int, error) {
	if b.remain < 0 {
		return n, nil
	}
	if int64(n) > b.remain {
		n = int(b.remain)
		b.remain = 0
		return n, fmt.Errorf("%w: longer", errPartLength)
	}
	b.remain -= int64(n)
	return n, nil
}

// Write gathers p, writing when the buffer is full.
func (b *body) Write(p []byte) (int, error) {
	n, err := b.take(len(p))
	if m, werr := b.gather(p[:n]); werr != nil {
		return m, werr
	}
	return n, err
}

// gather keeps p, writing when the buffer is full.
func (b *body) gather(p []byte) (int, error) {
	n := len(p)
	buf := *b.buf
	if len(buf) == 0 && len(p) >= cap(buf) {
		return b.r.Write(p)
	}
	for len(p) > 0 {
		m := copy(buf[len(buf):cap(buf)], p)
		buf, p = buf[:len(buf)+m], p[m:]
		if len(buf) == cap(buf) {
			*b.buf = buf
			if err := b.Flush(); err != nil {
				return n - len(p), err
			}
			buf = *b.buf
		}
	}
	*b.buf = buf
	return n, nil
}

// Flush writes what is gathered.
func (b *body) Flush() error {
	buf := *b.buf
	if len(buf) == 0 {
		return nil
	}
	_, err := b.r.Write(buf)
	*b.buf = buf[:0]
	return err
}

// ReadFrom copies src to the body (io.Copy calls it). The bytes of a file go to the
// connection zero-copy when the body allows it, once the gathered write is full;
// exactly the bytes the part has left: one more is errPartLength. Other readers are
// read into the buffer.
func (b *body) ReadFrom(src io.Reader) (int64, error) {
	_, file := src.(syscall.Conn)
	zeroCopy := file && b.rf != nil && b.remain >= 0
	var total int64
	for {
		buf := *b.buf
		if len(buf) == cap(buf) {
			if err := b.Flush(); err != nil {
				return total, err
			}
			buf = *b.buf
		}
		if zeroCopy && len(buf) == 0 {
			n, err := b.sendFile(src)
			return total + n, err
		}
		m, err := src.Read(buf[len(buf):cap(buf)])
		if m > 0 {
			var terr error
			if m, terr = b.take(m); terr != nil {
				err = terr
			}
			*b.buf = buf[:len(buf)+m]
			total += int64(m)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// sendFile hands the rest of the current part, from the file src, to the
// connection, in pieces of bodyWriteSize; then checks that src has no more bytes.
func (b *body) sendFile(src io.Reader) (int64, error) {
	var total int64
	for b.remain > 0 {
		n, err := b.rf.ReadFrom(&io.LimitedReader{R: src, N: min(b.remain, bodyWriteSize)})
		total += n
		b.remain -= n
		b.r.Size += n
		zeroCopyBytes.Add(n)
		if err != nil || n == 0 {
			return total, err // short: end says so
		}
	}
	var one [1]byte
	if m, _ := src.Read(one[:]); m > 0 {
		return total, fmt.Errorf("%w: longer", errPartLength)
	}
	return total, nil
}
