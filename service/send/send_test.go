package send_test

import (
	"testing"

	"github.com/lumenpacs/lumen/service/send"
)

// TestChoose: among the syntaxes a peer accepted for a SOP class (one per accepted
// presentation context, so possibly several), the stored one is preferred, then
// Explicit VR Little Endian, Implicit VR Little Endian and Deflated Explicit VR Little
// Endian when the object can be converted to them: from every uncompressed syntax
// (deflated and big endian included) and from compressed ones with a decoder.
func TestChoose(t *testing.T) {
	const (
		implicit = "1.2.840.10008.1.2"
		explicit = "1.2.840.10008.1.2.1"
		deflated = "1.2.840.10008.1.2.1.99"
		big      = "1.2.840.10008.1.2.2"
		jpeg     = "1.2.840.10008.1.2.4.50"
		rle      = "1.2.840.10008.1.2.5"
		mpeg2    = "1.2.840.10008.1.2.4.100"
	)
	for _, c := range []struct {
		stored   string
		accepted []string
		want     string
	}{
		{jpeg, []string{explicit, jpeg}, jpeg},
		{jpeg, []string{implicit, explicit}, explicit},
		{jpeg, []string{implicit}, implicit},
		{jpeg, []string{deflated}, deflated},
		{rle, []string{big}, ""},
		{deflated, []string{explicit}, explicit},
		{deflated, []string{implicit, big}, implicit},
		{deflated, []string{deflated, explicit}, deflated},
		{big, []string{explicit, implicit}, explicit},
		{big, []string{implicit}, implicit},
		{big, []string{big}, big},
		{explicit, []string{big}, ""},
		{explicit, []string{deflated}, deflated},
		{implicit, []string{explicit, implicit}, implicit},
		{mpeg2, []string{explicit, implicit}, ""},
		{mpeg2, []string{mpeg2}, mpeg2},
		{explicit, nil, ""},
	} {
		if got := send.Choose(c.stored, c.accepted); got != c.want {
			t.Errorf("Choose(%s, %v) = %q, want %q", c.stored, c.accepted, got, c.want)
		}
	}
}
