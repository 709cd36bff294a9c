package index

import "testing"

// TestNameFuzzy: upper case, accents removed (also of letters that do not decompose),
// every representation's components framed by spaces; ASCII names as they are.
func TestNameFuzzy(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Doe^Jane", " DOE JANE "},
		{"O'Brien-Smith^J.", " O BRIEN SMITH J "},
		{"Müller^Jürgen", " MULLER JURGEN "},
		{"Straße^Øle=Łukasz", " STRASSE OLE LUKASZ "},
		{"^^", ""},
		{"", ""},
	} {
		if got := NameFuzzy(c.in); got != c.want {
			t.Errorf("NameFuzzy(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
