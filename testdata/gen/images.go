package gen

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/frame"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// CT phantom constants.
const (
	// ctPadding is the stored value outside the circular reconstruction
	// field of view (-3024 HU); it is also PixelPaddingValue, and being
	// negative it exercises signed pixel handling.
	ctPadding        = -2000
	ctSliceThickness = 2.5  // mm, also the slice spacing
	ctFieldOfView    = 350. // mm across the larger image dimension
)

// XA and US cine timing.
const (
	xaFrameRate = 15
	usFrameRate = 30
)

// frameTimeTag is FrameTime (0018,1063) as the two 16-bit halves an AT
// value is written as by github.com/suyashkumar/dicom.
var frameTimeTag = []int{int(tag.FrameTime.Group), int(tag.FrameTime.Element)}

// CTSeries generates a CT Image Storage series of n single-frame slices of
// rows × cols 16-bit signed pixels: a circular field of view (outside it
// PixelPaddingValue -2000) holding an elliptical body with lungs, spine and
// an aorta that change along the series. RescaleIntercept -1024,
// RescaleSlope 1, window 40/400, 2.5 mm slices with increasing
// ImagePositionPatient z and SliceLocation. Objects are named
// Dir/ct-NNN.dcm.
func CTSeries(opt Options, n, rows, cols int) ([]Object, error) {
	out := make([]Object, 0, max(n, 0))
	err := CTSeriesFunc(opt, n, rows, cols, func(o Object) error {
		out = append(out, o)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CTSeriesFunc is CTSeries that hands each instance to fn as soon as it is
// generated instead of keeping the whole series in memory, for large
// benchmark series. It stops at and returns the first error from fn.
func CTSeriesFunc(opt Options, n, rows, cols int, fn func(Object) error) error {
	if err := checkDims("CTSeries", n, rows, cols); err != nil {
		return err
	}
	r := resolve(opt, kindCT, "CT", "Synthetic CT axial", "CHEST")
	forUID := r.frameOfReferenceUID()
	spacing := ctFieldOfView / float64(max(rows, cols))
	x0 := -spacing * float64(cols-1) / 2
	y0 := -spacing * float64(rows-1) / 2
	for i := range n {
		num := i + 1
		sop := r.instanceUID(num)
		z := -ctSliceThickness*float64(n-1)/2 + ctSliceThickness*float64(i)

		b := &builder{}
		b.common(r, CTImageStorage, sop, "CT", num)
		b.str(tag.PatientPosition, "HFS")
		b.str(tag.FrameOfReferenceUID, forUID)
		b.str(tag.PositionReferenceIndicator, "")
		b.str(tag.ImageType, "ORIGINAL", "PRIMARY", "AXIAL")
		b.str(tag.AcquisitionNumber, "1")
		b.str(tag.KVP, "120")
		b.str(tag.SliceThickness, formatDS(ctSliceThickness))
		b.str(tag.PixelSpacing, formatDS(spacing), formatDS(spacing))
		b.str(tag.ImageOrientationPatient, "1", "0", "0", "0", "1", "0")
		b.str(tag.ImagePositionPatient, formatDS(x0), formatDS(y0), formatDS(z))
		b.str(tag.SliceLocation, formatDS(z))
		b.imagePixel(rows, cols, 1, "MONOCHROME2", 16, 16, 1)
		b.addVR(tag.PixelPaddingValue, "SS", []int{ctPadding})
		b.str(tag.RescaleIntercept, "-1024")
		b.str(tag.RescaleSlope, "1")
		b.str(tag.RescaleType, "HU")
		b.str(tag.WindowCenter, "40")
		b.str(tag.WindowWidth, "400")
		b.pixels16(rows, cols, ctSlice(rows, cols, i, n, r.Seed))

		data, err := b.encode()
		if err != nil {
			return err
		}
		if err := fn(r.object(fileName(r.Dir, "ct", num, n), sop, CTImageStorage, "CT", num, 1, data)); err != nil {
			return err
		}
	}
	return nil
}

// ctSlice computes slice i of n of the CT phantom as stored values
// (HU + 1024, two's complement in uint16).
func ctSlice(rows, cols, i, n int, seed uint64) []uint16 {
	rng := rand.New(rand.NewPCG(seed, uint64(kindCT)<<32|uint64(i)))
	t := (float64(i) + 0.5) / float64(n) // 0..1 along the series
	lung := 0.55 + 0.45*math.Sin(math.Pi*t)
	aortaX := 0.05 + 0.12*t
	out := make([]uint16, rows*cols)
	for y := range rows {
		v := (float64(y)+0.5)/float64(rows)*2 - 1
		for x := range cols {
			u := (float64(x)+0.5)/float64(cols)*2 - 1
			raw := ctPadding
			if u*u+v*v <= 1 {
				hu := -1000.0 // air
				if sq(u/0.85)+sq(v/0.62) <= 1 {
					hu = 40 // soft tissue
					switch {
					case sq((u-0.38)/(0.26*lung))+sq((v+0.02)/(0.38*lung)) <= 1,
						sq((u+0.38)/(0.26*lung))+sq((v+0.02)/(0.38*lung)) <= 1:
						hu = -850 // lungs
					case sq(u)+sq(v-0.42) <= sq(0.07):
						hu = 300 // vertebral body, cancellous
					case sq(u)+sq(v-0.42) <= sq(0.11):
						hu = 900 // vertebral body, cortex
					case sq(u-aortaX)+sq(v-0.18) <= sq(0.07):
						hu = 250 // contrast-enhanced aorta
					}
				}
				hu += rng.NormFloat64() * 8
				raw = clamp(hu+1024, -32768, 32767)
			}
			out[y*cols+x] = uint16(int16(raw))
		}
	}
	return out
}

// MRSeries generates an MR Image Storage series of n single-frame slices of
// rows × cols 16-bit signed pixels (12 bits stored) showing an axial head
// phantom (scalp, skull, brain, ventricles) whose size changes along the
// series; Options.Contrast selects T1 (default) or T2 weighting.
// RescaleIntercept 0, RescaleSlope 1, window 800/1600, 5 mm slices with
// increasing ImagePositionPatient z and SliceLocation. Objects are named
// Dir/mr-NNN.dcm.
func MRSeries(opt Options, n, rows, cols int) ([]Object, error) {
	out := make([]Object, 0, max(n, 0))
	err := MRSeriesFunc(opt, n, rows, cols, func(o Object) error {
		out = append(out, o)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// MRSeriesFunc is MRSeries that hands each instance to fn as soon as it is
// generated. It stops at and returns the first error from fn.
func MRSeriesFunc(opt Options, n, rows, cols int, fn func(Object) error) error {
	if err := checkDims("MRSeries", n, rows, cols); err != nil {
		return err
	}
	t2 := opt.Contrast == "T2"
	desc, tr, te := "Synthetic MR T1 axial", "500", "15"
	if t2 {
		desc, tr, te = "Synthetic MR T2 axial", "4000", "100"
	}
	r := resolve(opt, kindMR, "MR", desc, "HEAD")
	forUID := r.frameOfReferenceUID()
	const thickness = 5.0
	spacing := 240.0 / float64(max(rows, cols))
	x0 := -spacing * float64(cols-1) / 2
	y0 := -spacing * float64(rows-1) / 2
	for i := range n {
		num := i + 1
		sop := r.instanceUID(num)
		z := thickness * float64(i)

		b := &builder{}
		b.common(r, MRImageStorage, sop, "MR", num)
		b.str(tag.PatientPosition, "HFS")
		b.str(tag.FrameOfReferenceUID, forUID)
		b.str(tag.PositionReferenceIndicator, "")
		b.str(tag.ImageType, "ORIGINAL", "PRIMARY", "OTHER")
		b.str(tag.AcquisitionNumber, "1")
		b.str(tag.ScanningSequence, "SE")
		b.str(tag.SequenceVariant, "NONE")
		b.str(tag.ScanOptions, "")
		b.str(tag.MRAcquisitionType, "2D")
		b.str(tag.RepetitionTime, tr)
		b.str(tag.EchoTime, te)
		b.str(tag.EchoTrainLength, "1")
		b.str(tag.MagneticFieldStrength, "1.5")
		b.str(tag.SliceThickness, formatDS(thickness))
		b.str(tag.PixelSpacing, formatDS(spacing), formatDS(spacing))
		b.str(tag.ImageOrientationPatient, "1", "0", "0", "0", "1", "0")
		b.str(tag.ImagePositionPatient, formatDS(x0), formatDS(y0), formatDS(z))
		b.str(tag.SliceLocation, formatDS(z))
		b.imagePixel(rows, cols, 1, "MONOCHROME2", 16, 12, 1)
		b.str(tag.RescaleIntercept, "0")
		b.str(tag.RescaleSlope, "1")
		b.str(tag.WindowCenter, "800")
		b.str(tag.WindowWidth, "1600")
		b.pixels16(rows, cols, mrSlice(rows, cols, i, n, r.Seed, t2))

		data, err := b.encode()
		if err != nil {
			return err
		}
		if err := fn(r.object(fileName(r.Dir, "mr", num, n), sop, MRImageStorage, "MR", num, 1, data)); err != nil {
			return err
		}
	}
	return nil
}

// mrSlice computes slice i of n of the MR head phantom (values 0..2047).
func mrSlice(rows, cols, i, n int, seed uint64, t2 bool) []uint16 {
	rng := rand.New(rand.NewPCG(seed, uint64(kindMR)<<32|uint64(i)))
	t := (float64(i)+0.5)/float64(n)*2 - 1 // -1..1 along the series
	s := math.Sqrt(1 - 0.6*t*t)            // head cross-section scale
	vent := 0.4 + 0.6*(1-math.Abs(t))      // ventricle scale
	scalp, skull, brain, csf := 1400.0, 60.0, 700.0, 250.0
	if t2 {
		scalp, brain, csf = 900, 500, 1900
	}
	out := make([]uint16, rows*cols)
	for y := range rows {
		v := (float64(y)+0.5)/float64(rows)*2 - 1
		for x := range cols {
			u := (float64(x)+0.5)/float64(cols)*2 - 1
			e := sq(u/(0.75*s)) + sq(v/(0.9*s)) // 1 on the outer head contour
			val := 0.0
			switch {
			case e > 1:
				val = 0
			case e > 0.85:
				val = scalp
			case e > 0.72:
				val = skull
			default:
				val = brain
				if sq((math.Abs(u)-0.12)/(0.07*vent))+sq((v+0.05)/(0.24*vent)) <= 1 {
					val = csf
				}
			}
			if e <= 1 {
				val += rng.NormFloat64() * 15
			}
			out[y*cols+x] = uint16(int16(clamp(val, 0, 2047)))
		}
	}
	return out
}

// XACine generates one X-Ray Angiographic Image Storage object: frames
// rows × cols 8-bit MONOCHROME2 frames at 15 frames/s (FrameTime 66.67 ms,
// CineRate 15, RecommendedDisplayFrameRate 15, FrameIncrementPointer →
// FrameTime) inside a circular field of view, with a static dark vessel and
// a dark contrast blob that moves around a circle from frame to frame. The
// object is named Dir/xa-cine.dcm.
func XACine(opt Options, frames, rows, cols int) (Object, error) {
	if err := checkDims("XACine", frames, rows, cols); err != nil {
		return Object{}, err
	}
	r := resolve(opt, kindXA, "XA", "Synthetic XA cine", "HEART")
	sop := r.instanceUID(1)
	b := &builder{}
	b.xaHeader(r, sop, frames, rows, cols)
	base := xaBase(rows, cols, r.Seed)
	all := make([][]uint8, frames)
	for f := range frames {
		all[f] = make([]uint8, rows*cols)
		xaFrame(all[f], base, f, frames, rows, cols)
	}
	b.pixels8(rows, cols, 1, all)
	data, err := b.encode()
	if err != nil {
		return Object{}, err
	}
	return r.object(r.Dir+"/xa-cine.dcm", sop, XAImageStorage, "XA", 1, frames, data), nil
}

// xaHeader adds every XA attribute except PixelData.
func (b *builder) xaHeader(r resolved, sop string, frames, rows, cols int) {
	b.common(r, XAImageStorage, sop, "XA", 1)
	b.str(tag.ImageType, "ORIGINAL", "PRIMARY", "SINGLE PLANE")
	b.str(tag.AcquisitionNumber, "1")
	b.str(tag.KVP, "80")
	b.str(tag.PatientOrientation, "")
	b.str(tag.RadiationSetting, "GR")
	b.str(tag.XRayTubeCurrent, "500")
	b.str(tag.ExposureTime, "7")
	b.str(tag.Exposure, "4")
	b.str(tag.PositionerMotion, "STATIC")
	b.str(tag.PositionerPrimaryAngle, "-30")
	b.str(tag.PositionerSecondaryAngle, "20")
	b.str(tag.FrameTime, formatDS(math.Round(100000.0/xaFrameRate)/100))
	b.str(tag.CineRate, strconv.Itoa(xaFrameRate))
	b.str(tag.RecommendedDisplayFrameRate, strconv.Itoa(xaFrameRate))
	b.str(tag.NumberOfFrames, strconv.Itoa(frames))
	b.ints(tag.FrameIncrementPointer, frameTimeTag...)
	b.imagePixel(rows, cols, 1, "MONOCHROME2", 8, 8, 0)
	b.str(tag.PixelIntensityRelationship, "LIN")
	b.str(tag.LossyImageCompression, "00")
	b.str(tag.WindowCenter, "128")
	b.str(tag.WindowWidth, "256")
}

// xaBase computes the static part of the XA frames: a vignetted circular
// field of view with a dark curved vessel and fixed noise.
func xaBase(rows, cols int, seed uint64) []uint8 {
	rng := rand.New(rand.NewPCG(seed, uint64(kindXA)<<32))
	out := make([]uint8, rows*cols)
	for y := range rows {
		v := (float64(y)+0.5)/float64(rows)*2 - 1
		for x := range cols {
			u := (float64(x)+0.5)/float64(cols)*2 - 1
			r2 := u*u + v*v
			if r2 > 1 {
				continue // collimated: black
			}
			val := 200 - 70*r2
			if d := math.Abs(u - 0.35*math.Sin(2.5*v)); d < 0.05 {
				val -= 90 * (1 - d/0.05)
			}
			val += rng.NormFloat64() * 3
			out[y*cols+x] = uint8(clamp(val, 1, 255))
		}
	}
	return out
}

// xaFrame fills dst with frame f of frames: base plus a dark Gaussian blob
// that travels once around a circle over the cine. Only the blob's
// bounding box is computed, so frames are cheap even when large.
func xaFrame(dst, base []uint8, f, frames, rows, cols int) {
	copy(dst, base)
	angle := 2 * math.Pi * float64(f) / float64(frames)
	cx := (0.5 + 0.25*math.Cos(angle)) * float64(cols)
	cy := (0.5 + 0.25*math.Sin(angle)) * float64(rows)
	rad := 0.08*float64(min(rows, cols)) + 1
	y0, y1 := max(0, int(cy-3*rad)), min(rows, int(cy+3*rad)+1)
	x0, x1 := max(0, int(cx-3*rad)), min(cols, int(cx+3*rad)+1)
	for y := y0; y < y1; y++ {
		dy := (float64(y) + 0.5 - cy) / rad
		for x := x0; x < x1; x++ {
			i := y*cols + x
			if base[i] == 0 {
				continue // outside the field of view
			}
			dx := (float64(x) + 0.5 - cx) / rad
			dst[i] = uint8(clamp(float64(base[i])-120*math.Exp(-(dx*dx+dy*dy)), 1, 255))
		}
	}
}

// USCine generates one Ultrasound Multi-frame Image Storage object: frames
// rows × cols 8-bit RGB frames (PlanarConfiguration 0) at 30 frames/s
// (FrameTime 33.33 ms, CineRate 30) showing a sector scan with speckle, a
// pulsating dark chamber and a red/blue colour-flow region. The object is
// named Dir/us-cine.dcm.
func USCine(opt Options, frames, rows, cols int) (Object, error) {
	if err := checkDims("USCine", frames, rows, cols); err != nil {
		return Object{}, err
	}
	r := resolve(opt, kindUS, "US", "Synthetic US cine", "HEART")
	sop := r.instanceUID(1)
	b := &builder{}
	b.common(r, USMultiFrameImageStorage, sop, "US", 1)
	b.str(tag.ImageType, "ORIGINAL", "PRIMARY", "CHEST", "0011")
	b.str(tag.PatientOrientation, "")
	b.str(tag.FrameTime, formatDS(math.Round(100000.0/usFrameRate)/100))
	b.str(tag.CineRate, strconv.Itoa(usFrameRate))
	b.str(tag.RecommendedDisplayFrameRate, strconv.Itoa(usFrameRate))
	b.str(tag.NumberOfFrames, strconv.Itoa(frames))
	b.ints(tag.FrameIncrementPointer, frameTimeTag...)
	b.imagePixel(rows, cols, 3, "RGB", 8, 8, 0)
	b.str(tag.LossyImageCompression, "00")
	all := make([][]uint8, frames)
	for f := range frames {
		all[f] = usFrame(rows, cols, f, frames, r.Seed)
	}
	b.pixels8(rows, cols, 3, all)
	data, err := b.encode()
	if err != nil {
		return Object{}, err
	}
	return r.object(r.Dir+"/us-cine.dcm", sop, USMultiFrameImageStorage, "US", 1, frames, data), nil
}

// usFrame computes RGB frame f of frames of the ultrasound cine.
func usFrame(rows, cols, f, frames int, seed uint64) []uint8 {
	rng := rand.New(rand.NewPCG(seed, uint64(kindUS)<<32|uint64(f)))
	phase := 2 * math.Pi * float64(f) / float64(frames)
	apexX, apexY := float64(cols)/2, -0.05*float64(rows)
	depth := 1.02 * float64(rows)
	const halfAngle = 40 * math.Pi / 180
	chX, chY := float64(cols)/2, 0.55*float64(rows)
	chR := (0.2 + 0.05*math.Sin(phase)) * float64(rows)
	flow := math.Sin(phase)
	out := make([]uint8, rows*cols*3)
	for y := range rows {
		for x := range cols {
			px, py := float64(x)+0.5, float64(y)+0.5
			dx, dy := px-apexX, py-apexY
			rr := math.Hypot(dx, dy)
			if rr > depth || math.Abs(math.Atan2(dx, dy)) > halfAngle {
				continue // outside the sector: black
			}
			speckle := math.Sqrt(-2 * math.Log(1-rng.Float64())) // Rayleigh
			g := 110 * (1 - 0.5*rr/depth) * speckle
			i := (y*cols + x) * 3
			cd := math.Hypot(px-chX, py-chY) / chR
			if cd <= 1 {
				g *= 0.12 // blood pool
				if py < chY && math.Abs(flow) > 0.2 {
					c := uint8(clamp(60+150*math.Abs(flow)*(1-cd), 0, 255))
					if flow > 0 {
						out[i], out[i+1], out[i+2] = c, 20, 20 // towards the probe: red
					} else {
						out[i], out[i+1], out[i+2] = 20, 40, c // away: blue
					}
					continue
				}
			}
			v := uint8(clamp(g, 0, 255))
			out[i], out[i+1], out[i+2] = v, v, v
		}
	}
	return out
}

// imagePixel adds the Image Pixel module attributes other than PixelData.
func (b *builder) imagePixel(rows, cols, spp int, photometric string, bitsAllocated, bitsStored, pixelRep int) {
	b.ints(tag.SamplesPerPixel, spp)
	b.str(tag.PhotometricInterpretation, photometric)
	if spp > 1 {
		b.ints(tag.PlanarConfiguration, 0)
	}
	b.ints(tag.Rows, rows)
	b.ints(tag.Columns, cols)
	b.ints(tag.BitsAllocated, bitsAllocated)
	b.ints(tag.BitsStored, bitsStored)
	b.ints(tag.HighBit, bitsStored-1)
	b.ints(tag.PixelRepresentation, pixelRep)
}

// rawPixelThreshold is the number of 16-bit samples from which pixels16
// hands the library pre-encoded little-endian bytes instead of
// frame.NativeFrame values. The library encodes native frames one
// binary.Write per sample, which makes 512 × 512 slices about six times
// slower to write; the bytes are identical either way (TestRawPixelPath).
var rawPixelThreshold = 1 << 16

// pixels16 adds native 16-bit PixelData (OW) with one frame per slice.
func (b *builder) pixels16(rows, cols int, frames ...[]uint16) {
	info := dicom.PixelDataInfo{}
	if len(frames)*rows*cols >= rawPixelThreshold {
		raw := make([]byte, 0, len(frames)*rows*cols*2)
		for _, data := range frames {
			for _, v := range data {
				raw = binary.LittleEndian.AppendUint16(raw, v)
			}
		}
		info.IntentionallyUnprocessed = true
		info.UnprocessedValueData = raw
		b.addVR(tag.PixelData, "OW", info)
		return
	}
	for _, data := range frames {
		info.Frames = append(info.Frames, &frame.Frame{NativeData: &frame.NativeFrame[uint16]{
			RawData:                 data,
			InternalSamplesPerPixel: 1,
			InternalRows:            rows,
			InternalCols:            cols,
			InternalBitsPerSample:   16,
		}})
	}
	b.addVR(tag.PixelData, "OW", info)
}

// pixels8 adds native 8-bit PixelData (OB), samples interleaved per pixel.
func (b *builder) pixels8(rows, cols, spp int, frames [][]uint8) {
	info := dicom.PixelDataInfo{}
	for _, data := range frames {
		info.Frames = append(info.Frames, &frame.Frame{NativeData: &frame.NativeFrame[uint8]{
			RawData:                 data,
			InternalSamplesPerPixel: spp,
			InternalRows:            rows,
			InternalCols:            cols,
			InternalBitsPerSample:   8,
		}})
	}
	b.addVR(tag.PixelData, "OB", info)
}

// object builds the Object descriptor for one encoded instance.
func (r resolved) object(name, sop, sopClass, modality string, instanceNumber, frames int, data []byte) Object {
	return Object{
		Name:           name,
		PatientID:      r.Patient.ID,
		StudyUID:       r.StudyUID,
		SeriesUID:      r.SeriesUID,
		SOPInstanceUID: sop,
		SOPClassUID:    sopClass,
		Modality:       modality,
		SeriesNumber:   r.SeriesNumber,
		InstanceNumber: instanceNumber,
		NumberOfFrames: frames,
		Data:           data,
	}
}

func sq(x float64) float64 { return x * x }
