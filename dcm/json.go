package dcm

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Defaults of the bounds of JSONOptions.
const (
	// DefaultMaxJSONValueLength is the longest value written inline by default.
	DefaultMaxJSONValueLength = 64 << 10
	// DefaultMaxJSONPrivateElements is the most private elements written by default.
	DefaultMaxJSONPrivateElements = 10000
	// DefaultMaxJSONBytes bounds the JSON of one data set by default.
	DefaultMaxJSONBytes = 16 << 20
)

// JSONOptions tune the DICOM JSON model output. The zero value uses the defaults: the
// JSON of a data set is bounded, whatever the data set holds, so that a small object
// with a huge number of elements cannot make a huge metadata object.
type JSONOptions struct {
	// InlineBinaryMax is the largest binary value (OB, OW, UN, ...) written inline as
	// InlineBinary; larger or skipped values get a BulkDataURI. Default 1024 bytes.
	InlineBinaryMax int
	// BulkDataURIPrefix is prepended to the element path to form BulkDataURI values.
	// Default "bulkdata/" (relative to the instance's URL).
	BulkDataURIPrefix string
	// Exclude, when set, drops top-level elements for which it returns true.
	Exclude func(Tag) bool
	// MaxValueLength is the longest value (in encoded bytes) written inline. A longer
	// value gets a BulkDataURI when its VR admits bulk data (PS3.18 10.4.1.1.2: DS, FD,
	// FL, IS, LT, OB, OD, OF, OL, OV, OW, SL, SS, ST, SV, UC, UL, UN, US, UT, UV) and is
	// left out otherwise (a long list of codes, dates, names or UIDs). Default
	// DefaultMaxJSONValueLength; negative: no limit.
	MaxValueLength int
	// MaxPrivateElements is the most private elements (odd groups, at any depth, in
	// data set order) written; the next ones are left out with their content. Default
	// DefaultMaxJSONPrivateElements; negative: no limit.
	MaxPrivateElements int
	// MaxBytes bounds the length of the JSON. When the data set's JSON would be longer,
	// top-level elements are left out until it fits: private elements first, then
	// elements the data dictionary does not know, then the others, the largest first in
	// each group. Default DefaultMaxJSONBytes; negative: no limit.
	MaxBytes int
	// Omitted, when set, receives what was left out to keep within the bounds.
	Omitted *JSONOmissions
}

func (o JSONOptions) withDefaults() JSONOptions {
	if o.InlineBinaryMax <= 0 {
		o.InlineBinaryMax = 1024
	}
	if o.BulkDataURIPrefix == "" {
		o.BulkDataURIPrefix = "bulkdata/"
	}
	if o.MaxValueLength == 0 {
		o.MaxValueLength = DefaultMaxJSONValueLength
	}
	if o.MaxPrivateElements == 0 {
		o.MaxPrivateElements = DefaultMaxJSONPrivateElements
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxJSONBytes
	}
	if o.MaxValueLength > 0 && o.InlineBinaryMax > o.MaxValueLength {
		o.InlineBinaryMax = o.MaxValueLength
	}
	return o
}

// JSONOmissions says what JSON left out of a data set's DICOM JSON to keep within the
// bounds of its JSONOptions. The zero value means nothing was left out. It holds tags
// and counts only, never values.
type JSONOmissions struct {
	// PrivateElements counts the private elements left out past MaxPrivateElements
	// (each with the items it holds).
	PrivateElements int
	// LongValues counts the elements left out because their value was longer than
	// MaxValueLength and their VR admits no BulkDataURI.
	LongValues int
	// Elements are the top-level elements left out to keep within MaxBytes.
	Elements []Tag
	// MaxPrivateElements, MaxValueLength and MaxBytes are the bounds that applied.
	MaxPrivateElements, MaxValueLength, MaxBytes int
}

// Empty reports that nothing was left out.
func (m *JSONOmissions) Empty() bool {
	return m.PrivateElements == 0 && m.LongValues == 0 && len(m.Elements) == 0
}

// String summarises what was left out ("" when nothing was), in a line an operator can
// read: counts, bounds and the first tags.
func (m *JSONOmissions) String() string {
	var parts []string
	if m.PrivateElements > 0 {
		parts = append(parts, fmt.Sprintf("%d private elements past the first %d", m.PrivateElements, m.MaxPrivateElements))
	}
	if m.LongValues > 0 {
		parts = append(parts, fmt.Sprintf("%d elements with values longer than %d bytes", m.LongValues, m.MaxValueLength))
	}
	if n := len(m.Elements); n > 0 {
		const show = 8
		tags := make([]string, 0, show)
		for _, t := range m.Elements[:min(n, show)] {
			tags = append(tags, t.String())
		}
		more := ""
		if n > show {
			more = ", ..."
		}
		parts = append(parts, fmt.Sprintf("%d top-level elements (%s%s) to keep within %d bytes", n, strings.Join(tags, ", "), more, m.MaxBytes))
	}
	if len(parts) == 0 {
		return ""
	}
	return "left out of the metadata: " + strings.Join(parts, "; ")
}

// BulkRef locates one bulk data value of an instance.
type BulkRef struct {
	// Path identifies the element: tags as 8 hex digits and item indices, separated by
	// slashes ("7FE00010", "54000100/0/54001010").
	Path string `json:"p"`
	// Range is where the value lies in the stored object. For encapsulated pixel data it
	// covers all fragment items and the sequence delimiter.
	Range Range `json:"r"`
	// VR of the element.
	VR string `json:"vr"`
}

// JSON renders a data set as a DICOM JSON object (PS3.18 F.2): PN as objects, numeric
// VRs as JSON numbers, AT as hex strings, small binary values as InlineBinary and the
// rest as BulkDataURI. It returns the bulk data it referenced. Group length elements are
// omitted. Text is converted to UTF-8 using the Specific Character Set of each data set
// (see CharacterSet: items inherit it) and the object says ISO_IR 192. The output is
// bounded by opts (see JSONOptions): what does not fit is left out and, when
// opts.Omitted is set, reported there.
func (d *Dataset) JSON(opts *JSONOptions) ([]byte, []BulkRef, error) {
	o := JSONOptions{}
	if opts != nil {
		o = *opts
	}
	o = o.withDefaults()
	w := &jsonWriter{opts: o, buf: make([]byte, 0, 1024)}
	cs := d.CharacterSet()
	els := topLevel(d, o.Exclude)

	// Pass 1 writes every element and measures each. Once the output is past MaxBytes,
	// it keeps measuring without keeping what it writes (memory stays bounded).
	size := make([]int64, len(els))
	privBefore := make([]int, len(els))
	w.buf = append(w.buf, '{')
	first := true
	for i, e := range els {
		privBefore[i] = w.private
		if !w.keep(e) {
			size[i] = -1
			continue
		}
		if !first {
			w.buf = append(w.buf, ',')
		}
		first = false
		mark := w.written()
		w.member(e, cs, e.Tag.Hex())
		size[i] = w.written() - mark
		w.boundary()
	}
	var dropped []Tag
	if w.measuring || (o.MaxBytes >= 0 && len(w.buf)+1 > o.MaxBytes) {
		// Pass 2 writes the elements that fit, deciding the private elements as pass 1
		// did (the count each element starts from is restored).
		drop := chooseDrops(els, size, int64(o.MaxBytes))
		w2 := &jsonWriter{opts: o, buf: make([]byte, 0, min(int64(o.MaxBytes), w.written()))}
		w2.buf = append(w2.buf, '{')
		first := true
		for i, e := range els {
			if size[i] < 0 {
				continue // left out in pass 1 already
			}
			if drop[i] {
				dropped = append(dropped, e.Tag)
				continue
			}
			w2.private = privBefore[i]
			w2.keep(e) // counts e as pass 1 did
			if !first {
				w2.buf = append(w2.buf, ',')
			}
			first = false
			w2.member(e, cs, e.Tag.Hex())
		}
		// What the dropped elements held is left out with them; what the others left
		// out is counted as in pass 1, over every element.
		w2.omittedPrivate, w2.omittedLong = w.omittedPrivate, w.omittedLong
		w = w2
	}
	w.buf = append(w.buf, '}')
	if o.Omitted != nil {
		*o.Omitted = JSONOmissions{PrivateElements: w.omittedPrivate, LongValues: w.omittedLong, Elements: dropped,
			MaxPrivateElements: o.MaxPrivateElements, MaxValueLength: o.MaxValueLength, MaxBytes: o.MaxBytes}
	}
	return w.buf, w.bulk, nil
}

// topLevel returns the elements of a data set's JSON object, in tag order: no group
// lengths, no File Meta Information, nothing excluded, the first of duplicate tags.
func topLevel(d *Dataset, exclude func(Tag) bool) []*Element {
	els := d.Elements
	if !slices.IsSortedFunc(els, func(a, b *Element) int { return cmp.Compare(a.Tag, b.Tag) }) {
		els = sortedByTag(els)
	}
	out := make([]*Element, 0, len(els))
	for _, e := range els {
		if e.Tag.Element() == 0x0000 || e.Tag.Group() == 0x0002 || exclude != nil && exclude(e.Tag) {
			continue
		}
		if len(out) > 0 && out[len(out)-1].Tag == e.Tag {
			continue // duplicate tag: keep the first
		}
		out = append(out, e)
	}
	return out
}

// chooseDrops picks the top-level elements to leave out so that the object fits in max
// bytes: private elements first, then those the data dictionary does not know, then
// the others, the largest first in each group.
func chooseDrops(els []*Element, size []int64, max int64) []bool {
	drop := make([]bool, len(els))
	if max < 0 {
		return drop
	}
	total := int64(2) // {}
	var order []int
	for i := range els {
		if size[i] >= 0 { // not left out already
			total += size[i] + 1 // with its comma (one too many: the bound is kept safely)
			order = append(order, i)
		}
	}
	rank := make([]int8, len(els))
	for _, i := range order {
		switch t := els[i].Tag; {
		case t.IsPrivate():
			rank[i] = 0
		case !inDictionary(t):
			rank[i] = 1
		default:
			rank[i] = 2
		}
	}
	slices.SortStableFunc(order, func(a, b int) int {
		if rank[a] != rank[b] {
			return int(rank[a]) - int(rank[b])
		}
		switch {
		case size[a] > size[b]:
			return -1
		case size[a] < size[b]:
			return 1
		}
		return int(els[b].Tag>>1) - int(els[a].Tag>>1) // later tags first
	})
	for _, i := range order {
		if total <= max {
			break
		}
		drop[i] = true
		total -= size[i] + 1
	}
	return drop
}

// inDictionary reports whether the data dictionary knows a public tag (repeating
// groups included).
func inDictionary(t Tag) bool {
	g := t.Group()
	switch {
	case g%2 == 1:
		return false
	case g >= 0x6000 && g <= 0x60FF:
		t = NewTag(0x6000, t.Element())
	case g >= 0x5000 && g <= 0x50FF:
		t = NewTag(0x5000, t.Element())
	}
	return t == TagPixelData || t.Keyword() != ""
}

// bulkVRs are the VRs whose values may be replaced by a BulkDataURI (PS3.18 10.4.1.1.2).
var bulkVRs = map[string]bool{"DS": true, "FD": true, "FL": true, "IS": true, "LT": true, "OB": true, "OD": true, "OF": true,
	"OL": true, "OV": true, "OW": true, "SL": true, "SS": true, "ST": true, "SV": true, "UC": true, "UL": true, "UN": true,
	"US": true, "UT": true, "UV": true}

type jsonWriter struct {
	opts JSONOptions
	buf  []byte
	bulk []BulkRef
	// private counts the private elements met so far (written or not).
	private                     int
	omittedPrivate, omittedLong int
	// measuring: buf is emptied at element boundaries and its length added to measured.
	measuring bool
	measured  int64
}

// written is the length of the output so far.
func (w *jsonWriter) written() int64 { return w.measured + int64(len(w.buf)) }

// boundary is called between elements: past MaxBytes, the writer only measures.
func (w *jsonWriter) boundary() {
	if !w.measuring {
		if w.opts.MaxBytes < 0 || len(w.buf) < w.opts.MaxBytes {
			return
		}
		w.measuring = true
	}
	w.measured += int64(len(w.buf))
	w.buf = w.buf[:0]
}

// keep decides whether an element is written, counting what is left out.
func (w *jsonWriter) keep(e *Element) bool {
	if e.Tag.IsPrivate() {
		w.private++
		if w.opts.MaxPrivateElements >= 0 && w.private > w.opts.MaxPrivateElements {
			w.omittedPrivate++
			return false
		}
	}
	if e.VR != "SQ" && !e.Bulk && w.opts.MaxValueLength >= 0 && len(e.Value) > w.opts.MaxValueLength && !bulkVRs[e.VR] {
		w.omittedLong++
		return false
	}
	return true
}

// member writes "tag":{...} for an element that keep admitted.
func (w *jsonWriter) member(e *Element, cs *CharacterSet, path string) {
	w.buf = append(w.buf, '"')
	w.buf = appendHex(w.buf, e.Tag)
	w.buf = append(w.buf, `":`...)
	w.element(e, cs, path)
}

// itemCharacterSet is the character set of an item: its own Specific Character Set,
// else its parent's.
func itemCharacterSet(d *Dataset, parent *CharacterSet) *CharacterSet {
	if cs, ok := d.ownCharacterSet(); ok {
		return cs
	}
	return parent
}

// dataset writes an item's data set.
func (w *jsonWriter) dataset(d *Dataset, cs *CharacterSet, path string) {
	els := sortedByTag(d.Elements)
	w.buf = append(w.buf, '{')
	first := true
	var prev Tag
	for i, e := range els {
		if e.Tag.Element() == 0x0000 || e.Tag.Group() == 0x0002 {
			continue
		}
		if i > 0 && e.Tag == prev {
			continue // duplicate tag: keep the first
		}
		prev = e.Tag
		if !w.keep(e) {
			continue
		}
		if !first {
			w.buf = append(w.buf, ',')
		}
		first = false
		w.member(e, cs, path+"/"+e.Tag.Hex())
		w.boundary()
	}
	w.buf = append(w.buf, '}')
}

func (w *jsonWriter) element(e *Element, cs *CharacterSet, path string) {
	vr := e.VR
	w.buf = append(w.buf, `{"vr":"`...)
	w.buf = append(w.buf, vr...)
	w.buf = append(w.buf, '"')
	defer func() { w.buf = append(w.buf, '}') }()

	if vr == "SQ" {
		if len(e.Items) == 0 {
			return
		}
		w.buf = append(w.buf, `,"Value":[`...)
		for i, it := range e.Items {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.dataset(it, itemCharacterSet(it, cs), path+"/"+strconv.Itoa(i))
		}
		w.buf = append(w.buf, ']')
		return
	}
	if e.Bulk {
		r := Range{Offset: e.Offset, Length: int64(e.Length)}
		if e.Length == UndefinedLength && len(e.Fragments) > 0 {
			last := e.Fragments[len(e.Fragments)-1]
			r.Length = last.Offset + last.Length + 8 - e.Offset
		}
		w.bulk = append(w.bulk, BulkRef{Path: path, Range: r, VR: vr})
		w.buf = append(w.buf, `,"BulkDataURI":`...)
		w.buf = appendJSONString(w.buf, w.opts.BulkDataURIPrefix+path)
		return
	}
	if w.opts.MaxValueLength >= 0 && len(e.Value) > w.opts.MaxValueLength && bulkVRs[vr] {
		// A long value (keep left out the long values of other VRs) is bulk data.
		w.bulk = append(w.bulk, BulkRef{Path: path, Range: Range{Offset: e.Offset, Length: int64(len(e.Value))}, VR: vr})
		w.buf = append(w.buf, `,"BulkDataURI":`...)
		w.buf = appendJSONString(w.buf, w.opts.BulkDataURIPrefix+path)
		return
	}
	if len(e.Value) == 0 || isStringVR(vr) && allPadding(e.Value, vr == "PN") {
		return
	}
	if e.Tag == TagSpecificCharacterSet {
		// Strings are converted to UTF-8, so the JSON object says so (as DCMTK does).
		w.buf = append(w.buf, `,"Value":["ISO_IR 192"]`...)
		return
	}
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "UN":
		if len(e.Value) > w.opts.InlineBinaryMax {
			w.bulk = append(w.bulk, BulkRef{Path: path, Range: Range{Offset: e.Offset, Length: int64(len(e.Value))}, VR: vr})
			w.buf = append(w.buf, `,"BulkDataURI":`...)
			w.buf = appendJSONString(w.buf, w.opts.BulkDataURIPrefix+path)
			return
		}
		w.buf = append(w.buf, `,"InlineBinary":"`...)
		w.buf = base64.StdEncoding.AppendEncode(w.buf, e.Value)
		w.buf = append(w.buf, '"')
		return
	}
	w.buf = append(w.buf, `,"Value":[`...)
	switch vr {
	case "PN":
		for i, v := range e.texts(cs) {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.personName(v)
		}
	case "US", "SS", "UL", "SL", "UV", "SV":
		for i, v := range e.Ints() {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			if vr == "UV" {
				w.buf = strconv.AppendUint(w.buf, uint64(v), 10)
			} else {
				w.buf = strconv.AppendInt(w.buf, v, 10)
			}
		}
	case "FL", "FD":
		for i, v := range e.Floats() {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.buf = appendFloat(w.buf, v, vr)
		}
	case "AT":
		b := e.Value
		for i := 0; len(b) >= 4; i, b = i+1, b[4:] {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			var g, el uint16
			if e.bigEndian {
				g, el = uint16(b[0])<<8|uint16(b[1]), uint16(b[2])<<8|uint16(b[3])
			} else {
				g, el = uint16(b[1])<<8|uint16(b[0]), uint16(b[3])<<8|uint16(b[2])
			}
			w.buf = appendJSONString(w.buf, NewTag(g, el).Hex())
		}
	case "IS", "DS":
		for i, s := range e.StringValues() {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.buf = appendNumberString(w.buf, s, vr)
		}
	default:
		// Text VRs are decoded with the character set; the others use the default
		// repertoire.
		for i, s := range e.texts(cs) {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			if s == "" {
				w.buf = append(w.buf, "null"...)
				continue
			}
			w.buf = appendJSONString(w.buf, s)
		}
	}
	w.buf = append(w.buf, ']')
}

// personName writes a decoded person name value as its component groups.
func (w *jsonWriter) personName(v string) {
	if v == "" {
		w.buf = append(w.buf, "null"...)
		return
	}
	groups := strings.Split(v, "=")
	names := []string{"Alphabetic", "Ideographic", "Phonetic"}
	w.buf = append(w.buf, '{')
	first := true
	for i, g := range groups {
		if i >= 3 {
			break
		}
		g = strings.TrimRight(g, " ")
		if g == "" {
			continue
		}
		if !first {
			w.buf = append(w.buf, ',')
		}
		first = false
		w.buf = appendJSONString(w.buf, names[i])
		w.buf = append(w.buf, ':')
		w.buf = appendJSONString(w.buf, g)
	}
	w.buf = append(w.buf, '}')
}

func isStringVR(vr string) bool {
	switch vr {
	case "AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT":
		return true
	}
	return false
}

// allPadding reports a string value made only of padding and separators.
func allPadding(b []byte, pn bool) bool {
	for _, c := range b {
		if pn && (c == '^' || c == '=') {
			continue
		}
		if c != ' ' && c != 0 && c != '\\' {
			return false
		}
	}
	return true
}

// isJSONNumber reports whether s is a number in JSON's grammar (RFC 8259 §6):
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		digits()
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

func appendNumberString(b []byte, s, vr string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	if vr == "IS" {
		if v, err := strconv.ParseInt(strings.TrimPrefix(s, "+"), 10, 64); err == nil {
			return strconv.AppendInt(b, v, 10)
		}
	} else {
		if isJSONNumber(s) {
			return append(b, s...)
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return strconv.AppendFloat(b, f, 'g', -1, 64)
		}
	}
	// Not a valid number: keep the text rather than lose it.
	return appendJSONString(b, s)
}

func appendFloat(b []byte, f float64, vr string) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	bits := 64
	if vr == "FL" {
		bits = 32
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

const hexDigits = "0123456789abcdef"

func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// String implements fmt.Stringer for debugging (never log it above Debug: it holds PHI).
func (e *Element) String() string {
	switch {
	case e.VR == "SQ":
		return fmt.Sprintf("%s SQ %d items", e.Tag, len(e.Items))
	case e.Bulk:
		return fmt.Sprintf("%s %s bulk @%d len %d", e.Tag, e.VR, e.Offset, e.Length)
	}
	return fmt.Sprintf("%s %s %q", e.Tag, e.VR, e.Value)
}

// Text returns the first value of a string element converted to UTF-8 according to the
// data set's character set (see Texts), or "".
func (d *Dataset) Text(t Tag) string { return d.TextIn(nil, t) }

// TextIn is Text with the data set's character set at hand (see TextsIn).
func (d *Dataset) TextIn(cs *CharacterSet, t Tag) string {
	if v := d.TextsIn(cs, t); len(v) > 0 {
		return v[0]
	}
	return ""
}

// sortedByTag returns the elements in ascending tag order (stable for duplicates).
func sortedByTag(els []*Element) []*Element {
	out := slices.Clone(els)
	slices.SortStableFunc(out, func(a, b *Element) int {
		switch {
		case a.Tag < b.Tag:
			return -1
		case a.Tag > b.Tag:
			return 1
		}
		return 0
	})
	return out
}
