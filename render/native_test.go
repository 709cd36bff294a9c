package render

import (
	"bytes"
	"fmt"
	"image"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dcm/codec"
)

// referenceGray is the grey pipeline computed pixel by pixel, without lookup tables or
// histograms: the modality transform, the VOI window (the automatic one from the sorted
// modality values) and the inversion of each decoded sample in turn.
func referenceGray(f *codec.Frame, p *Params, o Options, invert bool) *image.Gray {
	// The VOI choice is grayMapper's; the automatic window is computed here from the
	// sorted values (not the histogram), and every sample is mapped in turn (no table).
	sorted := func() Window {
		step := 1
		if len(f.Data) > 1<<18 {
			step = len(f.Data) >> 18
		}
		var vals []float64
		for i := 0; i < len(f.Data); i += step {
			if !p.isPadding(f.Data[i]) {
				vals = append(vals, p.modality(f.Data[i]))
			}
		}
		if len(vals) == 0 {
			return Window{Center: 0.5, Width: 1}
		}
		slices.Sort(vals)
		lo, hi := vals[len(vals)*5/1000], vals[min(len(vals)-1, len(vals)*995/1000)]
		if hi <= lo {
			hi = lo + 1
		}
		return Window{Center: (lo + hi) / 2, Width: hi - lo, Function: "LINEAR_EXACT"}
	}
	gray := grayMapper(p, o, invert, sorted)
	img := image.NewGray(image.Rect(0, 0, f.Columns, f.Rows))
	for i, v := range f.Data {
		img.Pix[i] = gray(v)
	}
	return img
}

// TestNativeAndTables renders uncompressed grey frames of many sample layouts and
// transforms straight from their bytes (renderNative), and decoded frames through the
// lookup tables (Image), and compares both, pixel for pixel, with the pipeline computed
// sample by sample from the decoder's values (referenceGray); and 8-bit RGB frames from
// their bytes with Image's rendering of the decoded frame.
func TestNativeAndTables(t *testing.T) {
	type layout struct{ alloc, stored, high int }
	layouts := []layout{{8, 8, 7}, {8, 6, 5}, {8, 6, 7}, {16, 16, 15}, {16, 12, 11}, {16, 12, 15}, {16, 10, 13}}
	rng := rand.New(rand.NewPCG(1, 2))
	modLUT := &LUT{First: -100, Bits: 16}
	for i := range 600 {
		modLUT.Data = append(modLUT.Data, (i*37)%4096)
	}
	voiLUT := &LUT{First: 0, Bits: 12}
	for i := range 3000 {
		voiLUT.Data = append(voiLUT.Data, 4095-i)
	}
	transforms := []struct {
		name string
		set  func(p *Params, o *Options, top float64) // top: 2^BitsStored
	}{
		{"auto", func(p *Params, o *Options, top float64) {}},
		{"auto, rescale -2.5 +1000", func(p *Params, o *Options, top float64) { p.Slope, p.Intercept = -2.5, 1000 }},
		{"auto, padding", func(p *Params, o *Options, top float64) { p.Padding = &[2]int{0, 40} }},
		{"stored LINEAR", func(p *Params, o *Options, top float64) { p.Window = &Window{Center: top / 8, Width: top / 2} }},
		{"stored LINEAR_EXACT, rescale", func(p *Params, o *Options, top float64) {
			p.Slope, p.Intercept = 1.5, -top/4
			p.Window = &Window{Center: 0, Width: top, Function: "linear_exact "}
		}},
		{"requested SIGMOID", func(p *Params, o *Options, top float64) {
			o.Window = &Window{Center: top / 8, Width: top / 3, Function: "SIGMOID"}
		}},
		{"requested width 1", func(p *Params, o *Options, top float64) { o.Window = &Window{Center: top / 8, Width: 1} }},
		{"modality LUT", func(p *Params, o *Options, top float64) { p.ModalityLUT = modLUT }},
		{"VOI LUT", func(p *Params, o *Options, top float64) { p.VOILUT = voiLUT }},
	}
	compared := 0
	for _, l := range layouts {
		for _, signed := range []bool{false, true} {
			for _, big := range []bool{false, true} {
				if big && l.alloc == 8 {
					continue
				}
				for _, pi := range []string{"MONOCHROME2", "MONOCHROME1", "monochrome2"} {
					for _, tr := range transforms {
						for _, size := range [][2]int{{37, 23}, {1024, 520}} {
							if size[0] > 100 && (pi != "MONOCHROME2" || big) {
								continue // the large frame (sampled automatic window) once per layout
							}
							name := fmt.Sprintf("%d-%d-%d signed=%v big=%v %s %s %dx%d", l.alloc, l.stored, l.high, signed, big, pi, tr.name, size[0], size[1])
							p := &Params{Pixels: codec.Pixels{Rows: size[1], Columns: size[0], SamplesPerPixel: 1, BitsAllocated: l.alloc,
								BitsStored: l.stored, HighBit: l.high, Signed: signed, Photometric: pi, Frames: 1, BigEndian: big}, Slope: 1}
							var o Options
							tr.set(p, &o, float64(int(1)<<l.stored))
							ts := dcm.ExplicitVRLittleEndian
							if big {
								ts = dcm.ExplicitVRBigEndian
							}
							// Random bytes (bits outside BitsStored included), a third of the
							// frame in a narrow band so the automatic window has a shape.
							data := make([]byte, size[0]*size[1]*l.alloc/8)
							for i := range data {
								data[i] = byte(rng.Uint32())
								if i%3 == 0 {
									data[i] &= 0x1f
								}
							}
							got := renderNative(ts, p, data, o)
							if got == nil {
								t.Fatalf("%s: not rendered from the stored bytes", name)
							}
							f, err := codec.Decode(ts, &p.Pixels, data)
							if err != nil {
								t.Fatal(err)
							}
							viaFrame, err := Image(f, p, o)
							if err != nil {
								t.Fatal(err)
							}
							want := referenceGray(f, p, o, strings.EqualFold(pi, "MONOCHROME1"))
							if g := got.(*image.Gray); !bytes.Equal(g.Pix, want.Pix) || g.Rect != want.Rect {
								t.Fatalf("%s: the rendering from the stored bytes differs from the reference", name)
							}
							if !bytes.Equal(viaFrame.(*image.Gray).Pix, want.Pix) {
								t.Fatalf("%s: the rendering of the decoded frame differs from the reference", name)
							}
							if spread := slices.Max(want.Pix) - slices.Min(want.Pix); spread < 2 && !strings.Contains(tr.name, "width 1") {
								t.Fatalf("%s: the reference is uniform (%d levels): nothing compared", name, spread)
							}
							compared++
						}
					}
				}
			}
		}
	}
	t.Logf("%d grey renderings compared", compared)
	for _, planar := range []bool{false, true} {
		p := &Params{Pixels: codec.Pixels{Rows: 19, Columns: 31, SamplesPerPixel: 3, BitsAllocated: 8, BitsStored: 8, HighBit: 7, Planar: planar, Photometric: "RGB", Frames: 1}, Slope: 1}
		data := make([]byte, 19*31*3)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		got := renderNative(dcm.ExplicitVRLittleEndian, p, data, Options{})
		f, err := codec.Decode(dcm.ExplicitVRLittleEndian, &p.Pixels, data)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := Image(f, p, Options{})
		if got == nil || !bytes.Equal(got.(*image.RGBA).Pix, want.(*image.RGBA).Pix) {
			t.Fatalf("RGB planar=%v: the rendering from the stored bytes differs from Image's", planar)
		}
	}
	// Frames renderNative leaves to the decoder.
	for _, p := range []*Params{
		{Pixels: codec.Pixels{Rows: 4, Columns: 4, SamplesPerPixel: 1, BitsAllocated: 32, BitsStored: 32, HighBit: 31, Photometric: "MONOCHROME2"}},
		{Pixels: codec.Pixels{Rows: 4, Columns: 4, SamplesPerPixel: 3, BitsAllocated: 8, BitsStored: 8, HighBit: 7, Photometric: "YBR_FULL_422"}},
		{Pixels: codec.Pixels{Rows: 4, Columns: 4, SamplesPerPixel: 1, BitsAllocated: 16, BitsStored: 16, HighBit: 15, Photometric: "MONOCHROME2"}},
	} {
		data := make([]byte, 64)
		if p.BitsAllocated == 16 {
			data = data[:31] // short: the decoder says so
		}
		if renderNative(dcm.ExplicitVRLittleEndian, p, data, Options{}) != nil {
			t.Fatalf("%d-bit %s rendered from the stored bytes", p.BitsAllocated, p.Photometric)
		}
	}
	if renderNative("1.2.840.10008.1.2.5", &Params{Pixels: codec.Pixels{Rows: 1, Columns: 1, SamplesPerPixel: 1, BitsAllocated: 8, BitsStored: 8, HighBit: 7, Photometric: "MONOCHROME2"}}, []byte{0}, Options{}) != nil {
		t.Fatal("an RLE frame rendered as native")
	}
}
