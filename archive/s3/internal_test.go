package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestContentRangeStart(t *testing.T) {
	for h, want := range map[string]int64{
		"bytes 0-9/10":       0,
		"bytes 1234-2233/*":  1234,
		"bytes 5-5/6":        5,
		"":                   -1,
		"bytes */10":         -1,
		"items 1-2/3":        -1,
		"bytes x-9/10":       -1,
		"bytes 99999999999-": 99999999999,
	} {
		got, ok := contentRangeStart(h)
		if want < 0 {
			if ok {
				t.Errorf("%q: got %d, want no parse", h, got)
			}
			continue
		}
		if !ok || got != want {
			t.Errorf("%q: got %d, %v; want %d", h, got, ok, want)
		}
	}
}

func TestPartSizeFor(t *testing.T) {
	s := &Store{partSize: DefaultPartSize}
	for _, c := range []struct{ size, want int64 }{
		{-1, DefaultPartSize},
		{0, DefaultPartSize},
		{DefaultPartSize * maxParts, DefaultPartSize},
		{DefaultPartSize*maxParts + 1, DefaultPartSize + 1<<20},
		{maxObjectSize, 525 << 20}, // 5 TiB / 10,000 rounded up to whole MiB
	} {
		got, err := s.partSizeFor(c.size)
		if err != nil || got != c.want {
			t.Errorf("partSizeFor(%d) = %d, %v; want %d", c.size, got, err, c.want)
		}
		if c.size > 0 && (c.size+got-1)/got > maxParts {
			t.Errorf("partSizeFor(%d) = %d needs more than %d parts", c.size, got, maxParts)
		}
	}
	if _, err := s.partSizeFor(maxObjectSize + 1); err == nil {
		t.Error("partSizeFor(5 TiB + 1) succeeded")
	}
}

func TestReadPart(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 50_000) // 500 kB
	for _, c := range []struct {
		name    string
		r       io.Reader
		limit   int64
		wantN   int
		wantEOF bool
	}{
		{"short", bytes.NewReader(data), 1 << 20, len(data), true},
		{"limit", bytes.NewReader(data), 100_000, 100_000, false},
		{"exact", bytes.NewReader(data), int64(len(data)), len(data), false},
		{"onebyte", iotest.OneByteReader(bytes.NewReader(data[:1000])), 2000, 1000, true},
		{"dataeof", iotest.DataErrReader(bytes.NewReader(data[:1000])), 2000, 1000, true},
		{"zero", bytes.NewReader(data), 0, 0, false},
	} {
		got, eof, err := readPart(c.r, nil, c.limit)
		if err != nil || len(got) != c.wantN || eof != c.wantEOF || !bytes.Equal(got, data[:len(got)]) {
			t.Errorf("%s: %d bytes, eof %v, %v; want %d, %v", c.name, len(got), eof, err, c.wantN, c.wantEOF)
		}
	}
	boom := errors.New("boom")
	if _, _, err := readPart(io.MultiReader(bytes.NewReader(data[:10]), iotest.ErrReader(boom)), nil, 100); !errors.Is(err, boom) {
		t.Errorf("failing reader: %v", err)
	}
	// A reused buffer keeps its capacity.
	buf := make([]byte, 0, 4096)
	got, _, _ := readPart(bytes.NewReader(data), buf, 4096)
	if &got[0] != &buf[:1][0] {
		t.Error("buffer not reused")
	}
}

func TestPeekReader(t *testing.T) {
	ctx := context.Background()
	// A byte read ahead comes back first, and an error read with it after it.
	boom := errors.New("boom")
	p := &peekReader{ctx: ctx, r: &oneShot{b: 'x', err: boom}}
	if more, err := p.more(); !more || err != nil {
		t.Fatalf("more = %v, %v", more, err)
	}
	b := make([]byte, 4)
	if n, err := p.Read(b); n != 1 || b[0] != 'x' || err != nil {
		t.Fatalf("Read = %d %q, %v", n, b[:n], err)
	}
	if _, err := p.Read(b); !errors.Is(err, boom) {
		t.Fatalf("Read after peeked byte = %v", err)
	}
	if _, err := p.more(); !errors.Is(err, boom) {
		t.Fatalf("more after error = %v", err)
	}
	// At the end.
	p = &peekReader{ctx: ctx, r: bytes.NewReader(nil)}
	if more, err := p.more(); more || err != nil {
		t.Fatalf("more at EOF = %v, %v", more, err)
	}
	// A cancelled context stops reads.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	p = &peekReader{ctx: cctx, r: bytes.NewReader([]byte("abc"))}
	if _, err := p.Read(b); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read with cancelled ctx = %v", err)
	}
	if _, err := p.more(); !errors.Is(err, context.Canceled) {
		t.Fatalf("more with cancelled ctx = %v", err)
	}
	// A reader that never makes progress.
	p = &peekReader{ctx: ctx, r: stuck{}}
	if _, err := p.more(); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("more on a stuck reader = %v", err)
	}
}

// oneShot returns one byte together with err, then err forever.
type oneShot struct {
	b    byte
	err  error
	done bool
}

func (o *oneShot) Read(p []byte) (int, error) {
	if o.done {
		return 0, o.err
	}
	o.done = true
	p[0] = o.b
	return 1, o.err
}

type stuck struct{}

func (stuck) Read([]byte) (int, error) { return 0, nil }

func TestParseEndpoint(t *testing.T) {
	for _, c := range []struct {
		in      string
		tls     bool
		want    string
		wantTLS bool
		ok      bool
	}{
		{"minio:9000", false, "minio:9000", false, true},
		{"minio:9000", true, "minio:9000", true, true},
		{"https://s3.amazonaws.com", false, "s3.amazonaws.com", true, true},
		{"http://minio:9000/", false, "minio:9000", false, true},
		{"http://minio:9000", true, "", false, false},
		{"", false, "", false, false},
		{"minio:9000/bucket", false, "", false, false},
		{"https://", false, "", false, false},
	} {
		got, gotTLS, err := parseEndpoint(c.in, c.tls)
		if (err == nil) != c.ok || got != c.want || gotTLS != c.wantTLS {
			t.Errorf("parseEndpoint(%q, %v) = %q, %v, %v", c.in, c.tls, got, gotTLS, err)
		}
	}
}
