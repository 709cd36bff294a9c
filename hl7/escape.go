package hl7

import (
	"strconv"
	"strings"
)

// Delimiters are a message's field separator (MSH-1) and encoding characters (MSH-2).
type Delimiters struct {
	Field        byte // MSH-1, usually '|'
	Component    byte // usually '^'
	Repetition   byte // usually '~'
	Escape       byte // usually '\'
	Subcomponent byte // usually '&'
	Truncation   byte // v2.7 and later, usually '#'; 0 when MSH-2 has four characters
}

// DefaultDelimiters are the delimiters HL7 recommends: |^~\&, without truncation.
var DefaultDelimiters = Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '\\', Subcomponent: '&'}

// EncodingCharacters returns MSH-2: component, repetition, escape and subcomponent
// characters, and the truncation character when there is one ("^~\&", "^~\&#").
func (d Delimiters) EncodingCharacters() string {
	b := []byte{d.Component, d.Repetition, d.Escape, d.Subcomponent}
	if d.Truncation != 0 {
		b = append(b, d.Truncation)
	}
	return string(b)
}

// isDelimiter reports whether c separates fields, repetitions, components or
// subcomponents.
func (d Delimiters) isDelimiter(c byte) bool {
	return c == d.Field || c == d.Component || c == d.Repetition || c == d.Subcomponent
}

// parseDelimiters validates MSH-1 and MSH-2 (HL7 v2.x chapter 2, §2.5.4 and MSH-2):
// four or five encoding characters (the fifth, truncation, from v2.7), all distinct,
// none of them alphanumeric, a space or a control character.
func parseDelimiters(fs byte, enc string) (Delimiters, *Error) {
	if !delimiterByte(fs) {
		return Delimiters{}, Errorf(Location{Segment: "MSH", Seq: 1, Field: 1}, CodeDataType,
			"the field separator (MSH-1) is 0x%02X: it must be a printable ASCII character that is not a letter, a digit or a space", fs)
	}
	loc := Location{Segment: "MSH", Seq: 1, Field: 2}
	if len(enc) != 4 && len(enc) != 5 {
		return Delimiters{}, Errorf(loc, CodeDataType, "MSH-2 %q has %d encoding characters: it must have 4 (^~\\&) or 5 (^~\\&#)", enc, len(enc))
	}
	for i := 0; i < len(enc); i++ {
		c := enc[i]
		if !delimiterByte(c) {
			return Delimiters{}, Errorf(loc, CodeDataType, "MSH-2 %q: encoding character %d is 0x%02X, not a printable ASCII character other than a letter, a digit or a space", enc, i+1, c)
		}
		if c == fs {
			return Delimiters{}, Errorf(loc, CodeDataType, "MSH-2 %q: encoding character %d is the field separator", enc, i+1)
		}
		if strings.IndexByte(enc[:i], c) >= 0 {
			return Delimiters{}, Errorf(loc, CodeDataType, "MSH-2 %q repeats %q: the encoding characters must differ", enc, c)
		}
	}
	d := Delimiters{Field: fs, Component: enc[0], Repetition: enc[1], Escape: enc[2], Subcomponent: enc[3]}
	if len(enc) == 5 {
		d.Truncation = enc[4]
	}
	return d, nil
}

func delimiterByte(c byte) bool {
	return c > ' ' && c < 0x7f && !(c >= '0' && c <= '9') && !(c >= 'A' && c <= 'Z') && !(c >= 'a' && c <= 'z')
}

// EscapeValue returns s as a value of a message with these delimiters (HL7 v2.7 §2.7.4):
// every delimiter, the escape character and the truncation character are escaped
// (\F\ \S\ \R\ \T\ \E\ \P\), and CR and LF, which would end the segment, are
// written as hexadecimal data (\X0D\, \X0A\).
func (d Delimiters) EscapeValue(s string) string {
	i := 0
	for i < len(s) && !d.special(s[i]) {
		i++
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	e := d.Escape
	for ; i < len(s); i++ {
		c := s[i]
		var code string
		switch {
		case c == d.Field:
			code = "F"
		case c == d.Component:
			code = "S"
		case c == d.Repetition:
			code = "R"
		case c == d.Subcomponent:
			code = "T"
		case c == d.Escape:
			code = "E"
		case d.Truncation != 0 && c == d.Truncation:
			code = "P"
		case c == '\r':
			code = "X0D"
		case c == '\n':
			code = "X0A"
		default:
			b.WriteByte(c)
			continue
		}
		b.WriteByte(e)
		b.WriteString(code)
		b.WriteByte(e)
	}
	return b.String()
}

func (d Delimiters) special(c byte) bool {
	return c == d.Field || c == d.Component || c == d.Repetition || c == d.Subcomponent ||
		c == d.Escape || (d.Truncation != 0 && c == d.Truncation) || c == '\r' || c == '\n'
}

// maxRepeat bounds the count of a formatting command (\.sp n\, \.sk n\), so that a
// few bytes cannot become a huge value.
const maxRepeat = 10

// unescape decodes the escape sequences of one leaf value (HL7 v2.7 §2.7: no
// delimiter inside it): \F\ \S\ \T\ \R\ \E\ and \P\ become the characters they stand
// for; \Xhh..\ becomes its bytes read in the message's character set; \H\ and \N\
// (highlighting) are dropped; of the formatted text commands, \.br\, \.sp\ and
// \.ce\ become line breaks (\.sp n\: n of them, at most 10), \.sk n\ n spaces, and
// \.fi\ \.nf\ \.in\ \.ti\ are dropped. Any other sequence (\Zxxx\, a \P\ without a
// truncation character, an unterminated escape) is left as it is. \C and \M never
// reach here (see Parse).
func unescape(d Delimiters, cs *charset, s string) string {
	e := d.Escape
	i := strings.IndexByte(s, e)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i >= 0 {
		b.WriteString(s[:i])
		j := strings.IndexByte(s[i+1:], e)
		if j < 0 {
			b.WriteString(s[i:])
			return b.String()
		}
		seq := s[i+1 : i+1+j]
		rest := s[i+2+j:]
		if !writeEscape(&b, d, cs, seq) {
			b.WriteString(s[i : i+2+j])
		}
		s = rest
		i = strings.IndexByte(s, e)
	}
	b.WriteString(s)
	return b.String()
}

// writeEscape writes what the escape sequence seq stands for; false when it is not one
// this package decodes.
func writeEscape(b *strings.Builder, d Delimiters, cs *charset, seq string) bool {
	switch seq {
	case "F":
		b.WriteByte(d.Field)
	case "S":
		b.WriteByte(d.Component)
	case "T":
		b.WriteByte(d.Subcomponent)
	case "R":
		b.WriteByte(d.Repetition)
	case "E":
		b.WriteByte(d.Escape)
	case "P":
		if d.Truncation == 0 {
			return false
		}
		b.WriteByte(d.Truncation)
	case "H", "N":
	case ".br", ".ce":
		b.WriteByte('\n')
	case ".fi", ".nf":
	default:
		switch {
		case len(seq) > 1 && seq[0] == 'X':
			raw, ok := decodeHex([]byte(seq[1:]))
			if !ok {
				return false
			}
			b.WriteString(cs.decodeBytes(raw))
		case strings.HasPrefix(seq, ".sp"):
			n, ok := count(seq[3:])
			if !ok {
				return false
			}
			b.WriteString(strings.Repeat("\n", n))
		case strings.HasPrefix(seq, ".sk"):
			n, ok := count(seq[3:])
			if !ok {
				return false
			}
			b.WriteString(strings.Repeat(" ", n))
		case strings.HasPrefix(seq, ".in"), strings.HasPrefix(seq, ".ti"):
			if _, ok := signedCount(seq[3:]); !ok {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// count reads the optional count of a formatting command: absent is 1, capped at
// maxRepeat.
func count(s string) (int, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 1, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, false
	}
	return min(n, maxRepeat), true
}

// signedCount reads the signed count of \.in\ and \.ti\.
func signedCount(s string) (int, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, true
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}
