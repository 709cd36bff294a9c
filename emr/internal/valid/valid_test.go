package valid

import (
	"strings"
	"testing"
)

func TestChecks(t *testing.T) {
	for _, c := range []struct {
		check func(string) bool
		name  string
		ok    []string
		bad   []string
	}{
		{Text, "Text", []string{"", "Müller^Hans", `A\B`, "洪^吉洞"}, []string{"a\x00b", "a\x1bb", "a\nb", "\xff", "a\u0085b"}},
		{PatientID, "PatientID", []string{"P1", strings.Repeat("x", 64), `P\1`, "P*"}, []string{"", strings.Repeat("x", 65), "P\x01", "\xff"}},
		{Issuer, "Issuer", []string{"", "HOSP", strings.Repeat("é", 32)}, []string{strings.Repeat("é", 33), "H\tX"}},
		{Accession, "Accession", []string{"ACC1", strings.Repeat("9", 16), "A B", "É"}, []string{"", strings.Repeat("9", 17), "A*", "A?", `A\B`, "A\x7f"}},
		{Modality, "Modality", []string{"CT", "XA", "OT_2", strings.Repeat("A", 16)}, []string{"", "ct", "C;T", "C T", strings.Repeat("A", 17)}},
	} {
		for _, v := range c.ok {
			if !c.check(v) {
				t.Errorf("%s(%q) = false", c.name, v)
			}
		}
		for _, v := range c.bad {
			if c.check(v) {
				t.Errorf("%s(%q) = true", c.name, v)
			}
		}
	}
}
