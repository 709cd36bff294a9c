package render

import (
	"cmp"
	"image"
	"math"
	"slices"

	"github.com/lumenpacs/lumen/dcm"
)

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

// grayMapper returns the function that maps a stored value to a grey level: modality
// transform, VOI (the requested window, else the stored one, else the VOI LUT, else the
// window auto gives) and the inversion of MONOCHROME1.
func grayMapper(p *Params, o Options, invert bool, auto func() Window) func(int64) uint8 {
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
		mapv = auto().voiFunc()
	}
	return func(v int64) uint8 {
		y := clamp8(mapv(p.modality(v)))
		if invert {
			y = 255 - y
		}
		return y
	}
}

// autoStep is the sampling of the automatic window: every sample of frames up to 2^18
// samples, every (n >> 18)-th of larger ones.
func autoStep(n int) int {
	if n > 1<<18 {
		return n >> 18
	}
	return 1
}

// bin is a modality value and how many sampled pixels have it.
type bin struct {
	m float64
	n int
}

// windowOf is the automatic window: over the 0.5th to 99.5th percentile of the sampled
// modality values (padding excluded), given as bins in any order. It equals the window
// read from the sorted list of the values.
func windowOf(bins []bin) Window {
	total := 0
	for _, b := range bins {
		total += b.n
	}
	if total == 0 {
		return Window{Center: 0.5, Width: 1}
	}
	slices.SortFunc(bins, func(a, b bin) int { return cmp.Compare(a.m, b.m) })
	at := func(k int) float64 { // the k-th smallest value
		for _, b := range bins {
			if k < b.n {
				return b.m
			}
			k -= b.n
		}
		return bins[len(bins)-1].m
	}
	lo, hi := at(total*5/1000), at(min(total-1, total*995/1000))
	if hi <= lo {
		hi = lo + 1
	}
	return Window{Center: (lo + hi) / 2, Width: hi - lo, Function: "LINEAR_EXACT"}
}

// grayImage maps the decoded stored values of a grey frame into an 8-bit picture.
// Within tableSpan the transforms are computed once per stored value into a table,
// which the pixels are then looked up in.
func grayImage(data []int64, cols, rows int, p *Params, o Options, invert bool) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, cols, rows))
	if len(data) == 0 {
		return img
	}
	lo, hi := slices.Min(data), slices.Max(data)
	step := autoStep(len(data))
	gray := grayMapper(p, o, invert, func() Window {
		if hi-lo >= tableSpan {
			bins := make([]bin, 0, len(data)/step)
			for i := 0; i < len(data); i += step {
				if !p.isPadding(data[i]) {
					bins = append(bins, bin{p.modality(data[i]), 1})
				}
			}
			return windowOf(bins)
		}
		counts := make([]int, hi-lo+1)
		for i := 0; i < len(data); i += step {
			counts[data[i]-lo]++
		}
		var bins []bin
		for i, c := range counts {
			if v := lo + int64(i); c > 0 && !p.isPadding(v) {
				bins = append(bins, bin{p.modality(v), c})
			}
		}
		return windowOf(bins)
	})
	pix := img.Pix[:len(data)]
	if hi-lo >= tableSpan {
		for i, v := range data {
			pix[i] = gray(v)
		}
		return img
	}
	table := make([]uint8, hi-lo+1)
	for v := lo; v <= hi; v++ {
		table[v-lo] = gray(v)
	}
	for i, v := range data {
		pix[i] = table[v-lo]
	}
	return img
}

// grayNative renders an uncompressed grey frame of 8 or 16 bits from its bytes, as
// grayImage renders the decoded frame, in two passes over the stored bytes: one marks
// the stored words present, the other looks each pixel's word up in a table of grey
// levels computed once per word present (after BitsStored and HighBit masking, sign
// extension, the modality and VOI transforms); nil when the frame is not of that kind
// or its data is short.
func grayNative(p *Params, data []byte, o Options, invert bool) *image.Gray {
	n := p.Rows * p.Columns
	wide := p.BitsAllocated == 16
	if p.SamplesPerPixel != 1 || (p.BitsAllocated != 8 && !wide) || len(data) < n*p.BitsAllocated/8 {
		return nil
	}
	img := image.NewGray(image.Rect(0, 0, p.Columns, p.Rows))
	pix := img.Pix[:n]
	shift, bits := uint(p.HighBit+1-p.BitsStored), uint(p.BitsStored)
	value := func(raw int) int64 {
		v := int64(uint64(raw) >> shift & (1<<bits - 1))
		if p.Signed {
			v = v << (64 - bits) >> (64 - bits)
		}
		return v
	}
	words := 256
	if wide {
		words = 65536
	}
	// word is the stored word of pixel i.
	var word func(i int) int
	switch {
	case !wide:
		data = data[:n]
		word = func(i int) int { return int(data[i]) }
	case p.BigEndian:
		data = data[:2*n]
		word = func(i int) int { return int(data[2*i])<<8 | int(data[2*i+1]) }
	default:
		data = data[:2*n]
		word = func(i int) int { return int(data[2*i]) | int(data[2*i+1])<<8 }
	}
	seen := make([]bool, words)
	switch {
	case !wide:
		for _, b := range data {
			seen[b] = true
		}
	case p.BigEndian:
		for i := 0; i+1 < len(data); i += 2 {
			seen[int(data[i])<<8|int(data[i+1])] = true
		}
	default:
		for i := 0; i+1 < len(data); i += 2 {
			seen[int(data[i])|int(data[i+1])<<8] = true
		}
	}
	gray := grayMapper(p, o, invert, func() Window {
		counts := make([]int, words)
		for i := 0; i < n; i += autoStep(n) {
			counts[word(i)]++
		}
		var bins []bin
		for w, c := range counts {
			if v := value(w); c > 0 && !p.isPadding(v) {
				bins = append(bins, bin{p.modality(v), c})
			}
		}
		return windowOf(bins)
	})
	// Grey levels by stored value (several words may hold one value), then by word.
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for w, ok := range seen {
		if ok {
			v := value(w)
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	byValue := make([]uint8, hi-lo+1)
	done := make([]bool, hi-lo+1)
	table := make([]uint8, words)
	for w, ok := range seen {
		if ok {
			v := value(w) - lo
			if !done[v] {
				byValue[v], done[v] = gray(v+lo), true
			}
			table[w] = byValue[v]
		}
	}
	switch {
	case !wide:
		for i, b := range data {
			pix[i] = table[b]
		}
	case p.BigEndian:
		for i := range pix {
			pix[i] = table[int(data[2*i])<<8|int(data[2*i+1])]
		}
	default:
		for i := range pix {
			pix[i] = table[int(data[2*i])|int(data[2*i+1])<<8]
		}
	}
	return img
}
