package dcm

import (
	"encoding/binary"
	"fmt"
)

// PixelLayout says where each frame of an instance's pixel data lies in the stored
// object, so frames can be served with ranged reads (WADO-RS /frames).
type PixelLayout struct {
	// Encapsulated is true for compressed (encapsulated) pixel data.
	Encapsulated bool `json:"enc,omitempty"`
	// NumberOfFrames is the number of frames.
	NumberOfFrames int `json:"n"`
	// Offset and Length locate the native pixel data value.
	Offset int64 `json:"o,omitempty"`
	Length int64 `json:"l,omitempty"`
	// FrameLength is the size of one native frame in bytes (0 for 1-bit data, whose
	// frames need not start on a byte boundary).
	FrameLength int64 `json:"fl,omitempty"`
	// HeaderEnd is where the pixel data element starts: the bytes before it hold every
	// attribute a renderer needs (0 when unknown, in layouts recorded before it existed).
	HeaderEnd int64 `json:"h,omitempty"`
	// Frames lists, for encapsulated data, the fragments making up each frame. Nil
	// when the frame boundaries cannot be known without decoding (several fragments,
	// several frames, and no offset table).
	Frames [][]Range `json:"f,omitempty"`
}

// Frame returns the fragment ranges of frame i (0-based), for native or encapsulated data.
func (p *PixelLayout) Frame(i int) ([]Range, error) {
	if i < 0 || i >= p.NumberOfFrames {
		return nil, fmt.Errorf("dcm: frame %d out of range (1..%d)", i+1, p.NumberOfFrames)
	}
	if !p.Encapsulated {
		if p.FrameLength == 0 {
			return nil, fmt.Errorf("dcm: frame boundaries of bit-packed pixel data are not byte aligned")
		}
		return []Range{{Offset: p.Offset + int64(i)*p.FrameLength, Length: p.FrameLength}}, nil
	}
	if p.Frames == nil {
		return nil, fmt.Errorf("dcm: frame boundaries unknown (no offset table)")
	}
	return p.Frames[i], nil
}

// PixelLayout computes the frame layout of the file's top-level pixel data, or nil when
// it has none or when offsets do not refer to stored bytes (deflated files).
func (f *File) PixelLayout() *PixelLayout {
	if f.Deflated || f.Dataset == nil {
		return nil
	}
	ds := f.Dataset
	pd := ds.Get(TagPixelData)
	if pd == nil {
		return nil
	}
	frames := 1
	if n, ok := ds.Int(TagNumberOfFrames); ok && n > 0 && n < 1<<24 {
		frames = int(n)
	}
	pl := &PixelLayout{NumberOfFrames: frames}
	if f.TransferSyntax == ImplicitVRLittleEndian {
		pl.HeaderEnd = pd.Offset - 8
	} else {
		pl.HeaderEnd = pd.Offset - 12
	}
	if pd.Length != UndefinedLength {
		pl.Offset, pl.Length = pd.Offset, int64(pd.Length)
		rows, _ := ds.Int(TagRows)
		cols, _ := ds.Int(TagColumns)
		spp, ok := ds.Int(TagSamplesPerPixel)
		if !ok {
			spp = 1
		}
		ba, _ := ds.Int(TagBitsAllocated)
		if ba >= 8 && ba%8 == 0 {
			fl := rows * cols * spp * (ba / 8)
			if spp == 3 && ba == 8 && ds.String(TagPhotometricInterpretation) == "YBR_FULL_422" {
				fl = rows * cols * 2 // two luminance and one pair of chroma samples per two pixels
			}
			if fl > 0 && fl*int64(frames) <= pl.Length {
				pl.FrameLength = fl
			}
		}
		if pl.FrameLength == 0 && ba != 1 {
			return nil // dimensions do not match the value length
		}
		return pl
	}
	pl.Encapsulated = true
	frags := pd.Fragments
	if len(frags) == 0 {
		return nil
	}
	data := frags[1:] // skip the Basic Offset Table
	switch {
	case len(data) == frames:
		for _, fr := range data {
			pl.Frames = append(pl.Frames, []Range{fr})
		}
	case frames == 1:
		pl.Frames = [][]Range{data}
	case len(pd.BOT) >= 4*frames:
		pl.Frames = framesFromOffsets(data, botOffsets(pd, frames))
	default:
		if eot := ds.Get(TagExtendedOffsetTable); eot != nil && len(eot.Value) >= 8*frames {
			offs := make([]int64, frames)
			for i := range offs {
				offs[i] = int64(binary.LittleEndian.Uint64(eot.Value[8*i:]))
			}
			pl.Frames = framesFromOffsets(data, offs)
		}
	}
	return pl
}

func botOffsets(pd *Element, frames int) []int64 {
	bo := pd.byteOrder()
	offs := make([]int64, frames)
	for i := range offs {
		offs[i] = int64(bo.Uint32(pd.BOT[4*i:]))
	}
	return offs
}

// framesFromOffsets groups fragments into frames. Offsets are relative to the first
// byte of the first fragment's item header, as in the Basic and Extended Offset Tables.
func framesFromOffsets(data []Range, offs []int64) [][]Range {
	if len(data) == 0 {
		return nil
	}
	base := data[0].Offset - 8
	out := make([][]Range, len(offs))
	fi := 0
	for i := range offs {
		end := int64(-1)
		if i+1 < len(offs) {
			end = offs[i+1]
		}
		for fi < len(data) {
			rel := data[fi].Offset - 8 - base
			if rel < offs[i] {
				return nil // offset table does not match the fragments
			}
			if end >= 0 && rel >= end {
				break
			}
			out[i] = append(out[i], data[fi])
			fi++
		}
		if len(out[i]) == 0 {
			return nil
		}
	}
	return out
}
