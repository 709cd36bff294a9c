package dcm

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
)

// Transfer syntax UIDs that change how a data set is encoded.
const (
	ImplicitVRLittleEndian         = "1.2.840.10008.1.2"
	ExplicitVRLittleEndian         = "1.2.840.10008.1.2.1"
	DeflatedExplicitVRLittleEndian = "1.2.840.10008.1.2.1.99"
	ExplicitVRBigEndian            = "1.2.840.10008.1.2.2"
)

// Errors reported by the reader, wrapped in a *ParseError.
var (
	// ErrNotDICOM means the stream has no "DICM" prefix at byte 128.
	ErrNotDICOM = errors.New("not a DICOM PS3.10 file (no DICM prefix at byte 128)")
	// ErrTruncated means the stream ended inside an element.
	ErrTruncated = errors.New("truncated DICOM stream")
	// ErrMalformed means the bytes do not follow PS3.5 encoding.
	ErrMalformed = errors.New("malformed DICOM encoding")
	// ErrTooLarge means the object needs more memory than Options.MaxRetained allows.
	ErrTooLarge = errors.New("DICOM header exceeds the retained-memory limit")
)

// ParseError locates a parse failure in the stream.
type ParseError struct {
	Offset int64 // byte offset where the failing element starts
	Tag    Tag   // tag being read, 0 when unknown
	Err    error // one of the Err* sentinels, possibly wrapped with detail
}

// Error formats the failure with its offset and tag.
func (e *ParseError) Error() string {
	if e.Offset < 0 {
		return "dcm: " + e.Err.Error()
	}
	if e.Tag != 0 {
		return fmt.Sprintf("dcm: at byte %d, element %s: %v", e.Offset, e.Tag, e.Err)
	}
	return fmt.Sprintf("dcm: at byte %d: %v", e.Offset, e.Err)
}

// Unwrap returns the sentinel (or I/O error) behind the failure.
func (e *ParseError) Unwrap() error { return e.Err }

// Options bound what the reader keeps in memory. The zero value uses the defaults.
type Options struct {
	// BulkThreshold is the largest value kept in memory; longer values are skipped and
	// recorded by offset and length only. Pixel data is always skipped. Default 64 KiB.
	BulkThreshold int64
	// MaxRetained caps the memory kept for one object (values plus per-element
	// overhead). Default 64 MiB.
	MaxRetained int64
	// MaxDepth caps sequence nesting. Default 32.
	MaxDepth int
	// Size is the total stream length when known, or 0. Lengths that run past it are
	// rejected before reading.
	Size int64
	// MaxInflateRatio bounds deflated data sets (a "deflate bomb" costs parse time in
	// proportion to its inflated size): past InflateFloor bytes, the inflated stream may
	// not exceed MaxInflateRatio times the compressed bytes read. Defaults 100 and 16 MiB.
	MaxInflateRatio int64
	// InflateFloor: see MaxInflateRatio.
	InflateFloor int64
	// Digest, when set, receives the content digest of the data set as it is read (see
	// ContentDigest); the File Meta Information is not part of it.
	Digest *ContentDigest
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.BulkThreshold <= 0 {
		r.BulkThreshold = 64 << 10
	}
	if r.MaxRetained <= 0 {
		r.MaxRetained = 64 << 20
	}
	if r.MaxDepth <= 0 {
		r.MaxDepth = 32
	}
	if r.MaxInflateRatio <= 0 {
		r.MaxInflateRatio = 100
	}
	if r.InflateFloor <= 0 {
		r.InflateFloor = 16 << 20
	}
	return r
}

// Range is a byte range of the stored stream.
type Range struct {
	Offset int64 `json:"o"`
	Length int64 `json:"l"`
}

// Element is one data element. Values longer than the bulk threshold are not kept:
// Value is nil and Bulk is true, and Offset/Length locate the value in the stream.
type Element struct {
	Tag Tag
	// VR is the value representation (from the stream, or the dictionary when implicit).
	VR string
	// Length is the value length as encoded; UndefinedLength for sequences, items and
	// encapsulated pixel data of undefined length.
	Length uint32
	// Offset is the stream offset of the first value byte.
	Offset int64
	// Value holds the raw value bytes in the data set's byte order, unless Bulk.
	Value []byte
	// Bulk reports that the value was skipped because of its size.
	Bulk bool
	// Items are the items of a sequence.
	Items []*Dataset
	// Fragments are the items of encapsulated pixel data, the Basic Offset Table first.
	Fragments []Range
	// BOT is the Basic Offset Table's content, when present and small enough.
	BOT []byte

	bigEndian bool
}

// Dataset is an ordered list of elements.
type Dataset struct {
	Elements []*Element

	// parent is the data set holding the sequence this data set is an item of, whose
	// Specific Character Set the item inherits (see CharacterSet).
	parent *Dataset
}

// Get returns the element with tag t, or nil.
func (d *Dataset) Get(t Tag) *Element {
	if d == nil {
		return nil
	}
	for _, e := range d.Elements {
		if e.Tag == t {
			return e
		}
	}
	return nil
}

// String returns the first value of a string element with padding removed, or "".
func (d *Dataset) String(t Tag) string {
	v := d.Strings(t)
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// Strings returns the values of a string element (split on backslash, padding removed).
// The bytes are returned as stored; see Texts for character set conversion.
func (d *Dataset) Strings(t Tag) []string {
	e := d.Get(t)
	if e == nil || e.Value == nil {
		return nil
	}
	return e.StringValues()
}

// StringValues splits the raw value on backslash and trims padding.
func (e *Element) StringValues() []string {
	if len(e.Value) == 0 {
		return nil
	}
	s := string(e.Value)
	var parts []string
	if e.VR == "LT" || e.VR == "ST" || e.VR == "UT" || e.VR == "UR" {
		parts = []string{s}
	} else {
		parts = strings.Split(s, "\\")
	}
	for i, p := range parts {
		switch e.VR {
		case "UI":
			p = strings.TrimRight(p, "\x00 ")
		case "LT", "ST", "UT", "UR":
			p = strings.TrimRight(p, " \x00")
		default:
			p = strings.Trim(p, " \x00")
		}
		parts[i] = p
	}
	return parts
}

// Int returns the first value of a numeric (US, SS, UL, SL, IS) element.
func (d *Dataset) Int(t Tag) (int64, bool) {
	e := d.Get(t)
	if e == nil {
		return 0, false
	}
	v := e.Ints()
	if len(v) == 0 {
		return 0, false
	}
	return v[0], true
}

// Ints decodes integer values of US, SS, UL, SL, UV, SV or IS elements.
func (e *Element) Ints() []int64 {
	if e.Value == nil {
		return nil
	}
	bo := e.byteOrder()
	b := e.Value
	var out []int64
	switch e.VR {
	case "US":
		for ; len(b) >= 2; b = b[2:] {
			out = append(out, int64(bo.Uint16(b)))
		}
	case "SS":
		for ; len(b) >= 2; b = b[2:] {
			out = append(out, int64(int16(bo.Uint16(b))))
		}
	case "UL":
		for ; len(b) >= 4; b = b[4:] {
			out = append(out, int64(bo.Uint32(b)))
		}
	case "SL":
		for ; len(b) >= 4; b = b[4:] {
			out = append(out, int64(int32(bo.Uint32(b))))
		}
	case "UV", "SV":
		for ; len(b) >= 8; b = b[8:] {
			out = append(out, int64(bo.Uint64(b)))
		}
	case "IS", "DS":
		for _, s := range e.StringValues() {
			if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
				out = append(out, int64(f))
			}
		}
	}
	return out
}

// Floats decodes FL, FD, DS and IS values.
func (e *Element) Floats() []float64 {
	if e.Value == nil {
		return nil
	}
	bo := e.byteOrder()
	b := e.Value
	var out []float64
	switch e.VR {
	case "FL", "OF":
		for ; len(b) >= 4; b = b[4:] {
			out = append(out, float64(math.Float32frombits(bo.Uint32(b))))
		}
	case "FD", "OD":
		for ; len(b) >= 8; b = b[8:] {
			out = append(out, math.Float64frombits(bo.Uint64(b)))
		}
	case "DS", "IS":
		for _, s := range e.StringValues() {
			if f, err := strconv.ParseFloat(s, 64); err == nil {
				out = append(out, f)
			}
		}
	default:
		for _, v := range e.Ints() {
			out = append(out, float64(v))
		}
	}
	return out
}

func (e *Element) byteOrder() binary.ByteOrder {
	if e.bigEndian {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

// BigEndian reports whether the element's value is big endian.
func (e *Element) BigEndian() bool { return e.bigEndian }

// File is a parsed PS3.10 file or data set stream.
type File struct {
	// Meta is the File Meta Information (group 0002); empty for bare data sets.
	Meta *Dataset
	// Dataset is the data set after the meta information.
	Dataset *Dataset
	// TransferSyntax is the transfer syntax UID of Dataset.
	TransferSyntax string
	// DatasetOffset is the stream offset where the data set starts.
	DatasetOffset int64
	// Size is the number of bytes consumed from the stream.
	Size int64
	// Deflated reports a deflated data set: offsets past DatasetOffset then refer to
	// the inflated stream, not to stored bytes.
	Deflated bool
	// TrailingZeros is the number of zero bytes after the end of the data set (padding
	// some writers add, which other readers accept with a warning); 0 when none.
	TrailingZeros int64
}

// Parse reads a PS3.10 file: the 128-byte preamble, "DICM", the File Meta Information
// and the data set in the transfer syntax the meta information names. It reads r to EOF.
func Parse(r io.Reader, opts *Options) (*File, error) {
	o := opts.withDefaults()
	rd := newReader(r, o)
	defer rd.release()
	pre := make([]byte, 132)
	if _, err := io.ReadFull(rd, pre); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, &ParseError{Offset: -1, Err: fmt.Errorf("%w: the stream is only %d bytes long", ErrNotDICOM, rd.pos)}
		}
		return nil, &ParseError{Offset: rd.pos, Err: err}
	}
	if string(pre[128:]) != "DICM" {
		return nil, &ParseError{Offset: -1, Err: ErrNotDICOM}
	}
	f := &File{Meta: &Dataset{}}
	if err := rd.readMeta(f.Meta); err != nil {
		return nil, err
	}
	f.TransferSyntax = f.Meta.String(TagTransferSyntaxUID)
	if f.TransferSyntax == "" {
		return nil, &ParseError{Offset: rd.pos, Tag: TagTransferSyntaxUID, Err: fmt.Errorf("%w: meta information has no TransferSyntaxUID", ErrMalformed)}
	}
	f.DatasetOffset = rd.pos
	ds, err := rd.readBody(f.TransferSyntax)
	if err != nil {
		return nil, err
	}
	f.Dataset = ds
	f.Deflated = f.TransferSyntax == DeflatedExplicitVRLittleEndian
	f.TrailingZeros = rd.zeros
	f.Size = rd.pos
	if f.Deflated {
		f.Size = rd.rawPos()
	}
	return f, nil
}

// ParseDataset reads a bare data set (no preamble or meta information) encoded in the
// transfer syntax ts, as DIMSE delivers it. base is the offset the first byte will have
// in the stored file, so recorded offsets refer to the stored object.
func ParseDataset(r io.Reader, ts string, base int64, opts *Options) (*File, error) {
	o := opts.withDefaults()
	rd := newReader(r, o)
	defer rd.release()
	rd.pos = base
	rd.base = base
	f := &File{Meta: &Dataset{}, TransferSyntax: ts, DatasetOffset: base}
	ds, err := rd.readBody(ts)
	if err != nil {
		return nil, err
	}
	f.Dataset = ds
	f.Deflated = ts == DeflatedExplicitVRLittleEndian
	f.TrailingZeros = rd.zeros
	f.Size = rd.pos
	if f.Deflated {
		f.Size = rd.rawPos()
	}
	return f, nil
}

type reader struct {
	src      *bufio.Reader
	raw      *countingReader // underlying stream, for deflate bookkeeping
	in       io.Reader       // what element reads use (src or an inflater)
	pos      int64
	base     int64
	bo       binary.ByteOrder
	implicit bool
	opts     Options
	retained int64
	inflated *bufio.Reader
	// inflateStart is the offset where the deflated data set begins.
	inflateStart int64
	scratch      [8]byte
	// dig receives the content digest while the data set is read (nil: none, and
	// inside elements left out of it).
	dig *ContentDigest
	// zeros counts the zero padding after the data set.
	zeros int64
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// readBuffers holds the 64 KiB read buffers of finished parses, for the next ones.
var readBuffers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

func newReader(r io.Reader, o Options) *reader {
	cr := &countingReader{r: r}
	src := readBuffers.Get().(*bufio.Reader)
	src.Reset(cr)
	return &reader{src: src, raw: cr, in: src, bo: binary.LittleEndian, opts: o}
}

// release returns the read buffer for reuse; no value of the parse refers to it (values
// are copied out of it).
func (r *reader) release() {
	r.src.Reset(nil)
	readBuffers.Put(r.src)
	r.src, r.in = nil, nil
}

func (r *reader) rawPos() int64 { return r.base + r.raw.n - int64(r.src.Buffered()) }

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.in.Read(p)
	r.pos += int64(n)
	if err == nil {
		err = r.inflateLimit()
	}
	return n, err
}

// inflateLimit reports a deflated data set that expands past Options.MaxInflateRatio.
func (r *reader) inflateLimit() error {
	if r.inflated != nil {
		inflated := r.pos - r.inflateStart
		if inflated > r.opts.InflateFloor && inflated > r.opts.MaxInflateRatio*(r.rawPos()-r.inflateStart) {
			return &ParseError{Offset: r.pos, Err: fmt.Errorf("%w: deflated data set expands more than %d times", ErrTooLarge, r.opts.MaxInflateRatio)}
		}
	}
	return nil
}

func (r *reader) peek(n int) ([]byte, error) {
	if br, ok := r.in.(*bufio.Reader); ok {
		return br.Peek(n)
	}
	return nil, errors.New("peek unsupported")
}

func (r *reader) full(b []byte, start int64, t Tag) error {
	if _, err := io.ReadFull(r, b); err != nil {
		var pe *ParseError
		if errors.As(err, &pe) {
			return err
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return &ParseError{Offset: start, Tag: t, Err: ErrTruncated}
		}
		return &ParseError{Offset: start, Tag: t, Err: err}
	}
	return nil
}

func (r *reader) skip(n int64, start int64, t Tag) error { return r.skipTo(n, start, t, nil) }

// skipTo skips n value bytes, writing them to w (the content digest) when w is not nil.
func (r *reader) skipTo(n int64, start int64, t Tag, w io.Writer) error {
	if r.opts.Size > 0 && !r.isDeflated() && r.pos+n > r.opts.Size {
		return &ParseError{Offset: start, Tag: t, Err: fmt.Errorf("%w: value length %d runs past the end of the %d-byte stream", ErrTruncated, n, r.opts.Size)}
	}
	var m int64
	var err error
	if br, ok := r.in.(*bufio.Reader); ok && r.inflated == nil && w != nil {
		// Hash the bytes where they lie in the buffer, then drop them.
		for m < n && err == nil {
			var b []byte
			b, err = br.Peek(int(min(n-m, int64(br.Size()))))
			w.Write(b)
			br.Discard(len(b))
			m += int64(len(b))
			r.pos += int64(len(b))
		}
		if errors.Is(err, io.EOF) {
			err = nil // reported as truncation below
		}
	} else if w != nil {
		m, err = io.CopyN(w, r, n)
	} else if br, ok := r.in.(*bufio.Reader); ok && r.inflated == nil {
		// Discard without copying the skipped bytes (pixel data) once more.
		for m < n && err == nil {
			step := n - m
			if step > 1<<30 {
				step = 1 << 30
			}
			var d int
			d, err = br.Discard(int(step))
			m += int64(d)
			r.pos += int64(d)
		}
		if errors.Is(err, io.EOF) {
			err = nil // reported as truncation below
		}
	} else {
		m, err = io.CopyN(io.Discard, r, n)
	}
	var pe *ParseError
	if errors.As(err, &pe) {
		return err
	}
	if err != nil || m != n {
		if err == nil || errors.Is(err, io.EOF) {
			return &ParseError{Offset: start, Tag: t, Err: ErrTruncated}
		}
		return &ParseError{Offset: start, Tag: t, Err: err}
	}
	return nil
}

func (r *reader) isDeflated() bool { return r.inflated != nil }

func (r *reader) retain(n int64, start int64, t Tag) error {
	r.retained += n
	if r.retained > r.opts.MaxRetained {
		return &ParseError{Offset: start, Tag: t, Err: ErrTooLarge}
	}
	return nil
}

func (r *reader) u16(b []byte) uint16 { return r.bo.Uint16(b) }
func (r *reader) u32(b []byte) uint32 { return r.bo.Uint32(b) }

// readMeta reads group 0002 (always explicit VR little endian).
func (r *reader) readMeta(meta *Dataset) error {
	r.bo, r.implicit = binary.LittleEndian, false
	end := int64(-1)
	for {
		if end >= 0 && r.pos >= end {
			break
		}
		b, err := r.peek(2)
		if err != nil {
			if errors.Is(err, io.EOF) && len(meta.Elements) > 0 {
				return nil
			}
			return &ParseError{Offset: r.pos, Err: fmt.Errorf("%w: meta information", ErrTruncated)}
		}
		if binary.LittleEndian.Uint16(b) != 0x0002 {
			break
		}
		e, _, err := r.readElement(0, nil)
		if err != nil {
			return err
		}
		meta.Elements = append(meta.Elements, e)
		if e.Tag == TagFileMetaInformationGroupLength {
			if v := e.Ints(); len(v) == 1 {
				end = r.pos + v[0]
			}
		}
	}
	if len(meta.Elements) == 0 {
		return &ParseError{Offset: r.pos, Err: fmt.Errorf("%w: no File Meta Information", ErrMalformed)}
	}
	return nil
}

func (r *reader) readBody(ts string) (*Dataset, error) {
	switch ts {
	case ImplicitVRLittleEndian:
		r.bo, r.implicit = binary.LittleEndian, true
	case ExplicitVRBigEndian:
		r.bo, r.implicit = binary.BigEndian, false
	case DeflatedExplicitVRLittleEndian:
		r.bo, r.implicit = binary.LittleEndian, false
		r.inflateStart = r.pos
		r.inflated = bufio.NewReaderSize(flate.NewReader(r.src), 64<<10)
		r.in = r.inflated
	default:
		if !strings.HasPrefix(ts, "1.2.") || len(ts) > 64 {
			return nil, &ParseError{Offset: r.pos, Tag: TagTransferSyntaxUID, Err: fmt.Errorf("%w: transfer syntax %q", ErrMalformed, ts)}
		}
		r.bo, r.implicit = binary.LittleEndian, false
	}
	ds := &Dataset{}
	r.dig = r.opts.Digest
	if err := r.readItems(ds, -1, 0, false); err != nil {
		return nil, err
	}
	if r.inflated != nil {
		// Bytes after the end of the deflate stream (padding) belong to the file.
		if _, err := io.Copy(io.Discard, r.src); err != nil {
			return nil, &ParseError{Offset: r.rawPos(), Err: err}
		}
	}
	return ds, nil
}

// readItems reads elements into ds until end (a stream offset), an item delimiter
// (inItem), or the end of the stream (top level, end < 0).
func (r *reader) readItems(ds *Dataset, end int64, depth int, inItem bool) error {
	for {
		if end >= 0 {
			if r.pos == end {
				return nil
			}
			if r.pos > end {
				return &ParseError{Offset: r.pos, Err: fmt.Errorf("%w: element overruns its item", ErrMalformed)}
			}
		}
		if end < 0 && !inItem {
			if _, err := r.peek(1); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return &ParseError{Offset: r.pos, Err: err}
			}
			if done, err := r.trailingZeros(); done || err != nil {
				return err
			}
		}
		e, delim, err := r.readElement(depth, ds)
		if err != nil {
			return err
		}
		if delim == TagItemDelimitationItem {
			if inItem && end < 0 {
				return nil
			}
			return &ParseError{Offset: r.pos - 8, Tag: delim, Err: fmt.Errorf("%w: unexpected item delimiter", ErrMalformed)}
		}
		if delim != 0 {
			if depth == 0 && delim == TagSequenceDelimitationItem && end < 0 && !inItem {
				// Stray trailing delimiter after the data set: tolerate.
				continue
			}
			return &ParseError{Offset: r.pos - 8, Tag: delim, Err: fmt.Errorf("%w: unexpected %s", ErrMalformed, delim)}
		}
		if err := r.retain(96, r.pos, e.Tag); err != nil {
			return err
		}
		ds.Elements = append(ds.Elements, e)
	}
}

var longVR = map[string]bool{"OB": true, "OD": true, "OF": true, "OL": true, "OV": true, "OW": true, "SQ": true, "UC": true, "UN": true, "UR": true, "UT": true, "SV": true, "UV": true}

// readElement reads one element. For item/delimiter tags at this level it returns the
// delimiter tag with a nil element.
func (r *reader) readElement(depth int, ds *Dataset) (*Element, Tag, error) {
	start := r.pos
	hdr := r.scratch[:4]
	if err := r.full(hdr, start, 0); err != nil {
		return nil, 0, err
	}
	t := NewTag(r.u16(hdr[0:2]), r.u16(hdr[2:4]))
	if t.Group() == 0xFFFE {
		if err := r.full(hdr, start, t); err != nil {
			return nil, 0, err
		}
		switch t {
		case TagItemDelimitationItem, TagSequenceDelimitationItem:
			return nil, t, nil
		}
		return nil, 0, &ParseError{Offset: start, Tag: t, Err: fmt.Errorf("%w: item outside a sequence", ErrMalformed)}
	}
	var vr string
	var length uint32
	if r.implicit {
		if err := r.full(hdr, start, t); err != nil {
			return nil, 0, err
		}
		length = r.u32(hdr)
		vr = DictVR(t)
		if vr == "xs" {
			vr = "US"
			if pr, ok := ds.Int(TagPixelRepresentation); ok && pr == 1 {
				vr = "SS"
			}
		}
	} else {
		if err := r.full(hdr, start, t); err != nil {
			return nil, 0, err
		}
		vr = string(hdr[0:2])
		if !isVR(vr) {
			return nil, 0, &ParseError{Offset: start, Tag: t, Err: fmt.Errorf("%w: invalid VR %q", ErrMalformed, strconv.Quote(vr))}
		}
		if longVR[vr] {
			if err := r.full(hdr, start, t); err != nil {
				return nil, 0, err
			}
			length = r.u32(hdr)
		} else {
			length = uint32(r.u16(hdr[2:4]))
		}
	}
	e := &Element{Tag: t, VR: vr, Length: length, Offset: r.pos, bigEndian: r.bo == binary.BigEndian}
	dig := r.dig
	if dig != nil && excludedFromDigest(t) {
		// Nothing of this element counts, nested items included.
		saved := dig
		r.dig, dig = nil, nil
		defer func() { r.dig = saved }()
	}
	if t == TagPixelData && length == UndefinedLength {
		if dig != nil {
			dig.header(t, 'F')
		}
		return e, 0, r.readFragments(e)
	}
	if vr == "SQ" || length == UndefinedLength {
		if depth+1 > r.opts.MaxDepth {
			return nil, 0, &ParseError{Offset: start, Tag: t, Err: fmt.Errorf("%w: sequences nested deeper than %d", ErrMalformed, r.opts.MaxDepth)}
		}
		if vr != "SQ" {
			// PS3.5 §6.2.2: UN (or any VR) with undefined length holds a sequence
			// encoded in implicit VR little endian.
			e.VR = "SQ"
			saved := r.implicit
			savedBO := r.bo
			r.implicit, r.bo = true, binary.LittleEndian
			defer func() { r.implicit, r.bo = saved, savedBO }()
		}
		if dig != nil {
			dig.header(t, 'S')
		}
		return e, 0, r.readSequence(e, depth+1, ds)
	}
	n := int64(length)
	if r.opts.Size > 0 && !r.isDeflated() && r.pos+n > r.opts.Size {
		return nil, 0, &ParseError{Offset: start, Tag: t, Err: fmt.Errorf("%w: value length %d runs past the end of the %d-byte stream", ErrTruncated, n, r.opts.Size)}
	}
	bulk := n > r.opts.BulkThreshold || t == TagPixelData || t == TagFloatPixelData || t == TagDoubleFloatPixelData
	if t == TagExtendedOffsetTable || t == TagExtendedOffsetTableLengths {
		bulk = n > 64<<20
	}
	if bulk {
		e.Bulk = true
		if dig == nil {
			return e, 0, r.skip(n, start, t)
		}
		dig.header(t, 'V')
		dig.length(n)
		dig.begin(vr, e.bigEndian)
		err := r.skipTo(n, start, t, dig)
		dig.end()
		return e, 0, err
	}
	if err := r.retain(n, start, t); err != nil {
		return nil, 0, err
	}
	e.Value = make([]byte, n)
	if err := r.full(e.Value, start, t); err != nil {
		return nil, 0, err
	}
	if dig != nil {
		dig.value(t, vr, e.bigEndian, e.Value)
	}
	return e, 0, nil
}

func isVR(s string) bool {
	switch s {
	case "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV":
		return true
	}
	return false
}

// readItemHeader reads an item or delimiter tag and its length (always implicit).
func (r *reader) readItemHeader() (Tag, uint32, int64, error) {
	start := r.pos
	b := r.scratch[:8]
	if err := r.full(b, start, 0); err != nil {
		return 0, 0, start, err
	}
	t := NewTag(r.u16(b[0:2]), r.u16(b[2:4]))
	return t, r.u32(b[4:8]), start, nil
}

func (r *reader) readSequence(e *Element, depth int, parent *Dataset) error {
	end := int64(-1)
	if e.Length != UndefinedLength {
		end = r.pos + int64(e.Length)
		if r.opts.Size > 0 && !r.isDeflated() && end > r.opts.Size {
			return &ParseError{Offset: r.pos, Tag: e.Tag, Err: fmt.Errorf("%w: sequence length %d runs past the end of the stream", ErrTruncated, e.Length)}
		}
	}
	for {
		if end >= 0 && r.pos >= end {
			if r.pos > end {
				return &ParseError{Offset: r.pos, Tag: e.Tag, Err: fmt.Errorf("%w: items overrun the sequence length", ErrMalformed)}
			}
			r.digestTag(TagSequenceDelimitationItem)
			return nil
		}
		t, l, start, err := r.readItemHeader()
		if err != nil {
			return err
		}
		switch t {
		case TagSequenceDelimitationItem:
			if end >= 0 {
				return &ParseError{Offset: start, Tag: e.Tag, Err: fmt.Errorf("%w: delimiter in a defined-length sequence", ErrMalformed)}
			}
			r.digestTag(TagSequenceDelimitationItem)
			return nil
		case TagItem:
		default:
			return &ParseError{Offset: start, Tag: e.Tag, Err: fmt.Errorf("%w: expected an item, found %s", ErrMalformed, t)}
		}
		item := &Dataset{parent: parent}
		if err := r.retain(64, start, e.Tag); err != nil {
			return err
		}
		r.digestTag(TagItem)
		if l == UndefinedLength {
			if err := r.readItems(item, -1, depth, true); err != nil {
				return err
			}
		} else {
			itemEnd := r.pos + int64(l)
			if end >= 0 && itemEnd > end {
				return &ParseError{Offset: start, Tag: e.Tag, Err: fmt.Errorf("%w: item length %d overruns the sequence", ErrMalformed, l)}
			}
			if r.opts.Size > 0 && !r.isDeflated() && itemEnd > r.opts.Size {
				return &ParseError{Offset: start, Tag: e.Tag, Err: fmt.Errorf("%w: item length %d runs past the end of the stream", ErrTruncated, l)}
			}
			if err := r.readItems(item, itemEnd, depth, true); err != nil {
				return err
			}
		}
		r.digestTag(TagItemDelimitationItem)
		e.Items = append(e.Items, item)
	}
}

// digestTag hashes an item or delimiter tag into the content digest, if one is kept.
func (r *reader) digestTag(t Tag) {
	if r.dig != nil {
		r.dig.tag(t)
	}
}

// readFragments reads encapsulated pixel data: items until the sequence delimiter.
func (r *reader) readFragments(e *Element) error {
	e.Bulk = true
	for i := 0; ; i++ {
		t, l, start, err := r.readItemHeader()
		if err != nil {
			return err
		}
		if t == TagSequenceDelimitationItem {
			r.digestTag(TagSequenceDelimitationItem)
			return nil
		}
		if t != TagItem || l == UndefinedLength {
			return &ParseError{Offset: start, Tag: TagPixelData, Err: fmt.Errorf("%w: expected a defined-length fragment item, found %s", ErrMalformed, t)}
		}
		if err := r.retain(32, start, TagPixelData); err != nil {
			return err
		}
		e.Fragments = append(e.Fragments, Range{Offset: r.pos, Length: int64(l)})
		if i == 0 && l > 0 && l <= 16<<20 && l%4 == 0 {
			if err := r.retain(int64(l), start, TagPixelData); err != nil {
				return err
			}
			e.BOT = make([]byte, l)
			if err := r.full(e.BOT, start, TagPixelData); err != nil {
				return err
			}
			continue
		}
		if i == 0 || r.dig == nil { // the Basic Offset Table is not content
			if err := r.skip(int64(l), start, TagPixelData); err != nil {
				return err
			}
			continue
		}
		r.dig.tag(TagItem)
		r.dig.length(int64(l))
		if err := r.skipTo(int64(l), start, TagPixelData, r.dig); err != nil {
			return err
		}
	}
}

// trailingZeros consumes the rest of the stream when it is all zero bytes (padding after
// a complete data set, which DCMTK and pydicom accept with a warning) and reports
// whether it did. Zeros followed by anything else are malformed; bytes that are not
// zero from the start are left to be read as elements.
func (r *reader) trailingZeros() (bool, error) {
	br, ok := r.in.(*bufio.Reader)
	if !ok {
		return false, nil
	}
	if b, _ := br.Peek(1); len(b) == 0 || b[0] != 0 {
		return false, nil // the usual case: an element's tag
	}
	start := r.pos
	for {
		b, err := br.Peek(4096)
		if len(b) == 0 && errors.Is(err, io.EOF) {
			r.zeros += r.pos - start
			return true, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return false, &ParseError{Offset: r.pos, Err: err}
		}
		if i := firstNonZero(b); i >= 0 {
			if r.pos == start {
				return false, nil // not padding: read as elements, as before
			}
			return false, &ParseError{Offset: r.pos + int64(i), Err: fmt.Errorf("%w: data after %d bytes of zero padding", ErrMalformed, r.pos+int64(i)-start)}
		}
		// The zeros count against a deflated stream's expansion limit.
		br.Discard(len(b))
		r.pos += int64(len(b))
		if err := r.inflateLimit(); err != nil {
			return false, err
		}
	}
}

func firstNonZero(b []byte) int {
	for i, c := range b {
		if c != 0 {
			return i
		}
	}
	return -1
}

// Sniff reports whether b (at least 132 bytes of a stream's start) looks like a PS3.10
// file.
func Sniff(b []byte) bool {
	return len(b) >= 132 && bytes.Equal(b[128:132], []byte("DICM"))
}
