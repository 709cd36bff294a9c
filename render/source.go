package render

import (
	"fmt"
	"image"
	"strings"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dcm/codec"
)

// ReadRange reads n stored bytes at offset off of the object being rendered.
type ReadRange func(off, n int64) ([]byte, error)

// Frame renders frame (0-based) of a parsed object whose pixel data lies where
// layout says, reading only that frame's bytes.
func Frame(ds *dcm.Dataset, ts string, layout *dcm.PixelLayout, frame int, read ReadRange, o Options) (image.Image, error) {
	if layout == nil {
		return nil, fmt.Errorf("%w: no pixel data, or frames that cannot be located", ErrUnsupported)
	}
	p, err := ParamsOf(ds, ts, frame)
	if err != nil {
		return nil, err
	}
	if !codec.Supported(ts) {
		return nil, fmt.Errorf("%w for transfer syntax %s", ErrUnsupported, ts)
	}
	var data []byte
	if !layout.Encapsulated && layout.FrameLength == 0 {
		// Bit-packed frames are not byte aligned: read the whole value and cut.
		bits := int64(p.Rows * p.Columns * p.SamplesPerPixel)
		all, err := read(layout.Offset, layout.Length)
		if err != nil {
			return nil, err
		}
		start := int64(frame) * bits
		if (start+bits+7)/8 > int64(len(all)) {
			return nil, fmt.Errorf("render: frame %d beyond the pixel data", frame+1)
		}
		data = make([]byte, (bits+7)/8)
		for i := int64(0); i < bits; i++ {
			b := start + i
			if all[b/8]>>(uint(b)%8)&1 != 0 {
				data[i/8] |= 1 << (uint(i) % 8)
			}
		}
	} else {
		ranges, err := layout.Frame(frame)
		if err != nil {
			return nil, err
		}
		for _, r := range ranges {
			b, err := read(r.Offset, r.Length)
			if err != nil {
				return nil, err
			}
			if len(ranges) == 1 {
				data = b
			} else {
				data = append(data, b...)
			}
		}
	}
	if img := renderNative(ts, p, data, o); img != nil {
		return img, nil
	}
	f, err := codec.Decode(ts, &p.Pixels, data)
	if err != nil {
		return nil, err
	}
	return Image(f, p, o)
}

// renderNative renders an uncompressed frame of 8- or 16-bit grey, or 8-bit RGB, data
// straight from its stored bytes, in one pass into the picture's pixels, as Image would
// render the decoded frame; nil when the frame is of another kind.
func renderNative(ts string, p *Params, data []byte, o Options) image.Image {
	if !nativeSyntax(ts) {
		return nil
	}
	switch pi := strings.ToUpper(p.Photometric); {
	case pi == "MONOCHROME1" || pi == "MONOCHROME2":
		if img := grayNative(p, data, o, pi == "MONOCHROME1"); img != nil {
			return img
		}
	case p.Photometric == "RGB" && p.SamplesPerPixel == 3 && p.BitsAllocated == 8 && p.BitsStored == 8 && !p.Signed:
		n := p.Rows * p.Columns
		if len(data) < 3*n {
			return nil
		}
		img := image.NewRGBA(image.Rect(0, 0, p.Columns, p.Rows))
		pix := img.Pix[:4*n]
		if p.Planar {
			r, g, b := data[:n], data[n:2*n], data[2*n:3*n]
			for i := range n {
				pix[4*i], pix[4*i+1], pix[4*i+2], pix[4*i+3] = r[i], g[i], b[i], 255
			}
			return img
		}
		src := data[:3*n]
		for i := range n {
			s, d := src[3*i:3*i+3:3*i+3], pix[4*i:4*i+4:4*i+4]
			d[0], d[1], d[2], d[3] = s[0], s[1], s[2], 255
		}
		return img
	}
	return nil
}
