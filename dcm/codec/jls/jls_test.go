package jls_test

import (
	"bytes"
	"testing"

	"github.com/lumenpacs/lumen/dcm/codec/codectest"
	"github.com/lumenpacs/lumen/dcm/codec/jls"
)

func decode(b []byte) ([]uint16, error) {
	img, err := jls.Decode(b)
	if err != nil {
		return nil, err
	}
	return img.Data, nil
}

// TestDecodeMatchesOriginal compresses native objects with DCMTK's dcmcjpls (lossless,
// line interleaved for colour by default; near-lossless; sample- and non-interleaved)
// and checks the decoded samples: equal for lossless, within NEAR for near-lossless.
func TestDecodeMatchesOriginal(t *testing.T) {
	codectest.RoundTrip(t, "dcmcjpls", 17, []codectest.Case{
		{},
		{Args: []string{"+en", "+md", "2"}, Near: 2},
		{Args: []string{"+is"}},
		{Args: []string{"+in"}},
		{Args: []string{"+is", "+en", "+md", "3"}, Near: 3},
	}, decode, nil)
}

// TestDecodeMatchesDCMTK checks near-lossless streams, whose decoded samples are
// fixed by T.87 but not equal to the original's, sample for sample against dcmdjpls:
// sample interleaved (ILV=2), line interleaved and single component.
func TestDecodeMatchesDCMTK(t *testing.T) {
	ref := []string{"dcmdjpls"}
	codectest.RoundTrip(t, "dcmcjpls", 23, []codectest.Case{
		{Args: []string{"+is", "+en", "+md", "2"}, Reference: ref},
		{Args: []string{"+is", "+en", "+md", "7"}, Reference: ref},
		{Args: []string{"+il", "+en", "+md", "4"}, Reference: ref},
		{Args: []string{"+is"}, Reference: ref},
	}, decode, nil)
}

func TestDecodeRejectsGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, {0xFF, 0xD8}, {0xFF, 0xD8, 0xFF, 0xF7, 0, 2}, bytes.Repeat([]byte{0xFF}, 64)} {
		if _, err := jls.Decode(b); err == nil {
			t.Fatalf("%x decoded", b)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xF7, 0, 11, 8, 0, 2, 0, 2, 1, 1, 0x11, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		jls.Decode(b)
	})
}
