package ljpeg_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/dcm/codec/codectest"
	"github.com/lumenpacs/lumen/dcm/codec/ljpeg"
)

func decode(b []byte) ([]uint16, error) {
	img, err := ljpeg.Decode(b)
	if err != nil {
		return nil, err
	}
	return img.Data, nil
}

// TestDecodeMatchesOriginal compresses native objects with DCMTK's dcmcjpeg (lossless,
// several predictors, and a point transform) and checks every decoded sample.
func TestDecodeMatchesOriginal(t *testing.T) {
	codectest.RoundTrip(t, "dcmcjpeg", 9, []codectest.Case{
		{Args: []string{"+e1"}},
		{Args: []string{"+el", "+sv", "4"}},
		{Args: []string{"+el", "+sv", "7"}},
		{Args: []string{"+el", "+sv", "1", "+pt", "2"}, Shift: 2},
	}, decode, nil)
}

func TestDecodeRejectsGarbage(t *testing.T) {
	// A DHT whose code lengths over-subscribe the code space (three 1-bit codes) made
	// the table builder index past its lookup table.
	oversubscribed := []byte{0xFF, 0xD8, 0xFF, 0xC4, 0, 22, 0x00, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 0xFF, 0xD9}
	for _, b := range [][]byte{nil, {0xFF, 0xD8}, {0xFF, 0xD8, 0xFF, 0xC0, 0, 2}, bytes.Repeat([]byte{0xFF}, 64), oversubscribed} {
		if _, err := ljpeg.Decode(b); err == nil {
			t.Fatalf("%x decoded", b)
		}
	}
}

// TestDecodeRefusesHugeFrameInFewBytes: a frame header announcing 65535×4096 samples
// over a few bytes of data is refused before the samples are allocated (and decoded
// from padding).
func TestDecodeRefusesHugeFrameInFewBytes(t *testing.T) {
	b := []byte{0xFF, 0xD8, 0xFF, 0xC3, 0, 11, 16, 0x10, 0x00, 0xFF, 0xFF, 1, 1, 0x11, 0,
		0xFF, 0xC4, 0, 20, 0x00, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0xFF, 0xDA, 0, 8, 1, 1, 0x00, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xD9}
	_, err := ljpeg.Decode(b)
	if err == nil || !strings.Contains(err.Error(), "cannot hold") {
		t.Fatalf("65535×4096 samples in %d bytes: %v", len(b), err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xC3, 0, 11, 8, 0, 2, 0, 2, 1, 1, 0x11, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ljpeg.Decode(b)
	})
}
