package dcm

import (
	"regexp"
	"testing"
)

// TestIsJSONNumber: isJSONNumber accepts exactly JSON's number grammar (RFC 8259 §6),
// the regular expression it replaces.
func TestIsJSONNumber(t *testing.T) {
	re := regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)
	cases := []string{"", "0", "-0", "00", "01", "1", "-1", "12", "1.", ".5", "0.5", "-0.5", "1.25", "1e5", "1E5",
		"1e+5", "1e-5", "1e", "1e+", "-", "+1", "1.5e3", "1.5E-03", " 1", "1 ", "1.2.3", "1e5e5", "--1", "0x10",
		"Infinity", "NaN", "1,5", "3.14159265358979", "-", "-.", "-e5", "9" + "e" + "-" + "0"}
	// Every string of up to four characters from the grammar's alphabet.
	alphabet := []byte("-+.eE019 ")
	var gen func(prefix []byte, n int)
	gen = func(prefix []byte, n int) {
		cases = append(cases, string(prefix))
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			gen(append(prefix, c), n-1)
		}
	}
	gen(nil, 4)
	for _, s := range cases {
		if got, want := isJSONNumber(s), re.MatchString(s); got != want {
			t.Errorf("isJSONNumber(%q) = %v, want %v", s, got, want)
		}
	}
}
