package render

import (
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"strings"

	"github.com/lumenpacs/lumen/dcm"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Waveform attributes (PS3.3 C.10.9).
var (
	tagWaveformSequence   = dcm.NewTag(0x5400, 0x0100)
	tagNumChannels        = dcm.NewTag(0x003A, 0x0005)
	tagNumSamples         = dcm.NewTag(0x003A, 0x0010)
	tagSamplingFrequency  = dcm.NewTag(0x003A, 0x001A)
	tagChannelDefinitions = dcm.NewTag(0x003A, 0x0200)
	tagChannelSource      = dcm.NewTag(0x003A, 0x0208)
	tagChannelLabel       = dcm.NewTag(0x003A, 0x0203)
	tagSensitivity        = dcm.NewTag(0x003A, 0x0210)
	tagSensitivityUnits   = dcm.NewTag(0x003A, 0x0211)
	tagSensitivityCorr    = dcm.NewTag(0x003A, 0x0212)
	tagBaseline           = dcm.NewTag(0x003A, 0x0213)
	tagWaveformBits       = dcm.NewTag(0x5400, 0x1004)
	tagSampleInterp       = dcm.NewTag(0x5400, 0x1006)
	tagWaveformData       = dcm.NewTag(0x5400, 0x1010)
	tagCodeValue          = dcm.NewTag(0x0008, 0x0100)
	tagCodeMeaning        = dcm.NewTag(0x0008, 0x0104)
)

// Channel is one waveform channel in physical units.
type Channel struct {
	Label string // lead name ("I", "aVR", "V1", ...)
	Unit  string // "mV" when the sensitivity unit is a voltage, else the UCUM code
	Data  []float64
}

// Waveform is one multiplex group: channels sampled together.
type Waveform struct {
	Rate     float64 // samples per second
	Channels []Channel
}

// Waveforms reads the WaveformSequence of a data set (WaveformData must have been kept:
// parse with a BulkThreshold above its size). Values are sample × sensitivity ×
// correction + baseline, voltages converted to mV.
func Waveforms(ds *dcm.Dataset) ([]Waveform, error) {
	seq := ds.Get(tagWaveformSequence)
	if seq == nil || len(seq.Items) == 0 {
		return nil, fmt.Errorf("%w: no WaveformSequence", ErrUnsupported)
	}
	var out []Waveform
	for _, it := range seq.Items {
		nc, _ := it.Int(tagNumChannels)
		ns, _ := it.Int(tagNumSamples)
		rate := 0.0
		if e := it.Get(tagSamplingFrequency); e != nil {
			if f := e.Floats(); len(f) > 0 {
				rate = f[0]
			}
		}
		bits, _ := it.Int(tagWaveformBits)
		interp := it.String(tagSampleInterp)
		data := it.Get(tagWaveformData)
		if nc <= 0 || ns <= 0 || rate <= 0 || data == nil || data.Value == nil || nc > 64 {
			return nil, fmt.Errorf("render: waveform: %d channels, %d samples, %g Hz, data kept %v", nc, ns, rate, data != nil && data.Value != nil)
		}
		bytesPer := int(bits / 8)
		if (bits != 8 && bits != 16 && bits != 32) || len(data.Value) < int(nc*ns)*bytesPer {
			return nil, fmt.Errorf("render: waveform: %d bits, %d bytes for %d×%d samples", bits, len(data.Value), nc, ns)
		}
		w := Waveform{Rate: rate, Channels: make([]Channel, nc)}
		defs := it.Get(tagChannelDefinitions)
		for c := 0; c < int(nc); c++ {
			ch := &w.Channels[c]
			sens, corr, base, scale := 1.0, 1.0, 0.0, 1.0
			ch.Label = fmt.Sprintf("Ch %d", c+1)
			if defs != nil && c < len(defs.Items) {
				d := defs.Items[c]
				if src := d.Get(tagChannelSource); src != nil && len(src.Items) > 0 {
					ch.Label = leadName(src.Items[0].String(tagCodeMeaning), d.String(tagChannelLabel))
				} else if l := d.String(tagChannelLabel); l != "" {
					ch.Label = l
				}
				f := func(t dcm.Tag, def float64) float64 {
					if e := d.Get(t); e != nil {
						if v := e.Floats(); len(v) > 0 {
							return v[0]
						}
					}
					return def
				}
				sens, corr, base = f(tagSensitivity, 1), f(tagSensitivityCorr, 1), f(tagBaseline, 0)
				if u := d.Get(tagSensitivityUnits); u != nil && len(u.Items) > 0 {
					switch code := u.Items[0].String(tagCodeValue); code {
					case "uV":
						ch.Unit, scale = "mV", 0.001
					case "mV":
						ch.Unit = "mV"
					case "V":
						ch.Unit, scale = "mV", 1000
					default:
						ch.Unit = code
					}
				}
			}
			ch.Data = make([]float64, ns)
			for s := 0; s < int(ns); s++ {
				off := (s*int(nc) + c) * bytesPer
				b := data.Value[off:]
				var v float64
				switch {
				case bytesPer == 1 && interp == "SB":
					v = float64(int8(b[0]))
				case bytesPer == 1:
					v = float64(b[0])
				case bytesPer == 2 && interp == "US":
					v = float64(binary.LittleEndian.Uint16(b))
				case bytesPer == 2:
					v = float64(int16(binary.LittleEndian.Uint16(b)))
				case interp == "UL":
					v = float64(binary.LittleEndian.Uint32(b))
				default:
					v = float64(int32(binary.LittleEndian.Uint32(b)))
				}
				ch.Data[s] = (v*sens*corr + base) * scale
			}
		}
		out = append(out, w)
	}
	return out, nil
}

// leadName shortens "Lead I (Einthoven)", "Lead aVR", "Lead V1" and the like.
func leadName(meaning, label string) string {
	m := strings.TrimSpace(meaning)
	m = strings.TrimPrefix(m, "Lead ")
	if i := strings.IndexAny(m, " (,;"); i > 0 {
		m = m[:i]
	}
	if m == "" {
		return label
	}
	return m
}

// Tracing geometry (paper ECG conventions).
const (
	MMPerSecond = 25.0 // paper speed
	MMPerMV     = 10.0 // gain
)

// Paper colours.
var (
	GridMinor = color.RGBA{0xF6, 0xC8, 0xC8, 0xFF}
	GridMajor = color.RGBA{0xE0, 0x80, 0x80, 0xFF}
	Trace     = color.RGBA{0x00, 0x00, 0x00, 0xFF}
	paper     = color.RGBA{0xFF, 0xF8, 0xF8, 0xFF}
)

// twelveLead is the standard 3×4 arrangement; the rhythm strip is lead II.
var twelveLead = [3][4]string{{"I", "aVR", "V1", "V4"}, {"II", "aVL", "V2", "V5"}, {"III", "aVF", "V3", "V6"}}

// DrawECG draws a waveform on ECG paper at pxPerMM pixels per millimetre, 25 mm/s and
// 10 mm/mV: a 12-lead recording as 3×4 panels of 2.5 s plus a lead II rhythm strip,
// anything else as one strip per channel (non-voltage channels scaled to their strip).
func DrawECG(w Waveform, pxPerMM float64) *image.RGBA {
	dur := float64(len(w.Channels[0].Data)) / w.Rate
	byName := map[string]*Channel{}
	for i := range w.Channels {
		byName[w.Channels[i].Label] = &w.Channels[i]
	}
	is12 := len(w.Channels) >= 12
	for _, row := range twelveLead {
		for _, l := range row {
			if byName[l] == nil {
				is12 = false
			}
		}
	}
	const stripMM = 30.0
	widthMM := math.Ceil(dur*MMPerSecond/5) * 5
	strips := len(w.Channels)
	if is12 {
		strips = 4
		widthMM = math.Ceil(min(dur, 10)*MMPerSecond/5) * 5
	}
	heightMM := float64(strips)*stripMM + 5
	img := image.NewRGBA(image.Rect(0, 0, int(math.Round(widthMM*pxPerMM))+1, int(math.Round(heightMM*pxPerMM))+1))
	draw.Draw(img, img.Bounds(), &image.Uniform{paper}, image.Point{}, draw.Src)
	for mm := 0.0; mm <= widthMM; mm++ {
		c := GridMinor
		if int(mm)%5 == 0 {
			c = GridMajor
		}
		x := int(math.Round(mm * pxPerMM))
		for y := 0; y < img.Bounds().Dy(); y++ {
			if mm == 0 || c == GridMajor || img.RGBAAt(x, y) != GridMajor {
				img.SetRGBA(x, y, c)
			}
		}
	}
	for mm := 0.0; mm <= heightMM; mm++ {
		c := GridMinor
		if int(mm)%5 == 0 {
			c = GridMajor
		}
		y := int(math.Round(mm * pxPerMM))
		for x := 0; x < img.Bounds().Dx(); x++ {
			if c == GridMajor || img.RGBAAt(x, y) != GridMajor {
				img.SetRGBA(x, y, c)
			}
		}
	}
	plot := func(ch *Channel, t0, t1, x0mm, baseMM float64, mmPer float64) {
		s0, s1 := int(t0*w.Rate), min(int(t1*w.Rate), len(ch.Data))
		var px, py int
		for s := s0; s < s1; s++ {
			x := int(math.Round((x0mm + (float64(s)/w.Rate-t0)*MMPerSecond) * pxPerMM))
			y := int(math.Round((baseMM - ch.Data[s]*mmPer) * pxPerMM))
			if s > s0 {
				line(img, px, py, x, y, Trace)
			}
			px, py = x, y
		}
	}
	gain := func(ch *Channel) float64 {
		if ch.Unit == "mV" || ch.Unit == "" {
			return MMPerMV
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range ch.Data {
			lo, hi = min(lo, v), max(hi, v)
		}
		if hi <= lo {
			return 1
		}
		return (stripMM - 6) / (hi - lo)
	}
	if is12 {
		for r, row := range twelveLead {
			base := float64(r)*stripMM + stripMM/2 + 2.5
			for col, l := range row {
				t0 := float64(col) * 2.5
				plot(byName[l], t0, t0+2.5, float64(col)*2.5*MMPerSecond, base, MMPerMV)
				label(img, int((float64(col)*2.5*MMPerSecond+1)*pxPerMM), int((base-stripMM/2+5)*pxPerMM), l)
			}
		}
		base := 3*stripMM + stripMM/2 + 2.5
		plot(byName["II"], 0, 10, 0, base, MMPerMV)
		label(img, int(1*pxPerMM), int((base-stripMM/2+5)*pxPerMM), "II")
	} else {
		for i := range w.Channels {
			ch := &w.Channels[i]
			base := float64(i)*stripMM + stripMM/2 + 2.5
			plot(ch, 0, dur, 0, base, gain(ch))
			label(img, int(1*pxPerMM), int((base-stripMM/2+5)*pxPerMM), ch.Label)
		}
	}
	label(img, img.Bounds().Dx()-int(60*pxPerMM), img.Bounds().Dy()-3, fmt.Sprintf("%g mm/s  %g mm/mV", MMPerSecond, MMPerMV))
	return img
}

// line draws a 1-pixel line (Bresenham), thickened by one pixel vertically.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := 1, 1
	if x0 > x1 {
		sx = -1
	}
	if y0 > y1 {
		sy = -1
	}
	err := dx + dy
	for {
		img.SetRGBA(x0, y0, c)
		img.SetRGBA(x0, y0+1, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * err
		if e2 >= dy {
			err += dy
			x0 += sx
		}
		if e2 <= dx {
			err += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func label(img *image.RGBA, x, y int, s string) {
	d := &font.Drawer{Dst: img, Src: image.NewUniform(color.RGBA{0x20, 0x20, 0x60, 0xFF}), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}
