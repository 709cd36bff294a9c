package dicomweb

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/gif"
	"math"
	"net/http"

	"github.com/disintegration/imaging"
	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/render"
)

// Caps of animated GIF previews: the picture fits CineMaxSize (unless the viewport asks
// for less) and at most CineMaxFrames frames are kept, evenly spaced, the delays
// stretched so the loop lasts as long as the acquisition.
const (
	CineMaxSize   = 384
	CineMaxFrames = 150
)

// frameDelay is the time between frames of a cine in milliseconds (SPEC-NOTES §F):
// FrameTime, else CineRate, else RecommendedDisplayFrameRate, else 10 frames/s.
func frameDelay(ds *dcm.Dataset) float64 {
	if e := ds.Get(dcm.NewTag(0x0018, 0x1063)); e != nil {
		if f := e.Floats(); len(f) > 0 && f[0] > 0 {
			return f[0]
		}
	}
	for _, t := range []dcm.Tag{dcm.NewTag(0x0018, 0x0040), dcm.NewTag(0x0008, 0x2144)} {
		if e := ds.Get(t); e != nil {
			if f := e.Floats(); len(f) > 0 && f[0] > 0 {
				return 1000 / f[0]
			}
		}
	}
	return 100
}

// grayPalette is the 256-level grey palette of monochrome cines.
var grayPalette = func() color.Palette {
	p := make(color.Palette, 256)
	for i := range p {
		p[i] = color.Gray{Y: uint8(i)}
	}
	return p
}()

// cine answers /rendered?accept=image/gif for a multi-frame instance with an animated
// GIF at the recorded frame rate, within the size and length caps. Frames are decoded
// one at a time; only the small paletted frames are kept.
func (s *Service) cine(c echo.Context, in *index.Instance, r *renderRequest) error {
	ps, err := s.openPixels(c.Request().Context(), in)
	if err != nil {
		return echo.NewHTTPError(http.StatusNotAcceptable, "this object cannot be rendered: "+err.Error())
	}
	n := ps.layout.NumberOfFrames
	delay := frameDelay(ps.file.Dataset)
	keep := min(n, CineMaxFrames)
	step := float64(n) / float64(keep)
	cs := max(2, int(math.Round(delay*step/10))) // GIF delays are in 1/100 s
	vw, vh := CineMaxSize, CineMaxSize
	if r.vw > 0 {
		vw, vh = min(r.vw, CineMaxSize), min(r.vh, CineMaxSize)
	}
	anim := &gif.GIF{LoopCount: 0}
	for k := 0; k < keep; k++ {
		img, err := ps.frame(int(float64(k)*step), render.Options{Window: r.window})
		if err != nil {
			return echo.NewHTTPError(http.StatusNotAcceptable, "this object cannot be rendered: "+err.Error())
		}
		if r.crop != nil {
			img = imaging.Crop(img, *r.crop)
		}
		if img.Bounds().Dx() > vw || img.Bounds().Dy() > vh {
			img = imaging.Fit(img, vw, vh, imaging.Linear)
		}
		b := img.Bounds()
		var pal *image.Paletted
		if g, ok := img.(*image.Gray); ok {
			pal = &image.Paletted{Pix: g.Pix, Stride: g.Stride, Rect: g.Rect, Palette: grayPalette}
		} else if isGray(img) {
			pal = image.NewPaletted(b, grayPalette)
			draw.Draw(pal, b, img, b.Min, draw.Src)
		} else {
			pal = quantize(img)
		}
		anim.Image = append(anim.Image, pal)
		anim.Delay = append(anim.Delay, cs)
	}
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, anim); err != nil {
		return err
	}
	seed := fmt.Sprintf("cine|%s|%s|%dx%d|%v|%v", in.SOPInstanceUID, in.Digest, vw, vh, r.crop, r.window)
	return writeImage(c, cachedImage{media: "image/gif", data: buf.Bytes()}, seed, "")
}

// cinePalette has 160 grey levels (echo and angiography are mostly grey) and a 4×6×4
// colour cube for the rest (colour Doppler, overlays); quantize indexes it by arithmetic.
var cinePalette = func() color.Palette {
	p := make(color.Palette, 0, 256)
	for i := 0; i < 160; i++ {
		y := uint8(i * 255 / 159)
		p = append(p, color.RGBA{y, y, y, 255})
	}
	for r := 0; r < 4; r++ {
		for g := 0; g < 6; g++ {
			for b := 0; b < 4; b++ {
				p = append(p, color.RGBA{uint8(r * 85), uint8(g * 51), uint8(b * 85), 255})
			}
		}
	}
	return p
}()

// quantize maps a colour picture onto cinePalette: near-grey pixels to the grey ramp,
// others to the nearest cube entry.
func quantize(img image.Image) *image.Paletted {
	b := img.Bounds()
	out := image.NewPaletted(image.Rect(0, 0, b.Dx(), b.Dy()), cinePalette)
	rgba, ok := img.(*image.NRGBA)
	if !ok {
		rgba = image.NewNRGBA(out.Rect)
		draw.Draw(rgba, out.Rect, img, b.Min, draw.Src)
	}
	for y := 0; y < out.Rect.Dy(); y++ {
		src := rgba.Pix[y*rgba.Stride:]
		dst := out.Pix[y*out.Stride:]
		for x := 0; x < out.Rect.Dx(); x++ {
			r, g, bl := int(src[4*x]), int(src[4*x+1]), int(src[4*x+2])
			if abs(r-g) < 12 && abs(g-bl) < 12 && abs(r-bl) < 12 {
				dst[x] = uint8(((r+g+bl)/3*159 + 127) / 255)
				continue
			}
			dst[x] = uint8(160 + ((r+42)/85)*24 + ((g+25)/51)*4 + (bl+42)/85)
		}
	}
	return out
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// isGray reports whether a resized picture came from grey data (imaging returns NRGBA).
func isGray(img image.Image) bool {
	n, ok := img.(*image.NRGBA)
	if !ok {
		return false
	}
	for i := 0; i < len(n.Pix); i += 4 * 97 {
		if n.Pix[i] != n.Pix[i+1] || n.Pix[i] != n.Pix[i+2] {
			return false
		}
	}
	return true
}
