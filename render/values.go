package render

import (
	"cmp"
	"encoding/binary"
	"image"
	"math"
	"slices"

	"github.com/lumenpacs/lumen/dcm"
)

// chunkLen is how many stored values are handled at a time: a chunk stays in the
// first-level cache between the passes over it.
const chunkLen = 2048

// values gives the stored values of a grey frame (BitsStored at HighBit, sign-extended)
// a chunk at a time, from decoded samples or straight from the stored bytes.
type values interface {
	len() int
	// chunk returns the values from i on, at most len(buf) of them, in buf or in a
	// slice of its own.
	chunk(i int, buf []int64) []int64
}

// frameValues are the samples of a decoded frame.
type frameValues []int64

func (f frameValues) len() int { return len(f) }

func (f frameValues) chunk(i int, buf []int64) []int64 { return f[i:min(len(f), i+len(buf))] }

// nativeValues reads the stored values of an uncompressed 8- or 16-bit grey frame from
// its bytes, as the native decoder does (PS3.5 8.1.1), without a decoded copy.
type nativeValues struct {
	data     []byte
	n        int
	wide     bool // 16-bit samples
	big      bool // big endian
	shift    uint
	mask     uint64
	signBits uint // 64 - BitsStored when signed, else 0
}

// newNativeValues describes an uncompressed grey frame, or says false when it is not
// one of 8 or 16 bits with data for every sample.
func newNativeValues(p *Params, data []byte) (*nativeValues, bool) {
	n := p.Rows * p.Columns
	if p.SamplesPerPixel != 1 || (p.BitsAllocated != 8 && p.BitsAllocated != 16) || len(data) < n*p.BitsAllocated/8 {
		return nil, false
	}
	s := &nativeValues{data: data, n: n, wide: p.BitsAllocated == 16, big: p.BigEndian,
		shift: uint(p.HighBit + 1 - p.BitsStored), mask: 1<<uint(p.BitsStored) - 1}
	if p.Signed {
		s.signBits = 64 - uint(p.BitsStored)
	}
	return s, true
}

func (s *nativeValues) len() int { return s.n }

func (s *nativeValues) chunk(i int, buf []int64) []int64 {
	out := buf[:min(len(buf), s.n-i)]
	shift, mask := s.shift, s.mask
	switch {
	case !s.wide:
		d := s.data[i : i+len(out)]
		for k, b := range d {
			out[k] = int64(uint64(b) >> shift & mask)
		}
	case s.big:
		d := s.data[2*i : 2*(i+len(out))]
		for k := range out {
			out[k] = int64(uint64(binary.BigEndian.Uint16(d[2*k:])) >> shift & mask)
		}
	default:
		d := s.data[2*i : 2*(i+len(out))]
		for k := range out {
			out[k] = int64(uint64(binary.LittleEndian.Uint16(d[2*k:])) >> shift & mask)
		}
	}
	if sb := s.signBits; sb > 0 {
		for k, v := range out {
			out[k] = v << sb >> sb
		}
	}
	return out
}

// nativeSyntax reports whether frames of transfer syntax ts are stored uncompressed
// (a deflated data set is rendered inflated).
func nativeSyntax(ts string) bool {
	switch ts {
	case dcm.ImplicitVRLittleEndian, dcm.ExplicitVRLittleEndian, dcm.ExplicitVRBigEndian, dcm.DeflatedExplicitVRLittleEndian:
		return true
	}
	return false
}

// tableSpan is the widest range of stored values mapped through a lookup table (all
// data of up to 16 bits); wider ranges are mapped value by value.
const tableSpan = 1 << 17

// grayImage maps grey stored values through the modality and VOI transforms (and the
// inversion of MONOCHROME1) into an 8-bit picture. Within tableSpan the transforms are
// computed once per stored value into a table, which the pixels are then looked up in.
func grayImage(src values, cols, rows int, p *Params, o Options, invert bool) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, cols, rows))
	n := src.len()
	if n == 0 {
		return img
	}
	buf := make([]int64, chunkLen)
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for i := 0; i < n; {
		c := src.chunk(i, buf)
		for _, v := range c {
			lo, hi = min(lo, v), max(hi, v)
		}
		i += len(c)
	}
	var mapv func(float64) float64
	switch {
	case o.Window != nil:
		mapv = o.Window.voiFunc()
	case p.Window != nil:
		mapv = p.Window.voiFunc()
	case p.VOILUT != nil:
		l := p.VOILUT
		maxOut := float64(int(1)<<uint(max(l.Bits, 1)) - 1)
		if l.Bits <= 0 || l.Bits > 16 {
			maxOut = float64(slices.Max(l.Data))
		}
		mapv = func(x float64) float64 { return l.lookup(x) / maxOut * 255 }
	default:
		w := autoWindow(src, p, lo, hi, buf)
		mapv = w.voiFunc()
	}
	gray := func(v int64) uint8 {
		y := clamp8(mapv(p.modality(v)))
		if invert {
			y = 255 - y
		}
		return y
	}
	if hi-lo >= tableSpan {
		for i := 0; i < n; {
			c := src.chunk(i, buf)
			pix := img.Pix[i : i+len(c)]
			for k, v := range c {
				pix[k] = gray(v)
			}
			i += len(c)
		}
		return img
	}
	table := make([]uint8, hi-lo+1)
	for v := lo; v <= hi; v++ {
		table[v-lo] = gray(v)
	}
	for i := 0; i < n; {
		c := src.chunk(i, buf)
		pix := img.Pix[i : i+len(c)]
		for k, v := range c {
			pix[k] = table[v-lo]
		}
		i += len(c)
	}
	return img
}

// autoWindow chooses a window over the 0.5th to 99.5th percentile of the modality
// values of the frame (of every step-th sample of frames over 2^18 samples), padding
// excluded. lo and hi are the smallest and largest stored values; within tableSpan the
// percentiles are read from a histogram of the stored values, which gives the same
// values as sorting the samples.
func autoWindow(src values, p *Params, lo, hi int64, buf []int64) Window {
	n := src.len()
	step := 1
	if n > 1<<18 {
		step = n >> 18
	}
	// each calls fn with every sampled value.
	each := func(fn func(c []int64, first int)) {
		for i := 0; i < n; {
			c := src.chunk(i, buf)
			first := 0
			if r := i % step; r != 0 {
				first = step - r
			}
			fn(c, first)
			i += len(c)
		}
	}
	var k1, k2 int
	var at func(k int) float64 // the k-th smallest modality value
	if hi-lo >= tableSpan {
		var vals []float64
		each(func(c []int64, first int) {
			for k := first; k < len(c); k += step {
				if !p.isPadding(c[k]) {
					vals = append(vals, p.modality(c[k]))
				}
			}
		})
		if len(vals) == 0 {
			return Window{Center: 0.5, Width: 1}
		}
		slices.Sort(vals)
		k1, k2 = len(vals)*5/1000, min(len(vals)-1, len(vals)*995/1000)
		at = func(k int) float64 { return vals[k] }
	} else {
		counts := make([]int, hi-lo+1)
		each(func(c []int64, first int) {
			for k := first; k < len(c); k += step {
				counts[c[k]-lo]++
			}
		})
		type bin struct {
			m float64
			n int
		}
		var bins []bin
		total := 0
		for i, c := range counts {
			if v := lo + int64(i); c > 0 && !p.isPadding(v) {
				bins = append(bins, bin{p.modality(v), c})
				total += c
			}
		}
		if total == 0 {
			return Window{Center: 0.5, Width: 1}
		}
		slices.SortFunc(bins, func(a, b bin) int { return cmp.Compare(a.m, b.m) })
		k1, k2 = total*5/1000, min(total-1, total*995/1000)
		at = func(k int) float64 {
			for _, b := range bins {
				if k < b.n {
					return b.m
				}
				k -= b.n
			}
			return bins[len(bins)-1].m
		}
	}
	vlo, vhi := at(k1), at(k2)
	if vhi <= vlo {
		vhi = vlo + 1
	}
	return Window{Center: (vlo + vhi) / 2, Width: vhi - vlo, Function: "LINEAR_EXACT"}
}
