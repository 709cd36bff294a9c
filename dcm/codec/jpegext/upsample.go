package jpegext

// upsample writes component ci, subsampled by hs horizontally and vs vertically, into
// the interleaved samples of img. T.81 leaves upsampling to the decoder; this is what
// IJG's libjpeg (and so DCMTK) does by default: for 2:1 horizontally, and 2:1 in both
// directions, a triangle filter (each output sample 3/4 of the nearer input sample
// and 1/4 of the further one, in each direction, with libjpeg's rounding), edges
// replicated; replication for every other ratio, and for components two samples wide
// or less.
func upsample(img *Image, ci int, c *component, hs, vs int) {
	w, h, nc := img.Width, img.Height, img.Components
	out := img.Data
	// The component's samples, its lines clamped to the last real one (libjpeg's
	// context rows at the top and bottom edges).
	line := func(y int) []uint16 {
		y = max(0, min(y, c.dh-1))
		return c.plane[y*c.stride : y*c.stride+c.dw]
	}
	switch {
	case hs == 1 && vs == 1:
		for y := 0; y < h; y++ {
			in := line(y)
			o := out[y*w*nc+ci:]
			for x := 0; x < w; x++ {
				o[x*nc] = in[x]
			}
		}
	case hs == 2 && vs == 1 && c.dw > 2:
		row := make([]uint16, 2*c.dw)
		for y := 0; y < h; y++ {
			in := line(y)
			n := c.dw
			row[0] = in[0]
			row[1] = uint16((3*int(in[0]) + int(in[1]) + 2) >> 2)
			for i := 1; i < n-1; i++ {
				v := 3 * int(in[i])
				row[2*i] = uint16((v + int(in[i-1]) + 1) >> 2)
				row[2*i+1] = uint16((v + int(in[i+1]) + 2) >> 2)
			}
			row[2*n-2] = uint16((3*int(in[n-1]) + int(in[n-2]) + 1) >> 2)
			row[2*n-1] = in[n-1]
			o := out[y*w*nc+ci:]
			for x := 0; x < w; x++ {
				o[x*nc] = row[x]
			}
		}
	case hs == 2 && vs == 2 && c.dw > 2:
		row := make([]uint16, 2*c.dw)
		sums := make([]int, c.dw)
		for y := 0; y < h; y++ {
			// Output line y lies in input line y/2, nearer the line above it when y is
			// even and the line below when y is odd.
			near, far := line(y/2), line(y/2-1)
			if y%2 == 1 {
				far = line(y/2 + 1)
			}
			for i := range sums {
				sums[i] = 3*int(near[i]) + int(far[i])
			}
			n := c.dw
			row[0] = uint16((4*sums[0] + 8) >> 4)
			row[1] = uint16((3*sums[0] + sums[1] + 7) >> 4)
			for i := 1; i < n-1; i++ {
				v := 3 * sums[i]
				row[2*i] = uint16((v + sums[i-1] + 8) >> 4)
				row[2*i+1] = uint16((v + sums[i+1] + 7) >> 4)
			}
			row[2*n-2] = uint16((3*sums[n-1] + sums[n-2] + 8) >> 4)
			row[2*n-1] = uint16((4*sums[n-1] + 7) >> 4)
			o := out[y*w*nc+ci:]
			for x := 0; x < w; x++ {
				o[x*nc] = row[x]
			}
		}
	default:
		for y := 0; y < h; y++ {
			in := c.plane[min(y/vs, c.dh-1)*c.stride:]
			o := out[y*w*nc+ci:]
			for x := 0; x < w; x++ {
				o[x*nc] = in[x/hs]
			}
		}
	}
}
