package render

import (
	"fmt"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dcm/codec"
)

// Attribute tags used only here.
var (
	tagRescaleIntercept    = dcm.NewTag(0x0028, 0x1052)
	tagRescaleSlope        = dcm.NewTag(0x0028, 0x1053)
	tagWindowCenter        = dcm.NewTag(0x0028, 0x1050)
	tagWindowWidth         = dcm.NewTag(0x0028, 0x1051)
	tagVOILUTFunction      = dcm.NewTag(0x0028, 0x1056)
	tagModalityLUTSequence = dcm.NewTag(0x0028, 0x3000)
	tagVOILUTSequence      = dcm.NewTag(0x0028, 0x3010)
	tagLUTDescriptor       = dcm.NewTag(0x0028, 0x3002)
	tagLUTData             = dcm.NewTag(0x0028, 0x3006)
	tagPixelPaddingValue   = dcm.NewTag(0x0028, 0x0120)
	tagPixelPaddingRange   = dcm.NewTag(0x0028, 0x0121)
	tagRedDescriptor       = dcm.NewTag(0x0028, 0x1101)
	tagGreenDescriptor     = dcm.NewTag(0x0028, 0x1102)
	tagBlueDescriptor      = dcm.NewTag(0x0028, 0x1103)
	tagRedData             = dcm.NewTag(0x0028, 0x1201)
	tagGreenData           = dcm.NewTag(0x0028, 0x1202)
	tagBlueData            = dcm.NewTag(0x0028, 0x1203)
	tagSharedGroups        = dcm.NewTag(0x5200, 0x9229)
	tagPerFrameGroups      = dcm.NewTag(0x5200, 0x9230)
	tagPixelValueTransform = dcm.NewTag(0x0028, 0x9145)
	tagFrameVOILUT         = dcm.NewTag(0x0028, 0x9132)
)

// LUT is a lookup table (PS3.3 C.11.1.1.1): entries map stored values from First on.
type LUT struct {
	First int
	Bits  int
	Data  []int
}

func (l *LUT) lookup(v float64) float64 {
	i := int(v) - l.First
	if i < 0 {
		i = 0
	}
	if i >= len(l.Data) {
		i = len(l.Data) - 1
	}
	return float64(l.Data[i])
}

// Window is a VOI window (PS3.3 C.11.2.1.2): Function is LINEAR (default),
// LINEAR_EXACT or SIGMOID.
type Window struct {
	Center, Width float64
	Function      string
}

// Params are the attributes that say how to turn one frame's stored values into a
// picture: how the samples are stored, and the modality and VOI transforms.
type Params struct {
	codec.Pixels

	Slope, Intercept float64
	ModalityLUT      *LUT
	Window           *Window
	VOILUT           *LUT
	Padding          *[2]int // PixelPaddingValue [and range limit], stored values
	Palette          *[3]LUT
}

// ParamsOf reads the rendering parameters of frame (0-based) from a data set,
// including those in Enhanced multi-frame functional groups.
func ParamsOf(ds *dcm.Dataset, ts string, frame int) (*Params, error) {
	px, err := codec.PixelsOf(ds, ts)
	if err != nil {
		return nil, err
	}
	p := &Params{Pixels: *px, Slope: 1}
	if frame < 0 || frame >= p.Frames {
		return nil, fmt.Errorf("render: frame %d out of range (1..%d)", frame+1, p.Frames)
	}
	p.readModality(ds)
	p.readVOI(ds)
	// Enhanced multi-frame: shared groups, then the frame's own (PS3.3 C.7.6.16).
	for _, t := range []dcm.Tag{tagSharedGroups, tagPerFrameGroups} {
		e := ds.Get(t)
		if e == nil || len(e.Items) == 0 {
			continue
		}
		item := e.Items[0]
		if t == tagPerFrameGroups {
			if frame >= len(e.Items) {
				continue
			}
			item = e.Items[frame]
		}
		if pv := item.Get(tagPixelValueTransform); pv != nil && len(pv.Items) > 0 {
			p.readModality(pv.Items[0])
		}
		if fv := item.Get(tagFrameVOILUT); fv != nil && len(fv.Items) > 0 {
			p.readVOI(fv.Items[0])
		}
	}
	if e := ds.Get(tagPixelPaddingValue); e != nil {
		if v := e.Ints(); len(v) > 0 {
			pad := [2]int{int(v[0]), int(v[0])}
			if r := ds.Get(tagPixelPaddingRange); r != nil {
				if rv := r.Ints(); len(rv) > 0 {
					pad[1] = int(rv[0])
				}
			}
			if pad[0] > pad[1] {
				pad[0], pad[1] = pad[1], pad[0]
			}
			p.Padding = &pad
		}
	}
	if p.Photometric == "PALETTE COLOR" {
		var pal [3]LUT
		for i, tt := range [3][2]dcm.Tag{{tagRedDescriptor, tagRedData}, {tagGreenDescriptor, tagGreenData}, {tagBlueDescriptor, tagBlueData}} {
			l, err := readLUT(ds.Get(tt[0]), ds.Get(tt[1]))
			if err != nil {
				return nil, fmt.Errorf("render: palette: %w", err)
			}
			pal[i] = *l
		}
		p.Palette = &pal
	}
	return p, nil
}

func (p *Params) readModality(ds *dcm.Dataset) {
	if e := ds.Get(tagRescaleSlope); e != nil {
		if f := e.Floats(); len(f) > 0 && f[0] != 0 {
			p.Slope = f[0]
		}
	}
	if e := ds.Get(tagRescaleIntercept); e != nil {
		if f := e.Floats(); len(f) > 0 {
			p.Intercept = f[0]
		}
	}
	if e := ds.Get(tagModalityLUTSequence); e != nil && len(e.Items) > 0 {
		it := e.Items[0]
		if l, err := readLUT(it.Get(tagLUTDescriptor), it.Get(tagLUTData)); err == nil {
			p.ModalityLUT = l
		}
	}
}

func (p *Params) readVOI(ds *dcm.Dataset) {
	c, w := ds.Get(tagWindowCenter), ds.Get(tagWindowWidth)
	if c != nil && w != nil {
		cf, wf := c.Floats(), w.Floats()
		if len(cf) > 0 && len(wf) > 0 && wf[0] > 0 {
			p.Window = &Window{Center: cf[0], Width: wf[0], Function: ds.String(tagVOILUTFunction)}
		}
	}
	if e := ds.Get(tagVOILUTSequence); e != nil && len(e.Items) > 0 {
		it := e.Items[0]
		if l, err := readLUT(it.Get(tagLUTDescriptor), it.Get(tagLUTData)); err == nil {
			p.VOILUT = l
		}
	}
}

// readLUT reads a LUT descriptor (entries, first mapped value, bits; PS3.3 C.11.1.1.1)
// and its data (8- or 16-bit entries).
func readLUT(desc, data *dcm.Element) (*LUT, error) {
	if desc == nil || data == nil || data.Value == nil {
		return nil, fmt.Errorf("LUT descriptor or data missing")
	}
	d := desc.Ints()
	if len(d) < 3 {
		return nil, fmt.Errorf("LUT descriptor has %d values", len(d))
	}
	n := int(d[0])
	if n == 0 {
		n = 65536
	}
	first := int(d[1])
	if desc.VR == "SS" {
		first = int(int16(first))
	}
	bits := int(d[2])
	l := &LUT{First: first, Bits: bits}
	v := data.Value
	switch {
	case len(v) >= 2*n:
		for i := 0; i < n; i++ {
			var x uint16
			if data.BigEndian() {
				x = uint16(v[2*i])<<8 | uint16(v[2*i+1])
			} else {
				x = uint16(v[2*i]) | uint16(v[2*i+1])<<8
			}
			l.Data = append(l.Data, int(x))
		}
	case len(v) >= n && bits <= 8:
		for i := 0; i < n; i++ {
			l.Data = append(l.Data, int(v[i]))
		}
	default:
		return nil, fmt.Errorf("LUT data of %d bytes for %d entries", len(v), n)
	}
	return l, nil
}

// ErrUnsupported reports pixel data that cannot be rendered: a transfer syntax without a
// decoder, a photometric interpretation or object without a picture. It is
// codec.ErrUnsupported, so errors.Is finds both the decoder's refusals and render's own.
var ErrUnsupported = codec.ErrUnsupported
