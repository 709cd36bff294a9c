package mllp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// result is what one ReadFrame returned: the message and the sentinel its error wraps.
type result struct {
	msg string
	err error // nil, io.EOF or one of the sentinels
}

func (r result) String() string { return fmt.Sprintf("(%q, %v)", r.msg, r.err) }

// sentinel reduces an error to the sentinel it wraps.
func sentinel(err error) error {
	for _, s := range []error{ErrTooLarge, ErrBadStart, ErrTruncated, io.EOF} {
		if errors.Is(err, s) {
			return s
		}
	}
	return err
}

// readAll reads frames until an error other than a framing error (io.EOF at the end)
// and returns every result, the last included. It fails if the reader makes no
// progress within limit calls.
func readAll(t testing.TB, r *Reader, limit int) []result {
	var out []result
	for range limit {
		msg, err := r.ReadFrame()
		res := result{string(msg), sentinel(err)}
		out = append(out, res)
		if err != nil && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrBadStart) && !errors.Is(err, ErrTruncated) {
			return out
		}
	}
	t.Fatalf("no end after %d frames: %v", limit, out)
	return nil
}

// chunks is a reader that returns one chunk per Read.
type chunks struct{ parts []string }

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.parts[0])
	c.parts[0] = c.parts[0][n:]
	if c.parts[0] == "" {
		c.parts = c.parts[1:]
	}
	return n, nil
}

func TestReaderTable(t *testing.T) {
	const sb, eb = "\x0b", "\x1c"
	long := strings.Repeat("a", 40)
	cases := []struct {
		name   string
		parts  []string // what successive reads return
		max    int
		want   []result
		reason string
	}{
		{name: "one frame", parts: []string{sb + "MSH|^~\\&|A\r" + eb + "\r"},
			want: []result{{"MSH|^~\\&|A\r", nil}, {"", io.EOF}}},
		{name: "several frames in one read", parts: []string{sb + "A" + eb + "\r" + sb + "B" + eb + "\r" + sb + "C" + eb + "\r"},
			want: []result{{"A", nil}, {"B", nil}, {"C", nil}, {"", io.EOF}}},
		{name: "a frame over many reads", parts: []string{sb, "MS", "H|", "x", eb, "\r", sb + "B", eb + "\r"},
			want: []result{{"MSH|x", nil}, {"B", nil}, {"", io.EOF}}},
		{name: "split between end block and CR", parts: []string{sb + "A" + eb, "\r" + sb + "B" + eb, "\r"},
			want: []result{{"A", nil}, {"B", nil}, {"", io.EOF}}},
		{name: "whitespace between frames", parts: []string{" \r\n\t\f" + sb + "A" + eb + "\r \n \r\n", "  " + sb + "B" + eb + "\r\n"},
			want: []result{{"A", nil}, {"B", nil}, {"", io.EOF}}},
		{name: "junk before a frame", parts: []string{"GET / HTTP/1.1\r\n" + sb + "A" + eb + "\r"},
			want: []result{{"", ErrBadStart}, {"A", nil}, {"", io.EOF}}},
		{name: "junk between frames, over reads", parts: []string{sb + "A" + eb + "\rxx", " yy", "zz" + sb + "B" + eb + "\r"},
			want: []result{{"A", nil}, {"", ErrBadStart}, {"B", nil}, {"", io.EOF}}},
		{name: "junk then the end", parts: []string{"xyz"},
			want: []result{{"", ErrBadStart}, {"", io.EOF}}},
		{name: "a frame over the limit, then a good one", max: 16,
			parts: []string{sb + long + eb + "\r" + sb + "ok" + eb + "\r"},
			want:  []result{{long[:16], ErrTooLarge}, {"ok", nil}, {"", io.EOF}}},
		{name: "over the limit across reads", max: 16,
			parts: []string{sb + long[:10], long[10:30], long[30:] + eb, "\r" + sb + "ok" + eb + "\r"},
			want:  []result{{long[:16], ErrTooLarge}, {"ok", nil}, {"", io.EOF}}},
		{name: "exactly the limit", max: 4, parts: []string{sb + "abcd" + eb + "\r" + sb + "abcde" + eb + "\r"},
			want: []result{{"abcd", nil}, {"abcd", ErrTooLarge}, {"", io.EOF}}},
		{name: "EOF inside a frame: its first bytes come with the error", parts: []string{sb + "MSH|^~\\&|partial"},
			want: []result{{"MSH|^~\\&|partial", ErrTruncated}, {"", io.EOF}}},
		{name: "EOF inside a frame over the limit", max: 4, parts: []string{sb + "MSH|^~\\&|partial"},
			want: []result{{"MSH|", ErrTruncated}, {"", io.EOF}}},
		{name: "missing CR after the end block (accepted)", parts: []string{sb + "A" + eb + sb + "B" + eb},
			want: []result{{"A", nil}, {"B", nil}, {"", io.EOF}}},
		{name: "empty frame", parts: []string{sb + eb + "\r"},
			want: []result{{"", nil}, {"", io.EOF}}},
		{name: "a start block inside a frame: the sender started over", parts: []string{sb + "MSH|half", sb + "MSH|whole" + eb + "\r"},
			want: []result{{"MSH|half", ErrTruncated}, {"MSH|whole", nil}, {"", io.EOF}}},
		{name: "whitespace only", parts: []string{" \r\n"},
			want: []result{{"", io.EOF}}},
		{name: "nothing", want: []result{{"", io.EOF}}},
		{name: "bytes of any value", parts: []string{sb + "\x00\xff\xfe\r\n\x1b" + eb + "\r"},
			want: []result{{"\x00\xff\xfe\r\n\x1b", nil}, {"", io.EOF}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			whole := strings.Join(c.parts, "")
			readers := map[string]func() io.Reader{
				"as given":     func() io.Reader { return &chunks{parts: append([]string(nil), c.parts...)} },
				"in one read":  func() io.Reader { return strings.NewReader(whole) },
				"byte by byte": func() io.Reader { return iotest.OneByteReader(strings.NewReader(whole)) },
			}
			for how, mk := range readers {
				got := readAll(t, NewReader(mk(), c.max), 100)
				if fmt.Sprint(got) != fmt.Sprint(c.want) {
					t.Errorf("%s: got %v, want %v", how, got, c.want)
				}
			}
		})
	}
}

func TestReaderHeadOfLargeFrame(t *testing.T) {
	msg := "MSH|^~\\&|SND|FAC|RCV|FAC|20250101||ADT^A08|CTRL9|P|2.5\r" + strings.Repeat("OBX|1|TX|||"+strings.Repeat("x", 100)+"\r", 200)
	in := "\x0b" + msg + "\x1c\r\x0bnext\x1c\r"
	r := NewReader(iotest.HalfReader(strings.NewReader(in)), 8<<10)
	head, err := r.ReadFrame()
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if len(head) != HeadBytes || string(head) != msg[:HeadBytes] {
		t.Fatalf("head: %d bytes, want the first %d of the message", len(head), HeadBytes)
	}
	if r.size != len(msg) || !strings.Contains(err.Error(), fmt.Sprint(len(msg))) {
		t.Errorf("size %d, error %q: want %d", r.size, err, len(msg))
	}
	if next, err := r.ReadFrame(); err != nil || string(next) != "next" {
		t.Fatalf("next frame: %q, %v", next, err)
	}
}

func TestReaderTimeoutInsideFrame(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go a.Write([]byte("\x0bMSH|^~\\&|slow"))
	b.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	head, err := NewReader(b, 0).ReadFrame()
	if !errors.Is(err, ErrTruncated) || !errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, ErrStartedOver) || string(head) != "MSH|^~\\&|slow" {
		t.Fatalf("err = %v, head %q: want ErrTruncated wrapping the timeout, with the head", err, head)
	}
	// Between frames the timeout comes as it is.
	c, d := net.Pipe()
	defer c.Close()
	defer d.Close()
	d.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err = NewReader(d, 0).ReadFrame()
	if errors.Is(err, ErrTruncated) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle err = %v, want the bare timeout", err)
	}
}

// writes counts Write calls.
type writes struct {
	bytes.Buffer
	n int
}

func (w *writes) Write(p []byte) (int, error) { w.n++; return w.Buffer.Write(p) }

func TestWriteFrame(t *testing.T) {
	var w writes
	fw := NewWriter(&w)
	for _, m := range []string{"MSH|^~\\&|A\rPID|1\r", "", strings.Repeat("z", 100<<10)} {
		w.Reset()
		w.n = 0
		if err := fw.WriteFrame([]byte(m)); err != nil {
			t.Fatal(err)
		}
		if w.n != 1 || w.String() != "\x0b"+m+"\x1c\r" {
			t.Fatalf("%d writes of %q", w.n, w.String()[:min(40, w.Len())])
		}
	}
	for _, bad := range []string{"A\x0bB", "A\x1cB"} {
		w.Reset()
		if err := WriteFrame(&w, []byte(bad)); !errors.Is(err, ErrBadPayload) || w.Len() != 0 {
			t.Errorf("%q: err %v, %d bytes written", bad, err, w.Len())
		}
	}
}

func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"\x0bMSH|^~\\&|A\r\x1c\r",
		"\x0bA\x1c\r\x0bB\x1c\r",
		"junk\x0bA\x1c",
		" \r\n\x0b\x1c\x0b",
		"\x0bAB\x0bC\x1c\r",
		"\x0b" + strings.Repeat("x", 300) + "\x1c\r\x0bok\x1c",
	} {
		f.Add([]byte(s), uint8(16))
	}
	f.Fuzz(func(t *testing.T, data []byte, limit uint8) {
		max := 1 + int(limit)
		whole := readAll(t, NewReader(bytes.NewReader(data), max), len(data)+3)
		// The results do not depend on how the input is cut into reads.
		bytewise := readAll(t, NewReader(iotest.OneByteReader(bytes.NewReader(data)), max), len(data)+3)
		if fmt.Sprint(whole) != fmt.Sprint(bytewise) {
			t.Fatalf("in one read %v, byte by byte %v", whole, bytewise)
		}
		for _, res := range whole {
			if len(res.msg) > max || res.err == ErrTooLarge && len(res.msg) > min(max, HeadBytes) {
				t.Fatalf("%d bytes returned with %v, limit %d", len(res.msg), res.err, max)
			}
			if strings.ContainsAny(res.msg, "\x0b\x1c") {
				t.Fatalf("message %q holds a framing byte", res.msg)
			}
		}
		// Memory stays bounded by the limit, whatever the input.
		r := NewReader(bytes.NewReader(data), max)
		for {
			_, err := r.ReadFrame()
			if c := cap(r.buf); c > 2*max+64 {
				t.Fatalf("buffer of %d bytes for a limit of %d", c, max)
			}
			if err == io.EOF || err != nil && errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
		}
		// Whatever is cut into frames comes back.
		payloads := bytes.FieldsFunc(data, func(r rune) bool { return r == StartBlock || r == EndBlock })
		var buf bytes.Buffer
		w := NewWriter(&buf)
		for _, p := range payloads {
			if err := w.WriteFrame(p); err != nil {
				t.Fatal(err)
			}
		}
		rr := NewReader(&buf, len(data)+1)
		for _, p := range payloads {
			got, err := rr.ReadFrame()
			if err != nil || !bytes.Equal(got, p) {
				t.Fatalf("round trip: %q, %v; want %q", got, err, p)
			}
		}
		if _, err := rr.ReadFrame(); err != io.EOF {
			t.Fatalf("after the frames: %v", err)
		}
	})
}
