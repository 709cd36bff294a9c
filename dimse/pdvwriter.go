package dimse

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// pdvOverhead is what a P-DATA-TF PDU's variable field spends on one PDV besides its
// data: the item length (4 bytes), the presentation context ID and the message control
// header (PS3.8 §9.3.5.1).
const pdvOverhead = 6

// pdvHeader is the bytes before a PDV's data in a P-DATA-TF PDU of one PDV: the PDU
// header (6 bytes) and the PDV's item header (pdvOverhead).
const pdvHeader = 6 + pdvOverhead

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
// PDUs of one PDV each, as large as the peer's maximum PDU length allows, flagging the
// last fragment of each. It is the one place messages are fragmented, for the acceptor
// and the requestor alike.
//
// PDUs go to the connection several at a time, so that a peer announcing a small
// maximum (DCMTK's default is 16 KiB) does not cost a system call per PDU: on a TCP
// connection, the PDUs of up to sendBlock bytes of data go in one vectored write
// (writev: the headers and the data, which is not copied); PDVs under coalesceBelow
// bytes, and every PDU on other connections (TLS, which would otherwise seal each
// header in a record of its own), are gathered in a buffer. Every write to the
// connection has a deadline.
type pdvWriter struct {
	conn  net.Conn
	bw    *bufio.Writer // gathers PDUs (nil: vectored writes)
	ctxID byte
	chunk int
	v     *vector // the PDUs of the next vectored write (nil until the first)
}

// coalesceBelow is the PDV size under which PDUs are gathered in a buffer before they
// are written rather than written from where their data is (vectored).
const coalesceBelow = 8 << 10

// sendBlock is how much of a streamed data set is read from its source at a time, and
// the most data one write to the connection carries: several PDUs of a peer with a
// small maximum PDU length, or one larger PDU.
const sendBlock = 256 << 10

// maxVector is the most PDUs one vectored write holds: a block's PDVs of at least
// coalesceBelow bytes each, and the command's before them.
const maxVector = sendBlock/coalesceBelow + 2

// vector is a vectored write in preparation: PDU headers, and the buffers to write
// (each PDU's header, then its data where it lies); and the read-ahead blocks of a
// streamed data set. Vectors are pooled: a block is large, and a data set is streamed
// for every C-STORE sent.
type vector struct {
	hdr    [maxVector][pdvHeader]byte
	bufs   [2 * maxVector][]byte
	n      int // PDUs in hdr and bufs
	blocks [2][]byte
}

var vectors = sync.Pool{New: func() any { return new(vector) }}

// gatherers are the buffers of gathered PDUs, pooled like vectors: a message is written
// with one, C-FIND's pending responses and TLS connections with many.
var gatherers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// newPDVWriter prepares to write on conn for presentation context ctxID, to a peer whose
// maximum PDU length is peerMax. Call release when done.
func newPDVWriter(conn net.Conn, ctxID byte, peerMax uint32) (*pdvWriter, error) {
	chunk, err := pdvChunk(peerMax)
	if err != nil {
		return nil, err
	}
	p := &pdvWriter{conn: conn, ctxID: ctxID, chunk: chunk}
	if _, tcp := conn.(*net.TCPConn); !tcp || chunk < coalesceBelow {
		p.bw = gatherers.Get().(*bufio.Writer)
		p.bw.Reset(deadlineWriter{conn})
	}
	return p, nil
}

// release returns the vector, with its blocks, and the gathering buffer to their pools.
func (p *pdvWriter) release() {
	if p.bw != nil {
		p.bw.Reset(nil)
		gatherers.Put(p.bw)
		p.bw = nil
	}
	if p.v != nil {
		p.v.n = 0
		clear(p.v.bufs[:])
		vectors.Put(p.v)
		p.v = nil
	}
}

// pduHeader fills h with the header of a P-DATA-TF PDU of one PDV of n bytes.
func (p *pdvWriter) pduHeader(h *[pdvHeader]byte, command, last bool, n int) {
	h[0], h[1] = TypePDataTF, 0
	binary.BigEndian.PutUint32(h[2:6], uint32(n+pdvOverhead))
	binary.BigEndian.PutUint32(h[6:10], uint32(n+2))
	h[10], h[11] = p.ctxID, 0
	if command {
		h[11] |= 1
	}
	if last {
		h[11] |= 2
	}
}

// pdv writes one PDV (of at most chunk bytes), gathered, or queued in the vector (its
// data must stay as it is until flush).
func (p *pdvWriter) pdv(command, last bool, data []byte) error {
	if p.bw != nil {
		var h [pdvHeader]byte
		p.pduHeader(&h, command, last, len(data))
		p.bw.Write(h[:])
		_, err := p.bw.Write(data)
		return err
	}
	if p.v == nil {
		p.v = vectors.Get().(*vector)
	}
	if p.v.n == maxVector {
		if err := p.flush(); err != nil {
			return err
		}
	}
	v := p.v
	p.pduHeader(&v.hdr[v.n], command, last, len(data))
	v.bufs[2*v.n], v.bufs[2*v.n+1] = v.hdr[v.n][:], data
	v.n++
	return nil
}

// flush writes what is gathered or queued.
func (p *pdvWriter) flush() error {
	if p.bw != nil {
		return p.bw.Flush()
	}
	if p.v == nil || p.v.n == 0 {
		return nil
	}
	bufs := net.Buffers(p.v.bufs[:2*p.v.n])
	p.v.n = 0
	p.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := bufs.WriteTo(p.conn)
	return err
}

// deadlineWriter sets the write deadline before each write to the connection.
type deadlineWriter struct{ conn net.Conn }

func (d deadlineWriter) Write(b []byte) (int, error) {
	d.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	return d.conn.Write(b)
}

// queue adds b as PDVs (command or data set), the last one flagged when last, without
// writing them all (flush does).
func (p *pdvWriter) queue(command, last bool, b []byte) error {
	for {
		n := min(len(b), p.chunk)
		if err := p.pdv(command, last && n == len(b), b[:n]); err != nil {
			return err
		}
		if b = b[n:]; len(b) == 0 {
			return nil
		}
	}
}

// bytes writes b as PDVs (command or data set), the last one flagged, and flushes.
func (p *pdvWriter) bytes(command bool, b []byte) error {
	if err := p.queue(command, true, b); err != nil {
		return err
	}
	return p.flush()
}

// message writes a command (unless nil) and then the data set read from r, streamed
// in blocks of sendBlock bytes (or of one PDV when a PDV takes more), the last PDV
// flagged (one block of look-ahead); the command goes out with the first block. It
// stops when ctx ends.
func (p *pdvWriter) message(ctx context.Context, cmd []byte, r io.Reader) error {
	if p.v == nil {
		p.v = vectors.Get().(*vector)
	}
	size := max(p.chunk, sendBlock/p.chunk*p.chunk)
	blocks := &p.v.blocks
	for i := range blocks {
		if cap(blocks[i]) < size {
			blocks[i] = make([]byte, size)
		}
		blocks[i] = blocks[i][:size]
	}
	if cmd != nil {
		if err := p.queue(true, true, cmd); err != nil {
			return err
		}
	}
	cur, next := blocks[0], blocks[1]
	n, err := io.ReadFull(r, cur)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("dimse: read data set: %w", err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		m := 0
		if n == size {
			var rerr error
			if m, rerr = io.ReadFull(r, next); rerr != nil && !errors.Is(rerr, io.ErrUnexpectedEOF) && !errors.Is(rerr, io.EOF) {
				return fmt.Errorf("dimse: read data set: %w", rerr)
			}
		}
		if err := p.queue(false, m == 0, cur[:n]); err != nil {
			return err
		}
		if err := p.flush(); err != nil || m == 0 {
			return err
		}
		cur, next, n = next, cur, m
	}
}
