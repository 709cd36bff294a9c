package ljpeg

import (
	"errors"
	"fmt"

	"github.com/lumenpacs/lumen/dcm/codec/internal/huffman"
	"github.com/lumenpacs/lumen/dcm/codec/internal/jpegmarker"
)

// Image is a decoded lossless JPEG: Components samples per pixel, interleaved, each
// an unsigned value of Precision bits.
type Image struct {
	Width, Height, Components, Precision int
	Data                                 []uint16
}

// ErrFormat reports a malformed or unsupported stream.
var ErrFormat = errors.New("ljpeg: invalid or unsupported lossless JPEG")

type component struct {
	id, table int
}

type decoder struct {
	huffman.Reader // the stream, the read position and the entropy-coded bits
	tables         [4]huffman.Table
	width          int
	height         int
	precision      int
	comps          []component
	restart        int
}

func fail(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// Decode decodes one lossless JPEG frame.
func Decode(data []byte) (*Image, error) {
	d := &decoder{}
	d.Data = data
	if len(data) < 4 || data[0] != 0xFF || data[1] != 0xD8 {
		return nil, fail("no SOI marker")
	}
	d.Pos = 2
	for {
		m, err := d.nextMarker()
		if err != nil {
			return nil, err
		}
		switch {
		case m == 0xD9:
			return nil, fail("EOI before any scan")
		case m == 0xC3:
			if err := d.sof(); err != nil {
				return nil, err
			}
		case m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC:
			return nil, fail("SOF%d is not lossless Huffman (process 14)", m-0xC0)
		case m == 0xC4:
			if err := d.dht(); err != nil {
				return nil, err
			}
		case m == 0xDD:
			seg, err := d.segment()
			if err != nil || len(seg) < 2 {
				return nil, fail("bad DRI")
			}
			d.restart = int(seg[0])<<8 | int(seg[1])
		case m == 0xDA:
			return d.scan()
		default:
			if _, err := d.segment(); err != nil {
				return nil, err
			}
		}
	}
}

func (d *decoder) nextMarker() (byte, error) {
	m, err := d.Next()
	if err != nil {
		return 0, fail("%v", err)
	}
	return m, nil
}

func (d *decoder) segment() ([]byte, error) {
	seg, err := d.Segment()
	if err != nil {
		return nil, fail("%v", err)
	}
	return seg, nil
}

func (d *decoder) sof() error {
	seg, err := d.segment()
	if err != nil {
		return err
	}
	f, err := jpegmarker.ParseFrame(seg)
	if err != nil {
		return fail("SOF3: %v", err)
	}
	if f.Subsampled() {
		return fail("SOF3: subsampled components are not supported")
	}
	d.precision, d.height, d.width = f.Precision, f.Height, f.Width
	d.comps = make([]component, len(f.Components))
	for i, c := range f.Components {
		d.comps[i] = component{id: c.ID}
	}
	return nil
}

func (d *decoder) dht() error {
	seg, err := d.segment()
	if err != nil {
		return err
	}
	if err := huffman.ParseDHT(seg, &d.tables, nil); err != nil {
		return fail("%v", err)
	}
	return nil
}

// diff decodes one difference value (T.81 H.1.2.2: categories 0–16).
func (d *decoder) diff(h *huffman.Table) (int, error) {
	t, err := d.Decode(h)
	if err != nil {
		return 0, fail("%v", err)
	}
	switch {
	case t == 0:
		return 0, nil
	case t == 16:
		return 32768, nil
	case t > 16:
		return 0, fail("difference category %d", t)
	}
	return d.ReceiveExtend(t), nil
}

func (d *decoder) scan() (*Image, error) {
	if d.comps == nil {
		return nil, fail("SOS before SOF3")
	}
	seg, err := d.segment()
	if err != nil {
		return nil, err
	}
	if len(seg) < 1 {
		return nil, fail("short SOS")
	}
	ns := int(seg[0])
	if ns != len(d.comps) || len(seg) < 1+2*ns+3 {
		return nil, fail("scan of %d components (non-interleaved scans are not supported)", ns)
	}
	order := make([]int, ns)
	for i := 0; i < ns; i++ {
		id, tbl := int(seg[1+2*i]), int(seg[2+2*i]>>4)
		found := -1
		for j, c := range d.comps {
			if c.id == id {
				found = j
			}
		}
		if found < 0 || tbl > 3 || !d.tables[tbl].Defined() {
			return nil, fail("scan component %d or its table", id)
		}
		d.comps[found].table = tbl
		order[i] = found
	}
	pred := int(seg[1+2*ns])
	pt := int(seg[3+2*ns] & 15)
	if pred < 1 || pred > 7 {
		if pred != 0 {
			return nil, fail("predictor %d", pred)
		}
	}
	w, h, nc := d.width, d.height, ns
	// Every sample takes a Huffman code of one bit at least: data too short for the
	// frame is refused before its samples are allocated.
	if left := len(d.Data) - d.Pos; w*h*nc > 8*left {
		return nil, fail("%d bytes of entropy-coded data cannot hold %d samples (truncated)", left, w*h*nc)
	}
	out := make([]uint16, w*h*nc)
	mask := (1 << d.precision) - 1
	initial := 1 << (d.precision - pt - 1)
	restartLeft := d.restart
	firstRow, first := true, true // first line / first sample of the scan or restart interval
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if d.restart > 0 {
				if restartLeft == 0 {
					// Expect RSTn: drop the segment's padding bits, reset prediction.
					d.Reset()
					if m, err := d.nextMarker(); err != nil || m < 0xD0 || m > 0xD7 {
						return nil, fail("missing restart marker")
					}
					restartLeft = d.restart
					firstRow, first = true, true
				}
				restartLeft--
			}
			for ci, c := range order {
				dv, err := d.diff(&d.tables[d.comps[c].table])
				if err != nil {
					return nil, err
				}
				i := (y*w+x)*nc + ci
				var p int
				switch {
				case first:
					p = initial
				case pred == 0:
				case firstRow:
					p = int(out[i-nc])
				case x == 0:
					p = int(out[i-w*nc])
				default:
					ra, rb, rc := int(out[i-nc]), int(out[i-w*nc]), int(out[i-w*nc-nc])
					switch pred {
					case 1:
						p = ra
					case 2:
						p = rb
					case 3:
						p = rc
					case 4:
						p = ra + rb - rc
					case 5:
						p = ra + ((rb - rc) >> 1)
					case 6:
						p = rb + ((ra - rc) >> 1)
					case 7:
						p = (ra + rb) >> 1
					}
				}
				out[i] = uint16((p + dv) & 0xFFFF & (mask >> pt))
			}
			first = false
			if x == w-1 {
				firstRow = false
			}
		}
	}
	if pt > 0 {
		for i := range out {
			out[i] <<= uint(pt)
		}
	}
	return &Image{Width: w, Height: h, Components: nc, Precision: d.precision, Data: out}, nil
}
