package httplimit

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
)

// readFromConn is a connection with its own ReadFrom (as *net.TCPConn has: sendfile
// for a file), recording the reader it was given.
type readFromConn struct {
	net.Conn
	from io.Reader
}

func (c *readFromConn) ReadFrom(r io.Reader) (int64, error) {
	c.from = r
	return io.Copy(io.Discard, r)
}

// writeConn is a connection without ReadFrom.
type writeConn struct {
	net.Conn
	got bytes.Buffer
}

func (c *writeConn) Write(p []byte) (int, error) { return c.got.Write(p) }

// TestConnReadFrom: a limited connection hands a reader to the underlying
// connection's own ReadFrom, so that net/http's sendfile of a file (a WADO retrieval
// from the filesystem store) survives the limits; over a connection without one
// (TLS), the bytes are written.
func TestConnReadFrom(t *testing.T) {
	inner := &readFromConn{}
	r := strings.NewReader("stored bytes")
	if n, err := (&conn{Conn: inner}).ReadFrom(r); err != nil || n != 12 || inner.from != io.Reader(r) {
		t.Fatalf("ReadFrom: %d %v, the connection's ReadFrom given %T", n, err, inner.from)
	}
	plain := &writeConn{}
	if n, err := (&conn{Conn: plain}).ReadFrom(strings.NewReader("stored bytes")); err != nil || n != 12 || plain.got.String() != "stored bytes" {
		t.Fatalf("ReadFrom without the connection's: %d %v %q", n, err, plain.got.String())
	}
}
