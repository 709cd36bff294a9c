package hl7

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
	"golang.org/x/text/transform"
)

// charset is how a message's bytes become text: one entry of HL7 Table 0211.
type charset struct {
	name string            // the Table 0211 name; "" for "MSH-18 absent"
	enc  encoding.Encoding // nil: UTF-8 (ASCII is a subset of it)
	// iso2022 marks the Japanese sets (ISO IR14, ISO IR87, ISO IR159): read as
	// ISO 2022 (ISO-2022-JP with JIS X 0212), line by line, \C and \M escapes decoded.
	iso2022 bool
	// refuse, when set, says why the set is in Table 0211 but not read here.
	refuse string
}

// table0211 holds the values of HL7 Table 0211 (Alternate character sets, v2.8), keyed
// by their upper-case names (the table is not case-sensitive), and two aliases that
// senders use for UTF-8 and ASCII.
var table0211 = map[string]*charset{}

var (
	csASCII = &charset{name: "ASCII"}
	csUTF8  = &charset{name: "UNICODE UTF-8"}
	csJIS   = &charset{name: "ISO IR87", enc: japanese.ISO2022JP, iso2022: true}
)

func init() {
	add := func(cs *charset, names ...string) {
		for _, n := range names {
			table0211[strings.ToUpper(n)] = cs
		}
	}
	add(csASCII, "ASCII", "ISO IR6")
	add(csUTF8, "UNICODE UTF-8", "UTF-8")
	for _, e := range []struct {
		name string
		enc  encoding.Encoding
	}{
		{"8859/1", charmap.ISO8859_1}, {"8859/2", charmap.ISO8859_2}, {"8859/3", charmap.ISO8859_3},
		{"8859/4", charmap.ISO8859_4}, {"8859/5", charmap.ISO8859_5}, {"8859/6", charmap.ISO8859_6},
		{"8859/7", charmap.ISO8859_7}, {"8859/8", charmap.ISO8859_8}, {"8859/9", charmap.ISO8859_9},
		{"8859/15", charmap.ISO8859_15},
		{"KS X 1001", korean.EUCKR},
		{"GB 18030-2000", simplifiedchinese.GB18030},
		{"BIG-5", traditionalchinese.Big5},
	} {
		add(&charset{name: e.name, enc: e.enc}, e.name)
	}
	add(csJIS, "ISO IR87")
	add(&charset{name: "ISO IR14", enc: japanese.ISO2022JP, iso2022: true}, "ISO IR14")
	add(&charset{name: "ISO IR159", enc: japanese.ISO2022JP, iso2022: true}, "ISO IR159")
	add(&charset{name: "UNICODE", refuse: "UCS-2 (two bytes a character) cannot be read as ER7, whose delimiters are single bytes"}, "UNICODE")
	add(&charset{name: "UNICODE UTF-16", refuse: "UTF-16 cannot be read as ER7, whose delimiters are single bytes"}, "UNICODE UTF-16")
	add(&charset{name: "UNICODE UTF-32", refuse: "UTF-32 cannot be read as ER7, whose delimiters are single bytes"}, "UNICODE UTF-32")
	add(&charset{name: "CNS 11643-1992", refuse: "no decoder for CNS 11643 is available"}, "CNS 11643-1992")
}

// lookupCharset finds a Table 0211 value.
func lookupCharset(name string) (*charset, bool) {
	cs, ok := table0211[strings.ToUpper(strings.TrimSpace(name))]
	return cs, ok
}

// resolveCharset decides how a message is read from its MSH-18 (raw text, repetitions
// separated by d.Repetition) and the receiver's default for an absent MSH-18:
//
//   - every repetition must be in Table 0211 (else 103 at MSH-18);
//   - the first repetition is the message's character set; one the table lists but
//     this package does not read (UTF-16, UTF-32, UCS-2, CNS 11643) gives 207;
//   - the first repetition empty or absent: def, or ASCII (UTF-8 accepted) when def
//     is nil;
//   - a Japanese set (ISO IR14, ISO IR87, ISO IR159) in any repetition, with an ASCII
//     (or empty) first repetition, makes the message ISO 2022: "~ISO IR87" is how
//     Japanese senders declare JIS X 0208 switched in by escape sequences;
//   - other later repetitions are accepted and not used: text switched into them by
//     escape sequences is not decoded (see Parse).
func resolveCharset(msh18 string, d Delimiters, def *charset) (*charset, *Error) {
	if msh18 == "" {
		if def != nil {
			return def, nil
		}
		return csASCII, nil
	}
	reps := strings.Split(msh18, string(d.Repetition))
	var first *charset
	japaneseAlt := false
	for i, r := range reps {
		if strings.TrimSpace(r) == "" {
			continue
		}
		cs, ok := lookupCharset(r)
		if !ok {
			loc := Location{Segment: "MSH", Seq: 1, Field: 18}
			if len(reps) > 1 {
				loc.Rep = i + 1
			}
			return nil, Errorf(loc, CodeTableValue, "MSH-18 %q is not a character set of HL7 Table 0211", r)
		}
		if i == 0 {
			first = cs
		} else if cs.iso2022 {
			japaneseAlt = true
		}
	}
	switch {
	case first == nil:
		if japaneseAlt {
			return csJIS, nil
		}
		if def != nil {
			return def, nil
		}
		return csASCII, nil
	case first.refuse != "":
		return nil, Errorf(Location{Segment: "MSH", Seq: 1, Field: 18}, CodeInternal, "MSH-18 %q is not supported: %s", first.name, first.refuse)
	case first == csASCII && japaneseAlt:
		return csJIS, nil
	}
	return first, nil
}

// decode turns the message's bytes into UTF-8 text. Line ends (CR, LF) are kept: no
// supported set has them inside a multi-byte character.
func (cs *charset) decode(b []byte, d Delimiters) (string, *Error) {
	if cs.enc == nil {
		if !utf8.Valid(b) {
			off := invalidUTF8(b)
			what := "is not valid UTF-8"
			if cs != csUTF8 {
				what = "is neither ASCII nor UTF-8, and MSH-18 names no other character set"
			}
			return "", Errorf(locateRaw(b, off, d), CodeDataType, "byte 0x%02X %s", b[off], what)
		}
		return string(b), nil
	}
	dec := cs.enc.NewDecoder()
	out := make([]byte, 0, len(b)+len(b)/2)
	if !cs.iso2022 {
		var err error
		if out, _, err = transform.Append(dec, out, b); err != nil {
			return "", Errorf(Location{}, CodeDataType, "the text cannot be decoded as %s", cs.name)
		}
		return string(out), nil
	}
	// ISO 2022: every line starts in ASCII (a sender's forgotten return to ASCII does
	// not swallow the next segment), and \C, \M escapes become the ISO 2022 escape
	// sequences they stand for.
	for len(b) > 0 {
		end := bytes.IndexAny(b, "\r\n")
		if end < 0 {
			end = len(b)
		}
		line := jisEscapes(b[:end], d)
		var err error
		if out, _, err = transform.Append(dec, out, line); err != nil {
			return "", Errorf(Location{}, CodeDataType, "the text cannot be decoded as %s", cs.name)
		}
		for end < len(b) && (b[end] == '\r' || b[end] == '\n') {
			out = append(out, b[end])
			end++
		}
		b = b[end:]
	}
	return string(out), nil
}

// decodeBytes decodes the bytes of a \X..\ escape in the message's character set.
func (cs *charset) decodeBytes(b []byte) string {
	if cs == nil || cs.enc == nil {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	s, _, err := transform.Bytes(cs.enc.NewDecoder(), b)
	if err != nil {
		return "\uFFFD"
	}
	return string(s)
}

// encode turns text into the message's bytes. A character the set cannot represent
// becomes '?'.
func (cs *charset) encode(text []byte) []byte {
	if cs == nil || cs.enc == nil {
		return text
	}
	if out, _, err := transform.Bytes(cs.enc.NewEncoder(), text); err == nil {
		return out
	}
	// Some character is not in the set: replace each such one, then encode again.
	var clean []byte
	for i := 0; i < len(text); {
		r, n := utf8.DecodeRune(text[i:])
		if r < utf8.RuneSelf {
			clean = append(clean, text[i])
		} else if _, _, err := transform.Bytes(cs.enc.NewEncoder(), text[i:i+n]); err != nil {
			clean = append(clean, '?')
		} else {
			clean = append(clean, text[i:i+n]...)
		}
		i += n
	}
	out, _, err := transform.Bytes(cs.enc.NewEncoder(), clean)
	if err != nil {
		return clean
	}
	return out
}

// invalidUTF8 returns the offset of the first byte of b that is not valid UTF-8.
func invalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// The ISO 2022 designations \C and \M may name: those of ISO-2022-JP (RFC 2237) that
// golang.org/x/text decodes.
var jisDesignations = map[string]bool{
	"(B": true, "(J": true, "(I": true, // ASCII, JIS X 0201 Roman, JIS X 0201 Katakana
	"$@": true, "$B": true, "$(D": true, // JIS X 0208-1978, JIS X 0208-1983, JIS X 0212
}

// ISO 2022 states of a Japanese line, for jisEscapes.
const (
	jisASCII    = iota // ASCII or JIS X 0201 Roman: delimiters are delimiters
	jisKatakana        // JIS X 0201 Katakana: one byte a character
	jisDouble          // JIS X 0208 or JIS X 0212: two bytes a character
)

// jisEscapes rewrites the \Cxxyy\ and \Mxxyy[zz]\ escapes of one line of an ISO 2022
// message (HL7 v2.7 §2.7.2: character set switching) into the escape sequences ESC xx
// yy [zz] they stand for, when they designate an ISO-2022-JP set (\C a single-byte set,
// \M a multi-byte one). It follows the line's ISO 2022 state. In ASCII, an escape
// character starts an escape sequence. In a set entered by a raw ESC sequence, bytes
// are text until the next ESC: the escape character is also a byte of many kanji (本
// is 0x4B 0x5C). In a set entered by a \C or \M escape, the sender switches back the
// same way: a complete \C or \M escape at the start of a character is read as one.
// Other escapes are left as they are.
func jisEscapes(line []byte, d Delimiters) []byte {
	if bytes.IndexByte(line, d.Escape) < 0 {
		return line
	}
	var out []byte // nil until something changes
	keep := func(b []byte) {
		if out != nil {
			out = append(out, b...)
		}
	}
	state := jisASCII
	viaEscape := false // the current non-ASCII state was entered by \C or \M
	for i := 0; i < len(line); {
		c := line[i]
		if c == 0x1b {
			n := min(1+escLen(line[i+1:]), len(line)-i)
			state = jisState(line[i+1:], state)
			viaEscape = false
			keep(line[i : i+n])
			i += n
			continue
		}
		if c != d.Escape || (state != jisASCII && !viaEscape) {
			n := 1
			if state == jisDouble {
				n = min(2, len(line)-i)
			}
			keep(line[i : i+n])
			i += n
			continue
		}
		j := i + 1
		for j < len(line) && line[j] != d.Escape && line[j] != 0x1b && (state != jisASCII || !d.isDelimiter(line[j])) && (state == jisASCII || j-i <= 8) {
			j++
		}
		var esc []byte
		ok := j < len(line) && line[j] == d.Escape
		if ok {
			esc, ok = designation(line[i+1 : j])
		}
		switch {
		case ok:
			if out == nil {
				out = append(make([]byte, 0, len(line)+4), line[:i]...)
			}
			out = append(out, 0x1b)
			out = append(out, esc...)
			state = jisState(esc, state)
			viaEscape = state != jisASCII
			i = j + 1
		case state != jisASCII:
			n := 1
			if state == jisDouble {
				n = min(2, len(line)-i)
			}
			keep(line[i : i+n])
			i += n
		case j < len(line) && line[j] == d.Escape:
			keep(line[i : j+1])
			i = j + 1
		default:
			keep(line[i:j])
			i = j
		}
	}
	if out == nil {
		return line
	}
	return out
}

// escLen returns the length of the ISO-2022-JP escape sequence whose bytes (after ESC)
// start seq, or 0 when it is none of them.
func escLen(seq []byte) int {
	if bytes.HasPrefix(seq, []byte("$(D")) {
		return 3
	}
	if len(seq) >= 2 && jisDesignations[string(seq[:2])] {
		return 2
	}
	return 0
}

// jisState returns the ISO 2022 state after the escape sequence whose bytes (after
// ESC) start seq.
func jisState(seq []byte, was int) int {
	switch {
	case bytes.HasPrefix(seq, []byte("(B")), bytes.HasPrefix(seq, []byte("(J")):
		return jisASCII
	case bytes.HasPrefix(seq, []byte("(I")):
		return jisKatakana
	case bytes.HasPrefix(seq, []byte("$@")), bytes.HasPrefix(seq, []byte("$B")), bytes.HasPrefix(seq, []byte("$(D")):
		return jisDouble
	}
	return was
}

// designation reads the content of a \C or \M escape ("C2842", "M2442", "M242844") and
// returns the escape sequence bytes (after ESC) it designates, if it is one of
// jisDesignations, a single-byte set for \C and a multi-byte one for \M.
func designation(seq []byte) ([]byte, bool) {
	if len(seq) < 5 || (seq[0] != 'C' && seq[0] != 'M') {
		return nil, false
	}
	hex := seq[1:]
	if seq[0] == 'C' && len(hex) != 4 || seq[0] == 'M' && len(hex) != 4 && len(hex) != 6 {
		return nil, false
	}
	out, ok := decodeHex(hex)
	if !ok || !jisDesignations[string(out)] || (seq[0] == 'C') != (out[0] == '(') {
		return nil, false
	}
	return out, true
}

// decodeHex reads an even number of hexadecimal digits.
func decodeHex(h []byte) ([]byte, bool) {
	if len(h) == 0 || len(h)%2 != 0 {
		return nil, false
	}
	out := make([]byte, len(h)/2)
	for i := range out {
		hi, ok1 := unhex(h[2*i])
		lo, ok2 := unhex(h[2*i+1])
		if !ok1 || !ok2 {
			return nil, false
		}
		out[i] = hi<<4 | lo
	}
	return out, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
