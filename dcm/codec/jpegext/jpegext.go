package jpegext

import (
	"errors"
	"fmt"

	"github.com/lumenpacs/lumen/dcm/codec/internal/huffman"
	"github.com/lumenpacs/lumen/dcm/codec/internal/jpegmarker"
)

// Image is a decoded JPEG: Components samples per pixel, interleaved, each an unsigned
// value of Precision bits. Subsampled components are upsampled to Width×Height; no
// colour transform is applied (see ConvertYCbCr).
type Image struct {
	Width, Height, Components, Precision int
	Data                                 []uint16
}

// Limits bounds what Decode accepts, checked on the frame header before any sample is
// decoded or any plane allocated.
type Limits struct {
	Width, Height, Components int // the geometry the caller expects; 0 accepts any
	MaxSamples                int // Width×Height×Components above which the stream is refused; 0 means 1<<28
}

// Header is what the frame header of a JPEG stream says.
type Header struct {
	SOF                              int // n of the SOFn marker: 0 baseline, 1 extended, 2 progressive, 3 lossless...
	Precision, Width, Height, Planes int
}

var (
	// ErrFormat reports a malformed stream.
	ErrFormat = errors.New("jpegext: invalid JPEG")
	// ErrUnsupported reports a valid stream of a JPEG process this package does not
	// decode (progressive, hierarchical, arithmetic coded or lossless).
	ErrUnsupported = errors.New("jpegext: unsupported JPEG process")
)

func fail(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

func unsupported(sof byte) error {
	n := int(sof - 0xC0)
	what := "unknown"
	switch n {
	case 2:
		what = "progressive DCT (processes 10–13)"
	case 3:
		what = "lossless (process 14)"
	case 5, 6, 7:
		what = "hierarchical"
	case 9, 10, 11, 13, 14, 15:
		what = "arithmetic coding"
	}
	return fmt.Errorf("%w: SOF%d, %s", ErrUnsupported, n, what)
}

// zigzag maps the position of a coefficient in the zig-zag sequence (T.81 Figure A.6)
// to its position in the 8×8 block, row by row.
var zigzag = [64]uint8{
	0, 1, 8, 16, 9, 2, 3, 10,
	17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34,
	27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36,
	29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46,
	53, 60, 61, 54, 47, 55, 62, 63,
}

type component struct {
	jpegmarker.Component
	dw, dh int // samples per line and lines of the component (T.81 A.1.1)
	plane  []uint16
	stride int // samples per line of plane: whole MCUs
	pred   int // DC prediction
	td, ta int // DC and AC table of the current scan
	q      [64]float64
	done   bool // decoded by a scan
}

type decoder struct {
	huffman.Reader // the stream, the read position and the entropy-coded bits
	dc, ac         [4]huffman.Table
	quant          [4][64]uint16 // natural order
	qdefined       [4]bool
	sof            bool
	precision      int
	width, height  int
	hmax, vmax     int
	mcux, mcuy     int // MCUs per line and per column of an interleaved scan
	comps          []component
	restart        int
	lim            Limits
	blk            [64]float64
}

// ReadHeader reads the frame header of a JPEG stream (of any process).
func ReadHeader(data []byte) (Header, error) {
	if len(data) < 4 || data[0] != 0xFF || data[1] != 0xD8 {
		return Header{}, fail("no SOI marker")
	}
	r := jpegmarker.Reader{Data: data, Pos: 2}
	for {
		m, err := r.Next()
		if err != nil {
			return Header{}, fail("%v", err)
		}
		switch {
		case m == 0xD9 || m == 0xDA:
			return Header{}, fail("no frame header")
		case m >= 0xD0 && m <= 0xD7 || m == 0x01 || m == 0xD8:
			continue
		}
		seg, err := r.Segment()
		if err != nil {
			return Header{}, fail("%v", err)
		}
		if isSOF(m) {
			f, err := jpegmarker.ParseFrame(seg)
			if err != nil {
				return Header{}, fail("%v", err)
			}
			return Header{SOF: int(m - 0xC0), Precision: f.Precision, Width: f.Width, Height: f.Height, Planes: len(f.Components)}, nil
		}
	}
}

func isSOF(m byte) bool { return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC }

// Decode decodes one sequential DCT JPEG image (SOF0 or SOF1, 8 or 12 bits).
func Decode(data []byte, lim Limits) (*Image, error) {
	if len(data) < 4 || data[0] != 0xFF || data[1] != 0xD8 {
		return nil, fail("no SOI marker")
	}
	d := &decoder{lim: lim}
	d.Data, d.Pos = data, 2
	for {
		m, err := d.Next()
		if err != nil {
			if d.complete() {
				return d.image(), nil // no EOI after the last scan: IJG accepts it too
			}
			return nil, fail("%v", err)
		}
		switch {
		case m == 0xD9:
			if !d.complete() {
				return nil, fail("EOI before every component was decoded")
			}
			return d.image(), nil
		case m >= 0xD0 && m <= 0xD7 || m == 0x01:
			// RSTn outside entropy-coded data, or TEM: no segment.
		case m == 0xD8:
			return nil, fail("SOI inside the stream")
		case m == 0xC0 || m == 0xC1:
			if err := d.frame(); err != nil {
				return nil, err
			}
		case isSOF(m):
			return nil, unsupported(m)
		case m == 0xC4:
			seg, err := d.segment()
			if err != nil {
				return nil, err
			}
			if err := huffman.ParseDHT(seg, &d.dc, &d.ac); err != nil {
				return nil, fail("%v", err)
			}
		case m == 0xCC:
			return nil, fmt.Errorf("%w: arithmetic coding (DAC)", ErrUnsupported)
		case m == 0xDB:
			if err := d.dqt(); err != nil {
				return nil, err
			}
		case m == 0xDD:
			seg, err := d.segment()
			if err != nil {
				return nil, err
			}
			if len(seg) != 2 {
				return nil, fail("DRI of %d bytes", len(seg))
			}
			d.restart = int(seg[0])<<8 | int(seg[1])
		case m == 0xDC:
			return nil, fmt.Errorf("%w: DNL (the number of lines after the first scan)", ErrUnsupported)
		case m == 0xDA:
			if err := d.scan(); err != nil {
				return nil, err
			}
		default: // APPn, COM, JPGn...
			if _, err := d.segment(); err != nil {
				return nil, err
			}
		}
	}
}

func (d *decoder) segment() ([]byte, error) {
	seg, err := d.Segment()
	if err != nil {
		return nil, fail("%v", err)
	}
	return seg, nil
}

// complete reports whether every component of the frame has been decoded.
func (d *decoder) complete() bool {
	if !d.sof {
		return false
	}
	for _, c := range d.comps {
		if !c.done {
			return false
		}
	}
	return true
}

func (d *decoder) dqt() error {
	seg, err := d.segment()
	if err != nil {
		return err
	}
	for len(seg) > 0 {
		pq, tq := int(seg[0]>>4), int(seg[0]&15)
		n := 64 * (pq + 1)
		if pq > 1 || tq > 3 || len(seg) < 1+n {
			return fail("DQT: precision %d, table %d, %d bytes", pq, tq, len(seg))
		}
		for k := 0; k < 64; k++ {
			v := uint16(seg[1+k])
			if pq == 1 {
				v = uint16(seg[1+2*k])<<8 | uint16(seg[2+2*k])
			}
			d.quant[tq][zigzag[k]] = v
		}
		d.qdefined[tq] = true
		seg = seg[1+n:]
	}
	return nil
}

func (d *decoder) frame() error {
	if d.sof {
		return fail("a second frame header")
	}
	seg, err := d.segment()
	if err != nil {
		return err
	}
	f, err := jpegmarker.ParseFrame(seg)
	if err != nil {
		return fail("%v", err)
	}
	if f.Precision != 8 && f.Precision != 12 {
		return fail("precision %d (DCT JPEG has 8 or 12 bits)", f.Precision)
	}
	lim := d.lim
	if lim.Width > 0 && f.Width != lim.Width || lim.Height > 0 && f.Height != lim.Height || lim.Components > 0 && len(f.Components) != lim.Components {
		return fail("the frame is %dx%dx%d, expected %dx%dx%d", f.Width, f.Height, len(f.Components), lim.Width, lim.Height, lim.Components)
	}
	maxSamples := lim.MaxSamples
	if maxSamples <= 0 {
		maxSamples = 1 << 28
	}
	if f.Width*f.Height*len(f.Components) > maxSamples {
		return fail("%dx%dx%d samples is more than %d", f.Width, f.Height, len(f.Components), maxSamples)
	}
	d.sof = true
	d.precision, d.width, d.height = f.Precision, f.Width, f.Height
	d.hmax, d.vmax = 1, 1
	for _, c := range f.Components {
		d.hmax, d.vmax = max(d.hmax, c.H), max(d.vmax, c.V)
	}
	d.mcux = (d.width + 8*d.hmax - 1) / (8 * d.hmax)
	d.mcuy = (d.height + 8*d.vmax - 1) / (8 * d.vmax)
	for _, c := range f.Components {
		if d.hmax%c.H != 0 || d.vmax%c.V != 0 {
			return fail("sampling factors %dx%d of component %d are not a fraction 1/n of %dx%d", c.H, c.V, c.ID, d.hmax, d.vmax)
		}
		d.comps = append(d.comps, component{
			Component: c,
			dw:        (d.width*c.H + d.hmax - 1) / d.hmax,
			dh:        (d.height*c.V + d.vmax - 1) / d.vmax,
			stride:    d.mcux * c.H * 8,
		})
	}
	return nil
}

// scan decodes one scan (T.81 B.2.3, F.2.2): its components' blocks, in MCUs, with
// restart intervals.
func (d *decoder) scan() error {
	if !d.sof {
		return fail("SOS before the frame header")
	}
	seg, err := d.segment()
	if err != nil {
		return err
	}
	if len(seg) < 1 {
		return fail("short SOS")
	}
	ns := int(seg[0])
	if ns < 1 || ns > 4 || len(seg) < 1+2*ns+3 {
		return fail("SOS of %d components in %d bytes", ns, len(seg))
	}
	// Ss, Se, Ah and Al have fixed values in sequential mode (0, 63, 0, 0); as IJG
	// does, other values are ignored (PVRG's encoder writes Se=0).
	scan := make([]*component, 0, ns)
	blocks := 0
	for i := 0; i < ns; i++ {
		id, td, ta := int(seg[1+2*i]), int(seg[2+2*i]>>4), int(seg[2+2*i]&15)
		var c *component
		for j := range d.comps {
			if d.comps[j].ID == id {
				c = &d.comps[j]
			}
		}
		switch {
		case c == nil:
			return fail("the scan names component %d, which the frame has not", id)
		case c.done:
			return fail("component %d in a second scan", id)
		case td > 3 || ta > 3 || !d.dc[td].Defined() || !d.ac[ta].Defined():
			return fail("component %d: Huffman tables DC %d, AC %d not defined", id, td, ta)
		case !d.qdefined[c.Tq]:
			return fail("component %d: quantization table %d not defined", id, c.Tq)
		}
		for _, o := range scan {
			if o == c {
				return fail("component %d twice in a scan", id)
			}
		}
		c.td, c.ta, c.done = td, ta, true
		for k, q := range d.quant[c.Tq] {
			c.q[k] = float64(q)
		}
		blocks += c.H * c.V
		scan = append(scan, c)
	}
	if ns > 1 && blocks > 10 {
		return fail("an MCU of %d blocks (at most 10)", blocks)
	}
	// Geometry: an interleaved scan codes whole MCUs of each component's H×V blocks; a
	// scan of one component codes its blocks one by one, as many as cover it.
	mcux, mcuy := d.mcux, d.mcuy
	if ns == 1 {
		c := scan[0]
		mcux, mcuy = (c.dw+7)/8, (c.dh+7)/8
		blocks = 1
	}
	// Every block takes two Huffman codes at least (its DC difference and an EOB, or a
	// last AC coefficient): data too short for the scan is refused before the planes
	// are allocated.
	if left := len(d.Data) - d.Pos; mcux*mcuy*blocks > 4*left {
		return fail("%d bytes of entropy-coded data cannot hold %d blocks (truncated)", left, mcux*mcuy*blocks)
	}
	for _, c := range scan {
		if c.plane == nil {
			c.plane = make([]uint16, c.stride*d.mcuy*c.V*8)
		}
	}
	d.Reset()
	for _, c := range scan {
		c.pred = 0
	}
	total, left, rst := mcux*mcuy, d.restart, 0
	for m := 0; m < total; m++ {
		if d.restart > 0 {
			if left == 0 {
				if err := d.restartMarker(rst); err != nil {
					return err
				}
				rst++
				left = d.restart
				for _, c := range scan {
					c.pred = 0
				}
			}
			left--
		}
		mx, my := m%mcux, m/mcux
		for _, c := range scan {
			if ns == 1 {
				if err := d.block(c, mx*8, my*8); err != nil {
					return err
				}
				continue
			}
			for v := 0; v < c.V; v++ {
				for h := 0; h < c.H; h++ {
					if err := d.block(c, (mx*c.H+h)*8, (my*c.V+v)*8); err != nil {
						return err
					}
				}
			}
		}
		if d.Overrun() {
			return fail("the entropy-coded data ends in MCU %d of %d (truncated)", m+1, total)
		}
	}
	return nil
}

// restartMarker reads the RSTn marker ending restart interval n (counting from 0).
func (d *decoder) restartMarker(n int) error {
	if d.Overrun() {
		return fail("restart interval %d ends early (truncated)", n+1)
	}
	d.Reset()
	m, err := d.Next()
	if err != nil {
		return fail("missing restart marker %d: %v", n%8, err)
	}
	if m != byte(0xD0+n%8) {
		return fail("marker %X where RST%d was expected", m, n%8)
	}
	return nil
}

// block decodes one 8×8 block (F.2.2.1, F.2.2.2), dequantizes it and writes its inverse
// DCT at (x, y) of the component's plane.
func (d *decoder) block(c *component, x, y int) error {
	blk := &d.blk
	*blk = [64]float64{}
	t, err := d.Decode(&d.dc[c.td])
	if err != nil {
		return fail("DC: %v", err)
	}
	if t > 15 {
		return fail("DC difference category %d", t)
	}
	if t > 0 {
		c.pred += d.ReceiveExtend(t)
	}
	blk[0] = float64(c.pred) * c.q[0]
	rows := uint8(1) // rows of the block with a coefficient other than zero
	ac := &d.ac[c.ta]
	for k := 1; k < 64; k++ {
		rs, err := d.Decode(ac)
		if err != nil {
			return fail("AC: %v", err)
		}
		r, s := rs>>4, rs&15
		if s == 0 {
			if r != 15 {
				break // EOB
			}
			k += 15 // ZRL
			continue
		}
		k += r
		if k > 63 {
			return fail("AC coefficient beyond the block")
		}
		z := zigzag[k]
		blk[z] = float64(d.ReceiveExtend(s)) * c.q[z]
		rows |= 1 << (z >> 3)
	}
	idct(blk, rows, c.plane[y*c.stride+x:], c.stride, d.precision)
	return nil
}

// image upsamples the components' planes to full size and interleaves them.
func (d *decoder) image() *Image {
	nc := len(d.comps)
	img := &Image{Width: d.width, Height: d.height, Components: nc, Precision: d.precision}
	if c := &d.comps[0]; nc == 1 && c.stride == d.width && c.H == d.hmax && c.V == d.vmax {
		img.Data = c.plane[: d.width*d.height : d.width*d.height] // the plane is the image
		return img
	}
	img.Data = make([]uint16, d.width*d.height*nc)
	for ci := range d.comps {
		upsample(img, ci, &d.comps[ci], d.hmax/d.comps[ci].H, d.vmax/d.comps[ci].V)
	}
	return img
}

// ConvertYCbCr converts a three-component image from YCbCr to RGB in place, with the
// equations of JFIF (ITU-T T.871 §7) at the image's precision: the chrominance
// components are centred on 2^(Precision−1), the results rounded and clamped to
// 0..2^Precision−1.
func (img *Image) ConvertYCbCr() {
	if img.Components != 3 {
		return
	}
	center := float64(int(1) << (img.Precision - 1))
	maxv := float64(int(1)<<img.Precision - 1)
	clamp := func(v float64) uint16 {
		v += 0.5
		if v < 0 {
			return 0
		}
		if v > maxv {
			return uint16(maxv)
		}
		return uint16(v)
	}
	for i := 0; i+2 < len(img.Data); i += 3 {
		y, cb, cr := float64(img.Data[i]), float64(img.Data[i+1])-center, float64(img.Data[i+2])-center
		img.Data[i] = clamp(y + 1.402*cr)
		img.Data[i+1] = clamp(y - 0.344136286*cb - 0.714136286*cr)
		img.Data[i+2] = clamp(y + 1.772*cb)
	}
}
