package hl7

import (
	"bytes"
	"strconv"
	"strings"
	"time"
)

// Acknowledgment codes of HL7 Table 0008 for original-mode acknowledgments.
const (
	AA = "AA" // application accept: the message was processed
	AE = "AE" // application error: the message was not processed because of its content
	AR = "AR" // application reject: the message was refused (type, event, version, processing id, or a fault of the receiver)
)

// Ack returns the original-mode acknowledgment of in (HL7 v2.x chapter 2, the
// acknowledgment rules and the ACK message): an MSH, an MSA and ERR segments for errs.
//
// MSH: in's delimiters and character set (MSH-18 copied); sending and receiving
// application and facility swapped from in; MSH-7 now; MSH-9 ACK^<in's event>^ACK
// (ACK^<event> for v2.3 and earlier, which have no message structure); MSH-10
// controlID; MSH-11 and MSH-12 copied from in ("P" and "2.5" when in has none). MSA-1
// is code (AA, AE, AR), MSA-2 in's MSH-10.
//
// ERR, by in's version: from v2.5, one ERR per error with ERR-2 its location
// (segment^sequence^field^repetition^component^subcomponent), ERR-3 its code
// (code^description^HL70357), ERR-4 severity E and ERR-8 (user message) its text.
// Before v2.5, one ERR whose ERR-1 repeats segment^sequence^field^code&description&HL70357
// for each error, and MSA-3 (text message) holds the first error's text.
//
// in may be nil (nothing readable): the ACK then has the default delimiters, no
// addresses, version 2.5 and processing id P. AckBytes reads what it can of a message
// that did not parse.
func Ack(in *Message, code string, errs []*Error, controlID string, now time.Time) *Message {
	d, cs := DefaultDelimiters, csASCII
	if in != nil {
		d, cs = in.delims, in.cs
	}
	a := newMessage(d, cs)
	raw := func(path string) string {
		if in == nil {
			return ""
		}
		return in.Get(path).Raw()
	}
	valued := func(path string) bool {
		if in == nil {
			return false
		}
		v := in.Get(path)
		return !v.Empty() && !v.Null()
	}
	// A value copied from in may hold a lone LF, which is text in a CR-separated
	// message but would end a segment of the ACK for some readers: it becomes a space.
	lineEnds := strings.NewReplacer("\r", " ", "\n", " ")
	setRaw := func(path, v string) {
		if v != "" {
			_ = a.SetRaw(path, lineEnds.Replace(v))
		}
	}
	setRaw("MSH-3", raw("MSH-5"))
	setRaw("MSH-4", raw("MSH-6"))
	setRaw("MSH-5", raw("MSH-3"))
	setRaw("MSH-6", raw("MSH-4"))
	_ = a.Set("MSH-7", FormatTime(now))
	version := "2.5"
	if valued("MSH-12.1") {
		version = in.Version()
	}
	msh9 := "ACK" + string(d.Component) + raw("MSH-9.2")
	if !before(version, "2.3.1") {
		msh9 += string(d.Component) + "ACK"
	}
	setRaw("MSH-9", strings.TrimRight(msh9, string(d.Component)))
	_ = a.Set("MSH-10", controlID)
	if valued("MSH-11.1") {
		setRaw("MSH-11", raw("MSH-11"))
	} else {
		_ = a.Set("MSH-11", "P")
	}
	if valued("MSH-12.1") {
		setRaw("MSH-12", raw("MSH-12"))
	} else {
		_ = a.Set("MSH-12", version)
	}
	if in != nil && in.Get("MSH-18").Present() {
		setRaw("MSH-18", raw("MSH-18"))
	}
	_ = a.Set("MSA-1", code)
	setRaw("MSA-2", raw("MSH-10"))

	var list []*Error
	for _, e := range errs {
		if e != nil {
			list = append(list, e)
		}
	}
	if len(list) == 0 {
		return a
	}
	comp, sub := string(d.Component), string(d.Subcomponent)
	if before(version, "2.5") {
		reps := make([]string, len(list))
		for i, e := range list {
			l := e.Location
			cwe := strings.Join([]string{strconv.Itoa(int(e.Code)), d.EscapeValue(e.Code.String()), "HL70357"}, sub)
			reps[i] = strings.Join([]string{l.Segment, num(seq(l)), num(l.Field), cwe}, comp)
		}
		_ = a.SetRaw("ERR-1", strings.Join(reps, string(d.Repetition)))
		_ = a.Set("MSA-3", list[0].Text)
		return a
	}
	for i, e := range list {
		n := strconv.Itoa(i + 1)
		setRaw("ERR["+n+"]-2", erl(e.Location, d))
		_ = a.SetRaw("ERR["+n+"]-3", strings.Join([]string{strconv.Itoa(int(e.Code)), d.EscapeValue(e.Code.String()), "HL70357"}, comp))
		_ = a.Set("ERR["+n+"]-4", "E")
		if e.Text != "" {
			_ = a.Set("ERR["+n+"]-8", e.Text)
		}
	}
	return a
}

// erl writes a location as the ERL data type: segment^sequence^field^repetition^
// component^subcomponent, trailing empty components left out.
func erl(l Location, d Delimiters) string {
	rep := l.Rep
	if l.Component > 0 && rep == 0 {
		rep = 1
	}
	parts := []string{l.Segment, num(seq(l)), num(l.Field), num(rep), num(l.Component), num(l.Sub)}
	if l.Field == 0 {
		parts = parts[:2]
	}
	return strings.TrimRight(strings.Join(parts, string(d.Component)), string(d.Component))
}

// seq is the segment sequence of l: 1 when a segment is named without one.
func seq(l Location) int {
	if l.Segment != "" && l.Seq == 0 {
		return 1
	}
	return l.Seq
}

func num(n int) string {
	if n <= 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// before reports whether version v is older than w ("2.4" before "2.5"; "2.3" before
// "2.3.1"). A version that is not numbers and dots is taken as recent.
func before(v, w string) bool {
	a, b := strings.Split(v, "."), strings.Split(w, ".")
	for i := 0; i < max(len(a), len(b)); i++ {
		x, y := 0, 0
		if i < len(a) {
			n, err := strconv.Atoi(a[i])
			if err != nil {
				return false
			}
			x = n
		}
		if i < len(b) {
			y, _ = strconv.Atoi(b[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// AckBytes returns the acknowledgment of a message given as bytes: Ack of the parsed
// message, or, when b does not parse, of what its MSH can give (read as far as it
// goes: delimiters if valid, then sending and receiving application and facility,
// event, control ID, processing ID, version and character set, each when it can be
// read). With no readable MSH, the ACK is Ack(nil, ...).
func AckBytes(b []byte, code string, errs []*Error, controlID string, now time.Time) *Message {
	if m, err := Parse(b); err == nil {
		return Ack(m, code, errs, controlID, now)
	}
	return Ack(salvage(b), code, errs, controlID, now)
}

// salvage builds a header-only message from the first line of b, when it is an MSH
// with a usable field separator.
func salvage(b []byte) *Message {
	b = bytes.TrimLeft(b, "\r\n")
	if !bytes.HasPrefix(b, []byte("MSH")) || len(b) < 4 || !delimiterByte(b[3]) {
		return nil
	}
	line := b
	if i := bytes.IndexAny(b, "\r\n"); i >= 0 {
		line = b[:i]
	}
	fs := line[3]
	elems := bytes.Split(line, []byte{fs})
	d, derr := parseDelimiters(fs, string(elems[1]))
	if derr != nil {
		d = DefaultDelimiters
	}
	cs := csASCII
	if len(elems) > 17 && derr == nil {
		if c, err := resolveCharset(string(elems[17]), d, nil); err == nil {
			cs = c
		}
	}
	text, err := cs.decode(line, d)
	if err != nil {
		cs = csASCII
		text = strings.ToValidUTF8(string(line), "\uFFFD")
	}
	fields := strings.Split(text, string(fs))
	if len(fields) != len(elems) { // a character of the set held a delimiter byte
		cs = csASCII
		fields = strings.Split(strings.ToValidUTF8(string(line), "\uFFFD"), string(fs))
	}
	m := newMessage(d, cs)
	for _, n := range []int{3, 4, 5, 6, 9, 10, 11, 12, 18} {
		if n-1 >= len(fields) || fields[n-1] == "" || (n == 18 && cs == csASCII) {
			continue
		}
		v := fields[n-1]
		if derr == nil && !hasCharsetEscape(v, d) {
			_ = m.SetRaw("MSH-"+strconv.Itoa(n), v)
		} else if n != 9 {
			_ = m.Set("MSH-"+strconv.Itoa(n), v)
		}
	}
	return m
}

// hasCharsetEscape reports whether raw holds a \C or \M escape, which Parse refuses
// outside Japanese messages: salvage copies such a field escaped.
func hasCharsetEscape(raw string, d Delimiters) bool {
	parts := strings.Split(raw, string(d.Escape))
	for i := 1; i < len(parts)-1; i++ {
		if charsetEscape(parts[i]) {
			return true
		}
	}
	return false
}
