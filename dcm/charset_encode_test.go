package dcm

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lumenpacs/lumen/testdata/tools"
)

// TestCharsetEncode encodes text in each character set (as C-FIND answers are, in the
// request's Specific Character Set): the escape sequences switch sets and return to the
// initial ones before every delimiter and at the end of the value; pydicom reads back
// the original text; text a set cannot hold is refused.
func TestCharsetEncode(t *testing.T) {
	cases := []struct {
		scs  []string
		vr   string
		text string
		raw  string // "" when not checked byte for byte
		// noPydicom: pydicom 2.3.1 misreads the set (it keeps the escape sequences of
		// ISO 2022 IR 58, splits GBK values on a second byte 05/12, does not know
		// ISO_IR 203); Decode alone is checked.
		noPydicom bool
	}{
		{[]string{"", "ISO 2022 IR 87"}, "PN", "Yamada^Tarou=山田^太郎=やまだ^たろう", "Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B", false},
		{[]string{"ISO 2022 IR 13", "ISO 2022 IR 87"}, "PN", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう", "", false},
		{[]string{"", "ISO 2022 IR 87", "ISO 2022 IR 159"}, "LO", "丂 山田", "", false},
		{[]string{"", "ISO 2022 IR 149"}, "PN", "Hong^Gildong=洪^吉洞=홍^길동", "Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7=\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5\xbf", false},
		{[]string{"", "ISO 2022 IR 58"}, "PN", "Zhang^XiaoDong=张^小东", "Zhang^XiaoDong=\x1b$)A\xd5\xc5^\x1b$)A\xd0\xa1\xb6\xab", true},
		{[]string{"", "ISO 2022 IR 149"}, "LO", "김희중\\홍", "", false},
		{[]string{"GB18030"}, "PN", "Wang^XiaoDong=王^小东", "Wang^XiaoDong=\xcd\xf5^\xd0\xa1\xb6\xab", false},
		{[]string{"GBK"}, "LO", "乗张", "\x81\x5c\xd5\xc5", true},
		{[]string{"ISO_IR 100"}, "PN", "Buc^Jérôme", "Buc^J\xe9r\xf4me", false},
		{[]string{"ISO_IR 144"}, "PN", "Люкceмбypг", "", false},
		{[]string{"ISO_IR 127"}, "PN", "قباني^لنزار", "", false},
		{[]string{"ISO_IR 166"}, "LO", "ภาษาไทย", "", false},
		{[]string{"ISO_IR 203"}, "LO", "€uro", "\xa4uro", true},
		{[]string{"ISO 2022 IR 100", "ISO 2022 IR 126"}, "LO", "Café Αθήνα é", "", false},
		{[]string{"ISO_IR 192"}, "PN", "王^小東", "王^小東", false},
	}
	dir := t.TempDir()
	var files []string
	for i, c := range cases {
		cs := ParseCharacterSet(c.scs)
		b, err := cs.Encode(c.text, c.vr)
		if err != nil {
			t.Fatalf("%q %q: %v", c.scs, c.text, err)
		}
		if c.raw != "" && string(b) != c.raw {
			t.Errorf("%q %q: encoded %q, want %q", c.scs, c.text, b, c.raw)
		}
		if got := cs.Decode(b, c.vr); got != c.text {
			t.Errorf("%q %q: decodes back as %q", c.scs, c.text, got)
		}
		files = append(files, caseFile(t, dir, i, charsetCase{scs: c.scs, vr: c.vr, raw: string(b)}))
	}
	want := tools.PydicomJSON(t, files...)
	for i, c := range cases {
		tag := map[string]string{"PN": "00100010", "LO": "00081030"}[c.vr]
		el, _ := want[i][tag].(map[string]any)
		if c.noPydicom {
			continue
		}
		if got := strings.Join(jsonTexts(el), "\\"); got != c.text {
			t.Errorf("%q %q: pydicom reads our encoding as %q", c.scs, c.text, got)
		}
	}
	for _, c := range []struct {
		scs  []string
		text string
	}{
		{[]string{"ISO_IR 100"}, "Люк"},
		{[]string{"", "ISO 2022 IR 87"}, "김"},
		{nil, "é"},
		{[]string{"ISO 2022 IR 13"}, "山"},
	} {
		if b, err := ParseCharacterSet(c.scs).Encode(c.text, "LO"); err == nil {
			t.Errorf("%q %q: encoded as %q, want an error", c.scs, c.text, b)
		}
	}
}

// fuzzCharsets are the Specific Character Sets the fuzz target picks from.
var fuzzCharsets = [][]string{nil, {"ISO_IR 100"}, {"ISO_IR 13"}, {"", "ISO 2022 IR 87"}, {"ISO 2022 IR 13", "ISO 2022 IR 87", "ISO 2022 IR 159"},
	{"", "ISO 2022 IR 149"}, {"", "ISO 2022 IR 58"}, {"ISO 2022 IR 100", "ISO 2022 IR 126", "ISO 2022 IR 166"}, {"ISO_IR 192"}, {"GB18030"}, {"GBK"}, {"ISO_IR 999"}}

// FuzzCharsetDecode: any bytes in any character set decode to valid UTF-8 without a
// panic, and what decodes encodes again (or is refused) without a panic.
func FuzzCharsetDecode(f *testing.F) {
	for _, c := range charsetCases {
		f.Add(uint8(0), []byte(c.raw))
	}
	f.Add(uint8(3), []byte("Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B"))
	f.Add(uint8(4), []byte("\x1b$(D0!\x1b$\x1b\x1b$)C\xb1"))
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		cs := ParseCharacterSet(fuzzCharsets[int(which)%len(fuzzCharsets)])
		for _, vr := range []string{"PN", "LO", "LT"} {
			s := cs.Decode(b, vr)
			if !utf8.ValidString(s) {
				t.Fatalf("%s %s: %q decodes to invalid UTF-8 %q", cs, vr, b, s)
			}
			if enc, err := cs.Encode(s, vr); err == nil && !strings.Contains(s, "\uFFFD") && !strings.ContainsRune(s, 0x1B) {
				if back := cs.Decode(enc, vr); back != s {
					t.Fatalf("%s %s: %q decodes to %q, encodes to %q, decodes back to %q", cs, vr, b, s, enc, back)
				}
			}
		}
	})
}
