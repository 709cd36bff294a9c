package dimse

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// pdvOverhead is what a P-DATA-TF PDU's variable field spends on one PDV besides its
// data: the item length (4 bytes), the presentation context ID and the message control
// header (PS3.8 §9.3.5.1).
const pdvOverhead = 6

// maxPDVData is the most data one PDV carries when the peer sets no maximum (or a larger
// one than this side cares to send).
const maxPDVData = 1<<20 - pdvOverhead

// ErrPDULengthTooSmall means a peer announced a maximum PDU length that cannot carry a
// byte of data: the variable field of a P-DATA-TF PDU needs pdvOverhead bytes for the
// PDV header alone.
var ErrPDULengthTooSmall = errors.New("dimse: the peer's maximum PDU length cannot carry a PDV")

// pdvChunk is the data per PDV for a peer's maximum PDU length (0: no maximum), or
// ErrPDULengthTooSmall.
func pdvChunk(peerMax uint32) (int, error) {
	if peerMax == 0 || peerMax > maxPDVData+pdvOverhead {
		return maxPDVData, nil
	}
	if peerMax <= pdvOverhead {
		return 0, fmt.Errorf("%w: %d bytes (at least %d are needed)", ErrPDULengthTooSmall, peerMax, pdvOverhead+1)
	}
	return int(peerMax) - pdvOverhead, nil
}

// pdvWriter writes DIMSE messages (a command, then optionally a data set) as P-DATA-TF
// PDUs of one PDV each, within the peer's maximum PDU length, flagging the last
// fragment of each. It is the one place messages are fragmented, for the acceptor and
// the requestor alike. Small PDUs are coalesced in a buffer, so that a peer announcing
// a tiny maximum costs bytes, not a system call per PDU; larger ones are written
// straight to the connection. Every write to the connection has a deadline.
type pdvWriter struct {
	conn  net.Conn
	bw    *bufio.Writer // only for small PDUs (nil: each PDV goes to conn in one vectored write)
	ctxID byte
	chunk int
}

// coalesceBelow is the PDV size under which PDUs are gathered in a buffer before they
// are written: above it, each PDV is written straight to the connection (header and
// data in one writev, the data not copied).
const coalesceBelow = 8 << 10

// newPDVWriter prepares to write on conn for presentation context ctxID, to a peer whose
// maximum PDU length is peerMax.
func newPDVWriter(conn net.Conn, ctxID byte, peerMax uint32) (*pdvWriter, error) {
	chunk, err := pdvChunk(peerMax)
	if err != nil {
		return nil, err
	}
	p := &pdvWriter{conn: conn, ctxID: ctxID, chunk: chunk}
	if chunk < coalesceBelow {
		p.bw = bufio.NewWriterSize(deadlineWriter{conn}, 64<<10)
	}
	return p, nil
}

// pdv writes one PDV, buffered or straight to the connection (with a deadline).
func (p *pdvWriter) pdv(command, last bool, data []byte) error {
	if p.bw != nil {
		return writePDV(p.bw, p.ctxID, command, last, data)
	}
	p.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	return writePDV(p.conn, p.ctxID, command, last, data)
}

// flush writes what is buffered.
func (p *pdvWriter) flush() error {
	if p.bw != nil {
		return p.bw.Flush()
	}
	return nil
}

// deadlineWriter sets the write deadline before each write to the connection.
type deadlineWriter struct{ conn net.Conn }

func (d deadlineWriter) Write(b []byte) (int, error) {
	d.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	return d.conn.Write(b)
}

// bytes writes b as PDVs (command or data set), the last one flagged, and flushes.
func (p *pdvWriter) bytes(command bool, b []byte) error {
	for {
		n := min(len(b), p.chunk)
		if err := p.pdv(command, n == len(b), b[:n]); err != nil {
			return err
		}
		if b = b[n:]; len(b) == 0 {
			return p.flush()
		}
	}
}

// stream writes the data set read from r as PDVs, flagging the last one (one chunk of
// look-ahead), and flushes. It stops when ctx ends.
func (p *pdvWriter) stream(ctx context.Context, r io.Reader, buf *[2][]byte) error {
	if len(buf[0]) != p.chunk {
		*buf = [2][]byte{make([]byte, p.chunk), make([]byte, p.chunk)}
	}
	cur, next := buf[0], buf[1]
	n, err := io.ReadFull(r, cur)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("dimse: read data set: %w", err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		m := 0
		if n == p.chunk {
			var rerr error
			if m, rerr = io.ReadFull(r, next); rerr != nil && !errors.Is(rerr, io.ErrUnexpectedEOF) && !errors.Is(rerr, io.EOF) {
				return fmt.Errorf("dimse: read data set: %w", rerr)
			}
		}
		if err := p.pdv(false, m == 0, cur[:n]); err != nil {
			return err
		}
		if m == 0 {
			return p.flush()
		}
		cur, next, n = next, cur, m
	}
}
