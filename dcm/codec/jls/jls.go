package jls

import (
	"errors"
	"fmt"

	"github.com/lumenpacs/lumen/dcm/codec/internal/jpegmarker"
)

// Image is a decoded JPEG-LS image: Components samples per pixel, interleaved.
type Image struct {
	Width, Height, Components, Precision int
	Data                                 []uint16
}

// ErrFormat reports a malformed or unsupported stream.
var ErrFormat = errors.New("jls: invalid or unsupported JPEG-LS")

func fail(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// J is the run-length order table of T.87 A.7.1.2.
var jTable = [32]int{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13, 14, 15}

type params struct {
	maxval, t1, t2, t3, reset int
	near                      int
	rangeV, qbpp, limit       int
}

type decoder struct {
	jpegmarker.Reader // the stream and the read position
	acc               uint64
	nacc              int
	prevFF            bool // the last byte read was 0xFF: the next carries 7 bits
	marker            bool
	width             int
	height            int
	precision         int
	comps             []int // component ids
	preset            params
	out               []uint16
	done              []bool // components decoded
}

// Decode decodes one JPEG-LS frame.
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
		switch m {
		case 0xD9:
			if d.out == nil {
				return nil, fail("EOI before any scan")
			}
			for _, ok := range d.done {
				if !ok {
					return nil, fail("a component has no scan")
				}
			}
			return &Image{Width: d.width, Height: d.height, Components: len(d.comps), Precision: d.precision, Data: d.out}, nil
		case 0xF7:
			if err := d.sof(); err != nil {
				return nil, err
			}
		case 0xF8:
			if err := d.lse(); err != nil {
				return nil, err
			}
		case 0xDD:
			seg, err := d.segment()
			if err != nil {
				return nil, err
			}
			if len(seg) >= 2 && (int(seg[0])<<8|int(seg[1])) != 0 {
				return nil, fail("restart intervals are not supported")
			}
		case 0xDA:
			if err := d.scan(); err != nil {
				return nil, err
			}
		default:
			if m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC {
				return nil, fail("SOF%d is not JPEG-LS", m-0xC0)
			}
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
		return fail("SOF55: %v", err)
	}
	if f.Subsampled() {
		return fail("SOF55: subsampled components are not supported")
	}
	d.precision, d.height, d.width = f.Precision, f.Height, f.Width
	d.comps = nil
	for _, c := range f.Components {
		d.comps = append(d.comps, c.ID)
	}
	d.out = make([]uint16, d.width*d.height*len(d.comps))
	d.done = make([]bool, len(d.comps))
	return nil
}

// lse reads preset coding parameters (T.87 C.2.4.1.1, id 1).
func (d *decoder) lse() error {
	seg, err := d.segment()
	if err != nil {
		return err
	}
	if len(seg) < 1 || seg[0] != 1 {
		return fail("LSE of type %v (mapping tables) is not supported", seg)
	}
	if len(seg) < 11 {
		return fail("short LSE")
	}
	g := func(i int) int { return int(seg[i])<<8 | int(seg[i+1]) }
	d.preset = params{maxval: g(1), t1: g(3), t2: g(5), t3: g(7), reset: g(9)}
	return nil
}

func clampT(i, j, maxval int) int {
	if i > maxval || i < j {
		return j
	}
	return i
}

// coding returns the parameters of a scan (defaults of T.87 C.2.4.1.1.1 where the preset
// gives none).
func (d *decoder) coding(near int) params {
	p := d.preset
	if p.maxval == 0 {
		p.maxval = 1<<d.precision - 1
	}
	if p.reset == 0 {
		p.reset = 64
	}
	p.near = near
	if p.t1 == 0 || p.t2 == 0 || p.t3 == 0 {
		var t1, t2, t3 int
		if p.maxval >= 128 {
			f := (min(p.maxval, 4095) + 128) / 256
			t1 = clampT(f*(3-2)+2+3*near, near+1, p.maxval)
			t2 = clampT(f*(7-3)+3+5*near, t1, p.maxval)
			t3 = clampT(f*(21-4)+4+7*near, t2, p.maxval)
		} else {
			f := 256 / (p.maxval + 1)
			t1 = clampT(max(2, 3/f+3*near), near+1, p.maxval)
			t2 = clampT(max(3, 7/f+5*near), t1, p.maxval)
			t3 = clampT(max(4, 21/f+7*near), t2, p.maxval)
		}
		if p.t1 == 0 {
			p.t1 = t1
		}
		if p.t2 == 0 {
			p.t2 = t2
		}
		if p.t3 == 0 {
			p.t3 = t3
		}
	}
	p.rangeV = (p.maxval+2*near)/(2*near+1) + 1
	p.qbpp = bitsFor(p.rangeV)
	bpp := max(2, bitsFor(p.maxval+1))
	p.limit = 2 * (bpp + max(8, bpp))
	return p
}

// bitsFor is ceil(log2(v)).
func bitsFor(v int) int {
	n := 0
	for 1<<n < v {
		n++
	}
	return n
}

// fill tops up the bit buffer; after 0xFF only 7 bits of the next byte count (T.87
// A.1); a marker ends the data (zeros follow).
func (d *decoder) fill() {
	for d.nacc <= 56 {
		var b uint64
		bits := 8
		if d.Pos < len(d.Data) && !d.marker {
			c := d.Data[d.Pos]
			if d.prevFF {
				if c&0x80 != 0 { // a marker
					d.marker = true
					d.Pos--
					c, bits = 0, 8
				} else {
					bits = 7
				}
			}
			if !d.marker {
				d.Pos++
				d.prevFF = c == 0xFF
			}
			b = uint64(c)
			if bits == 7 {
				b &= 0x7F
			}
		}
		d.acc |= b << uint(64-d.nacc-bits)
		d.nacc += bits
	}
}

func (d *decoder) bit() int {
	if d.nacc == 0 {
		d.fill()
	}
	v := int(d.acc >> 63)
	d.acc <<= 1
	d.nacc--
	return v
}

func (d *decoder) read(n int) int {
	if n == 0 {
		return 0
	}
	if d.nacc < n {
		d.fill()
	}
	v := int(d.acc >> uint(64-n))
	d.acc <<= uint(n)
	d.nacc -= n
	return v
}

// golomb decodes a limited-length Golomb code (T.87 A.5.3).
func (d *decoder) golomb(k, limit, qbpp int) (int, error) {
	q := 0
	for d.bit() == 0 {
		q++
		if q > limit {
			return 0, fail("Golomb code too long")
		}
	}
	if q >= limit-qbpp-1 {
		return d.read(qbpp) + 1, nil
	}
	return q<<uint(k) + d.read(k), nil
}

// contexts holds the context variables of T.87 A.2.
type contexts struct {
	a, b, c, n [367]int
	nn         [367]int
}

func newContexts(p params) *contexts {
	cx := &contexts{}
	a := max(2, (p.rangeV+32)/64)
	for i := range cx.a {
		cx.a[i], cx.n[i] = a, 1
	}
	return cx
}

func (d *decoder) scan() error {
	if d.out == nil {
		return fail("SOS before SOF55")
	}
	seg, err := d.segment()
	if err != nil {
		return err
	}
	ns := int(seg[0])
	if ns < 1 || len(seg) < 1+2*ns+3 {
		return fail("short SOS")
	}
	idx := make([]int, ns)
	for i := 0; i < ns; i++ {
		idx[i] = -1
		for j, c := range d.comps {
			if c == int(seg[1+2*i]) {
				idx[i] = j
			}
		}
		if idx[i] < 0 {
			return fail("scan names unknown component %d", seg[1+2*i])
		}
		if seg[2+2*i] != 0 {
			return fail("mapping tables are not supported")
		}
	}
	near, ilv, pt := int(seg[1+2*ns]), int(seg[2+2*ns]), int(seg[3+2*ns]&15)
	if pt != 0 {
		return fail("point transform %d", pt)
	}
	if ilv > 2 {
		return fail("interleave mode %d", ilv)
	}
	if ilv == 0 && ns > 1 {
		return fail("a non-interleaved scan with %d components", ns)
	}
	p := d.coding(near)
	if near > p.maxval/2 {
		return fail("NEAR %d", near)
	}
	d.acc, d.nacc, d.marker, d.prevFF = 0, 0, false, false
	cx := newContexts(p)
	w := d.width
	// Per component: the previous and current line, one extra sample at each end.
	prev := make([][]int, ns)
	cur := make([][]int, ns)
	runIndex := make([]int, ns)
	for i := range prev {
		prev[i], cur[i] = make([]int, w+2), make([]int, w+2)
	}
	nc := len(d.comps)
	for y := 0; y < d.height; y++ {
		if ilv == 2 && ns > 1 {
			for ci := range cur {
				cur[ci][0] = prev[ci][1]
			}
			if err := d.lineSample(p, cx, prev, cur, &runIndex[0]); err != nil {
				return err
			}
			for ci, cl := range cur {
				cl[w+1] = cl[w]
				for x := 0; x < w; x++ {
					d.out[(y*w+x)*nc+idx[ci]] = uint16(cl[x+1])
				}
			}
			prev, cur = cur, prev
			continue
		}
		for ci := 0; ci < ns; ci++ {
			pl, cl := prev[ci], cur[ci]
			cl[0] = pl[1]
			if err := d.line(p, cx, pl, cl, &runIndex[ci]); err != nil {
				return err
			}
			cl[w+1] = cl[w]
			for x := 0; x < w; x++ {
				d.out[(y*w+x)*nc+idx[ci]] = uint16(cl[x+1])
			}
			prev[ci], cur[ci] = cl, pl
		}
	}
	for _, i := range idx {
		d.done[i] = true
	}
	if d.prevFF {
		d.Pos-- // the last 0xFF read ahead starts the next marker
	}
	return nil
}

// line decodes one line of one component into cl[1..w], with pl the line above.
func (d *decoder) line(p params, cx *contexts, pl, cl []int, runIndex *int) error {
	w := d.width
	for x := 1; x <= w; {
		ra, rb, rc, rd := cl[x-1], pl[x], pl[x-1], pl[x+1]
		if abs(rd-rb) <= p.near && abs(rb-rc) <= p.near && abs(rc-ra) <= p.near {
			n, err := d.run(p, cx, pl, cl, x, runIndex)
			if err != nil {
				return err
			}
			x += n
			continue
		}
		v, err := d.regular(p, cx, ra, rb, rc, rd)
		if err != nil {
			return err
		}
		cl[x] = v
		x++
	}
	return nil
}

// lineSample decodes one line of a sample-interleaved scan (ILV=2, T.87 B.3): the
// components of each sample in turn, sharing the context variables and one run index.
// Run mode is entered only where the gradients of every component are within NEAR; a
// run then repeats the whole previous sample, and its interruption codes each
// component as run interruption type 0 (predicted by the sample above).
func (d *decoder) lineSample(p params, cx *contexts, prev, cur [][]int, runIndex *int) error {
	w := d.width
	for x := 1; x <= w; {
		run := true
		for c := range cur {
			pl, cl := prev[c], cur[c]
			if abs(pl[x+1]-pl[x]) > p.near || abs(pl[x]-pl[x-1]) > p.near || abs(pl[x-1]-cl[x-1]) > p.near {
				run = false
				break
			}
		}
		if run {
			n, err := d.runLength(w-x+1, runIndex)
			if err != nil {
				return err
			}
			for c := range cur {
				cl := cur[c]
				for i := 0; i < n; i++ {
					cl[x+i] = cl[x-1]
				}
			}
			x += n
			if x > w {
				break
			}
			// Run interruption sample (A.7.2 with RItype 0 for every component).
			for c := range cur {
				ra, rb := cur[c][x-1], prev[c][x]
				e, err := d.riError(p, cx, 0, *runIndex)
				if err != nil {
					return err
				}
				e *= 2*p.near + 1
				if ra > rb {
					e = -e
				}
				cur[c][x] = reconstruct(rb, e, p)
			}
			if *runIndex > 0 {
				*runIndex--
			}
			x++
			continue
		}
		for c := range cur {
			pl, cl := prev[c], cur[c]
			v, err := d.regular(p, cx, cl[x-1], pl[x], pl[x-1], pl[x+1])
			if err != nil {
				return err
			}
			cl[x] = v
		}
		x++
	}
	return nil
}

// regular decodes one sample in regular mode (T.87 A.3–A.6) from its neighbours.
func (d *decoder) regular(p params, cx *contexts, ra, rb, rc, rd int) (int, error) {
	q1, q2, q3 := quantize(rd-rb, p), quantize(rb-rc, p), quantize(rc-ra, p)
	sign := 1
	if q1 < 0 || (q1 == 0 && q2 < 0) || (q1 == 0 && q2 == 0 && q3 < 0) {
		sign, q1, q2, q3 = -1, -q1, -q2, -q3
	}
	q := (q1*9+q2)*9 + q3
	px := med(ra, rb, rc) + sign*cx.c[q]
	px = max(0, min(p.maxval, px))
	k := 0
	for cx.n[q]<<uint(k) < cx.a[q] {
		k++
	}
	m, err := d.golomb(k, p.limit, p.qbpp)
	if err != nil {
		return 0, err
	}
	var e int
	if p.near == 0 && k == 0 && 2*cx.b[q] <= -cx.n[q] {
		if m&1 == 1 {
			e = (m - 1) >> 1
		} else {
			e = -(m >> 1) - 1
		}
	} else if m&1 == 0 {
		e = m >> 1
	} else {
		e = -((m + 1) >> 1)
	}
	// Context update (A.6).
	cx.b[q] += e * (2*p.near + 1)
	cx.a[q] += abs(e)
	if cx.n[q] == p.reset {
		cx.a[q] >>= 1
		cx.b[q] >>= 1
		cx.n[q] >>= 1
	}
	cx.n[q]++
	if cx.b[q] <= -cx.n[q] {
		cx.b[q] += cx.n[q]
		if cx.c[q] > -128 {
			cx.c[q]--
		}
		if cx.b[q] <= -cx.n[q] {
			cx.b[q] = -cx.n[q] + 1
		}
	} else if cx.b[q] > 0 {
		cx.b[q] -= cx.n[q]
		if cx.c[q] < 127 {
			cx.c[q]++
		}
		if cx.b[q] > 0 {
			cx.b[q] = 0
		}
	}
	return reconstruct(px, sign*e*(2*p.near+1), p), nil
}

// runLength decodes the length of a run of at most remaining samples (T.87 A.7.1).
func (d *decoder) runLength(remaining int, runIndex *int) (int, error) {
	n := 0
	for d.bit() == 1 {
		cnt := min(1<<uint(jTable[*runIndex]), remaining-n)
		n += cnt
		if cnt == 1<<uint(jTable[*runIndex]) && *runIndex < 31 {
			*runIndex++
		}
		if n == remaining {
			return n, nil
		}
	}
	if j := jTable[*runIndex]; j > 0 {
		n += d.read(j)
		if n > remaining {
			return 0, fail("run beyond the line")
		}
	}
	return n, nil
}

// riError decodes the error value of a run interruption sample of type riType and
// updates its context (T.87 A.7.2).
func (d *decoder) riError(p params, cx *contexts, riType, runIndex int) (int, error) {
	q := 365 + riType
	temp := cx.a[q]
	if riType == 1 {
		temp += cx.n[q] >> 1
	}
	k := 0
	for cx.n[q]<<uint(k) < temp {
		k++
	}
	m, err := d.golomb(k, p.limit-jTable[runIndex]-1, p.qbpp)
	if err != nil {
		return 0, err
	}
	t := m + riType
	mapBit := t & 1
	eAbs := (t + mapBit) / 2
	e := eAbs
	if (k != 0 || 2*cx.nn[q] >= cx.n[q]) == (mapBit == 1) {
		e = -eAbs
	}
	// Update (A.7.2.3).
	if e < 0 {
		cx.nn[q]++
	}
	cx.a[q] += (m + 1 - riType) >> 1
	if cx.n[q] == p.reset {
		cx.a[q] >>= 1
		cx.n[q] >>= 1
		cx.nn[q] >>= 1
	}
	cx.n[q]++
	return e, nil
}

// run decodes a run starting at x (T.87 A.7) and, unless it reaches the end of the
// line, the run interruption sample; it returns the samples decoded.
func (d *decoder) run(p params, cx *contexts, pl, cl []int, x int, runIndex *int) (int, error) {
	ra := cl[x-1]
	remaining := d.width - x + 1
	n, err := d.runLength(remaining, runIndex)
	if err != nil {
		return 0, err
	}
	for i := 0; i < n; i++ {
		cl[x+i] = ra
	}
	if n == remaining {
		return n, nil
	}
	// Run interruption sample (A.7.2).
	pos := x + n
	rb := pl[pos]
	riType := 0
	if abs(ra-rb) <= p.near {
		riType = 1
	}
	px := rb
	if riType == 1 {
		px = ra
	}
	e, err := d.riError(p, cx, riType, *runIndex)
	if err != nil {
		return 0, err
	}
	e *= 2*p.near + 1
	if riType == 0 && ra > rb {
		e = -e
	}
	cl[pos] = reconstruct(px, e, p)
	if *runIndex > 0 {
		*runIndex--
	}
	return n + 1, nil
}

func reconstruct(px, e int, p params) int {
	rx := px + e
	span := p.rangeV * (2*p.near + 1)
	if rx < -p.near {
		rx += span
	} else if rx > p.maxval+p.near {
		rx -= span
	}
	return max(0, min(p.maxval, rx))
}

func quantize(v int, p params) int {
	switch {
	case v <= -p.t3:
		return -4
	case v <= -p.t2:
		return -3
	case v <= -p.t1:
		return -2
	case v < -p.near:
		return -1
	case v <= p.near:
		return 0
	case v < p.t1:
		return 1
	case v < p.t2:
		return 2
	case v < p.t3:
		return 3
	}
	return 4
}

func med(ra, rb, rc int) int {
	switch {
	case rc >= max(ra, rb):
		return min(ra, rb)
	case rc <= min(ra, rb):
		return max(ra, rb)
	}
	return ra + rb - rc
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
