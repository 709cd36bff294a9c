package jpegext

import "math"

// basis[u*8+x] is C(u)/2 · cos((2x+1)uπ/16), C(0) = 1/√2 and C(u) = 1 otherwise: the
// one-dimensional inverse DCT of T.81 A.3.3, whose square is the two-dimensional one.
var basis = func() (b [64]float64) {
	for u := 0; u < 8; u++ {
		cu := 1.0
		if u == 0 {
			cu = 1 / math.Sqrt2
		}
		for x := 0; x < 8; x++ {
			b[u*8+x] = cu / 2 * math.Cos(float64(2*x+1)*float64(u)*math.Pi/16)
		}
	}
	return b
}()

// idct computes the inverse DCT of a dequantized block (T.81 A.3.3), level-shifts it
// by 2^(precision−1), rounds and clamps it to 0..2^precision−1 and writes it at out,
// stride samples per line. rows has bit v set when row v of blk has a coefficient
// other than zero.
func idct(blk *[64]float64, rows uint8, out []uint16, stride, precision int) {
	center := float64(int(1)<<(precision-1)) + 0.5 // the level shift and the rounding
	maxv := uint16(1)<<precision - 1
	put := func(v float64) uint16 {
		v += center
		if v < 0 {
			return 0
		}
		if u := uint16(min(v, 65535)); u < maxv {
			return u
		}
		return maxv
	}
	if rows == 1 && blk[1] == 0 && blk[2] == 0 && blk[3] == 0 && blk[4] == 0 && blk[5] == 0 && blk[6] == 0 && blk[7] == 0 {
		// Only the DC coefficient: a flat block of S00/8.
		v := put(blk[0] / 8)
		for y := 0; y < 8; y++ {
			o := out[y*stride : y*stride+8]
			for x := range o {
				o[x] = v
			}
		}
		return
	}
	// The basis is symmetric, basis(u,7−x) = (−1)^u·basis(u,x): each 1-D transform sums
	// the even and the odd frequencies over four outputs and mirrors them.
	// Rows: tmp[v][x] = Σu S(v,u)·basis(u,x), for the rows that are not all zero.
	var tmp [64]float64
	var live [8]int
	n := 0
	for v := 0; v < 8; v++ {
		if rows&(1<<v) == 0 {
			continue
		}
		live[n] = v
		n++
		s := blk[v*8 : v*8+8 : v*8+8]
		var e, o [4]float64
		for u := 0; u < 8; u += 2 {
			if c := s[u]; c != 0 {
				b := basis[u*8 : u*8+4 : u*8+4]
				e[0] += c * b[0]
				e[1] += c * b[1]
				e[2] += c * b[2]
				e[3] += c * b[3]
			}
			if c := s[u+1]; c != 0 {
				b := basis[(u+1)*8 : (u+1)*8+4 : (u+1)*8+4]
				o[0] += c * b[0]
				o[1] += c * b[1]
				o[2] += c * b[2]
				o[3] += c * b[3]
			}
		}
		t := tmp[v*8 : v*8+8 : v*8+8]
		t[0], t[7] = e[0]+o[0], e[0]-o[0]
		t[1], t[6] = e[1]+o[1], e[1]-o[1]
		t[2], t[5] = e[2]+o[2], e[2]-o[2]
		t[3], t[4] = e[3]+o[3], e[3]-o[3]
	}
	// Columns: s(y,x) = Σv basis(v,y)·tmp[v][x], y and 7−y together.
	for y := 0; y < 4; y++ {
		var e, o [8]float64
		for _, v := range live[:n] {
			b := basis[v*8+y]
			t := tmp[v*8 : v*8+8 : v*8+8]
			a := &e
			if v&1 == 1 {
				a = &o
			}
			a[0] += b * t[0]
			a[1] += b * t[1]
			a[2] += b * t[2]
			a[3] += b * t[3]
			a[4] += b * t[4]
			a[5] += b * t[5]
			a[6] += b * t[6]
			a[7] += b * t[7]
		}
		top := out[y*stride : y*stride+8 : y*stride+8]
		bottom := out[(7-y)*stride : (7-y)*stride+8 : (7-y)*stride+8]
		for x := range top {
			top[x] = put(e[x] + o[x])
			bottom[x] = put(e[x] - o[x])
		}
	}
}
