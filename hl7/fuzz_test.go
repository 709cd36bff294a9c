package hl7

import (
	"bytes"
	"errors"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParse: Parse never panics; every error is an *Error; a message that parses
// encodes to bytes that parse again and encode to the same bytes; every value reads;
// the ACK of any input, parsed or not, parses.
func FuzzParse(f *testing.F) {
	for _, s := range samples(f) {
		f.Add(s.Bytes)
	}
	f.Add([]byte("MSH|^~\\&#|A|B|C|D|20240101||ADT^A08|1|P|2.8||||||~ISO IR87\rPID|1||\\M2442\\;3K\\\\C2842\\^X\r"))
	f.Add([]byte("MSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.5||||||BIG-5\rPID|1||\xb3\\^\xa5\\\r"))
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		a := AckBytes(b, AR, []*Error{AsError(err)}, "FUZZ", now)
		if _, aerr := Parse(a.Encode()); aerr != nil {
			t.Fatalf("the ACK of %q does not parse: %v\n%q", b, aerr, a.Encode())
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is a %T", err, err)
			}
			return
		}
		for _, s := range m.Segments() {
			for n := 1; n <= s.NumFields(); n++ {
				v := s.Field(n)
				_ = v.String()
				for r := 1; r <= v.NumReps(); r++ {
					rep := v.Rep(r)
					for c := 1; c <= rep.NumComponents(); c++ {
						comp := rep.Component(c)
						for k := 1; k <= comp.NumSubs(); k++ {
							_ = comp.Sub(k).String()
						}
					}
				}
			}
		}
		e1 := m.Encode()
		m2, err := Parse(e1)
		if err != nil {
			t.Fatalf("Parse(Encode(Parse(%q))): %v\n%q", b, err, e1)
		}
		if e2 := m2.Encode(); !bytes.Equal(e1, e2) {
			t.Fatalf("Encode not stable for %q:\n%q\n%q", b, e1, e2)
		}
	})
}

// FuzzEscape: what EscapeValue writes unescapes to the same text.
func FuzzEscape(f *testing.F) {
	f.Add("a|b^c~d\\e&f#g\r\n")
	f.Add("\\F\\")
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		d := DefaultDelimiters
		d.Truncation = '#'
		if got := unescape(d, csUTF8, d.EscapeValue(s)); got != s {
			t.Fatalf("unescape(EscapeValue(%q)) = %q", s, got)
		}
	})
}
