package codec

import (
	"fmt"

	"github.com/lumenpacs/lumen/dcm"
)

// Pixels are the Image Pixel Module attributes (PS3.3 C.7.6.3) that say how a frame's
// samples are stored, and the byte order of the transfer syntax.
type Pixels struct {
	Rows, Columns             int
	SamplesPerPixel           int
	BitsAllocated, BitsStored int
	HighBit                   int
	Signed                    bool
	Planar                    bool
	Photometric               string
	Frames                    int
	BigEndian                 bool
}

// PixelsOf reads and checks the Image Pixel Module of a data set stored in transfer
// syntax ts: a missing PhotometricInterpretation defaults to MONOCHROME2 (RGB for three
// samples), a missing NumberOfFrames to 1.
func PixelsOf(ds *dcm.Dataset, ts string) (*Pixels, error) {
	p := &Pixels{BigEndian: ts == dcm.ExplicitVRBigEndian}
	geti := func(t dcm.Tag, def int) int {
		if v, ok := ds.Int(t); ok {
			return int(v)
		}
		return def
	}
	p.Rows, p.Columns = geti(dcm.TagRows, 0), geti(dcm.TagColumns, 0)
	p.SamplesPerPixel = geti(dcm.TagSamplesPerPixel, 1)
	p.BitsAllocated = geti(dcm.TagBitsAllocated, 0)
	p.BitsStored = geti(dcm.TagBitsStored, p.BitsAllocated)
	p.HighBit = geti(dcm.TagHighBit, p.BitsStored-1)
	p.Signed = geti(dcm.TagPixelRepresentation, 0) == 1
	p.Planar = geti(dcm.TagPlanarConfiguration, 0) == 1
	p.Photometric = ds.String(dcm.TagPhotometricInterpretation)
	p.Frames = max(geti(dcm.TagNumberOfFrames, 1), 1)
	if p.Photometric == "" {
		p.Photometric = "MONOCHROME2"
		if p.SamplesPerPixel == 3 {
			p.Photometric = "RGB"
		}
	}
	switch {
	case p.Rows <= 0 || p.Columns <= 0 || p.Rows*p.Columns > 1<<26:
		return nil, fmt.Errorf("codec: %dx%d pixels", p.Columns, p.Rows)
	case p.BitsAllocated != 1 && p.BitsAllocated != 8 && p.BitsAllocated != 16 && p.BitsAllocated != 32:
		return nil, fmt.Errorf("codec: BitsAllocated %d", p.BitsAllocated)
	case p.BitsStored < 1 || p.BitsStored > p.BitsAllocated || p.HighBit >= p.BitsAllocated || p.HighBit+1 < p.BitsStored:
		return nil, fmt.Errorf("codec: BitsStored %d, HighBit %d", p.BitsStored, p.HighBit)
	case p.SamplesPerPixel != 1 && p.SamplesPerPixel != 3:
		return nil, fmt.Errorf("codec: SamplesPerPixel %d", p.SamplesPerPixel)
	}
	return p, nil
}
