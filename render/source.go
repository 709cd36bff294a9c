package render

import (
	"fmt"
	"image"

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
			data = append(data, b...)
		}
	}
	f, err := codec.Decode(ts, &p.Pixels, data)
	if err != nil {
		return nil, err
	}
	return Image(f, p, o)
}
