package hl7

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Message is one HL7 v2 message: its delimiters, its character set and its segments,
// MSH first. Values are kept as the message wrote them (escaped), decoded to UTF-8;
// reading a value unescapes it (Value.String), writing one escapes it (Set).
//
// A Message is not safe for concurrent use when one goroutine writes.
type Message struct {
	delims Delimiters
	cs     *charset
	segs   []*Segment
}

// Segment is one segment of a message. Its fields are numbered from 1; for MSH, as the
// standard numbers them (MSH-1 is the field separator).
type Segment struct {
	m    *Message
	text string  // the segment, escaped, without its terminator
	ends []int32 // ends[i]: offset in text where element i ends; element 0 is the ID
}

// Options bound what Parse accepts.
type Options struct {
	// MaxSegments is the largest number of segments (default 1,000).
	MaxSegments int
	// MaxFields is the largest number of fields in one segment (default 500).
	MaxFields int
	// DefaultCharset is the HL7 Table 0211 character set of messages whose MSH-18 is
	// absent or empty (default: ASCII, UTF-8 accepted; see Parse).
	DefaultCharset string
}

// Default bounds: an ADT message has a few dozen segments, PID has 39 fields.
const (
	DefaultMaxSegments = 1000
	DefaultMaxFields   = 500
	// maxMessage bounds a message: offsets inside segments are 32-bit.
	maxMessage = 1 << 30
)

// Parse reads one ER7-encoded message with the default Options.
func Parse(b []byte) (*Message, error) {
	return Options{}.Parse(b)
}

// Parse reads one ER7-encoded message (HL7 v2.x chapter 2, "message construction
// rules"). b is not kept.
//
// Segments end at CR (the standard); a CR LF pair ends one segment, and a message
// with no CR at all has its segments end at LF. Blank lines are skipped. The first
// segment must be MSH; its fourth byte is the field separator and MSH-2 the encoding
// characters, validated (4 or 5 characters, distinct, not alphanumeric). MSH-9.1,
// MSH-10, MSH-11.1 and MSH-12.1 must be valued (101 otherwise). A second MSH, a batch
// (FHS, BHS) and a segment whose ID is not three upper-case letters or digits are
// refused (100).
//
// The text is decoded to UTF-8 from the character set MSH-18 names. Its first
// repetition is the message's set; a Japanese set (ISO IR87, ISO IR159, ISO IR14) in a
// later repetition, with the first ASCII or empty ("~ISO IR87"), makes the message
// ISO 2022; other later repetitions are checked against Table 0211 and not used: text
// switched into them is not decoded. With MSH-18 absent the message is read as ASCII, and
// bytes that are valid UTF-8 are accepted as UTF-8, as many senders write it without
// saying so; any other byte is an error (102) naming where it is, unless
// o.DefaultCharset names the set to assume. In a Japanese ISO 2022 message (ISO IR87,
// ISO IR159, ISO IR14), \Cxxyy\ and \Mxxyyzz\ escapes that designate one of its sets
// are decoded; in any other message, or designating any other set, they are refused
// (102): this package does not switch character sets inside a value otherwise.
//
// Every error is an *Error. Memory is bounded by a few times len(b): the decoded text,
// four bytes a field and a few dozen bytes a segment, with at most o.MaxSegments
// segments of o.MaxFields fields.
func (o Options) Parse(b []byte) (*Message, error) {
	if o.MaxSegments <= 0 {
		o.MaxSegments = DefaultMaxSegments
	}
	if o.MaxFields <= 0 {
		o.MaxFields = DefaultMaxFields
	}
	var def *charset
	if o.DefaultCharset != "" {
		cs, ok := lookupCharset(o.DefaultCharset)
		if !ok || cs.refuse != "" {
			return nil, Errorf(Location{}, CodeInternal, "the receiver's default character set %q is not one this package reads", o.DefaultCharset)
		}
		def = cs
	}
	if len(b) > maxMessage {
		return nil, Errorf(Location{Segment: "MSH", Seq: 1}, CodeInternal, "the message has %d bytes: more than this receiver reads (%d)", len(b), maxMessage)
	}
	b = bytes.TrimLeft(b, "\r\n")
	d, msh18, err := readHeader(b)
	if err != nil {
		return nil, err
	}
	cs, err := resolveCharset(msh18, d, def)
	if err != nil {
		return nil, err
	}
	text, err := cs.decode(b, d)
	if err != nil {
		return nil, err
	}
	m := &Message{delims: d, cs: cs}
	if err := m.split(text, o); err != nil {
		return nil, err
	}
	msh := m.segs[0]
	enc, _ := msh.elem(1)
	if got, _ := msh.elem(17); got != msh18 || len(msh.text) < 4 || msh.text[3] != d.Field || enc != d.EncodingCharacters() {
		return nil, Errorf(Location{Segment: "MSH", Seq: 1}, CodeDataType, "the MSH segment reads differently once decoded as %s: a character of that set holds a delimiter byte", cs.name)
	}
	for _, f := range []struct {
		n    int
		what string
	}{{9, "the message type (MSH-9.1)"}, {10, "the message control ID (MSH-10)"}, {11, "the processing ID (MSH-11.1)"}, {12, "the version ID (MSH-12.1)"}} {
		v := msh.Field(f.n)
		if f.n != 10 {
			v = v.Component(1)
		}
		if v.Empty() || v.Null() {
			return nil, Errorf(Location{Segment: "MSH", Seq: 1, Field: f.n}, CodeRequiredFieldMissing, "%s is missing", f.what)
		}
	}
	return m, nil
}

// readHeader reads the delimiters and the raw MSH-18 from the first line of b.
func readHeader(b []byte) (Delimiters, string, *Error) {
	first := Location{Segment: "MSH", Seq: 1}
	if !bytes.HasPrefix(b, []byte("MSH")) {
		if bytes.HasPrefix(b, []byte("FHS")) || bytes.HasPrefix(b, []byte("BHS")) {
			return Delimiters{}, "", Errorf(first, CodeSegmentSequence, "batches (FHS, BHS) are not read: send one message at a time")
		}
		if len(b) == 0 {
			return Delimiters{}, "", Errorf(first, CodeSegmentSequence, "the message is empty")
		}
		return Delimiters{}, "", Errorf(first, CodeSegmentSequence, "the message does not start with an MSH segment")
	}
	line := b
	if i := bytes.IndexAny(b, "\r\n"); i >= 0 {
		line = b[:i]
	}
	if len(line) < 4 {
		return Delimiters{}, "", Errorf(Location{Segment: "MSH", Seq: 1, Field: 1}, CodeRequiredFieldMissing, "the MSH segment ends before its field separator")
	}
	fs := line[3]
	enc := line[4:]
	if i := bytes.IndexByte(enc, fs); i >= 0 {
		enc = enc[:i]
	}
	d, err := parseDelimiters(fs, string(enc))
	if err != nil {
		return Delimiters{}, "", err
	}
	elems := bytes.Split(line, []byte{fs})
	msh18 := ""
	if len(elems) > 17 {
		msh18 = string(elems[17])
	}
	return d, msh18, nil
}

// split cuts the decoded text into segments and fields, and checks segment IDs, bounds
// and escapes.
func (m *Message) split(text string, o Options) *Error {
	d := m.delims
	term := byte('\n')
	if strings.IndexByte(text, '\r') >= 0 {
		term = '\r'
	}
	nseg := min(strings.Count(text, string(term))+1, o.MaxSegments+1)
	nfs := min(strings.Count(text, string(d.Field)), o.MaxSegments*(o.MaxFields+1))
	backing := make([]Segment, 0, nseg)
	m.segs = make([]*Segment, 0, nseg)
	ends := make([]int32, 0, nfs+nseg)
	for pos := 0; pos < len(text); {
		end := strings.IndexByte(text[pos:], term)
		if end < 0 {
			end = len(text)
		} else {
			end += pos
		}
		line := text[pos:end]
		pos = end + 1
		if term == '\r' && pos < len(text) && text[pos] == '\n' {
			pos++
		}
		if blank(line) {
			continue
		}
		n := len(m.segs) + 1
		if n > o.MaxSegments {
			return Errorf(Location{Segment: segID(line), Seq: m.occurrences(segID(line)) + 1}, CodeInternal, "the message has more than %d segments: more than this receiver reads", o.MaxSegments)
		}
		if len(line) < 3 || !validSegmentID(line[:3]) || (len(line) > 3 && line[3] != d.Field) {
			return Errorf(Location{Seq: n}, CodeSegmentSequence, "segment %d has no valid segment ID (three upper-case letters or digits, the first a letter, then the field separator)", n)
		}
		id := line[:3]
		switch {
		case n == 1 && id != "MSH":
			return Errorf(Location{Segment: "MSH", Seq: 1}, CodeSegmentSequence, "the message does not start with an MSH segment")
		case n > 1 && id == "MSH":
			return Errorf(Location{Segment: "MSH", Seq: 2}, CodeSegmentSequence, "a second MSH segment: one message at a time")
		}
		if len(line) > maxMessage/2 {
			return Errorf(Location{Segment: id, Seq: m.occurrences(id) + 1}, CodeInternal, "segment too long")
		}
		start := len(ends)
		for i := 0; ; {
			j := strings.IndexByte(line[i:], d.Field)
			if j < 0 {
				break
			}
			ends = append(ends, int32(i+j))
			i += j + 1
			if len(ends)-start > o.MaxFields {
				return Errorf(Location{Segment: id, Seq: m.occurrences(id) + 1}, CodeInternal, "the segment has more than %d fields: more than this receiver reads", o.MaxFields)
			}
		}
		ends = append(ends, int32(len(line)))
		backing = append(backing, Segment{m: m, text: line, ends: ends[start:len(ends):len(ends)]})
		s := &backing[len(backing)-1]
		if err := m.checkEscapes(s); err != nil {
			return err
		}
		m.segs = append(m.segs, s)
	}
	if len(m.segs) == 0 {
		return Errorf(Location{Segment: "MSH", Seq: 1}, CodeSegmentSequence, "the message is empty")
	}
	return nil
}

func blank(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != ' ' && c != '\t' && c != '\n' {
			return false
		}
	}
	return true
}

func segID(line string) string {
	if len(line) >= 3 && validSegmentID(line[:3]) {
		return line[:3]
	}
	return ""
}

// occurrences counts the segments with this ID already in m.
func (m *Message) occurrences(id string) int {
	n := 0
	for _, s := range m.segs {
		if s.ID() == id {
			n++
		}
	}
	return n
}

// checkEscapes refuses the \C and \M escapes left in a segment (see Parse).
func (m *Message) checkEscapes(s *Segment) *Error {
	d := m.delims
	t := s.text
	from := 0
	if s.ID() == "MSH" {
		from = int(s.ends[min(1, len(s.ends)-1)]) // MSH-2 holds the escape character itself
	}
	for i := from; i < len(t); {
		k := strings.IndexByte(t[i:], d.Escape)
		if k < 0 {
			return nil
		}
		i += k
		j := i + 1
		for j < len(t) && t[j] != d.Escape && !d.isDelimiter(t[j]) {
			j++
		}
		if j == len(t) || t[j] != d.Escape {
			i = j
			continue
		}
		if charsetEscape(t[i+1 : j]) {
			loc := m.locate(s, i)
			return Errorf(loc, CodeDataType, "the character set escape %s is not supported: only those designating the Japanese sets of an ISO 2022 message (MSH-18 ISO IR87, ISO IR159, ISO IR14) are decoded", t[i:j+1])
		}
		i = j + 1
	}
	return nil
}

// charsetEscape reports whether an escape sequence's content is character set
// switching: C and four hexadecimal digits, or M and four or six.
func charsetEscape(seq string) bool {
	if len(seq) < 5 || (seq[0] != 'C' && seq[0] != 'M') {
		return false
	}
	n := len(seq) - 1
	if n != 4 && (seq[0] != 'M' || n != 6) {
		return false
	}
	_, ok := decodeHex([]byte(seq[1:]))
	return ok
}

// locate returns the location of byte i of segment s. Levels the field does not use
// (no repetitions, no components, no subcomponents) are left 0.
func (m *Message) locate(s *Segment, i int) Location {
	d := m.delims
	id := s.ID()
	// The occurrence of s; a segment being parsed is not in m.segs yet: the next one.
	loc := Location{Segment: id}
	for _, o := range m.segs {
		if o.ID() == id {
			loc.Seq++
		}
		if o == s {
			break
		}
	}
	if !slices.Contains(m.segs, s) {
		loc.Seq++
	}
	elem := 0
	for elem < len(s.ends) && int(s.ends[elem]) < i {
		elem++
	}
	if elem == 0 {
		return loc
	}
	loc.Field = elem
	if id == "MSH" {
		loc.Field++
	}
	field, _ := s.elem(elem)
	start := int(s.ends[elem-1]) + 1
	pos := max(0, i-start)
	loc.Rep, loc.Component, loc.Sub = 1, 1, 1
	for _, c := range []byte(field[:min(pos, len(field))]) {
		switch c {
		case d.Repetition:
			loc.Rep++
			loc.Component, loc.Sub = 1, 1
		case d.Component:
			loc.Component++
			loc.Sub = 1
		case d.Subcomponent:
			loc.Sub++
		}
	}
	if strings.IndexByte(field, d.Subcomponent) < 0 {
		loc.Sub = 0
	}
	if strings.IndexByte(field, d.Component) < 0 && loc.Sub == 0 {
		loc.Component = 0
	}
	if strings.IndexByte(field, d.Repetition) < 0 && loc.Component == 0 {
		loc.Rep = 0
	}
	return loc
}

// locateRaw returns the location of byte off of an undecoded message (for a byte that
// could not be decoded), cutting segments as split does.
func locateRaw(b []byte, off int, d Delimiters) Location {
	term := byte('\n')
	if bytes.IndexByte(b, '\r') >= 0 {
		term = '\r'
	}
	seen := map[string]int{}
	n := 0
	for pos := 0; pos < len(b); {
		end := bytes.IndexByte(b[pos:], term)
		if end < 0 {
			end = len(b)
		} else {
			end += pos
		}
		line, lineStart := b[pos:end], pos
		pos = end + 1
		if term == '\r' && pos < len(b) && b[pos] == '\n' {
			pos++
		}
		if blank(string(line)) {
			continue
		}
		n++
		id := segID(string(line))
		seen[id]++
		if off >= end {
			continue
		}
		if id == "" {
			return Location{Seq: n}
		}
		m := &Message{delims: d}
		s := &Segment{m: m, text: string(line), ends: fieldEnds(string(line), d.Field)}
		loc := m.locate(s, off-lineStart)
		loc.Seq = seen[id]
		return loc
	}
	return Location{}
}

// fieldEnds returns the element ends of a segment's text.
func fieldEnds(t string, fs byte) []int32 {
	var ends []int32
	for i := 0; i < len(t); i++ {
		if t[i] == fs {
			ends = append(ends, int32(i))
		}
	}
	return append(ends, int32(len(t)))
}

// Encode returns the message in ER7: segments each ended by CR, in the message's
// character set (MSH-18; UTF-8 when it is absent). A character the set cannot hold is
// written '?'.
func (m *Message) Encode() []byte {
	n := 0
	for _, s := range m.segs {
		n += len(s.text) + 1
	}
	out := make([]byte, 0, n)
	for _, s := range m.segs {
		out = append(out, s.text...)
		out = append(out, '\r')
	}
	return m.cs.encode(out)
}

// Delimiters returns the message's field separator and encoding characters.
func (m *Message) Delimiters() Delimiters { return m.delims }

// Charset returns the HL7 Table 0211 name of the character set the message is read and
// written in: MSH-18's first repetition, "ISO IR87" for a Japanese ISO 2022 message,
// "ASCII" when MSH-18 is absent (UTF-8 accepted and written).
func (m *Message) Charset() string { return m.cs.name }

// Segments returns the segments in order, MSH first.
func (m *Message) Segments() []*Segment { return slices.Clone(m.segs) }

// Segment returns the first segment with this ID, or nil.
func (m *Message) Segment(id string) *Segment {
	for _, s := range m.segs {
		if s.ID() == id {
			return s
		}
	}
	return nil
}

// All returns the segments with this ID, in order.
func (m *Message) All(id string) []*Segment {
	var out []*Segment
	for _, s := range m.segs {
		if s.ID() == id {
			out = append(out, s)
		}
	}
	return out
}

// nth returns the n-th (1-based) segment with this ID, or nil.
func (m *Message) nth(id string, n int) *Segment {
	n = max(n, 1)
	for _, s := range m.segs {
		if s.ID() == id {
			if n--; n == 0 {
				return s
			}
		}
	}
	return nil
}

// Get returns the value at a path such as "PID-3[2].1" (see Location). An invalid path
// gives an absent Value, like a position the message does not have.
func (m *Message) Get(path string) Value {
	loc, err := ParseLocation(path)
	if err != nil {
		return Value{}
	}
	return m.At(loc)
}

// At returns the value at a location.
func (m *Message) At(loc Location) Value {
	s := m.nth(loc.Segment, loc.Seq)
	if s == nil || loc.Field < 1 {
		return Value{}
	}
	v := s.Field(loc.Field)
	if loc.Rep == 0 && loc.Component == 0 {
		return v
	}
	v = v.Rep(max(loc.Rep, 1))
	if loc.Component == 0 {
		return v
	}
	v = v.Component(loc.Component)
	if loc.Sub == 0 {
		return v
	}
	return v.Sub(loc.Sub)
}

// Type returns MSH-9.1, the message type ("ADT").
func (m *Message) Type() string { return m.Get("MSH-9.1").String() }

// Event returns MSH-9.2, the trigger event ("A08").
func (m *Message) Event() string { return m.Get("MSH-9.2").String() }

// Structure returns MSH-9.3, the message structure ("ADT_A01"; from v2.3.1).
func (m *Message) Structure() string { return m.Get("MSH-9.3").String() }

// ControlID returns MSH-10, the message control ID.
func (m *Message) ControlID() string { return m.Get("MSH-10").String() }

// ProcessingID returns MSH-11.1 ("P" production, "T" training, "D" debugging).
func (m *Message) ProcessingID() string { return m.Get("MSH-11.1").String() }

// Version returns MSH-12.1, the version ID ("2.5.1").
func (m *Message) Version() string { return m.Get("MSH-12.1").String() }

// Versions returns the values of MSH-12.1 this package reads and writes (HL7 Table 0104,
// v2.3 to v2.8); the slice is a fresh copy each call.
func Versions() []string { return slices.Clone(versions) }

var versions = []string{"2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2"}

// CheckVersion returns an unsupported version error (203 at MSH-12) when MSH-12.1 is
// not one of Versions(), else nil.
func (m *Message) CheckVersion() *Error {
	v := m.Version()
	if slices.Contains(versions, v) {
		return nil
	}
	return Errorf(Location{Segment: "MSH", Seq: 1, Field: 12}, CodeUnsupportedVersion, "version %q is not supported: this receiver reads 2.3 to 2.8", v)
}

// ID returns the segment ID ("PID").
func (s *Segment) ID() string { return s.text[:3] }

// Raw returns the segment's text, escaped, without its terminator.
func (s *Segment) Raw() string { return s.text }

// NumFields returns the number of the segment's last field present (trailing empty
// fields included).
func (s *Segment) NumFields() int {
	if s.ID() == "MSH" {
		return len(s.ends)
	}
	return len(s.ends) - 1
}

// elem returns element i of the segment (0 the ID; for MSH, 1 is MSH-2).
func (s *Segment) elem(i int) (string, bool) {
	if i < 0 || i >= len(s.ends) {
		return "", false
	}
	start := 0
	if i > 0 {
		start = int(s.ends[i-1]) + 1
	}
	return s.text[start:s.ends[i]], true
}

// element returns the element index of field n.
func (s *Segment) element(n int) int {
	if s.ID() == "MSH" {
		return n - 1
	}
	return n
}

// Field returns field n (from 1). MSH-1 and MSH-2 are returned as they are, never
// split or unescaped.
func (s *Segment) Field(n int) Value {
	if n < 1 {
		return Value{}
	}
	if s.ID() == "MSH" && n <= 2 {
		if n == 1 {
			return Value{m: s.m, raw: string(s.m.delims.Field), present: true, literal: true}
		}
		raw, ok := s.elem(1)
		return Value{m: s.m, raw: raw, present: ok, literal: true}
	}
	raw, ok := s.elem(s.element(n))
	return Value{m: s.m, raw: raw, present: ok, level: levelField}
}

// setElem replaces element i (appending empty fields up to it) by raw.
func (s *Segment) setElem(i int, raw string) {
	fs := string(s.m.delims.Field)
	if i >= len(s.ends) {
		s.text += strings.Repeat(fs, i-len(s.ends)+1) + raw
	} else {
		start := 0
		if i > 0 {
			start = int(s.ends[i-1]) + 1
		}
		s.text = s.text[:start] + raw + s.text[s.ends[i]:]
	}
	s.ends = fieldEnds(s.text, s.m.delims.Field)
}

// Header holds the MSH fields NewMessage sets. Strings are values: they are escaped.
type Header struct {
	SendingApplication, SendingFacility     string // MSH-3.1, MSH-4.1
	ReceivingApplication, ReceivingFacility string // MSH-5.1, MSH-6.1
	Time                                    time.Time
	// Type, Event and Structure are MSH-9.1, .2 and .3 ("ADT", "A08", "ADT_A01").
	Type, Event, Structure string
	ControlID              string // MSH-10
	ProcessingID           string // MSH-11.1; "P" when empty
	Version                string // MSH-12.1; "2.5.1" when empty
	Charset                string // MSH-18 (HL7 Table 0211); absent when empty (ASCII, UTF-8 written)
}

// NewMessage returns a message with an MSH segment made from h, with the default
// delimiters |^~\&. Add segments with Set (which creates a missing segment) or
// AddSegment. MSH-7 is left empty when h.Time is zero.
func NewMessage(h Header) (*Message, error) {
	cs := csASCII
	if h.Charset != "" {
		var err *Error
		if cs, err = resolveCharset(h.Charset, DefaultDelimiters, nil); err != nil {
			return nil, err
		}
	}
	m := newMessage(DefaultDelimiters, cs)
	if h.ProcessingID == "" {
		h.ProcessingID = "P"
	}
	if h.Version == "" {
		h.Version = "2.5.1"
	}
	set := func(path, v string) {
		if v != "" {
			_ = m.Set(path, v)
		}
	}
	set("MSH-3.1", h.SendingApplication)
	set("MSH-4.1", h.SendingFacility)
	set("MSH-5.1", h.ReceivingApplication)
	set("MSH-6.1", h.ReceivingFacility)
	if !h.Time.IsZero() {
		set("MSH-7", FormatTime(h.Time))
	}
	set("MSH-9.1", h.Type)
	set("MSH-9.2", h.Event)
	set("MSH-9.3", h.Structure)
	set("MSH-10", h.ControlID)
	set("MSH-11.1", h.ProcessingID)
	set("MSH-12.1", h.Version)
	if h.Charset != "" {
		_ = m.SetRaw("MSH-18", h.Charset)
	}
	return m, nil
}

// newMessage returns a message holding only "MSH|^~\&".
func newMessage(d Delimiters, cs *charset) *Message {
	m := &Message{delims: d, cs: cs}
	text := "MSH" + string(d.Field) + d.EncodingCharacters()
	m.segs = []*Segment{{m: m, text: text, ends: fieldEnds(text, d.Field)}}
	return m
}

// FormatTime formats t as an HL7 DTM to the second with its UTC offset
// ("20240131154500+0100").
func FormatTime(t time.Time) string {
	return t.Format("20060102150405-0700")
}

// AddSegment appends an empty segment with this ID.
func (m *Message) AddSegment(id string) (*Segment, error) {
	if !validSegmentID(id) || id == "MSH" {
		return nil, fmt.Errorf("hl7: %q cannot be added: a segment ID is three upper-case letters or digits, and a message has one MSH", id)
	}
	s := &Segment{m: m, text: id, ends: []int32{3}}
	m.segs = append(m.segs, s)
	return s, nil
}

// Null is the explicit null of HL7: a field (or component) holding two double quotes.
// In an update it means "delete this value", where an empty or absent field means
// "leave it as it is". Set(path, Null) writes it; Value.Null reads it.
const Null = `""`

// Set writes value, escaped, at a path (see Location), replacing whatever was at that
// position: Set("PID-5", "X") makes PID-5 the single value X, Set("PID-5.2", "X")
// changes the second component only. Missing fields, repetitions and components are
// added empty; a missing segment is added at the end when the path names the next
// occurrence of its ID. MSH-1 and MSH-2 cannot be set.
func (m *Message) Set(path, value string) error {
	return m.SetRaw(path, m.delims.EscapeValue(value))
}

// SetRaw writes raw, already escaped, at a path (see Set). raw may hold the delimiters
// below the level it is written at (components in a field, subcomponents in a
// component), not those at or above it, nor CR or LF. Setting MSH-18 changes the
// character set the message is encoded in.
func (m *Message) SetRaw(path, raw string) error {
	loc, err := ParseLocation(path)
	if err != nil {
		return err
	}
	if loc.Field < 1 {
		return fmt.Errorf("hl7: path %q names no field", path)
	}
	if loc.Segment == "MSH" && loc.Field <= 2 {
		return fmt.Errorf("hl7: %s cannot be set: the delimiters are fixed when the message is made", path)
	}
	d := m.delims
	forbidden := []byte{'\r', '\n', d.Field}
	if loc.Rep > 0 {
		forbidden = append(forbidden, d.Repetition)
	}
	if loc.Component > 0 {
		forbidden = append(forbidden, d.Component)
	}
	if loc.Sub > 0 {
		forbidden = append(forbidden, d.Subcomponent)
	}
	if strings.ContainsAny(raw, string(forbidden)) {
		return fmt.Errorf("hl7: the raw value for %s holds a delimiter of its level or above", path)
	}
	s := m.nth(loc.Segment, loc.Seq)
	if s == nil {
		if max(loc.Seq, 1) != m.occurrences(loc.Segment)+1 {
			return fmt.Errorf("hl7: %s: the message has %d %s segments", path, m.occurrences(loc.Segment), loc.Segment)
		}
		if s, err = m.AddSegment(loc.Segment); err != nil {
			return err
		}
	}
	i := s.element(loc.Field)
	old, _ := s.elem(i)
	field := raw
	if loc.Rep > 0 {
		rep := nthPart(old, d.Repetition, loc.Rep)
		if loc.Component > 0 {
			comp := nthPart(rep, d.Component, loc.Component)
			if loc.Sub > 0 {
				comp = setPart(comp, d.Subcomponent, loc.Sub, raw)
			} else {
				comp = raw
			}
			rep = setPart(rep, d.Component, loc.Component, comp)
		} else {
			rep = raw
		}
		field = setPart(old, d.Repetition, loc.Rep, rep)
	}
	if loc.Segment == "MSH" && loc.Field == 18 && loc.Seq <= 1 {
		cs, err := resolveCharset(field, d, nil)
		if err != nil {
			return err
		}
		m.cs = cs
	}
	s.setElem(i, field)
	return nil
}

// nthPart returns part n (1-based) of s cut at sep, "" when s has fewer parts.
func nthPart(s string, sep byte, n int) string {
	for ; n > 1; n-- {
		i := strings.IndexByte(s, sep)
		if i < 0 {
			return ""
		}
		s = s[i+1:]
	}
	if i := strings.IndexByte(s, sep); i >= 0 {
		return s[:i]
	}
	return s
}

// setPart replaces part n (1-based) of s cut at sep, adding empty parts up to it.
func setPart(s string, sep byte, n int, v string) string {
	parts := strings.Split(s, string(sep))
	for len(parts) < n {
		parts = append(parts, "")
	}
	parts[n-1] = v
	return strings.Join(parts, string(sep))
}
