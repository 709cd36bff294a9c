package dcm

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// ErrUnencodable is returned (wrapped) by CharacterSet.Encode for text that the
// character set cannot represent.
var ErrUnencodable = errors.New("dcm: text not representable in the character set")

// gset is a graphic character set that the G0 or G1 code element can hold (PS3.5
// §6.1.2.5, PS3.3 Tables C.12-3 and C.12-4).
type gset uint8

const (
	setNone     gset = iota
	setASCII         // ISO-IR 6 (G0)
	setRomaji        // ISO-IR 14, JIS X 0201 Romaji (G0), read as ASCII like pydicom does
	setJIS0208       // ISO-IR 87, JIS X 0208 kanji (G0, two bytes)
	setJIS0212       // ISO-IR 159, JIS X 0212 supplementary kanji (G0, two bytes)
	setKatakana      // ISO-IR 13, JIS X 0201 katakana (G1)
	setKSX1001       // ISO-IR 149, KS X 1001 Hangul and Hanja (G1, two bytes)
	setGB2312        // ISO-IR 58, GB 2312 (G1, two bytes)
	setLatin1        // ISO-IR 100 (G1)
	setLatin2        // ISO-IR 101
	setLatin3        // ISO-IR 109
	setLatin4        // ISO-IR 110
	setCyrillic      // ISO-IR 144
	setArabic        // ISO-IR 127
	setGreek         // ISO-IR 126
	setHebrew        // ISO-IR 138
	setLatin5        // ISO-IR 148
	setThai          // ISO-IR 166 (TIS 620-2533)
	setLatin9        // ISO-IR 203
	numSets
)

// setInfo describes a graphic character set.
type setInfo struct {
	esc    string // its designation escape sequence
	g1     bool   // designated to G1 (else G0)
	double bool   // two bytes per character
	cm     *charmap.Charmap
}

var sets = [numSets]setInfo{
	setASCII:    {esc: "\x1b(B"},
	setRomaji:   {esc: "\x1b(J"},
	setJIS0208:  {esc: "\x1b$B", double: true},
	setJIS0212:  {esc: "\x1b$(D", double: true},
	setKatakana: {esc: "\x1b)I", g1: true},
	setKSX1001:  {esc: "\x1b$)C", g1: true, double: true},
	setGB2312:   {esc: "\x1b$)A", g1: true, double: true},
	setLatin1:   {esc: "\x1b-A", g1: true, cm: charmap.ISO8859_1},
	setLatin2:   {esc: "\x1b-B", g1: true, cm: charmap.ISO8859_2},
	setLatin3:   {esc: "\x1b-C", g1: true, cm: charmap.ISO8859_3},
	setLatin4:   {esc: "\x1b-D", g1: true, cm: charmap.ISO8859_4},
	setCyrillic: {esc: "\x1b-L", g1: true, cm: charmap.ISO8859_5},
	setArabic:   {esc: "\x1b-G", g1: true, cm: charmap.ISO8859_6},
	setGreek:    {esc: "\x1b-F", g1: true, cm: charmap.ISO8859_7},
	setHebrew:   {esc: "\x1b-H", g1: true, cm: charmap.ISO8859_8},
	setLatin5:   {esc: "\x1b-M", g1: true, cm: charmap.ISO8859_9},
	setThai:     {esc: "\x1b-T", g1: true, cm: charmap.Windows874},
	setLatin9:   {esc: "\x1b-b", g1: true, cm: charmap.ISO8859_15},
}

// escapes maps designation escape sequences to their sets.
var escapes = func() map[string]gset {
	m := map[string]gset{}
	for s := setASCII; s < numSets; s++ {
		m[sets[s].esc] = s
	}
	return m
}()

// whole is a character set used without code extensions for a whole value.
type whole uint8

const (
	wholeNone    whole = iota
	wholeUTF8          // ISO_IR 192
	wholeGB18030       // GB18030
	wholeGBK           // GBK
)

// term is what a defined term of Specific Character Set designates.
type term struct {
	g0, g1 gset
	whole  whole
	ext    bool // the ISO 2022 form: code extensions in use
}

// terms are the defined terms of PS3.3 C.12.1.1.2 (Tables C.12-2 to C.12-5).
var terms = map[string]term{
	"ISO_IR 100": {g0: setASCII, g1: setLatin1}, "ISO 2022 IR 100": {g0: setASCII, g1: setLatin1, ext: true},
	"ISO_IR 101": {g0: setASCII, g1: setLatin2}, "ISO 2022 IR 101": {g0: setASCII, g1: setLatin2, ext: true},
	"ISO_IR 109": {g0: setASCII, g1: setLatin3}, "ISO 2022 IR 109": {g0: setASCII, g1: setLatin3, ext: true},
	"ISO_IR 110": {g0: setASCII, g1: setLatin4}, "ISO 2022 IR 110": {g0: setASCII, g1: setLatin4, ext: true},
	"ISO_IR 144": {g0: setASCII, g1: setCyrillic}, "ISO 2022 IR 144": {g0: setASCII, g1: setCyrillic, ext: true},
	"ISO_IR 127": {g0: setASCII, g1: setArabic}, "ISO 2022 IR 127": {g0: setASCII, g1: setArabic, ext: true},
	"ISO_IR 126": {g0: setASCII, g1: setGreek}, "ISO 2022 IR 126": {g0: setASCII, g1: setGreek, ext: true},
	"ISO_IR 138": {g0: setASCII, g1: setHebrew}, "ISO 2022 IR 138": {g0: setASCII, g1: setHebrew, ext: true},
	"ISO_IR 148": {g0: setASCII, g1: setLatin5}, "ISO 2022 IR 148": {g0: setASCII, g1: setLatin5, ext: true},
	"ISO_IR 203": {g0: setASCII, g1: setLatin9}, "ISO 2022 IR 203": {g0: setASCII, g1: setLatin9, ext: true},
	"ISO_IR 13": {g0: setRomaji, g1: setKatakana}, "ISO 2022 IR 13": {g0: setRomaji, g1: setKatakana, ext: true},
	"ISO_IR 166": {g0: setASCII, g1: setThai}, "ISO 2022 IR 166": {g0: setASCII, g1: setThai, ext: true},
	"ISO 2022 IR 6":   {g0: setASCII, ext: true},
	"ISO 2022 IR 87":  {g0: setJIS0208, ext: true},
	"ISO 2022 IR 159": {g0: setJIS0212, ext: true},
	"ISO 2022 IR 149": {g1: setKSX1001, ext: true},
	"ISO 2022 IR 58":  {g1: setGB2312, ext: true},
	"ISO_IR 192":      {whole: wholeUTF8},
	"GB18030":         {whole: wholeGB18030},
	"GBK":             {whole: wholeGBK},
}

// misspelt matches the ways senders misspell the ISO defined terms ("ISO-IR 100",
// "ISO_IR100", "iso 2022 ir 87").
var misspelt = regexp.MustCompile(`^ISO[-_ ]?(2022[-_ ]?)?IR[-_ ]?(\d+)$`)

// normalizeTerm returns the defined term a Specific Character Set value means.
func normalizeTerm(s string) string {
	s = strings.TrimSpace(s)
	if _, ok := terms[s]; ok || s == "" {
		return s
	}
	u := strings.ToUpper(s)
	if m := misspelt.FindStringSubmatch(u); m != nil {
		if m[1] != "" {
			return "ISO 2022 IR " + m[2]
		}
		if m[2] == "6" {
			return ""
		}
		return "ISO_IR " + m[2]
	}
	return u
}

// CharacterSet is the value of Specific Character Set (0008,0005) (PS3.3 C.12.1.1.2),
// ready to decode and encode the values of the text VRs (SH, LO, ST, LT, UC, UT, PN) as
// PS3.5 §6.1 says: a single-byte set, UTF-8, GB18030 or GBK for the whole value, or ISO
// 2022 code extensions where escape sequences designate sets to G0 and G1 within a
// value and the sets of value 1 are active again at each delimiter (the backslash
// between values, "^" and "=" in person names, control characters) and at the start of
// each value. The zero value, like a missing or empty Specific Character Set, is the
// default repertoire (ASCII); text that is not ASCII there is read as UTF-8 when it is
// valid UTF-8 and as ISO 8859-1 otherwise (pydicom reads ISO 8859-1). A CharacterSet is
// immutable and safe for concurrent use.
type CharacterSet struct {
	terms   []string // normalized, as given (value 1 may be "")
	whole   whole
	ext     bool
	g0, g1  gset   // designated at the start of a value and after delimiters
	allowed []gset // the sets the terms name, in their order (for encoding)
	unknown bool   // a term is not a defined term
}

// ParseCharacterSet reads the values of Specific Character Set. It never fails: an
// unknown defined term is left out (its text is read leniently, see CharacterSet) and
// makes Encode refuse non-ASCII text. Misspelt defined terms ("ISO-IR 100") are
// accepted; the first value in the form without code extensions ("ISO_IR 100")
// followed by others is read in its ISO 2022 form, as pydicom does.
func ParseCharacterSet(values []string) *CharacterSet {
	c := &CharacterSet{g0: setASCII}
	for i, v := range values {
		v = normalizeTerm(v)
		if len(values) > 1 && strings.HasPrefix(v, "ISO_IR ") {
			if _, ok := terms["ISO 2022 IR "+v[7:]]; ok {
				v = "ISO 2022 IR " + v[7:]
			}
		}
		c.terms = append(c.terms, v)
		if v == "" {
			if i == 0 {
				c.allowed = append(c.allowed, setASCII)
			}
			continue
		}
		t, ok := terms[v]
		if !ok {
			c.unknown = true
			continue
		}
		if t.whole != wholeNone {
			// UTF-8, GB18030 and GBK admit no code extensions: the whole value is theirs.
			c.whole = t.whole
			continue
		}
		if t.ext || len(values) > 1 {
			c.ext = true
		}
		if i == 0 {
			if t.g0 != setNone {
				c.g0 = t.g0
			}
			c.g1 = t.g1
		}
		for _, s := range []gset{t.g0, t.g1} {
			if s != setNone {
				c.allowed = append(c.allowed, s)
			}
		}
	}
	if sets[c.g0].double {
		// Value 1 must be a single-byte set; one that is not leaves ASCII in G0.
		c.g0 = setASCII
	}
	return c
}

// Terms returns the defined terms of the character set, as Specific Character Set
// values (misspellings corrected).
func (c *CharacterSet) Terms() []string { return append([]string(nil), c.terms...) }

// String returns the defined terms joined by backslashes.
func (c *CharacterSet) String() string { return strings.Join(c.terms, `\`) }

// isDelimiter reports whether b ends a run of code extensions in a value of vr (PS3.5
// §6.1.2.5.3): the value delimiter of the multi-valued text VRs, and the component and
// component group delimiters of PN. Control characters are handled by the callers.
func isDelimiter(b byte, vr string) bool {
	switch vr {
	case "ST", "LT", "UT", "UR":
		return false
	case "PN":
		return b == '\\' || b == '^' || b == '='
	}
	return b == '\\'
}

// Decode converts an element's raw value bytes (all its values, with their
// backslashes) to UTF-8. Bytes that do not decode become U+FFFD.
func (c *CharacterSet) Decode(b []byte, vr string) string {
	if c == nil {
		c = &CharacterSet{g0: setASCII}
	}
	ascii := true
	for _, x := range b {
		if x >= 0x80 || x == 0x1B && c.ext {
			ascii = false
			break
		}
	}
	if ascii {
		return string(b)
	}
	switch c.whole {
	case wholeUTF8:
		return strings.ToValidUTF8(string(b), "\uFFFD")
	case wholeGB18030:
		return decodeWith(simplifiedchinese.GB18030, b)
	case wholeGBK:
		return decodeWith(simplifiedchinese.GBK, b)
	}
	if !c.ext && c.g1 == setNone {
		// The default repertoire (or an unknown term): UTF-8 when it is, else Latin-1.
		if utf8.Valid(b) {
			return string(b)
		}
		return latin1(b)
	}
	out := make([]byte, 0, len(b)+len(b)/2)
	g0, g1 := c.g0, c.g1
	for i := 0; i < len(b); {
		x := b[i]
		switch {
		case x == 0x1B && c.ext:
			s, n := escapeAt(b[i:])
			if s == setNone {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else if sets[s].g1 {
				g1 = s
			} else {
				g0 = s
			}
			i += n
		case x < 0x20 || x == 0x7F:
			g0, g1 = c.g0, c.g1
			out = append(out, x)
			i++
		case x < 0x80:
			if sets[g0].double && x != ' ' {
				j := i
				for j < len(b) && b[j] > ' ' && b[j] < 0x7F {
					j++
				}
				out = decodeDouble(out, g0, b[i:j])
				i = j
				continue
			}
			if isDelimiter(x, vr) {
				g0, g1 = c.g0, c.g1
			}
			out = append(out, x)
			i++
		default:
			switch s := g1; {
			case s == setNone:
				out = utf8.AppendRune(out, rune(x))
			case sets[s].double:
				j := i
				for j < len(b) && b[j] >= 0xA1 && b[j] < 0xFF {
					j++
				}
				if j == i {
					out = utf8.AppendRune(out, utf8.RuneError)
					j++
				} else {
					out = decodeDouble(out, s, b[i:j])
				}
				i = j
				continue
			case s == setKatakana:
				if x >= 0xA1 && x <= 0xDF {
					out = utf8.AppendRune(out, 0xFF61+rune(x-0xA1))
				} else {
					out = utf8.AppendRune(out, utf8.RuneError)
				}
			case x < 0xA0:
				out = utf8.AppendRune(out, rune(x)) // C1 control
			default:
				out = utf8.AppendRune(out, sets[s].cm.DecodeByte(x))
			}
			i++
		}
	}
	return string(out)
}

// escapeAt reads the escape sequence at the start of b (ESC, intermediate bytes 02/00
// to 02/15, a final byte): the set it designates (setNone when unknown) and its length.
func escapeAt(b []byte) (gset, int) {
	n := 1
	for n < len(b) && b[n] >= 0x20 && b[n] <= 0x2F && n < 4 {
		n++
	}
	if n < len(b) && b[n] >= 0x30 && b[n] <= 0x7E {
		n++
	} else {
		return setNone, n
	}
	return escapes[string(b[:n])], n
}

// decodeDouble decodes a run of two-byte characters of a G0 set (bytes 02/01 to 07/14)
// or a G1 set (10/01 to 15/14) through the EUC form of the set.
func decodeDouble(out []byte, s gset, run []byte) []byte {
	odd := len(run)%2 == 1
	if odd {
		run = run[:len(run)-1]
	}
	euc := make([]byte, 0, len(run)*3/2)
	for i := 0; i+1 < len(run); i += 2 {
		if s == setJIS0212 {
			euc = append(euc, 0x8F)
		}
		euc = append(euc, run[i]|0x80, run[i+1]|0x80)
	}
	var enc encoding.Encoding
	switch s {
	case setJIS0208, setJIS0212:
		enc = japanese.EUCJP
	case setKSX1001:
		enc = korean.EUCKR
	default:
		enc = simplifiedchinese.GBK
	}
	out = append(out, decodeWith(enc, euc)...)
	if odd {
		out = utf8.AppendRune(out, utf8.RuneError)
	}
	return out
}

func decodeWith(enc encoding.Encoding, b []byte) string {
	out, err := enc.NewDecoder().Bytes(b)
	if err != nil {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return string(out)
}

func latin1(b []byte) string {
	out := make([]byte, 0, len(b)*2)
	for _, x := range b {
		out = utf8.AppendRune(out, rune(x))
	}
	return string(out)
}

// encodeIn returns the bytes of r in set s (G1 sets with their high bit), or nil.
func encodeIn(s gset, r rune) []byte {
	switch s {
	case setNone:
		return nil
	case setASCII, setRomaji:
		if r < 0x80 {
			return []byte{byte(r)}
		}
		return nil
	case setKatakana:
		if r >= 0xFF61 && r <= 0xFF9F {
			return []byte{byte(r-0xFF61) + 0xA1}
		}
		return nil
	case setJIS0208, setJIS0212:
		b, err := japanese.EUCJP.NewEncoder().Bytes(utf8.AppendRune(nil, r))
		switch {
		case err != nil:
			return nil
		case s == setJIS0208 && len(b) == 2 && b[0] >= 0xA1:
			return []byte{b[0] & 0x7F, b[1] & 0x7F}
		case s == setJIS0212 && len(b) == 3 && b[0] == 0x8F:
			return []byte{b[1] & 0x7F, b[2] & 0x7F}
		}
		return nil
	case setKSX1001, setGB2312:
		enc := korean.EUCKR
		if s == setGB2312 {
			enc = simplifiedchinese.GBK
		}
		b, err := enc.NewEncoder().Bytes(utf8.AppendRune(nil, r))
		if err != nil || len(b) != 2 || b[0] < 0xA1 || b[1] < 0xA1 || b[0] == 0xFF || b[1] == 0xFF {
			return nil // not in KS X 1001 / GB 2312 proper (UHC and GBK extensions)
		}
		return b
	}
	if r < 0xA0 {
		return nil
	}
	if x, ok := sets[s].cm.EncodeRune(r); ok && x >= 0xA0 {
		return []byte{x}
	}
	return nil
}

// Encode converts UTF-8 text (all the values of an element, with their backslashes)
// to the character set, for an element of vr: with code extensions, escape sequences
// designate the sets the text needs, and the sets of value 1 are designated again
// before each delimiter and control character and at the end of the value. Text the
// character set cannot represent is an error wrapping ErrUnencodable (the message
// names no character: text may be PHI).
func (c *CharacterSet) Encode(s string, vr string) ([]byte, error) {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 || s[i] == 0x1B {
			ascii = false
			break
		}
	}
	if ascii {
		return []byte(s), nil
	}
	fail := fmt.Errorf("%w: Specific Character Set %q", ErrUnencodable, c.String())
	if c.unknown {
		return nil, fail
	}
	switch c.whole {
	case wholeUTF8:
		return []byte(strings.ToValidUTF8(s, "\uFFFD")), nil
	case wholeGB18030, wholeGBK:
		enc := simplifiedchinese.GB18030
		if c.whole == wholeGBK {
			enc = simplifiedchinese.GBK
		}
		b, err := enc.NewEncoder().Bytes([]byte(s))
		if err != nil {
			return nil, fail
		}
		return b, nil
	}
	out := make([]byte, 0, len(s)+16)
	g0, g1 := c.g0, c.g1
	// restore designates the sets of value 1 again (PS3.5 §6.1.2.5.3).
	restore := func() {
		if g0 != c.g0 {
			out = append(out, sets[c.g0].esc...)
		}
		if g1 != c.g1 && c.g1 != setNone {
			out = append(out, sets[c.g1].esc...)
		}
		g0, g1 = c.g0, c.g1
	}
	for _, r := range s {
		if r == 0x1B {
			return nil, fail // an escape in the text would be read as a designation
		}
		if r < 0x80 {
			if r < 0x20 || r == 0x7F || isDelimiter(byte(r), vr) {
				restore()
			} else if sets[g0].double {
				to := c.g0
				if sets[to].double {
					to = setASCII
				}
				out = append(out, sets[to].esc...)
				g0 = to
			}
			out = append(out, byte(r))
			continue
		}
		if !c.ext {
			b := encodeIn(g1, r)
			if b == nil {
				return nil, fail
			}
			out = append(out, b...)
			continue
		}
		if sets[g0].double {
			if b := encodeIn(g0, r); b != nil {
				out = append(out, b...)
				continue
			}
		}
		if b := encodeIn(g1, r); b != nil {
			out = append(out, b...)
			continue
		}
		found := false
		for _, set := range c.allowed {
			b := encodeIn(set, r)
			if b == nil {
				continue
			}
			out = append(out, sets[set].esc...)
			if sets[set].g1 {
				g1 = set
			} else {
				g0 = set
			}
			out = append(out, b...)
			found = true
			break
		}
		if !found {
			return nil, fail
		}
	}
	restore()
	return out, nil
}

// CharacterSet returns the character set of the data set's text: its own Specific
// Character Set, else the one of the data set holding the sequence it is an item of
// (an item inherits it unless it has its own), else the default repertoire. An element present with an empty value is the default
// repertoire.
func (d *Dataset) CharacterSet() *CharacterSet {
	for ; d != nil; d = d.parent {
		if cs, ok := d.ownCharacterSet(); ok {
			return cs
		}
	}
	return &CharacterSet{g0: setASCII}
}

// ownCharacterSet is the character set the data set's own Specific Character Set
// names, if it has one.
func (d *Dataset) ownCharacterSet() (*CharacterSet, bool) {
	if e := d.Get(TagSpecificCharacterSet); e != nil && !e.Bulk {
		return ParseCharacterSet(e.StringValues()), true
	}
	return nil, false
}

// IsTextVR reports whether the Specific Character Set governs the values of vr (SH,
// LO, ST, LT, UC, UT and PN: PS3.5 §6.1.2.3); the other string VRs hold the default
// repertoire only.
func IsTextVR(vr string) bool { return isTextVR(vr) }

// IsASCII reports whether every byte of s is below 0x80.
func IsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// isTextVR reports the VRs whose values the Specific Character Set governs.
func isTextVR(vr string) bool {
	switch vr {
	case "SH", "LO", "ST", "LT", "UC", "UT", "PN":
		return true
	}
	return false
}

// texts decodes the values of a string element with cs (text VRs) and splits and
// trims them as StringValues does. Person names keep their "=" groups; trailing empty
// groups are left out.
func (e *Element) texts(cs *CharacterSet) []string {
	if len(e.Value) == 0 {
		return nil
	}
	if !isTextVR(e.VR) {
		return e.StringValues()
	}
	s := cs.Decode(e.Value, e.VR)
	var parts []string
	if e.VR == "LT" || e.VR == "ST" || e.VR == "UT" {
		parts = []string{strings.TrimRight(s, " \x00")}
	} else {
		parts = strings.Split(s, `\`)
		for i, p := range parts {
			parts[i] = strings.Trim(p, " \x00")
		}
	}
	if e.VR == "PN" {
		for i, p := range parts {
			if allPadding([]byte(p), true) {
				parts[i] = ""
			} else {
				parts[i] = strings.TrimRight(p, "=")
			}
		}
	}
	return parts
}

// Texts returns the values of a string element converted to UTF-8 according to the
// data set's character set (see CharacterSet), padding removed. Values are decoded
// before they are split, so that a backslash byte inside a multi-byte character
// (GB18030, GBK, ISO 2022 IR 87) does not split them. Person names keep their "="
// component groups (trailing empty groups left out); a name of delimiters only is "".
func (d *Dataset) Texts(t Tag) []string { return d.TextsIn(nil, t) }

// TextsIn is Texts with the data set's character set already at hand (cs, from
// CharacterSet; nil: look it up), for callers reading many elements of one data set.
func (d *Dataset) TextsIn(cs *CharacterSet, t Tag) []string {
	e := d.Get(t)
	if e == nil || e.Value == nil {
		return nil
	}
	if cs == nil {
		cs = d.CharacterSet()
	}
	return e.texts(cs)
}
