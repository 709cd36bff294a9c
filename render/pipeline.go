package render

import (
	"fmt"
	"image"
	"math"
	"strings"

	"github.com/lumenpacs/lumen/dcm/codec"
)

// Options change how a frame is rendered.
type Options struct {
	// Window, when set, replaces the stored VOI (the DICOMweb window parameter).
	Window *Window
}

// Image maps a decoded frame to an 8-bit picture: *image.Gray for monochrome data,
// *image.RGBA for colour.
func Image(f *codec.Frame, p *Params, o Options) (image.Image, error) {
	switch strings.ToUpper(f.Photometric) {
	case "MONOCHROME1", "MONOCHROME2":
		if f.Samples != 1 {
			return nil, fmt.Errorf("render: %s with %d samples", f.Photometric, f.Samples)
		}
		return renderGray(f, p, o, strings.EqualFold(f.Photometric, "MONOCHROME1")), nil
	case "RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT":
		if f.Samples != 3 {
			return nil, fmt.Errorf("render: %s with %d samples", f.Photometric, f.Samples)
		}
		return renderColor(f, p), nil
	case "PALETTE COLOR":
		if p.Palette == nil || f.Samples != 1 {
			return nil, fmt.Errorf("render: PALETTE COLOR without its lookup tables")
		}
		return renderPalette(f, p), nil
	}
	return nil, fmt.Errorf("%w: photometric interpretation %q", ErrUnsupported, f.Photometric)
}

// modality applies the modality LUT or rescale (PS3.3 C.11.1).
func (p *Params) modality(v int64) float64 {
	if p.ModalityLUT != nil {
		return p.ModalityLUT.lookup(float64(v))
	}
	return float64(v)*p.Slope + p.Intercept
}

func (p *Params) isPadding(v int64) bool {
	return p.Padding != nil && int(v) >= p.Padding[0] && int(v) <= p.Padding[1]
}

// voiFunc is the window's mapping of modality values to 0..255 (PS3.3 C.11.2.1.2 and
// C.11.2.1.3).
func (w Window) voiFunc() func(float64) float64 {
	const ymin, ymax = 0.0, 255.0
	c, wd := w.Center, w.Width
	switch strings.ToUpper(strings.TrimSpace(w.Function)) {
	case "LINEAR_EXACT":
		if wd <= 0 {
			wd = 1
		}
		return func(x float64) float64 {
			switch {
			case x <= c-wd/2:
				return ymin
			case x > c+wd/2:
				return ymax
			}
			return ((x-c)/wd+0.5)*(ymax-ymin) + ymin
		}
	case "SIGMOID":
		if wd <= 0 {
			wd = 1
		}
		return func(x float64) float64 { return (ymax-ymin)/(1+math.Exp(-4*(x-c)/wd)) + ymin }
	default: // LINEAR
		if wd < 1 {
			wd = 1
		}
		return func(x float64) float64 {
			switch {
			case x <= c-0.5-(wd-1)/2:
				return ymin
			case x > c-0.5+(wd-1)/2:
				return ymax
			}
			if wd == 1 {
				return ymax
			}
			return ((x-(c-0.5))/(wd-1)+0.5)*(ymax-ymin) + ymin
		}
	}
}

func clamp8(v float64) uint8 {
	v = math.Round(v)
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

func renderGray(f *codec.Frame, p *Params, o Options, invert bool) *image.Gray {
	return grayImage(f.Data, f.Columns, f.Rows, p, o, invert)
}

// to8 scales a colour sample of BitsStored bits to 8 bits.
func to8(v int64, bits int) uint8 {
	if bits > 8 {
		v >>= uint(bits - 8)
	}
	return uint8(max(0, min(255, v)))
}

func renderColor(f *codec.Frame, p *Params) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, f.Columns, f.Rows))
	bits := p.BitsStored
	if f.Photometric == "RGB" && bits > 8 && p.BitsAllocated == 8 {
		bits = 8
	}
	ybr := strings.HasPrefix(f.Photometric, "YBR_FULL")
	for i := 0; i < f.Rows*f.Columns; i++ {
		a, b, c := to8(f.Data[3*i], bits), to8(f.Data[3*i+1], bits), to8(f.Data[3*i+2], bits)
		r, g, bl := a, b, c
		if ybr {
			y, cb, cr := float64(a), float64(b)-128, float64(c)-128
			r = clamp8(y + 1.402*cr)
			g = clamp8(y - 0.344136*cb - 0.714136*cr)
			bl = clamp8(y + 1.772*cb)
		}
		img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], img.Pix[4*i+3] = r, g, bl, 255
	}
	return img
}

func renderPalette(f *codec.Frame, p *Params) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, f.Columns, f.Rows))
	pal := p.Palette
	scale := func(l *LUT, v float64) uint8 {
		if l.Bits > 8 {
			return uint8(int(v) >> 8)
		}
		return uint8(v)
	}
	for i, v := range f.Data {
		img.Pix[4*i] = scale(&pal[0], pal[0].lookup(float64(v)))
		img.Pix[4*i+1] = scale(&pal[1], pal[1].lookup(float64(v)))
		img.Pix[4*i+2] = scale(&pal[2], pal[2].lookup(float64(v)))
		img.Pix[4*i+3] = 255
	}
	return img
}
