package dcm

import (
	"encoding/binary"
	"fmt"
	"io"
)

// ValueSource returns a reader over n stored bytes at offset off of the object a File
// was parsed from (an archive ranged read).
type ValueSource func(off, n int64) (io.ReadCloser, error)

// TranscodeToExplicit writes f, parsed from an Implicit VR Little Endian object, as a
// PS3.10 file in Explicit VR Little Endian (PS3.5 A.2), streaming: the values Parse
// kept are written from memory and the bulk values it skipped are copied from src, so
// no whole object is held. The meta information is kept but for TransferSyntaxUID;
// sequences and items are written with undefined lengths. Value bytes are the same in
// both syntaxes; only element headers change. A value too long for a 16-bit length in
// its VR is written as UN (PS3.5 6.2.2 note).
func TranscodeToExplicit(w io.Writer, f *File, src ValueSource) error {
	if f.TransferSyntax != ImplicitVRLittleEndian || f.Deflated {
		return fmt.Errorf("dcm: transcode: only Implicit VR Little Endian is transcoded, not %s", f.TransferSyntax)
	}
	return WriteExplicit(w, f, src, nil, nil)
}

// PixelWriter writes a replacement PixelData value: vr and length first (before any
// byte is written), then the bytes through write.
type PixelWriter struct {
	VR     string
	Length int64
	Write  func(w io.Writer) error
}

// WriteExplicit writes f (parsed from a little endian object) as a PS3.10 file in
// Explicit VR Little Endian, streaming: kept values from memory, skipped ones from src.
// Elements in replace take the place of (or are added beside) those of the data set at
// top level; when pixel is not nil it replaces the top-level PixelData (for a decompressed
// copy). The meta information is kept but for TransferSyntaxUID.
func WriteExplicit(w io.Writer, f *File, src ValueSource, replace map[Tag]*Element, pixel *PixelWriter) error {
	if f.Deflated || f.TransferSyntax == ExplicitVRBigEndian {
		return fmt.Errorf("dcm: transcode: %s data sets are not rewritten", f.TransferSyntax)
	}
	meta := Meta{TransferSyntaxUID: ExplicitVRLittleEndian}
	if f.Meta != nil {
		meta.MediaStorageSOPClassUID = f.Meta.String(TagMediaStorageSOPClassUID)
		meta.MediaStorageSOPInstanceUID = f.Meta.String(TagMediaStorageSOPInstanceUID)
		meta.ImplementationClassUID = f.Meta.String(NewTag(0x0002, 0x0012))
		meta.ImplementationVersionName = f.Meta.String(NewTag(0x0002, 0x0013))
		meta.SourceApplicationEntityTitle = f.Meta.String(NewTag(0x0002, 0x0016))
	}
	t := &transcoder{w: w, src: src, buf: EncodeMeta(meta)}
	top := &Dataset{Elements: f.Dataset.Elements}
	if len(replace) > 0 {
		top = &Dataset{Elements: append([]*Element(nil), f.Dataset.Elements...)}
		for _, e := range replace {
			top.Set(e)
		}
	}
	writePixel := func() error {
		t.buf = append(t.buf, 0xE0, 0x7F, 0x10, 0x00, pixel.VR[0], pixel.VR[1], 0, 0)
		t.buf = binary.LittleEndian.AppendUint32(t.buf, uint32(pixel.Length))
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
	for _, e := range top.Elements {
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
	w   io.Writer
	src ValueSource
	buf []byte
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
	if e.Tag.Group() == 0x0002 {
		return nil // meta elements do not belong in the data set
	}
	b := binary.LittleEndian.AppendUint16(t.buf, e.Tag.Group())
	b = binary.LittleEndian.AppendUint16(b, e.Tag.Element())
	if e.VR == "SQ" || len(e.Items) > 0 {
		b = append(b, 'S', 'Q', 0, 0)
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
		return fmt.Errorf("dcm: transcode: %s has an undefined length outside a sequence", e.Tag)
	}
	n := int64(e.Length)
	vr := e.VR
	if len(vr) != 2 || vr == "xs" || vr == "ox" {
		vr = "UN"
	}
	if !longVR[vr] && n > 0xFFFF {
		vr = "UN"
	}
	if longVR[vr] {
		b = append(b, vr[0], vr[1], 0, 0)
		b = binary.LittleEndian.AppendUint32(b, uint32(n))
	} else {
		b = append(b, vr[0], vr[1])
		b = binary.LittleEndian.AppendUint16(b, uint16(n))
	}
	t.buf = b
	if !e.Bulk {
		if int64(len(e.Value)) != n {
			return fmt.Errorf("dcm: transcode: %s value of %d bytes, length %d", e.Tag, len(e.Value), n)
		}
		t.buf = append(t.buf, e.Value...)
		return nil
	}
	if err := t.flush(); err != nil {
		return err
	}
	rc, err := t.src(e.Offset, n)
	if err != nil {
		return err
	}
	defer rc.Close()
	m, err := io.Copy(t.w, rc)
	if err == nil && m != n {
		err = fmt.Errorf("dcm: transcode: %s: copied %d of %d bytes", e.Tag, m, n)
	}
	return err
}
