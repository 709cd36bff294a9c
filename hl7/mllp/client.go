package mllp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// ErrClientClosed is returned by Send after Close, or after an earlier Send failed.
var ErrClientClosed = errors.New("mllp: Client closed")

// Client is one MLLP connection to a receiver, for sending messages in original mode:
// Send writes a frame and waits for the one frame that answers it. Its methods are safe
// for concurrent use; exchanges take turns.
type Client struct {
	mu     sync.Mutex
	nc     net.Conn
	r      *Reader
	w      *Writer
	err    error // why the client is no longer usable
	closed bool  // the connection is closed
}

// Dial connects to addr (host:port) over TCP, or over TLS when tlsConfig is not nil
// (its ServerName defaults to addr's host). ctx bounds the connection and the TLS
// handshake. Acknowledgements are read with the DefaultMaxMessageBytes limit.
func Dial(ctx context.Context, addr string, tlsConfig *tls.Config) (*Client, error) {
	var nc net.Conn
	var err error
	if tlsConfig != nil {
		d := &tls.Dialer{Config: tlsConfig}
		nc, err = d.DialContext(ctx, "tcp", addr)
	} else {
		var d net.Dialer
		nc, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	return &Client{nc: nc, r: NewReader(nc, DefaultMaxMessageBytes), w: NewWriter(nc)}, nil
}

// Send writes msg as one frame and returns the message of the next frame received (the
// acknowledgement), within ctx's deadline; cancelling ctx interrupts the exchange. A
// message holding framing bytes is refused with ErrBadPayload and the connection stays
// usable. A connection closed by the receiver before it answered gives an error
// wrapping io.ErrUnexpectedEOF. Any other failure (a write or read error, a framing error, ctx ending) closes
// the Client, since an acknowledgement arriving later could no longer be told apart:
// the error wraps ctx's error when ctx ended, and later calls return ErrClientClosed.
// An acknowledgement over DefaultMaxMessageBytes is returned cut, with ErrTooLarge,
// and the connection stays usable.
func (c *Client) Send(ctx context.Context, msg []byte) (ack []byte, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d, hasDeadline := ctx.Deadline()
	c.nc.SetDeadline(d)
	interrupted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.nc.SetDeadline(time.Unix(1, 0))
		close(interrupted)
	})
	defer func() {
		if !stop() {
			<-interrupted // the next Send sets its own deadline after this one's
		}
		if err == nil || errors.Is(err, ErrBadPayload) || errors.Is(err, ErrTooLarge) {
			return // the stream is still in step
		}
		cerr := ctx.Err()
		if cerr == nil && hasDeadline && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(d) {
			cerr = context.DeadlineExceeded // the connection's deadline fired first
		}
		if cerr != nil && !errors.Is(err, cerr) {
			err = errors.Join(cerr, err)
		}
		c.nc.Close()
		c.closed = true
		c.err = ErrClientClosed
	}()
	if err := c.w.WriteFrame(msg); err != nil {
		return nil, err
	}
	ack, err = c.r.ReadFrame()
	if err == io.EOF {
		err = fmt.Errorf("mllp: the connection closed before the acknowledgement: %w", io.ErrUnexpectedEOF)
	}
	return ack, err
}

// Close closes the connection (nil if it is closed already).
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.err = ErrClientClosed
	return c.nc.Close()
}

// RemoteAddr returns the receiver's address.
func (c *Client) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }
