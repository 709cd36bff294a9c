package jpegenc_test

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"math"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/render/jpegenc"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// segments returns the payloads of a JPEG stream's DQT and SOF segments (up to SOS),
// with the number of components and sampling factors in the SOF.
func segments(t *testing.T, b []byte) (dqt [][]byte, sof []byte) {
	t.Helper()
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		t.Fatal("no SOI")
	}
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xFF {
			t.Fatalf("no marker at %d", i)
		}
		m, n := b[i+1], int(b[i+2])<<8|int(b[i+3])
		body := b[i+4 : i+2+n]
		switch m {
		case 0xDB:
			// One or more tables: Pq/Tq, then 64 bytes (8-bit).
			for k := 0; k < len(body); k += 65 {
				dqt = append(dqt, body[k:k+65])
			}
		case 0xC0, 0xC1, 0xC2:
			if m != 0xC0 {
				t.Fatalf("SOF%d, want baseline SOF0", m-0xC0)
			}
			sof = body
		case 0xDA:
			return dqt, sof
		}
		i += 2 + n
	}
	t.Fatal("no SOS")
	return nil, nil
}

// pictures are test pictures of the kinds the renderer hands over: grey, RGBA, opaque
// NRGBA (from imaging's resampling), and others.
func pictures() map[string]image.Image {
	const w, h = 67, 45 // not a multiple of the MCU
	gray := image.NewGray(image.Rect(0, 0, w, h))
	rgba := image.NewRGBA(image.Rect(0, 0, w, h))
	nrgba := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			v := uint8(128 + 100*math.Sin(float64(x)/7)*math.Cos(float64(y)/5))
			gray.SetGray(x, y, color.Gray{Y: v})
			c := color.RGBA{v, uint8(x * 3), uint8(255 - y*5), 255}
			rgba.SetRGBA(x, y, c)
			nrgba.SetNRGBA(x, y, color.NRGBA{c.R, c.G, c.B, 255})
		}
	}
	half := image.NewNRGBA(nrgba.Rect)
	draw.Draw(half, half.Rect, nrgba, image.Point{}, draw.Src)
	for i := 3; i < len(half.Pix); i += 4 {
		half.Pix[i] = 128
	}
	pal := image.NewPaletted(gray.Rect, color.Palette{color.Black, color.White, color.RGBA{200, 30, 30, 255}})
	draw.Draw(pal, pal.Rect, rgba, image.Point{}, draw.Src)
	return map[string]image.Image{
		"gray": gray, "rgba": rgba, "nrgba": nrgba, "nrgba-translucent": half, "paletted": pal,
		"gray-sub": gray.SubImage(image.Rect(5, 7, 50, 40)), "rgba-sub": rgba.SubImage(image.Rect(5, 7, 50, 40)),
	}
}

// TestEncodeAsImageJPEG encodes the test pictures at several qualities with this
// build's encoder and with image/jpeg, and checks that both write baseline streams with
// the same quantization tables, components and sampling factors, that decode to the
// same size and to pictures as close to the original as image/jpeg's (within 10% of its
// mean difference and 4 levels of its largest), and, from quality 50 on, within a mean
// of one level of image/jpeg's (libjpeg-turbo's colour conversion and chroma
// downsampling round a little differently); the pure-Go build must write image/jpeg's
// bytes exactly.
func TestEncodeAsImageJPEG(t *testing.T) {
	t.Logf("encoder: %s", jpegenc.Version())
	if jpegenc.LibJPEG != strings.HasPrefix(jpegenc.Version(), "libjpeg-turbo ") {
		t.Fatalf("LibJPEG %v, version %q", jpegenc.LibJPEG, jpegenc.Version())
	}
	for name, img := range pictures() {
		for _, q := range []int{-3, 1, 25, 50, 75, 90, 100, 250} {
			t.Run(fmt.Sprintf("%s q%d", name, q), func(t *testing.T) {
				var got, want bytes.Buffer
				if err := jpegenc.Encode(&got, img, q); err != nil {
					t.Fatal(err)
				}
				if err := jpeg.Encode(&want, img, &jpeg.Options{Quality: q}); err != nil {
					t.Fatal(err)
				}
				if !jpegenc.LibJPEG {
					if !bytes.Equal(got.Bytes(), want.Bytes()) {
						t.Fatal("the pure-Go build differs from image/jpeg")
					}
					return
				}
				gq, gs := segments(t, got.Bytes())
				wq, ws := segments(t, want.Bytes())
				// image/jpeg writes both tables; libjpeg-turbo only those the
				// components use.
				for _, g := range gq {
					found := false
					for _, w := range wq {
						if w[0] == g[0] {
							found = true
							if !bytes.Equal(g, w) {
								t.Fatalf("quantization table %d differs:\n%v\n%v", g[0], g, w)
							}
						}
					}
					if !found {
						t.Fatalf("quantization table %d that image/jpeg does not write", g[0])
					}
				}
				if len(gq) != int(gs[5]) && len(gq) != 2 {
					t.Fatalf("%d quantization tables for %d components", len(gq), gs[5])
				}
				if !bytes.Equal(gs, ws) {
					t.Fatalf("SOF0 %v, image/jpeg writes %v", gs, ws)
				}
				gi, err := jpeg.Decode(bytes.NewReader(got.Bytes()))
				if err != nil {
					t.Fatal(err)
				}
				wi, err := jpeg.Decode(bytes.NewReader(want.Bytes()))
				if err != nil {
					t.Fatal(err)
				}
				if gi.Bounds().Size() != img.Bounds().Size() || wi.Bounds().Size() != img.Bounds().Size() {
					t.Fatalf("decoded %v and image/jpeg's %v, from %v", gi.Bounds(), wi.Bounds(), img.Bounds())
				}
				gmax, gmean := diff(gi, img)
				wmax, wmean := diff(wi, img)
				xmax, xmean := diff(gi, wi)
				t.Logf("against the picture: max %d mean %.2f, image/jpeg's max %d mean %.2f; between them max %d mean %.2f", gmax, gmean, wmax, wmean, xmax, xmean)
				// At low qualities a rounding difference before quantization moves
				// whole steps of 50 levels and more: only the distance to the picture
				// counts there.
				if gmean > wmean*1.1+0.05 || gmax > wmax+4 || q >= 50 && xmean > 1 {
					t.Fatalf("libjpeg-turbo's picture is further from the original (max %d, mean %.2f) than image/jpeg's (max %d, mean %.2f), or differs from it by a mean of %.2f", gmax, gmean, wmax, wmean, xmean)
				}
			})
		}
	}
}

// TestEncodeEmpty: an empty picture is written as image/jpeg writes it, not refused.
func TestEncodeEmpty(t *testing.T) {
	var got, want bytes.Buffer
	img := image.NewGray(image.Rect(0, 0, 0, 0))
	if err := jpegenc.Encode(&got, img, 90); err != nil {
		t.Fatal(err)
	}
	jpeg.Encode(&want, img, &jpeg.Options{Quality: 90})
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatal("an empty picture is not written as image/jpeg writes it")
	}
}

// diff compares two pictures of one size channel by channel (colours premultiplied):
// the largest and the mean absolute difference.
func diff(a, b image.Image) (maxd int, mean float64) {
	var sum, n float64
	ab, bb := a.Bounds(), b.Bounds()
	for y := 0; y < ab.Dy(); y++ {
		for x := 0; x < ab.Dx(); x++ {
			ca := color.RGBAModel.Convert(a.At(ab.Min.X+x, ab.Min.Y+y)).(color.RGBA)
			cb := color.RGBAModel.Convert(b.At(bb.Min.X+x, bb.Min.Y+y)).(color.RGBA)
			for _, d := range []int{int(ca.R) - int(cb.R), int(ca.G) - int(cb.G), int(ca.B) - int(cb.B)} {
				maxd = max(maxd, d, -d)
				sum += math.Abs(float64(d))
				n++
			}
		}
	}
	return maxd, sum / n
}

// TestBuiltWithLibJPEG: `make test` provisions libjpeg-turbo and builds with the tag, so
// under CI=true a build without it is a failure (on a developer machine, a skip).
func TestBuiltWithLibJPEG(t *testing.T) {
	if !jpegenc.LibJPEG {
		tools.Missing(t, "built without libjpeg-turbo (go test -tags libjpeg, with libjpeg62-turbo-dev)")
	}
}
