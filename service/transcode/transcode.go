package transcode

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/lumenpacs/lumen/archive"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dcm/codec"
	"github.com/lumenpacs/lumen/index"
)

// Transfer syntaxes a conversion can produce (PS3.5 A.1, A.2, A.5), besides the stored
// one.
const (
	ImplicitVRLittleEndian = dcm.ImplicitVRLittleEndian
	ExplicitVRLittleEndian = dcm.ExplicitVRLittleEndian
	DeflatedExplicitVRLE   = dcm.DeflatedExplicitVRLittleEndian
	ExplicitVRBigEndian    = dcm.ExplicitVRBigEndian
)

// Store is what conversions read from the archive: whole objects and byte ranges.
type Store interface {
	Get(ctx context.Context, key string) (io.ReadCloser, archive.ObjectInfo, error)
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
}

// Object is a stored PS3.10 object.
type Object struct {
	// Key locates it in the Store.
	Key string
	// TransferSyntax is the syntax it is stored in.
	TransferSyntax string
	// Size is its length in bytes (0 when unknown).
	Size int64
	// Layout is the frame layout recorded at ingest, or nil (then the header is read
	// whole to find it).
	Layout *dcm.PixelLayout
	// Correct, when set, gives the top-level elements that the object's header must
	// carry when it is sent (index.Instance.Corrections: the corrected Patient module),
	// given the header as stored. Nil elements, and a nil answer, change nothing.
	Correct func(*dcm.Dataset) (map[dcm.Tag]*dcm.Element, error)
}

// ObjectOf is the stored object of an indexed instance, with its recorded layout, sent
// with the corrections of its index records (index.Instance.Corrections) when it has
// any.
func ObjectOf(in *index.Instance) Object {
	o := NewObject(in.BlobKey, in.TransferSyntaxUID, in.Size, in.PixelLayout)
	if in.Corrected {
		o.Correct = in.Corrections
	}
	return o
}

// NewObject describes a stored object from what the index records of it: its key,
// transfer syntax and size, and the JSON of its frame layout (nil or unreadable: the
// header is read to find it).
func NewObject(key, transferSyntax string, size int64, layoutJSON []byte) Object {
	o := Object{Key: key, TransferSyntax: transferSyntax, Size: size}
	if len(layoutJSON) > 0 {
		var pl dcm.PixelLayout
		if json.Unmarshal(layoutJSON, &pl) == nil {
			o.Layout = &pl
		}
	}
	return o
}

// ErrNoConversion reports an object that cannot be produced in the transfer syntax
// asked for: no conversion between the syntaxes, or its pixel data cannot be decoded.
var ErrNoConversion = errors.New("transcode: no conversion")

// ConversionError says why an object cannot be converted. It wraps ErrNoConversion.
type ConversionError struct {
	// From and To are the stored and the asked-for transfer syntax UIDs.
	From, To string
	// Reason is short and for a person (it fits a DIMSE error comment when it can).
	Reason string
}

// Error says what could not be converted and why.
func (e *ConversionError) Error() string {
	return "cannot convert " + e.From + " to " + e.To + ": " + e.Reason
}

// Unwrap returns ErrNoConversion.
func (e *ConversionError) Unwrap() error { return ErrNoConversion }

// StoreError is a failure to read the stored object (the object store is down, or the
// object is missing), as opposed to an object that cannot be converted.
type StoreError struct{ Err error }

// Error returns the store's error.
func (e *StoreError) Error() string { return "transcode: object store: " + e.Err.Error() }

// Unwrap returns the store's error.
func (e *StoreError) Unwrap() error { return e.Err }

// Native reports whether ts holds pixel data uncompressed (PS3.5 A.1 to A.5).
func Native(ts string) bool {
	switch ts {
	case ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLE, ExplicitVRBigEndian:
		return true
	}
	return false
}

// Outputs are the transfer syntaxes an object can be converted to, in order of
// preference when several are acceptable.
var Outputs = []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLE}

// Can reports whether an object stored in stored can go out in ts: as stored; or in
// Explicit or Implicit VR Little Endian or Deflated Explicit VR Little Endian from any
// uncompressed syntax and from every compressed one a decoder is registered for (in
// dcm/codec). Whether a given object's pixel data decode is known only when it is
// prepared.
func Can(stored, ts string) bool {
	switch {
	case stored == ts:
		return true
	case ts != ExplicitVRLittleEndian && ts != ImplicitVRLittleEndian && ts != DeflatedExplicitVRLE:
		return false
	}
	return Native(stored) || codec.Supported(stored)
}

// Choose picks the syntax to send an object stored in stored among those the peer
// accepted: the stored syntax, else the first of Outputs it accepted that Can produce;
// "" when none.
func Choose(stored string, accepted []string) string {
	for _, ts := range accepted {
		if ts == stored {
			return ts
		}
	}
	for _, ts := range Outputs {
		for _, a := range accepted {
			if a == ts && Can(stored, ts) {
				return ts
			}
		}
	}
	return ""
}

// cannot builds the ConversionError of a conversion without a codec.
func cannot(from, to string) error {
	reason := "no conversion between these syntaxes"
	if !Native(from) && !codec.Supported(from) {
		reason = "no decoder for the stored syntax"
	}
	return &ConversionError{From: from, To: to, Reason: reason}
}

// Conversion is an object prepared for sending in one transfer syntax. Write it once
// (WriteFile or WriteDataSet), or Close it.
type Conversion struct {
	// TransferSyntax is the syntax written.
	TransferSyntax string
	// Length is the number of bytes WriteFile writes when known in advance (the
	// object goes as stored), else -1.
	Length int64

	ctx      context.Context
	st       Store
	obj      Object
	stored   io.ReadCloser // the object as stored (no conversion)
	file     *dcm.File
	layout   *dcm.PixelLayout
	first    []byte                   // the first frame decoded (compressed objects)
	firstPhc string                   // its colour model
	repl     map[dcm.Tag]*dcm.Element // the header's corrections (Object.Correct)
	// The object goes as stored but is not open yet (PrepareClosed): edits are its
	// header's corrections, if any.
	closed bool
	edits  []dcm.Edit
}

// Prepare opens the conversion of obj to ts. It fails before anything is written
// when the conversion cannot be done: a *ConversionError for a pair of syntaxes
// without a conversion, an object whose stored bytes do not parse, or compressed pixel
// data whose first frame does not decode (the frames after it are decoded while
// writing, one at a time); a *StoreError when the object cannot be read.
func Prepare(ctx context.Context, st Store, obj Object, ts string) (*Conversion, error) {
	return prepare(ctx, st, obj, ts, true)
}

// PrepareClosed is Prepare for a conversion to be written later, one of many: when the
// object goes as stored (its header edited in place or not), the stored object is not
// opened until Open (or the write), so that many prepared conversions hold no open
// file while the work of Prepare (the header read, corrected and its edits computed)
// is done once; what it keeps is the edits, a few bytes. Other conversions are
// returned open, as Prepare returns them.
func PrepareClosed(ctx context.Context, st Store, obj Object, ts string) (*Conversion, error) {
	return prepare(ctx, st, obj, ts, false)
}

// Open opens the stored object of a conversion PrepareClosed returned closed (a
// *StoreError when it cannot be); for other conversions it does nothing.
func (c *Conversion) Open() error {
	if !c.closed {
		return nil
	}
	rc, _, err := c.st.Get(c.ctx, c.obj.Key)
	if err != nil {
		return &StoreError{err}
	}
	c.closed = false
	if c.edits != nil {
		c.stored, c.edits = editedObject(rc, c.edits), nil
	} else {
		c.stored = rc
	}
	return nil
}

func prepare(ctx context.Context, st Store, obj Object, ts string, open bool) (*Conversion, error) {
	c := &Conversion{TransferSyntax: ts, Length: -1, ctx: ctx, st: st, obj: obj}
	var f *dcm.File
	if obj.Correct != nil {
		if ts != obj.TransferSyntax && !Can(obj.TransferSyntax, ts) {
			return nil, cannot(obj.TransferSyntax, ts)
		}
		var err error
		if f, err = parseStored(ctx, st, obj, ts, true); err != nil {
			return nil, err
		}
		if c.repl, err = obj.Correct(f.Dataset); err != nil {
			return nil, &ConversionError{From: obj.TransferSyntax, To: ts, Reason: "the corrected patient attributes cannot be written into it: " + strings.TrimPrefix(err.Error(), "index: ")}
		}
		switch {
		case len(c.repl) == 0:
			f = nil // as stored
		case ts == obj.TransferSyntax && !f.Deflated:
			// The header edited in place: the transfer syntax, the pixel data and
			// every other byte stay as stored.
			edits, err := dcm.HeaderEdits(f, c.repl)
			if err != nil {
				return nil, &ConversionError{From: obj.TransferSyntax, To: ts, Reason: "the corrected patient attributes cannot be written into it: " + strings.TrimPrefix(err.Error(), "dcm: ")}
			}
			if obj.Size > 0 {
				c.Length = obj.Size + dcm.EditsDelta(edits)
			}
			// What Open needs: the key and the edits.
			c.repl, c.closed, c.edits = nil, true, edits
			c.obj.Layout, c.obj.Correct = nil, nil
			if !open {
				return c, nil
			}
			if err := c.Open(); err != nil {
				return nil, err
			}
			return c, nil
		case f.Size < obj.Size && !f.Deflated:
			// Only the header was parsed; a conversion reads the object whole.
			if f, err = parseStored(ctx, st, obj, ts, false); err != nil {
				return nil, err
			}
		}
	}
	if ts == obj.TransferSyntax && f == nil {
		if obj.Size > 0 {
			c.Length = obj.Size
		}
		c.repl, c.closed = nil, true
		c.obj.Layout, c.obj.Correct = nil, nil
		if !open {
			return c, nil
		}
		if err := c.Open(); err != nil {
			return nil, err
		}
		return c, nil
	}
	if !Can(obj.TransferSyntax, ts) {
		return nil, cannot(obj.TransferSyntax, ts)
	}
	if f == nil {
		var err error
		if f, err = parseStored(ctx, st, obj, ts, false); err != nil {
			return nil, err
		}
	}
	c.file = f
	if pd := f.Dataset.Get(dcm.TagPixelData); pd != nil && pd.Length == dcm.UndefinedLength {
		pl := f.PixelLayout()
		if pl == nil || !pl.Encapsulated {
			return nil, &ConversionError{From: obj.TransferSyntax, To: ts, Reason: "the compressed frames cannot be located"}
		}
		c.layout = pl
		first, phc, err := NativeFrame(f, pl, 0, c.readRange)
		if err != nil {
			var se *StoreError
			if errors.As(err, &se) {
				return nil, err
			}
			return nil, &ConversionError{From: obj.TransferSyntax, To: ts, Reason: decodeReason(err)}
		}
		c.first, c.firstPhc = first, phc
	}
	return c, nil
}

// editedObject reads the stored object rc with its header edits applied: the bytes
// up to the end of the last edit through dcm.EditedReader, then rc itself, so that
// the rest of the object (the pixel data) is copied from rc as it is: io.Copy
// reaches rc's own WriteTo, or the writer's ReadFrom with rc (an *os.File of the
// filesystem store goes to a network connection by sendfile).
func editedObject(rc io.ReadCloser, edits []dcm.Edit) io.ReadCloser {
	var end int64
	for _, e := range edits {
		end = max(end, e.Offset+e.Length)
	}
	return storedReader{io.MultiReader(dcm.EditedReader(io.LimitReader(rc, end), 0, edits), rc), rc}
}

// storedReader is a reader of stored bytes and what closes it. Its WriteTo is the
// reader's (io.MultiReader's: each part copied by io.Copy in turn).
type storedReader struct {
	io.Reader
	io.Closer
}

// WriteTo copies the reader to w.
func (r storedReader) WriteTo(w io.Writer) (int64, error) { return io.Copy(w, r.Reader) }

// parseStored parses the stored object: only the bytes before its pixel data when
// headerOnly and its layout says where they end, else the whole object (bulk values
// skipped).
func parseStored(ctx context.Context, st Store, obj Object, ts string, headerOnly bool) (*dcm.File, error) {
	var rc io.ReadCloser
	var err error
	size := sizeUnlessDeflated(obj)
	if headerOnly && obj.TransferSyntax != DeflatedExplicitVRLE && obj.Layout != nil && obj.Layout.HeaderEnd > 0 {
		rc, err = st.GetRange(ctx, obj.Key, 0, obj.Layout.HeaderEnd)
		size = obj.Layout.HeaderEnd
	} else {
		rc, _, err = st.Get(ctx, obj.Key)
	}
	if err != nil {
		return nil, &StoreError{err}
	}
	f, err := dcm.Parse(rc, &dcm.Options{BulkThreshold: 4 << 20, Size: size})
	rc.Close()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &ConversionError{From: obj.TransferSyntax, To: ts, Reason: "the stored object does not parse: " + strings.TrimPrefix(err.Error(), "dcm: ")}
	}
	return f, nil
}

// CheckFrames decodes, and drops, every frame of compressed pixel data after the first
// (which Prepare decoded), one at a time, so that a transfer that cannot be broken off
// cleanly midway (a DIMSE C-STORE: only an A-ABORT ends a data set half sent) fails
// before it begins: a *ConversionError names the frame. It does nothing for other
// conversions, and costs one more decoding of multi-frame objects.
func (c *Conversion) CheckFrames() error {
	if c.layout == nil || c.file == nil {
		return nil
	}
	for i := 1; i < c.layout.NumberOfFrames; i++ {
		if _, _, err := NativeFrame(c.file, c.layout, i, c.readRange); err != nil {
			var se *StoreError
			if errors.As(err, &se) {
				return err
			}
			return &ConversionError{From: c.obj.TransferSyntax, To: c.TransferSyntax, Reason: fmt.Sprintf("frame %d: %s", i+1, decodeReason(err))}
		}
		if err := c.ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// sizeUnlessDeflated is the stored size for the parser's length checks (which do not
// apply to a deflated data set's offsets).
func sizeUnlessDeflated(obj Object) int64 {
	if obj.TransferSyntax == DeflatedExplicitVRLE {
		return 0
	}
	return obj.Size
}

// decodeReason says briefly why a frame did not decode (the decoders' errors, which
// wrap codec.ErrUnsupported for features they lack and for corrupt streams alike).
func decodeReason(err error) string {
	s := err.Error()
	for _, p := range []string{"codec: ", "render: ", "dcm: ", "no decoder: "} {
		s = strings.ReplaceAll(s, p, "")
	}
	return "cannot decode: " + s
}

// Close releases what Prepare opened. It is safe after a Write.
func (c *Conversion) Close() error {
	c.closed, c.edits = false, nil
	if c.stored != nil {
		err := c.stored.Close()
		c.stored = nil
		return err
	}
	c.first = nil
	return nil
}

// DataSetReader returns, when the object goes as stored (its header edited in place
// or not), a reader of its data set without preamble and File Meta Information that
// reads the store directly, so that a sender reads the bytes in blocks of its own size,
// without a copy through a pipe. ok is false for a conversion, which WriteDataSet
// writes. The reader's errors other than io.EOF are *StoreError; it is valid until
// Close.
func (c *Conversion) DataSetReader() (r io.Reader, ok bool, err error) {
	if c.closed {
		if err := c.Open(); err != nil {
			return nil, true, err
		}
	}
	if c.stored == nil {
		return nil, false, nil
	}
	// A small buffer (one is made per object sent): reads larger than it go straight
	// to the store once the bytes after the meta information have been taken.
	br := bufio.NewReaderSize(c.stored, 4<<10)
	if err := skipMeta(br); err != nil {
		return nil, true, err
	}
	return storeErrors{br}, true, nil
}

// storeErrors reads r, its errors but io.EOF wrapped in *StoreError.
type storeErrors struct{ r io.Reader }

func (s storeErrors) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = &StoreError{err}
	}
	return n, err
}

// WriteFile writes the object as a PS3.10 file.
func (c *Conversion) WriteFile(w io.Writer) error { return c.write(w, false) }

// WriteDataSet writes the object's data set without preamble and meta information,
// as a DIMSE C-STORE carries it.
func (c *Conversion) WriteDataSet(w io.Writer) error { return c.write(w, true) }

func (c *Conversion) write(w io.Writer, dataSetOnly bool) error {
	if c.closed {
		if err := c.Open(); err != nil {
			return err
		}
	}
	if c.stored != nil {
		defer c.Close()
		var r io.Reader = c.stored
		if dataSetOnly {
			br := bufio.NewReaderSize(c.stored, 64<<10)
			if err := skipMeta(br); err != nil {
				return err
			}
			r = br
		}
		if _, err := io.Copy(w, r); err != nil {
			return &StoreError{err}
		}
		return nil
	}
	if c.file == nil {
		return errors.New("transcode: conversion already written")
	}
	defer func() { c.file, c.first = nil, nil }()
	o := dcm.WriteOptions{TransferSyntax: c.TransferSyntax, DataSetOnly: dataSetOnly}
	if c.layout != nil {
		o.Replace, o.Pixel = c.decompressed()
	}
	if len(c.repl) > 0 {
		if o.Replace == nil {
			o.Replace = make(map[dcm.Tag]*dcm.Element, len(c.repl))
		}
		for t, e := range c.repl {
			o.Replace[t] = e
		}
	}
	var src dcm.ValueSource = c.openRange
	if c.file.Deflated {
		z := &inflater{ctx: c.ctx, st: c.st, key: c.obj.Key, start: c.file.DatasetOffset}
		defer z.close()
		src = z.open
	}
	if c.TransferSyntax != DeflatedExplicitVRLE {
		return dcm.WriteDataset(w, c.file, src, o)
	}
	// PS3.5 A.5: the data set in Explicit VR Little Endian, deflated (RFC 1951, no
	// zlib header); the meta information is not.
	if !dataSetOnly {
		if _, err := w.Write(dcm.EncodeMeta(dcm.MetaOf(c.file, DeflatedExplicitVRLE))); err != nil {
			return err
		}
	}
	fw, _ := flate.NewWriter(w, flate.DefaultCompression)
	o.TransferSyntax, o.DataSetOnly = ExplicitVRLittleEndian, true
	if err := dcm.WriteDataset(fw, c.file, src, o); err != nil {
		return err
	}
	return fw.Close()
}

// decompressed returns the attributes and the pixel data of the decompressed copy of
// an encapsulated object: native pixel data, decoded one frame at a time (the first
// was decoded by Prepare), with PhotometricInterpretation as the decoder produced it,
// PlanarConfiguration 0 and no Extended Offset Table.
func (c *Conversion) decompressed() (map[dcm.Tag]*dcm.Element, *dcm.PixelWriter) {
	f, pl := c.file, c.layout
	p0, _ := codec.PixelsOf(f.Dataset, f.TransferSyntax) // Prepare decoded frame 0 with it
	frameBytes := int64(len(c.first))
	replace := map[dcm.Tag]*dcm.Element{
		dcm.TagExtendedOffsetTable:        nil,
		dcm.TagExtendedOffsetTableLengths: nil,
	}
	if c.firstPhc != p0.Photometric {
		replace[dcm.TagPhotometricInterpretation] = dcm.NewString(dcm.TagPhotometricInterpretation, "CS", c.firstPhc)
	}
	if p0.SamplesPerPixel == 3 {
		replace[dcm.TagPlanarConfiguration] = dcm.NewUS(dcm.TagPlanarConfiguration, 0)
	}
	vr := "OW"
	if p0.BitsAllocated <= 8 {
		vr = "OB"
	}
	total := frameBytes * int64(pl.NumberOfFrames)
	pad := total % 2
	return replace, &dcm.PixelWriter{VR: vr, Length: total + pad, Write: func(w io.Writer) error {
		for i := 0; i < pl.NumberOfFrames; i++ {
			b := c.first
			if i > 0 {
				var err error
				if b, _, err = NativeFrame(f, pl, i, c.readRange); err != nil {
					return &FrameError{Frame: i + 1, Err: err}
				}
			}
			c.first = nil
			if int64(len(b)) != frameBytes {
				return &FrameError{Frame: i + 1, Err: fmt.Errorf("decoded to %d bytes, frame 1 to %d", len(b), frameBytes)}
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		if pad == 1 {
			_, err := w.Write([]byte{0})
			return err
		}
		return nil
	}}
}

// FrameError reports a frame after the first that did not decode while the object was
// being written.
type FrameError struct {
	Frame int // 1-based
	Err   error
}

// Error names the frame.
func (e *FrameError) Error() string { return fmt.Sprintf("transcode: frame %d: %v", e.Frame, e.Err) }

// Unwrap returns the decoder's error.
func (e *FrameError) Unwrap() error { return e.Err }

// openRange reads stored bytes by range.
func (c *Conversion) openRange(off, n int64) (io.ReadCloser, error) {
	rc, err := c.st.GetRange(c.ctx, c.obj.Key, off, n)
	if err != nil {
		return nil, &StoreError{err}
	}
	return rc, nil
}

func (c *Conversion) readRange(off, n int64) ([]byte, error) {
	return readAll(c.openRange(off, n))
}

func readAll(rc io.ReadCloser, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, &StoreError{err}
	}
	return b, nil
}

// inflater reads a deflated object's inflated data set forward, by offsets as the
// parser recorded them (from the data set's start in the stored file), inflating it
// again from the start when asked for an earlier offset.
type inflater struct {
	ctx   context.Context
	st    Store
	key   string
	start int64 // DatasetOffset: where the deflated bytes begin

	rc  io.ReadCloser
	r   io.Reader
	pos int64
}

func (z *inflater) seek(off int64) error {
	if z.r == nil || off < z.pos {
		z.close()
		rc, _, err := z.st.Get(z.ctx, z.key)
		if err != nil {
			return &StoreError{err}
		}
		br := bufio.NewReaderSize(rc, 64<<10)
		if _, err := br.Discard(int(z.start)); err != nil {
			rc.Close()
			return &StoreError{err}
		}
		z.rc, z.r, z.pos = rc, bufio.NewReaderSize(flate.NewReader(br), 64<<10), z.start
	}
	if off > z.pos {
		n, err := io.CopyN(io.Discard, z.r, off-z.pos)
		z.pos += n
		if err != nil {
			return fmt.Errorf("transcode: inflating: %w", err)
		}
	}
	return nil
}

// open is a dcm.ValueSource over the inflated data set.
func (z *inflater) open(off, n int64) (io.ReadCloser, error) {
	if err := z.seek(off); err != nil {
		return nil, err
	}
	return io.NopCloser(&inflated{z: z, n: n}), nil
}

// read is a RangeReader over the inflated data set.
func (z *inflater) read(off, n int64) ([]byte, error) {
	if err := z.seek(off); err != nil {
		return nil, err
	}
	b := make([]byte, n)
	m, err := io.ReadFull(z.r, b)
	z.pos += int64(m)
	if err != nil {
		return nil, fmt.Errorf("transcode: inflating: %w", err)
	}
	return b, nil
}

func (z *inflater) close() {
	if z.rc != nil {
		z.rc.Close()
		z.rc, z.r = nil, nil
	}
}

// inflated reads n bytes of the inflater, advancing its position.
type inflated struct {
	z *inflater
	n int64
}

func (r *inflated) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	m, err := r.z.r.Read(p)
	r.n -= int64(m)
	r.z.pos += int64(m)
	return m, err
}

// Pixels is an instance opened for reading its frames one at a time.
type Pixels struct {
	// File is its header (the values a renderer needs).
	File *dcm.File
	// Layout locates its frames (in the inflated data set of a deflated object).
	Layout *dcm.PixelLayout

	read RangeReader
	z    *inflater
}

// OpenPixels reads the header of obj (only the bytes before the pixel data when its
// layout is known) and locates its frames. A deflated object is read forward through
// an inflater, one frame at a time: it is never inflated whole in memory.
func OpenPixels(ctx context.Context, st Store, obj Object) (*Pixels, error) {
	p := &Pixels{}
	var rc io.ReadCloser
	var err error
	deflated := obj.TransferSyntax == DeflatedExplicitVRLE
	if !deflated && obj.Layout != nil && obj.Layout.HeaderEnd > 0 {
		rc, err = st.GetRange(ctx, obj.Key, 0, obj.Layout.HeaderEnd)
	} else {
		rc, _, err = st.Get(ctx, obj.Key)
	}
	if err != nil {
		return nil, &StoreError{err}
	}
	p.File, err = dcm.Parse(rc, &dcm.Options{BulkThreshold: 4 << 20})
	rc.Close()
	if err != nil {
		return nil, &ConversionError{From: obj.TransferSyntax, To: ExplicitVRLittleEndian, Reason: "the stored object does not parse: " + strings.TrimPrefix(err.Error(), "dcm: ")}
	}
	switch {
	case deflated:
		g := *p.File
		g.Deflated = false // offsets of the inflated data set, which the inflater reads
		p.Layout = g.PixelLayout()
		p.z = &inflater{ctx: ctx, st: st, key: obj.Key, start: p.File.DatasetOffset}
		p.read = p.z.read
	case obj.Layout != nil:
		p.Layout = obj.Layout
	default:
		p.Layout = p.File.PixelLayout()
	}
	if p.read == nil {
		p.read = func(off, n int64) ([]byte, error) { return readAll(st.GetRange(ctx, obj.Key, off, n)) }
	}
	if p.Layout == nil {
		return nil, &ConversionError{From: obj.TransferSyntax, To: ExplicitVRLittleEndian, Reason: "the instance has no pixel data that can be located"}
	}
	return p, nil
}

// Close releases the inflater of a deflated object.
func (p *Pixels) Close() {
	if p.z != nil {
		p.z.close()
	}
}

// FrameRanges locates frame i (0-based) of native or encapsulated pixel data. A frame
// of bit-packed (1-bit) pixel data is located when it starts on a byte boundary; bits
// says how many bits of its last byte belong to it (8 but for such a frame).
func (p *Pixels) FrameRanges(i int) (ranges []dcm.Range, bits int, err error) {
	pl := p.Layout
	if pl.Encapsulated || pl.FrameLength > 0 {
		r, err := pl.Frame(i)
		return r, 8, err
	}
	if i < 0 || i >= pl.NumberOfFrames {
		return nil, 0, fmt.Errorf("frame %d out of range (1..%d)", i+1, pl.NumberOfFrames)
	}
	rows, _ := p.File.Dataset.Int(dcm.TagRows)
	cols, _ := p.File.Dataset.Int(dcm.TagColumns)
	spp, ok := p.File.Dataset.Int(dcm.TagSamplesPerPixel)
	if !ok {
		spp = 1
	}
	frameBits := rows * cols * spp
	if ba, _ := p.File.Dataset.Int(dcm.TagBitsAllocated); ba != 1 || frameBits <= 0 || frameBits > 1<<40 {
		return nil, 0, fmt.Errorf("frame boundaries unknown")
	}
	if pd := p.File.Dataset.Get(dcm.TagPixelData); pd != nil && pd.VR == "OW" && pd.BigEndian() {
		return nil, 0, fmt.Errorf("bit-packed pixel data in big endian words (OW) are not served by frame")
	}
	start := int64(i) * frameBits
	if start%8 != 0 {
		return nil, 0, fmt.Errorf("frame %d of the bit-packed pixel data does not start on a byte boundary (%d bits per frame)", i+1, frameBits)
	}
	r := dcm.Range{Offset: pl.Offset + start/8, Length: (frameBits + 7) / 8}
	if r.Offset+r.Length > pl.Offset+pl.Length {
		return nil, 0, fmt.Errorf("frame %d runs past the pixel data", i+1)
	}
	bits = int(frameBits % 8)
	if bits == 0 {
		bits = 8
	}
	return []dcm.Range{r}, bits, nil
}

// Frame returns the stored bytes of frame i (0-based): a native frame (of a deflated
// object, inflated; of bit-packed data, with the bits past the frame cleared), or the
// fragments of a compressed one.
func (p *Pixels) Frame(i int) ([]byte, error) {
	ranges, bits, err := p.FrameRanges(i)
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, r := range ranges {
		b, err := p.read(r.Offset, r.Length)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	if bits < 8 && len(out) > 0 {
		out[len(out)-1] &= 1<<bits - 1
	}
	return out, nil
}

// NativeFrame decodes frame i (0-based) to uncompressed pixel data and says the colour
// model the decoder produced.
func (p *Pixels) NativeFrame(i int) ([]byte, string, error) {
	return NativeFrame(p.File, p.Layout, i, p.read)
}

// ReadRange reads stored bytes (of the inflated data set, for a deflated object).
func (p *Pixels) ReadRange(off, n int64) ([]byte, error) { return p.read(off, n) }

// Check tells, reading little, whether obj can be sent in ts: a *ConversionError when
// the syntaxes have no conversion or, for compressed pixel data, when its first frame
// does not decode (only the header and that frame are read); nil otherwise (the
// conversion of uncompressed data does not depend on its content).
func Check(ctx context.Context, st Store, obj Object, ts string) error {
	switch {
	case ts == obj.TransferSyntax:
		return nil
	case !Can(obj.TransferSyntax, ts):
		return cannot(obj.TransferSyntax, ts)
	case Native(obj.TransferSyntax):
		return nil
	}
	p, err := OpenPixels(ctx, st, obj)
	if err != nil {
		var ce *ConversionError
		if errors.As(err, &ce) {
			ce.To = ts
		}
		return err
	}
	defer p.Close()
	if !p.Layout.Encapsulated {
		return nil
	}
	if _, _, err := p.NativeFrame(0); err != nil {
		var se *StoreError
		if errors.As(err, &se) {
			return err
		}
		return &ConversionError{From: obj.TransferSyntax, To: ts, Reason: decodeReason(err)}
	}
	return nil
}

// RangeReader reads n stored bytes of an object at offset off.
type RangeReader func(off, n int64) ([]byte, error)

// NativeFrame decodes frame i (0-based) of an object to uncompressed pixel data and
// says the colour model the decoder produced (JPEG baseline YBR comes out RGB).
func NativeFrame(f *dcm.File, layout *dcm.PixelLayout, i int, read RangeReader) ([]byte, string, error) {
	p, err := codec.PixelsOf(f.Dataset, f.TransferSyntax)
	if err != nil {
		return nil, "", err
	}
	if i < 0 || i >= p.Frames {
		return nil, "", fmt.Errorf("codec: frame %d out of range (1..%d)", i+1, p.Frames)
	}
	ranges, err := layout.Frame(i)
	if err != nil {
		return nil, "", err
	}
	var data []byte
	for _, r := range ranges {
		b, err := read(r.Offset, r.Length)
		if err != nil {
			return nil, "", err
		}
		data = append(data, b...)
	}
	fr, err := codec.Decode(f.TransferSyntax, p, data)
	if err != nil {
		return nil, "", err
	}
	b, err := codec.NativeBytes(fr, p)
	return b, fr.Photometric, err
}

// skipMeta reads the preamble and the File Meta Information of a PS3.10 stream, with
// or without its group length: br is then at the data set.
func skipMeta(br *bufio.Reader) error {
	if _, err := br.Discard(128); err != nil {
		return fmt.Errorf("%w: %w", ErrNotPart10, err)
	}
	if b, err := br.Peek(4); err != nil || string(b) != "DICM" {
		return fmt.Errorf("%w: no DICM prefix", ErrNotPart10)
	}
	br.Discard(4)
	for total := 0; ; {
		b, err := br.Peek(8)
		if err != nil || binary.LittleEndian.Uint16(b) != 0x0002 {
			return nil // the data set (or an empty one) begins
		}
		n := 8 + int(binary.LittleEndian.Uint16(b[6:8]))
		switch string(b[4:6]) {
		case "OB", "OW", "OF", "SQ", "UT", "UN", "UC", "UR", "OD", "OL", "OV", "SV", "UV":
			if b, err = br.Peek(12); err != nil {
				return fmt.Errorf("%w: %w", ErrNotPart10, err)
			}
			n = 12 + int(binary.LittleEndian.Uint32(b[8:12]))
		}
		if total += n; n < 0 || total > 1<<16 {
			return fmt.Errorf("%w: meta information over 64 KiB", ErrNotPart10)
		}
		if _, err := br.Discard(n); err != nil {
			return fmt.Errorf("%w: %w", ErrNotPart10, err)
		}
	}
}

// ErrNotPart10 reports a stream that does not start with a PS3.10 header.
var ErrNotPart10 = errors.New("transcode: not a PS3.10 stream")

// SkipMeta reads the preamble and File Meta Information of a PS3.10 stream and returns
// the transfer syntax the meta information names; r is then at the data set.
func SkipMeta(r io.Reader) (string, error) {
	var hdr [144]byte // preamble, DICM, and (0002,0000) UL 4 explicit
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return "", fmt.Errorf("%w: %w", ErrNotPart10, err)
	}
	if string(hdr[128:132]) != "DICM" || binary.LittleEndian.Uint32(hdr[132:136]) != 0x00000002 || string(hdr[136:138]) != "UL" {
		return "", fmt.Errorf("%w: no DICM prefix or no meta group length", ErrNotPart10)
	}
	n := binary.LittleEndian.Uint32(hdr[140:144])
	if n > 1<<16 {
		return "", fmt.Errorf("%w: meta information of %d bytes", ErrNotPart10, n)
	}
	meta := make([]byte, n)
	if _, err := io.ReadFull(r, meta); err != nil {
		return "", fmt.Errorf("%w: %w", ErrNotPart10, err)
	}
	f, err := dcm.ParseDataset(io.MultiReader(bytes.NewReader(hdr[132:144]), bytes.NewReader(meta)), dcm.ExplicitVRLittleEndian, 0, nil)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNotPart10, err)
	}
	ts := f.Dataset.String(dcm.TagTransferSyntaxUID)
	if ts == "" {
		return "", fmt.Errorf("%w: the meta information names no transfer syntax", ErrNotPart10)
	}
	return ts, nil
}
