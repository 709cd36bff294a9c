package transcode

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/lumenpacs/lumen/archive/dcm"
	"github.com/lumenpacs/lumen/viewer/render"
)

// RangeReader reads n stored bytes of an object at offset off.
type RangeReader func(off, n int64) ([]byte, error)

// NativeFrame decodes frame i (0-based) of an object to uncompressed pixel data and
// says the colour model the decoder produced (JPEG baseline YBR comes out RGB).
func NativeFrame(f *dcm.File, layout *dcm.PixelLayout, i int, read RangeReader) ([]byte, string, error) {
	p, err := render.ParamsOf(f.Dataset, f.TransferSyntax, i)
	if err != nil {
		return nil, "", err
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
	fr, err := render.Decode(f.TransferSyntax, p, data)
	if err != nil {
		return nil, "", err
	}
	b, err := render.NativeBytes(fr, p)
	return b, fr.Photometric, err
}

// WriteDecompressed writes an encapsulated object (its header parsed into f, its frames
// located by layout and read through read) as a PS3.10 file in Explicit VR Little Endian
// with native pixel data, decoding one frame at a time. A colour model the decoder
// changed is written into PhotometricInterpretation; PlanarConfiguration becomes 0. The
// first frame is decoded before anything is written, so an object that cannot be
// decoded fails cleanly.
func WriteDecompressed(w io.Writer, f *dcm.File, layout *dcm.PixelLayout, read RangeReader) error {
	p0, err := render.ParamsOf(f.Dataset, f.TransferSyntax, 0)
	if err != nil {
		return err
	}
	frameBytes := int64(p0.Rows * p0.Columns * p0.SamplesPerPixel * p0.BitsAllocated / 8)
	first, photometric, err := NativeFrame(f, layout, 0, read)
	if err != nil {
		return err
	}
	replace := map[dcm.Tag]*dcm.Element{}
	if photometric != p0.Photometric {
		replace[dcm.TagPhotometricInterpretation] = dcm.NewString(dcm.TagPhotometricInterpretation, "CS", photometric)
	}
	if p0.SamplesPerPixel == 3 {
		replace[dcm.TagPlanarConfiguration] = dcm.NewUS(dcm.TagPlanarConfiguration, 0)
	}
	vr := "OW"
	if p0.BitsAllocated <= 8 {
		vr = "OB"
	}
	total := frameBytes * int64(layout.NumberOfFrames)
	pad := total % 2
	return dcm.WriteExplicit(w, f, nil, replace, &dcm.PixelWriter{VR: vr, Length: total + pad, Write: func(pw io.Writer) error {
		for i := 0; i < layout.NumberOfFrames; i++ {
			b := first
			if i > 0 {
				if b, _, err = NativeFrame(f, layout, i, read); err != nil {
					return err
				}
			}
			if int64(len(b)) != frameBytes {
				return fmt.Errorf("render: frame %d decoded to %d bytes, expected %d", i+1, len(b), frameBytes)
			}
			if _, err := pw.Write(b); err != nil {
				return err
			}
		}
		if pad == 1 {
			_, err := pw.Write([]byte{0})
			return err
		}
		return nil
	}})
}

// ErrNotPart10 reports a stream that does not start with a PS3.10 header.
var ErrNotPart10 = errors.New("transcode: not a PS3.10 stream")

// SkipMeta reads the preamble and File Meta Information of a PS3.10 stream and returns
// the transfer syntax the meta information names; r is then at the data set.
func SkipMeta(r io.Reader) (string, error) {
	var hdr [144]byte // preamble, DICM, and (0002,0000) UL 4 explicit
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return "", fmt.Errorf("%w: %v", ErrNotPart10, err)
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
		return "", fmt.Errorf("%w: %v", ErrNotPart10, err)
	}
	f, err := dcm.ParseDataset(io.MultiReader(bytes.NewReader(hdr[132:144]), bytes.NewReader(meta)), dcm.ExplicitVRLittleEndian, 0, nil)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNotPart10, err)
	}
	ts := f.Dataset.String(dcm.TagTransferSyntaxUID)
	if ts == "" {
		return "", fmt.Errorf("%w: the meta information names no transfer syntax", ErrNotPart10)
	}
	return ts, nil
}
