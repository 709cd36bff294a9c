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
	Components               []int // component identifiers, in order
}

// maxSamples bounds what a frame header may announce (width × height × components).
const maxSamples = 1 << 28

// ParseFrame reads a frame header segment. Subsampled components are refused (DICOM
// lossless and JPEG-LS frames have none).
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
		if seg[7+3*i] != 0x11 {
			return Frame{}, fmt.Errorf("subsampled components are not supported")
		}
		f.Components = append(f.Components, int(seg[6+3*i]))
	}
	return f, nil
}
