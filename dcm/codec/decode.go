package codec

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dcm/codec/internal/jpegmarker"
	"github.com/lumenpacs/lumen/dcm/codec/jls"
	"github.com/lumenpacs/lumen/dcm/codec/jpegext"
	"github.com/lumenpacs/lumen/dcm/codec/ljpeg"
	"github.com/lumenpacs/lumen/dcm/codec/openjpeg"
)

// Frame is one decoded frame: stored values (after BitsStored masking and sign
// extension), Samples per pixel, interleaved. Photometric is the colour model of Data,
// which decoding may have changed (JPEG baseline YBR is decoded to RGB).
type Frame struct {
	Rows, Columns, Samples int
	Data                   []int64
	Photometric            string
}

// ErrUnsupported reports a transfer syntax or pixel format without a decoder.
var ErrUnsupported = errors.New("codec: no decoder")

// decoder decodes one frame's bytes (a native frame, or the concatenated fragments of an
// encapsulated one).
type decoder func(p *Pixels, data []byte) (*Frame, error)

// codecs is the table of decoders by transfer syntax UID (PS3.5 Annex A). JPEG 2000 is
// in it only when the build links OpenJPEG (build tag openjpeg).
var codecs = table(openjpeg.Available)

func table(j2k bool) map[string]decoder {
	t := map[string]decoder{
		dcm.ImplicitVRLittleEndian: decodeNative,
		dcm.ExplicitVRLittleEndian: decodeNative,
		dcm.ExplicitVRBigEndian:    decodeNative,
		"1.2.840.10008.1.2.1.99":   decodeNative, // deflated: frames come inflated
		"1.2.840.10008.1.2.5":      decodeRLE,
		"1.2.840.10008.1.2.4.50":   decodeJPEG,
		"1.2.840.10008.1.2.4.51":   decodeJPEG,
		"1.2.840.10008.1.2.4.57":   decodeLossless,
		"1.2.840.10008.1.2.4.70":   decodeLossless,
		"1.2.840.10008.1.2.4.80":   decodeJLS,
		"1.2.840.10008.1.2.4.81":   decodeJLS,
	}
	if j2k {
		t["1.2.840.10008.1.2.4.90"] = decodeJ2K
		t["1.2.840.10008.1.2.4.91"] = decodeJ2K
	}
	return t
}

// Supported reports whether frames in transfer syntax ts can be decoded.
func Supported(ts string) bool { _, ok := codecs[ts]; return ok }

// Decode decodes one frame stored in transfer syntax ts.
func Decode(ts string, p *Pixels, data []byte) (*Frame, error) {
	c, ok := codecs[ts]
	if !ok {
		return nil, fmt.Errorf("%w for transfer syntax %s", ErrUnsupported, ts)
	}
	return c(p, data)
}

func (p *Pixels) newFrame() *Frame {
	return &Frame{Rows: p.Rows, Columns: p.Columns, Samples: p.SamplesPerPixel, Photometric: p.Photometric,
		Data: make([]int64, p.Rows*p.Columns*p.SamplesPerPixel)}
}

// value masks a raw sample to BitsStored at HighBit and sign-extends it.
func (p *Pixels) value(raw uint64) int64 {
	shift := uint(p.HighBit + 1 - p.BitsStored)
	v := (raw >> shift) & (1<<uint(p.BitsStored) - 1)
	if p.Signed && v&(1<<uint(p.BitsStored-1)) != 0 {
		return int64(v) - 1<<uint(p.BitsStored)
	}
	return int64(v)
}

// decodeNative unpacks uncompressed pixel data (PS3.5 8.1.1, 8.2).
func decodeNative(p *Pixels, data []byte) (*Frame, error) {
	f := p.newFrame()
	n := len(f.Data)
	if p.Photometric == "YBR_FULL_422" && p.SamplesPerPixel == 3 && p.BitsAllocated == 8 {
		return decodeNative422(p, data)
	}
	switch p.BitsAllocated {
	case 1:
		if len(data)*8 < n {
			return nil, fmt.Errorf("codec: %d bytes for %d one-bit samples", len(data), n)
		}
		for i := 0; i < n; i++ {
			f.Data[i] = int64(data[i/8]>>(uint(i)%8)) & 1
		}
		return f, nil
	case 8:
		if len(data) < n {
			return nil, fmt.Errorf("codec: %d bytes for %d samples", len(data), n)
		}
		for i := 0; i < n; i++ {
			f.Data[i] = p.value(uint64(data[i]))
		}
	case 16:
		if len(data) < 2*n {
			return nil, fmt.Errorf("codec: %d bytes for %d 16-bit samples", len(data), n)
		}
		for i := 0; i < n; i++ {
			var raw uint64
			if p.BigEndian {
				raw = uint64(data[2*i])<<8 | uint64(data[2*i+1])
			} else {
				raw = uint64(data[2*i]) | uint64(data[2*i+1])<<8
			}
			f.Data[i] = p.value(raw)
		}
	case 32:
		if len(data) < 4*n {
			return nil, fmt.Errorf("codec: %d bytes for %d 32-bit samples", len(data), n)
		}
		for i := 0; i < n; i++ {
			b := data[4*i:]
			var raw uint64
			if p.BigEndian {
				raw = uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
			} else {
				raw = uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24
			}
			f.Data[i] = p.value(raw)
		}
	}
	if p.Planar && p.SamplesPerPixel == 3 {
		f.Data = interleave(f.Data, p.Rows*p.Columns)
	}
	return f, nil
}

// interleave turns planes (RRR...GGG...BBB) into pixels (RGBRGB...).
func interleave(planes []int64, pixels int) []int64 {
	out := make([]int64, len(planes))
	for i := 0; i < pixels; i++ {
		out[3*i], out[3*i+1], out[3*i+2] = planes[i], planes[pixels+i], planes[2*pixels+i]
	}
	return out
}

// decodeNative422 expands YBR_FULL_422 (PS3.3 C.7.6.3.1.2: Y1 Y2 Cb Cr for each pair
// of pixels of a row) to full YBR samples.
func decodeNative422(p *Pixels, data []byte) (*Frame, error) {
	f := p.newFrame()
	cols := p.Columns
	rowBytes := 2 * cols
	if len(data) < rowBytes*p.Rows || cols%2 != 0 {
		return nil, fmt.Errorf("codec: YBR_FULL_422: %d bytes for %dx%d", len(data), cols, p.Rows)
	}
	for y := 0; y < p.Rows; y++ {
		row := data[y*rowBytes:]
		for x := 0; x < cols; x += 2 {
			g := row[2*x:]
			y1, y2, cb, cr := int64(g[0]), int64(g[1]), int64(g[2]), int64(g[3])
			i := (y*cols + x) * 3
			f.Data[i], f.Data[i+1], f.Data[i+2] = y1, cb, cr
			f.Data[i+3], f.Data[i+4], f.Data[i+5] = y2, cb, cr
		}
	}
	f.Photometric = "YBR_FULL"
	return f, nil
}

// decodeRLE decodes DICOM RLE (PS3.5 Annex G): one PackBits segment per byte plane,
// most significant byte first, sample by sample.
func decodeRLE(p *Pixels, data []byte) (*Frame, error) {
	if len(data) < 64 {
		return nil, fmt.Errorf("codec: RLE header missing")
	}
	le := func(b []byte) int { return int(b[0]) | int(b[1])<<8 | int(b[2])<<16 | int(b[3])<<24 }
	nseg := le(data)
	bytesPer := p.BitsAllocated / 8
	if p.BitsAllocated < 8 || nseg != bytesPer*p.SamplesPerPixel || nseg > 15 {
		return nil, fmt.Errorf("codec: RLE with %d segments for %d samples of %d bits", nseg, p.SamplesPerPixel, p.BitsAllocated)
	}
	pixels := p.Rows * p.Columns
	planes := make([][]byte, nseg)
	for s := 0; s < nseg; s++ {
		start, end := le(data[4+4*s:]), len(data)
		if s+1 < nseg {
			end = le(data[8+4*s:])
		}
		if start < 64 || start > end || end > len(data) {
			return nil, fmt.Errorf("codec: RLE segment %d offsets", s)
		}
		planes[s] = unpackBits(data[start:end], pixels)
		if len(planes[s]) < pixels {
			return nil, fmt.Errorf("codec: RLE segment %d decodes to %d of %d bytes", s, len(planes[s]), pixels)
		}
	}
	f := p.newFrame()
	for i := 0; i < pixels; i++ {
		for s := 0; s < p.SamplesPerPixel; s++ {
			var raw uint64
			for b := 0; b < bytesPer; b++ {
				raw = raw<<8 | uint64(planes[s*bytesPer+b][i])
			}
			f.Data[i*p.SamplesPerPixel+s] = p.value(raw)
		}
	}
	return f, nil
}

// unpackBits decodes a PackBits segment (PS3.5 G.3.1) up to n bytes.
func unpackBits(src []byte, n int) []byte {
	out := make([]byte, 0, n)
	for i := 0; i < len(src) && len(out) < n; {
		h := int8(src[i])
		i++
		switch {
		case h >= 0:
			k := int(h) + 1
			if i+k > len(src) {
				k = len(src) - i
			}
			out = append(out, src[i:i+k]...)
			i += k
		case h != -128:
			if i >= len(src) {
				return out
			}
			for k := 0; k < int(-h)+1; k++ {
				out = append(out, src[i])
			}
			i++
		}
	}
	return out
}

// decodeJPEG decodes JPEG baseline and extended frames (processes 1, 2 and 4): 8-bit
// ones with image/jpeg, and with package jpegext those of 12 bits and those whose
// sampling factors image/jpeg does not support. Colour frames come out as RGB.
func decodeJPEG(p *Pixels, data []byte) (*Frame, error) {
	h, err := jpegext.ReadHeader(data)
	if err != nil {
		return nil, fmt.Errorf("codec: JPEG: %w", err)
	}
	if h.Width != p.Columns || h.Height != p.Rows || h.Planes != p.SamplesPerPixel {
		return nil, fmt.Errorf("codec: JPEG frame is %dx%dx%d, data set says %dx%dx%d", h.Width, h.Height, h.Planes, p.Columns, p.Rows, p.SamplesPerPixel)
	}
	if h.Precision == 8 {
		f, err := decodeJPEG8(p, data)
		var unsupported jpeg.UnsupportedError
		if err == nil || !errors.As(err, &unsupported) || h.SOF > 1 {
			return f, err
		}
	}
	return decodeDCT(p, data)
}

// decodeDCT decodes a sequential DCT frame of 8 or 12 bits with package jpegext. Colour
// frames come out as RGB: converted from YCbCr when the data set or a JFIF or Adobe
// marker says so, as stored otherwise (as decodeJPEG8).
func decodeDCT(p *Pixels, data []byte) (*Frame, error) {
	img, err := jpegext.Decode(data, jpegext.Limits{Width: p.Columns, Height: p.Rows, Components: p.SamplesPerPixel})
	if errors.Is(err, jpegext.ErrUnsupported) {
		return nil, fmt.Errorf("%w: JPEG: %w", ErrUnsupported, err)
	}
	if err != nil {
		return nil, fmt.Errorf("codec: %w", err)
	}
	if img.Components == 3 && (p.Photometric != "RGB" || colorTransformMarked(data)) {
		img.ConvertYCbCr()
	}
	f, err := p.fromSamples("JPEG", img.Width, img.Height, img.Components, img.Data)
	if err != nil {
		return nil, err
	}
	if img.Components == 3 {
		f.Photometric = "RGB"
	}
	return f, nil
}

// decodeJPEG8 decodes an 8-bit frame with image/jpeg; colour frames come out as RGB
// (the decoder converts YCbCr).
func decodeJPEG8(p *Pixels, data []byte) (*Frame, error) {
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: JPEG: %w", ErrUnsupported, err)
	}
	b := img.Bounds()
	if b.Dx() != p.Columns || b.Dy() != p.Rows {
		return nil, fmt.Errorf("codec: JPEG frame is %dx%d, data set says %dx%d", b.Dx(), b.Dy(), p.Columns, p.Rows)
	}
	f := p.newFrame()
	switch m := img.(type) {
	case *image.Gray:
		if p.SamplesPerPixel != 1 {
			return nil, fmt.Errorf("codec: grayscale JPEG for %d samples", p.SamplesPerPixel)
		}
		for y := 0; y < p.Rows; y++ {
			for x := 0; x < p.Columns; x++ {
				f.Data[y*p.Columns+x] = int64(m.Pix[y*m.Stride+x])
			}
		}
	case *image.YCbCr:
		if p.SamplesPerPixel != 3 {
			return nil, fmt.Errorf("codec: colour JPEG for %d samples", p.SamplesPerPixel)
		}
		if p.Photometric != "RGB" || colorTransformMarked(data) {
			return colorFrame(f, p, img), nil
		}
		{
			// DICOM RGB without a JFIF or Adobe marker: the components are R, G and B as
			// stored (PS3.5 8.2.1 note; what DCMTK does), not YCbCr.
			for y := 0; y < p.Rows; y++ {
				for x := 0; x < p.Columns; x++ {
					yi, ci := m.YOffset(b.Min.X+x, b.Min.Y+y), m.COffset(b.Min.X+x, b.Min.Y+y)
					i := (y*p.Columns + x) * 3
					f.Data[i], f.Data[i+1], f.Data[i+2] = int64(m.Y[yi]), int64(m.Cb[ci]), int64(m.Cr[ci])
				}
			}
			f.Photometric = "RGB"
			return f, nil
		}
	default:
		if p.SamplesPerPixel != 3 {
			return nil, fmt.Errorf("codec: colour JPEG for %d samples", p.SamplesPerPixel)
		}
		return colorFrame(f, p, img), nil
	}
	return f, nil
}

// colorFrame fills f with the RGB values of a decoded colour picture.
func colorFrame(f *Frame, p *Pixels, img image.Image) *Frame {
	b := img.Bounds()
	for y := 0; y < p.Rows; y++ {
		for x := 0; x < p.Columns; x++ {
			r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			i := (y*p.Columns + x) * 3
			f.Data[i], f.Data[i+1], f.Data[i+2] = int64(r>>8), int64(g>>8), int64(bl>>8)
		}
	}
	f.Photometric = "RGB"
	return f
}

// colorTransformMarked reports whether a JPEG stream says its colour components are
// YCbCr: a JFIF APP0 segment, or an Adobe APP14 segment with a non-zero transform.
func colorTransformMarked(data []byte) bool {
	r := jpegmarker.Reader{Data: data, Pos: 2}
	for {
		m, err := r.Next()
		if err != nil || m == 0xDA || m == 0xD9 { // start of scan: no more headers
			return false
		}
		seg, err := r.Segment()
		if err != nil {
			return false
		}
		switch {
		case m == 0xE0 && bytes.HasPrefix(seg, []byte("JFIF\x00")):
			return true
		case m == 0xEE && bytes.HasPrefix(seg, []byte("Adobe")) && len(seg) >= 12:
			return seg[11] != 0
		}
	}
}

// decodeLossless decodes JPEG lossless (process 14) frames.
func decodeLossless(p *Pixels, data []byte) (*Frame, error) {
	img, err := ljpeg.Decode(data)
	if err != nil {
		return nil, err
	}
	return p.fromSamples("lossless JPEG", img.Width, img.Height, img.Components, img.Data)
}

// decodeJLS decodes JPEG-LS lossless and near-lossless frames.
func decodeJLS(p *Pixels, data []byte) (*Frame, error) {
	img, err := jls.Decode(data)
	if err != nil {
		return nil, err
	}
	return p.fromSamples("JPEG-LS", img.Width, img.Height, img.Components, img.Data)
}

// decodeJ2K decodes JPEG 2000 frames (lossless and lossy) with OpenJPEG, when the build
// has it. The decoder applies the inverse component transform, so YBR_RCT and YBR_ICT
// frames come out as RGB.
func decodeJ2K(p *Pixels, data []byte) (*Frame, error) {
	img, err := openjpeg.Decode(data, openjpeg.Limits{Width: p.Columns, Height: p.Rows, Components: p.SamplesPerPixel})
	if err != nil {
		return nil, err
	}
	f := p.newFrame()
	for i, v := range img.Data {
		// Reinterpreted with the data set's Pixel Representation and Bits Stored, as
		// for native data: the data set, not the code stream, says what the values mean.
		f.Data[i] = p.value(uint64(uint32(v)))
	}
	if p.Photometric == "YBR_RCT" || p.Photometric == "YBR_ICT" {
		f.Photometric = "RGB"
	}
	return f, nil
}

// fromSamples makes a frame of the stored values a lossless decoder produced, checking
// its geometry against the data set.
func (p *Pixels) fromSamples(codec string, w, h, comps int, samples []uint16) (*Frame, error) {
	if w != p.Columns || h != p.Rows || comps != p.SamplesPerPixel {
		return nil, fmt.Errorf("codec: %s frame is %dx%dx%d, data set says %dx%dx%d", codec, w, h, comps, p.Columns, p.Rows, p.SamplesPerPixel)
	}
	f := p.newFrame()
	for i, v := range samples {
		f.Data[i] = p.value(uint64(v))
	}
	return f, nil
}

// NativeBytes writes a decoded frame as uncompressed pixel data (PS3.5 8.1.1): samples
// interleaved, each in BitsAllocated bits little endian (two's complement when signed).
// Its colour model is f.Photometric (a decoded JPEG baseline frame is RGB).
func NativeBytes(f *Frame, p *Pixels) ([]byte, error) {
	switch p.BitsAllocated {
	case 8:
		out := make([]byte, len(f.Data))
		for i, v := range f.Data {
			out[i] = byte(v)
		}
		return out, nil
	case 16:
		out := make([]byte, 2*len(f.Data))
		for i, v := range f.Data {
			out[2*i], out[2*i+1] = byte(v), byte(v>>8)
		}
		return out, nil
	case 32:
		out := make([]byte, 4*len(f.Data))
		for i, v := range f.Data {
			out[4*i], out[4*i+1], out[4*i+2], out[4*i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: decompressing %d-bit samples", ErrUnsupported, p.BitsAllocated)
}
