package mllp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// The framing bytes of MLLP: a block is StartBlock, the message, EndBlock, CarriageReturn.
const (
	StartBlock     = 0x0B // <SB>, ASCII VT
	EndBlock       = 0x1C // <EB>, ASCII FS
	CarriageReturn = 0x0D // <CR>, after EndBlock
)

// Limits of the zero Reader and Server.
const (
	// DefaultMaxMessageBytes bounds one message (the bytes between StartBlock and
	// EndBlock).
	DefaultMaxMessageBytes = 1 << 20
	// HeadBytes is how much of a frame over the limit a Reader keeps and returns with
	// ErrTooLarge (or the limit, when that is smaller): enough for the MSH segment, so
	// that the application can still answer AR with the message's control ID.
	HeadBytes = 4 << 10
)

// Framing errors. ReadFrame wraps them with the byte counts (never the content): test
// them with errors.Is.
var (
	// ErrTooLarge: the frame holds more than the maximum message size. The Reader has
	// read and discarded the rest of the frame, so the stream can go on with the next
	// frame, and returns the first HeadBytes bytes of the message with this error.
	ErrTooLarge = errors.New("mllp: frame over the maximum message size")
	// ErrBadStart: bytes other than whitespace came where a start block was due. The
	// Reader discards them up to the next start block (the next ReadFrame resumes
	// there); a server closes the connection.
	ErrBadStart = errors.New("mllp: bytes other than whitespace before the start block")
	// ErrTruncated: the stream ended, failed or timed out inside a frame, or a new start
	// block came before the end block (the sender started over). The error also wraps
	// the cause (io.ErrUnexpectedEOF, a timeout) when there is one. After a start block
	// the next ReadFrame reads the new frame; after a read error the stream is lost.
	ErrTruncated = errors.New("mllp: frame truncated")
	// ErrStartedOver wraps ErrTruncated when a start block came inside a frame: the
	// sender started over, and the next frame is read normally.
	ErrStartedOver = fmt.Errorf("%w: a start block before the end block", ErrTruncated)
	// ErrBadPayload: a message to write holds a StartBlock or EndBlock byte, which
	// would break the framing. Nothing is written.
	ErrBadPayload = errors.New("mllp: message holds a start block or end block byte")
)

// Reader reads MLLP frames from a byte stream, one message per ReadFrame. A Reader
// buffers its input: give each stream one Reader, used by one goroutine at a time.
type Reader struct {
	br   *bufio.Reader
	max  int
	buf  []byte // the message being read; reused between frames
	junk bool   // after ErrBadStart: discarding until the next start block
	size int    // length of the last message read whole (ErrTooLarge: of the whole message)
	// started, when set, is called as soon as a start block is read (the server
	// switches from the idle deadline to the frame's deadline).
	started func()
}

// NewReader returns a Reader of frames from r that holds messages of at most
// maxMessageBytes bytes (0 or less: DefaultMaxMessageBytes).
func NewReader(r io.Reader, maxMessageBytes int) *Reader {
	if maxMessageBytes <= 0 {
		maxMessageBytes = DefaultMaxMessageBytes
	}
	return &Reader{br: bufio.NewReaderSize(r, 16<<10), max: maxMessageBytes}
}

// ReadFrame returns the next message: the bytes between a start block and the next end
// block, in a new slice the caller may keep. Whitespace (space, tab, CR, LF, FF) before
// the start block is skipped. The end block ends the frame: the carriage return that
// should follow it is consumed when present and otherwise not required (it is skipped
// as whitespace before the next frame), since no message holds an end block byte, and
// waiting for a carriage return that a sender omits would stall an exchange in which
// the sender waits for the acknowledgement.
//
// At the end of the stream between frames ReadFrame returns io.EOF; a read error
// between frames (such as a timeout) is returned as it is. Inside a frame it returns
// ErrTruncated with the first bytes of the frame (ErrStartedOver when a start block came
// inside it); for a frame longer than the maximum, the message's first bytes and
// ErrTooLarge; for other bytes where a start block was due, ErrBadStart.
func (r *Reader) ReadFrame() ([]byte, error) {
	if err := r.seekStart(); err != nil {
		return nil, err
	}
	if r.started != nil {
		r.started()
	}
	return r.readBody()
}

// fill returns the buffered input, reading when none is buffered.
func (r *Reader) fill() ([]byte, error) {
	if r.br.Buffered() == 0 {
		if _, err := r.br.Peek(1); err != nil {
			return nil, err
		}
	}
	b, _ := r.br.Peek(r.br.Buffered())
	return b, nil
}

// seekStart consumes input up to and including the next start block.
func (r *Reader) seekStart() error {
	for {
		buf, err := r.fill()
		if err != nil {
			return err
		}
		for i, c := range buf {
			switch {
			case c == StartBlock:
				r.br.Discard(i + 1)
				r.junk = false
				return nil
			case r.junk || isSpace(c):
				continue
			}
			// Junk: report it once, and discard it (and what follows it) up to the
			// next start block.
			r.junk = true
			if sb := bytes.IndexByte(buf[i:], StartBlock); sb >= 0 {
				r.br.Discard(i + sb)
			} else {
				r.br.Discard(len(buf))
			}
			return ErrBadStart
		}
		r.br.Discard(len(buf))
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f'
}

// readBody reads the message after a start block.
func (r *Reader) readBody() ([]byte, error) {
	if cap(r.buf) > 64<<10 {
		r.buf = nil // do not hold a large message's buffer while idle
	}
	r.buf = r.buf[:0]
	head := min(HeadBytes, r.max)
	total := 0
	keep := func(chunk []byte) {
		total += len(chunk)
		limit := r.max
		if total > r.max {
			limit = head
		}
		if room := limit - len(r.buf); room > 0 {
			r.buf = append(r.buf, chunk[:min(room, len(chunk))]...)
		}
		if len(r.buf) > limit {
			r.buf = r.buf[:limit]
		}
	}
	for {
		buf, err := r.fill()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return r.head(), fmt.Errorf("%w after %d bytes: %w", ErrTruncated, total, err)
		}
		end := bytes.IndexByte(buf, EndBlock)
		chunk := buf
		if end >= 0 {
			chunk = buf[:end]
		}
		if sb := bytes.IndexByte(chunk, StartBlock); sb >= 0 {
			// The sender started over: this frame is lost, the next one begins here.
			keep(chunk[:sb])
			r.br.Discard(sb)
			return r.head(), fmt.Errorf("%w, after %d bytes", ErrStartedOver, total)
		}
		keep(chunk)
		if end < 0 {
			r.br.Discard(len(buf))
			continue
		}
		r.br.Discard(end + 1)
		if r.br.Buffered() > 0 {
			if b, _ := r.br.Peek(1); b[0] == CarriageReturn {
				r.br.Discard(1)
			}
		}
		msg := append(make([]byte, 0, len(r.buf)), r.buf...)
		r.size = total
		if total > r.max {
			return msg, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, total, r.max)
		}
		return msg, nil
	}
}

// head returns a copy of the first HeadBytes of the frame read so far (nil when none):
// what a truncated frame hands to the application, which may still read its MSH.
func (r *Reader) head() []byte {
	if len(r.buf) == 0 {
		return nil
	}
	return append([]byte(nil), r.buf[:min(len(r.buf), HeadBytes)]...)
}

// Writer writes MLLP frames, each in one Write call.
type Writer struct {
	w   io.Writer
	buf []byte
}

// NewWriter returns a Writer of frames to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// WriteFrame writes msg framed (StartBlock, msg, EndBlock, CarriageReturn) in one Write.
// A message holding a StartBlock or EndBlock byte is refused with ErrBadPayload.
func (w *Writer) WriteFrame(msg []byte) error {
	if bytes.IndexByte(msg, StartBlock) >= 0 || bytes.IndexByte(msg, EndBlock) >= 0 {
		return ErrBadPayload
	}
	if cap(w.buf) > 64<<10 {
		w.buf = nil
	}
	w.buf = append(append(append(w.buf[:0], StartBlock), msg...), EndBlock, CarriageReturn)
	_, err := w.w.Write(w.buf)
	return err
}

// WriteFrame writes msg to w as one frame in one Write (see Writer.WriteFrame).
func WriteFrame(w io.Writer, msg []byte) error { return NewWriter(w).WriteFrame(msg) }
