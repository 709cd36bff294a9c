package ljpeg

import (
	"errors"
	"fmt"

	"github.com/lumenpacs/lumen/viewer/render/internal/jpegmarker"
)

// Image is a decoded lossless JPEG: Components samples per pixel, interleaved, each
// an unsigned value of Precision bits.
type Image struct {
	Width, Height, Components, Precision int
	Data                                 []uint16
}

// ErrFormat reports a malformed or unsupported stream.
var ErrFormat = errors.New("ljpeg: invalid or unsupported lossless JPEG")

type huffman struct {
	// lookup maps (code length, code) to symbol via the canonical code tables.
	maxCode [18]int32
	valPtr  [17]int32
	minCode [17]int32
	vals    []uint8
	defined bool
	// lut decodes codes of up to 8 bits from the next 8 bits: length<<8 | symbol, 0 when
	// the code is longer.
	lut [256]uint16
}

type component struct {
	id, table int
}

type decoder struct {
	jpegmarker.Reader        // the stream and the read position
	acc               uint64 // bit buffer, next bit in the top position
	nacc              int    // valid bits in acc
	marker            bool   // an entropy segment ended at a marker
	tables            [4]huffman
	width             int
	height            int
	precision         int
	comps             []component
	restart           int
}

func fail(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// Decode decodes one lossless JPEG frame.
func Decode(data []byte) (*Image, error) {
	d := &decoder{Reader: jpegmarker.Reader{Data: data}}
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
	d.precision, d.height, d.width = f.Precision, f.Height, f.Width
	d.comps = make([]component, len(f.Components))
	for i, id := range f.Components {
		d.comps[i] = component{id: id}
	}
	return nil
}

func (d *decoder) dht() error {
	seg, err := d.segment()
	if err != nil {
		return err
	}
	for len(seg) > 0 {
		if len(seg) < 17 {
			return fail("short DHT")
		}
		class, id := seg[0]>>4, int(seg[0]&15)
		if id > 3 {
			return fail("Huffman table id %d", id)
		}
		counts := seg[1:17]
		total := 0
		for _, c := range counts {
			total += int(c)
		}
		if len(seg) < 17+total || total > 256 {
			return fail("DHT of %d symbols", total)
		}
		if class == 0 { // DC tables are the ones lossless JPEG uses
			h := &d.tables[id]
			*h = huffman{vals: append([]uint8(nil), seg[17:17+total]...), defined: true}
			code, k := int32(0), int32(0)
			for l := 1; l <= 16; l++ {
				h.valPtr[l] = k
				h.minCode[l] = code
				code += int32(counts[l-1])
				k += int32(counts[l-1])
				if counts[l-1] > 0 {
					h.maxCode[l] = code - 1
				} else {
					h.maxCode[l] = -1
				}
				code <<= 1
			}
			h.maxCode[17] = 0x7FFFFFFF
			code, k = 0, 0
			for l := 1; l <= 16; l++ {
				for c := 0; c < int(counts[l-1]); c++ {
					if l <= 8 {
						first := int(code) << (8 - l)
						for x := 0; x < 1<<(8-l); x++ {
							h.lut[first+x] = uint16(l)<<8 | uint16(h.vals[k])
						}
					}
					code++
					k++
				}
				code <<= 1
			}
		}
		seg = seg[17+total:]
	}
	return nil
}

// fill tops up the bit buffer from the entropy-coded data, removing byte stuffing; past
// a marker it feeds zeros (the caller handles the marker).
func (d *decoder) fill() {
	for d.nacc <= 56 {
		var b byte
		if d.Pos < len(d.Data) && !d.marker {
			b = d.Data[d.Pos]
			if b == 0xFF {
				if d.Pos+1 < len(d.Data) && d.Data[d.Pos+1] == 0x00 {
					d.Pos += 2
				} else {
					d.marker = true
					b = 0
				}
			} else {
				d.Pos++
			}
		}
		d.acc |= uint64(b) << uint(56-d.nacc)
		d.nacc += 8
	}
}

func (d *decoder) peek(n int) int {
	if d.nacc < n {
		d.fill()
	}
	return int(d.acc >> uint(64-n))
}

func (d *decoder) skip(n int) {
	d.acc <<= uint(n)
	d.nacc -= n
}

func (d *decoder) receive(n int) int {
	if n == 0 {
		return 0
	}
	v := d.peek(n)
	d.skip(n)
	return v
}

func (d *decoder) decodeHuff(h *huffman) (int, error) {
	if e := h.lut[d.peek(8)]; e != 0 {
		d.skip(int(e >> 8))
		return int(e & 0xFF), nil
	}
	for l := 1; l <= 16; l++ {
		code := int32(d.peek(l))
		if code <= h.maxCode[l] {
			d.skip(l)
			return int(h.vals[h.valPtr[l]+code-h.minCode[l]]), nil
		}
	}
	return 0, fail("invalid Huffman code")
}

// diff decodes one difference value (T.81 H.1.2.2: categories 0–16).
func (d *decoder) diff(h *huffman) (int, error) {
	t, err := d.decodeHuff(h)
	if err != nil {
		return 0, err
	}
	switch {
	case t == 0:
		return 0, nil
	case t == 16:
		return 32768, nil
	case t > 16:
		return 0, fail("difference category %d", t)
	}
	v := d.receive(t)
	if v < 1<<(t-1) {
		v += (-1 << t) + 1
	}
	return v, nil
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
		if found < 0 || tbl > 3 || !d.tables[tbl].defined {
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
					d.acc, d.nacc, d.marker = 0, 0, false
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
