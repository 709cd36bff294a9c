package jpegmarker

import "fmt"

// Reader walks the markers of a JPEG or JPEG-LS stream.
type Reader struct {
	Data []byte
	Pos  int
}

// Next returns the code of the next marker and moves past it. Fill bytes (0xFF 0xFF) are
// skipped, and so is entropy-coded data: an 0xFF followed by a byte below 0x80 is byte
// stuffing in both standards (0xFF 0x00 in JPEG, a stuffed zero bit in JPEG-LS).
func (r *Reader) Next() (byte, error) {
	for r.Pos+1 < len(r.Data) {
		if r.Data[r.Pos] != 0xFF {
			r.Pos++
			continue
		}
		m := r.Data[r.Pos+1]
		if m == 0xFF {
			r.Pos++
			continue
		}
		r.Pos += 2
		if m&0x80 != 0 {
			return m, nil
		}
	}
	return 0, fmt.Errorf("unexpected end of data looking for a marker")
}

// Segment returns the payload of the length-prefixed segment at the reader's position.
func (r *Reader) Segment() ([]byte, error) {
	if r.Pos+2 > len(r.Data) {
		return nil, fmt.Errorf("truncated segment")
	}
	n := int(r.Data[r.Pos])<<8 | int(r.Data[r.Pos+1])
	if n < 2 || r.Pos+n > len(r.Data) {
		return nil, fmt.Errorf("segment length %d", n)
	}
	seg := r.Data[r.Pos+2 : r.Pos+n]
	r.Pos += n
	return seg, nil
}

// Frame is a frame header (SOFn, or SOF55 in JPEG-LS).
type Frame struct {
	Precision, Height, Width int
	Components               []Component // in the order of the header
}

// Component is one component of a frame header (T.81 B.2.2).
type Component struct {
	ID   int // component identifier Ci
	H, V int // horizontal and vertical sampling factors, 1..4
	Tq   int // quantization table selector, 0..3 (unused by lossless and JPEG-LS)
}

// Subsampled reports whether any component has sampling factors other than 1×1.
func (f Frame) Subsampled() bool {
	for _, c := range f.Components {
		if c.H != 1 || c.V != 1 {
			return true
		}
	}
	return false
}

// maxSamples bounds what a frame header may announce (width × height × components).
const maxSamples = 1 << 28

// ParseFrame reads a frame header segment.
func ParseFrame(seg []byte) (Frame, error) {
	if len(seg) < 6 {
		return Frame{}, fmt.Errorf("short frame header")
	}
	f := Frame{Precision: int(seg[0]), Height: int(seg[1])<<8 | int(seg[2]), Width: int(seg[3])<<8 | int(seg[4])}
	n := int(seg[5])
	if f.Precision < 2 || f.Precision > 16 || f.Width == 0 || f.Height == 0 || n < 1 || n > 4 || len(seg) < 6+3*n {
		return Frame{}, fmt.Errorf("frame header: precision %d, %dx%d, %d components", f.Precision, f.Width, f.Height, n)
	}
	if f.Width*f.Height*n > maxSamples {
		return Frame{}, fmt.Errorf("image too large")
	}
	for i := 0; i < n; i++ {
		c := Component{ID: int(seg[6+3*i]), H: int(seg[7+3*i] >> 4), V: int(seg[7+3*i] & 15), Tq: int(seg[8+3*i])}
		if c.H < 1 || c.H > 4 || c.V < 1 || c.V > 4 || c.Tq > 3 {
			return Frame{}, fmt.Errorf("frame header: component %d with sampling factors %dx%d, table %d", c.ID, c.H, c.V, c.Tq)
		}
		for _, o := range f.Components {
			if o.ID == c.ID {
				return Frame{}, fmt.Errorf("frame header: component %d twice", c.ID)
			}
		}
		f.Components = append(f.Components, c)
	}
	return f, nil
}
