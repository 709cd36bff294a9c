package dcm

import (
	"encoding/binary"
	"fmt"
	"io"
)

// ValueSource returns a reader over n stored bytes at offset off of the object a File
// was parsed from (an archive ranged read; for a deflated object, offsets of its
// inflated data set).
type ValueSource func(off, n int64) (io.ReadCloser, error)

// TranscodeToExplicit writes f, parsed from an Implicit VR Little Endian object, as a
// PS3.10 file in Explicit VR Little Endian (PS3.5 A.2), streaming: the values Parse
// kept are written from memory and the bulk values it skipped are copied from src, so
// no whole object is held. See WriteDataset.
func TranscodeToExplicit(w io.Writer, f *File, src ValueSource) error {
	if f.TransferSyntax != ImplicitVRLittleEndian || f.Deflated {
		return fmt.Errorf("dcm: transcode: only Implicit VR Little Endian is transcoded, not %s", f.TransferSyntax)
	}
	return WriteDataset(w, f, src, WriteOptions{})
}

// PixelWriter writes a replacement PixelData value: vr and length first (before any
// byte is written), then the bytes through write.
type PixelWriter struct {
	VR     string
	Length int64
	Write  func(w io.Writer) error
}

// WriteOptions say how WriteDataset encodes. The zero value writes a PS3.10 file in
// Explicit VR Little Endian.
type WriteOptions struct {
	// TransferSyntax is ExplicitVRLittleEndian (default) or ImplicitVRLittleEndian.
	TransferSyntax string
	// DataSetOnly leaves out the preamble and File Meta Information (a DIMSE data set).
	DataSetOnly bool
	// Replace holds top-level elements that take the place of (or are added beside)
	// those of the data set; a nil element removes the tag.
	Replace map[Tag]*Element
	// Pixel, when not nil, replaces the top-level PixelData (a decompressed copy).
	Pixel *PixelWriter
}

// WriteDataset writes f (parsed from an object in Implicit or Explicit VR Little
// Endian, Explicit VR Big Endian, or the inflated data set of a deflated one) in
// Implicit or Explicit VR Little Endian (PS3.5 A.1, A.2), streaming: the values Parse
// kept are written from memory and the bulk values it skipped are copied from src, so
// no whole object is held. Values of a big endian data set are byte-swapped by VR
// (PS3.5 7.3): US, SS, OW and AT by 16 bits (pixel data with VR OW too, whatever
// BitsAllocated, as PS3.5 defines OW; OB is not swapped), UL, SL, FL, OL and OF by 32
// bits, FD, OD, SV, UV and OV by 64 bits; UN is left as it is. Sequences and items are
// written with undefined lengths, and group lengths (gggg,0000), which would no longer
// be right, are left out. The meta information (when written) is kept but for
// TransferSyntaxUID. A value too long for a 16-bit length in its VR is written as UN
// (PS3.5 6.2.2 note).
func WriteDataset(w io.Writer, f *File, src ValueSource, o WriteOptions) error {
	ts := o.TransferSyntax
	if ts == "" {
		ts = ExplicitVRLittleEndian
	}
	if ts != ExplicitVRLittleEndian && ts != ImplicitVRLittleEndian {
		return fmt.Errorf("dcm: transcode: cannot write %s", ts)
	}
	t := &transcoder{w: w, src: src, implicit: ts == ImplicitVRLittleEndian}
	if !o.DataSetOnly {
		t.buf = EncodeMeta(MetaOf(f, ts))
	}
	top := f.Dataset.Elements
	if len(o.Replace) > 0 {
		ds := &Dataset{Elements: make([]*Element, 0, len(top)+len(o.Replace))}
		for _, e := range top {
			if r, ok := o.Replace[e.Tag]; !ok || r != nil {
				ds.Elements = append(ds.Elements, e)
			}
		}
		for _, e := range o.Replace {
			if e != nil {
				ds.Set(e)
			}
		}
		top = ds.Elements
	}
	pixel := o.Pixel
	writePixel := func() error {
		t.buf = append(t.buf, 0xE0, 0x7F, 0x10, 0x00)
		if t.implicit {
			t.buf = binary.LittleEndian.AppendUint32(t.buf, uint32(pixel.Length))
		} else {
			t.buf = append(t.buf, pixel.VR[0], pixel.VR[1], 0, 0)
			t.buf = binary.LittleEndian.AppendUint32(t.buf, uint32(pixel.Length))
		}
		if err := t.flush(); err != nil {
			return err
		}
		cw := &countWriter{w: w}
		if err := pixel.Write(cw); err != nil {
			return err
		}
		if cw.n != pixel.Length {
			return fmt.Errorf("dcm: transcode: wrote %d pixel bytes, announced %d", cw.n, pixel.Length)
		}
		pixel = nil
		return nil
	}
	for _, e := range top {
		if pixel != nil && e.Tag >= TagPixelData {
			if err := writePixel(); err != nil {
				return err
			}
			if e.Tag == TagPixelData {
				continue
			}
		}
		if err := t.element(e); err != nil {
			return err
		}
		if len(t.buf) > 256<<10 {
			if err := t.flush(); err != nil {
				return err
			}
		}
	}
	if pixel != nil {
		if err := writePixel(); err != nil {
			return err
		}
	}
	return t.flush()
}

// MetaOf is the File Meta Information of f with transfer syntax ts (Lumen's
// implementation identity when f has none).
func MetaOf(f *File, ts string) Meta {
	m := Meta{TransferSyntaxUID: ts, ImplementationClassUID: lumenImplementationClassUID}
	if f.Meta != nil && len(f.Meta.Elements) > 0 {
		m.MediaStorageSOPClassUID = f.Meta.String(TagMediaStorageSOPClassUID)
		m.MediaStorageSOPInstanceUID = f.Meta.String(TagMediaStorageSOPInstanceUID)
		m.ImplementationClassUID = f.Meta.String(TagImplementationClassUID)
		m.ImplementationVersionName = f.Meta.String(TagImplementationVersionName)
		m.SourceApplicationEntityTitle = f.Meta.String(TagSourceApplicationEntityTitle)
	}
	if m.ImplementationClassUID == "" {
		m.ImplementationClassUID = lumenImplementationClassUID
	}
	if m.MediaStorageSOPClassUID == "" && f.Dataset != nil {
		m.MediaStorageSOPClassUID = f.Dataset.String(TagSOPClassUID)
	}
	if m.MediaStorageSOPInstanceUID == "" && f.Dataset != nil {
		m.MediaStorageSOPInstanceUID = f.Dataset.String(TagSOPInstanceUID)
	}
	return m
}

// lumenImplementationClassUID is Lumen's Implementation Class UID (as ingest and dimse
// write it), for meta information written from scratch.
const lumenImplementationClassUID = "1.2.826.0.1.3680043.10.1234.1"

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type transcoder struct {
	w        io.Writer
	src      ValueSource
	buf      []byte
	implicit bool
}

func (t *transcoder) flush() error {
	if len(t.buf) == 0 {
		return nil
	}
	_, err := t.w.Write(t.buf)
	t.buf = t.buf[:0]
	return err
}

func (t *transcoder) dataset(d *Dataset) error {
	for _, e := range d.Elements {
		if err := t.element(e); err != nil {
			return err
		}
		if len(t.buf) > 256<<10 {
			if err := t.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *transcoder) element(e *Element) error {
	g := e.Tag.Group()
	if g == 0x0002 || e.Tag.Element() == 0x0000 {
		return nil // meta elements do not belong in the data set; group lengths change
	}
	b := binary.LittleEndian.AppendUint16(t.buf, g)
	b = binary.LittleEndian.AppendUint16(b, e.Tag.Element())
	if e.VR == "SQ" || len(e.Items) > 0 {
		if !t.implicit {
			b = append(b, 'S', 'Q', 0, 0)
		}
		t.buf = binary.LittleEndian.AppendUint32(b, UndefinedLength)
		for _, it := range e.Items {
			t.buf = append(t.buf, 0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF)
			if err := t.dataset(it); err != nil {
				return err
			}
			t.buf = append(t.buf, 0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0)
		}
		t.buf = append(t.buf, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0)
		return nil
	}
	if e.Length == UndefinedLength {
		// Encapsulated pixel data belongs to its compressed syntax: a caller converting
		// such an object replaces it (WriteOptions.Pixel).
		return fmt.Errorf("dcm: transcode: %s has an undefined length outside a sequence", e.Tag)
	}
	n := int64(e.Length)
	swap := 0
	if e.bigEndian {
		swap = swapUnit(e.VR)
	}
	vr := e.VR
	if len(vr) != 2 || vr == "xs" || vr == "ox" {
		vr = "UN"
	}
	if !longVR[vr] && n > 0xFFFF {
		vr = "UN"
	}
	switch {
	case t.implicit:
		b = binary.LittleEndian.AppendUint32(b, uint32(n))
	case longVR[vr]:
		b = append(b, vr[0], vr[1], 0, 0)
		b = binary.LittleEndian.AppendUint32(b, uint32(n))
	default:
		b = append(b, vr[0], vr[1])
		b = binary.LittleEndian.AppendUint16(b, uint16(n))
	}
	t.buf = b
	if !e.Bulk {
		if int64(len(e.Value)) != n {
			return fmt.Errorf("dcm: transcode: %s value of %d bytes, length %d", e.Tag, len(e.Value), n)
		}
		start := len(t.buf)
		t.buf = append(t.buf, e.Value...)
		if swap > 1 {
			swapUnits(t.buf[start:], swap)
		}
		return nil
	}
	if err := t.flush(); err != nil {
		return err
	}
	return t.copyValue(e.Tag, e.Offset, n, swap)
}

// copyValue copies n bytes at off from the source to the output, swapping words of
// size swap when it is over 1.
func (t *transcoder) copyValue(tag Tag, off, n int64, swap int) error {
	if t.src == nil {
		return fmt.Errorf("dcm: transcode: %s: no source for a value of %d bytes", tag, n)
	}
	rc, err := t.src(off, n)
	if err != nil {
		return err
	}
	defer rc.Close()
	var m int64
	if swap > 1 {
		buf := make([]byte, 64<<10)
		for m < n {
			k, err := io.ReadFull(rc, buf[:min(int64(len(buf)), n-m)])
			swapUnits(buf[:k], swap)
			if _, werr := t.w.Write(buf[:k]); werr != nil {
				return werr
			}
			m += int64(k)
			if err != nil {
				break
			}
		}
	} else {
		m, err = io.Copy(t.w, io.LimitReader(rc, n))
	}
	if err == nil && m != n {
		err = fmt.Errorf("dcm: transcode: %s: copied %d of %d bytes", tag, m, n)
	}
	return err
}
