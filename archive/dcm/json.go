package dcm

import (
	"encoding/base64"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/suyashkumar/dicom/pkg/charset"
	"golang.org/x/text/encoding"
)

// JSONOptions tune the DICOM JSON model output.
type JSONOptions struct {
	// InlineBinaryMax is the largest binary value (OB, OW, UN, ...) written inline as
	// InlineBinary; larger or skipped values get a BulkDataURI. Default 1024 bytes.
	InlineBinaryMax int
	// BulkDataURIPrefix is prepended to the element path to form BulkDataURI values.
	// Default "bulkdata/" (relative to the instance's URL).
	BulkDataURIPrefix string
	// Exclude, when set, drops top-level elements for which it returns true.
	Exclude func(Tag) bool
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
// omitted. Strings are converted to UTF-8 using SpecificCharacterSet.
func (d *Dataset) JSON(opts *JSONOptions) ([]byte, []BulkRef, error) {
	o := JSONOptions{}
	if opts != nil {
		o = *opts
	}
	if o.InlineBinaryMax <= 0 {
		o.InlineBinaryMax = 1024
	}
	if o.BulkDataURIPrefix == "" {
		o.BulkDataURIPrefix = "bulkdata/"
	}
	w := &jsonWriter{opts: o, buf: make([]byte, 0, 4096)}
	cs := codingSystem(d, charset.CodingSystem{})
	w.dataset(d, cs, "", true)
	return w.buf, w.bulk, nil
}

type jsonWriter struct {
	opts JSONOptions
	buf  []byte
	bulk []BulkRef
}

func codingSystem(d *Dataset, parent charset.CodingSystem) charset.CodingSystem {
	e := d.Get(TagSpecificCharacterSet)
	if e == nil || e.Value == nil {
		return parent
	}
	names := e.StringValues()
	// An empty first value means the default repertoire.
	cs, err := charset.ParseSpecificCharacterSet(names)
	if err != nil {
		return parent
	}
	return cs
}

func (w *jsonWriter) dataset(d *Dataset, cs charset.CodingSystem, path string, top bool) {
	els := sortedByTag(d.Elements)
	w.buf = append(w.buf, '{')
	first := true
	var prev Tag
	for i, e := range els {
		if e.Tag.Element() == 0x0000 || e.Tag.Group() == 0x0002 && !top {
			continue
		}
		if top && (e.Tag.Group() == 0x0002 || (w.opts.Exclude != nil && w.opts.Exclude(e.Tag))) {
			continue
		}
		if i > 0 && e.Tag == prev {
			continue // duplicate tag: keep the first
		}
		prev = e.Tag
		if !first {
			w.buf = append(w.buf, ',')
		}
		first = false
		w.buf = append(w.buf, '"')
		w.buf = append(w.buf, e.Tag.Hex()...)
		w.buf = append(w.buf, `":`...)
		p := e.Tag.Hex()
		if path != "" {
			p = path + "/" + p
		}
		w.element(e, cs, p)
	}
	w.buf = append(w.buf, '}')
}

func (w *jsonWriter) element(e *Element, cs charset.CodingSystem, path string) {
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
			w.dataset(it, codingSystem(it, cs), path+"/"+strconv.Itoa(i), false)
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
		for i, v := range strings.Split(string(e.Value), "\\") {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			v = strings.TrimRight(v, " \x00")
			if allPadding([]byte(v), true) {
				v = ""
			}
			w.personName(v, cs)
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
		dec := cs.Ideographic
		switch vr {
		case "SH", "LO", "ST", "LT", "UC", "UT":
		default:
			dec = nil // other string VRs use the default repertoire
		}
		for i, s := range e.StringValues() {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			if s == "" {
				w.buf = append(w.buf, "null"...)
				continue
			}
			w.buf = appendJSONString(w.buf, decode(dec, s))
		}
	}
	w.buf = append(w.buf, ']')
}

func (w *jsonWriter) personName(v string, cs charset.CodingSystem) {
	if v == "" {
		w.buf = append(w.buf, "null"...)
		return
	}
	groups := strings.Split(v, "=")
	names := []string{"Alphabetic", "Ideographic", "Phonetic"}
	decs := []*encoding.Decoder{cs.Alphabetic, cs.Ideographic, cs.Phonetic}
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
		w.buf = appendJSONString(w.buf, decode(decs[i], g))
	}
	w.buf = append(w.buf, '}')
}

func decode(d *encoding.Decoder, s string) string {
	if d == nil || isASCII(s) {
		return s
	}
	out, err := d.String(s)
	if err != nil {
		return s
	}
	return out
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

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

func appendNumberString(b []byte, s, vr string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	if vr == "IS" {
		if v, err := strconv.ParseInt(strings.TrimPrefix(s, "+"), 10, 64); err == nil {
			return strconv.AppendInt(b, v, 10)
		}
	} else {
		if jsonNumber.MatchString(s) {
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
// data set's SpecificCharacterSet (person names keep their = groups).
func (d *Dataset) Text(t Tag) string {
	e := d.Get(t)
	if e == nil || e.Value == nil {
		return ""
	}
	vals := e.StringValues()
	if len(vals) == 0 {
		return ""
	}
	v := vals[0]
	cs := codingSystem(d, charset.CodingSystem{})
	if e.VR == "PN" {
		groups := strings.Split(v, "=")
		decs := []*encoding.Decoder{cs.Alphabetic, cs.Ideographic, cs.Phonetic}
		for i := range groups {
			if i < 3 {
				groups[i] = decode(decs[i], groups[i])
			}
		}
		v = strings.Join(groups, "=")
		if allPadding([]byte(v), true) {
			return ""
		}
		return v
	}
	switch e.VR {
	case "SH", "LO", "ST", "LT", "UC", "UT":
		return decode(cs.Ideographic, v)
	}
	return v
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
