package codectest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// Case is one set of encoder options and what the decoded samples may differ by.
type Case struct {
	Args  []string // options of the DCMTK encoder
	Near  int      // largest difference allowed (near-lossless, or lossy against Reference)
	Mean  float64  // largest mean absolute difference allowed; 0 when not checked
	Shift int      // point transform: samples compare after >> Shift << Shift
	// Reference, when set, is a DCMTK decompressor and its options (for example
	// "dcmdjpeg", "+cn"): the decoded samples are compared with what it makes of the
	// compressed object instead of with the original.
	Reference []string
	// Modalities, when set, limits the case to objects of these modalities.
	Modalities []string
}

// Stats says how far the decoded samples of one case and object were from the
// reference.
type Stats struct {
	Object  string
	Args    []string
	Max     int
	Mean    float64
	Samples int
}

// String is the comparison in one line: object, arguments, samples, largest and mean
// difference.
func (s Stats) String() string {
	return fmt.Sprintf("%s %v: %d samples, max difference %d, mean %.4f", s.Object, s.Args, s.Samples, s.Max, s.Mean)
}

// Compressed is an object compressed by a DCMTK encoder, as RoundTrip hands it to a
// callback.
type Compressed struct {
	Modality string
	Args     []string
	Data     []byte   // the compressed PS3.10 object
	Frames   [][]byte // its frames' compressed bytes
}

// RoundTrip compresses one image object of each modality of gen.Corpus(seed) with the
// DCMTK tool, once per case, decodes every frame with decode and compares the samples
// with the original's (or the reference decoder's). A case the encoder refuses as
// unsupported is skipped; a decoder error for which tolerate returns true is accepted
// (a feature the decoder refuses cleanly). It returns the differences measured.
func RoundTrip(t *testing.T, tool string, seed uint64, cases []Case, decode func([]byte) ([]uint16, error), tolerate func(c Case, modality string) bool) []Stats {
	t.Helper()
	var stats []Stats
	objs := Compress(t, tool, seed, cases, func(c Case, o gen.Object, comp Compressed) {
		want, ba := o.Data, 0
		if c.Reference != nil {
			want = runTool(t, c.Reference[0], c.Reference[1:], comp.Data)
		}
		ref, err := dcm.Parse(bytes.NewReader(want), nil)
		if err != nil {
			t.Fatal(err)
		}
		pl := ref.PixelLayout()
		if pl == nil || pl.Encapsulated {
			t.Fatalf("%s %v: the reference has no native pixel data", o.Name, c.Args)
		}
		if v, ok := ref.Dataset.Int(dcm.TagBitsAllocated); ok {
			ba = int(v)
		}
		st := Stats{Object: o.Name, Args: c.Args}
		var sum float64
		for fr, frame := range comp.Frames {
			got, err := decode(frame)
			if err != nil {
				if tolerate != nil && tolerate(c, o.Modality) {
					return
				}
				t.Fatalf("%s %v frame %d: %v", o.Name, c.Args, fr, err)
			}
			w := want[pl.Offset+int64(fr)*pl.FrameLength : pl.Offset+int64(fr+1)*pl.FrameLength]
			if n := int(pl.FrameLength) / max(1, ba/8); len(got) != n {
				t.Fatalf("%s %v frame %d: %d samples, want %d", o.Name, c.Args, fr, len(got), n)
			}
			for i, v := range got {
				ws := int(w[i])
				if ba == 16 {
					ws = int(binary.LittleEndian.Uint16(w[2*i:]))
				}
				ws = ws >> c.Shift << c.Shift
				d := int(v) - ws
				if d < 0 {
					d = -d
				}
				if d > c.Near {
					t.Fatalf("%s %v frame %d sample %d: %d, want %d (within %d)", o.Name, c.Args, fr, i, v, ws, c.Near)
				}
				st.Max = max(st.Max, d)
				sum += float64(d)
				st.Samples++
			}
		}
		st.Mean = sum / float64(max(1, st.Samples))
		t.Log(st)
		if c.Mean > 0 && st.Mean > c.Mean {
			t.Fatalf("%s: mean difference above %g", st, c.Mean)
		}
		stats = append(stats, st)
	})
	if len(objs) < 3 {
		t.Fatalf("only %v were compared", objs)
	}
	return stats
}

// Compress compresses one image object of each modality of gen.Corpus(seed) with the
// DCMTK tool, once per case (of those that apply to its modality), and hands each
// result to check. It returns the modalities it compressed.
func Compress(t *testing.T, tool string, seed uint64, cases []Case, check func(c Case, o gen.Object, comp Compressed)) []string {
	t.Helper()
	tools.DCMTK(t, tool)
	objs, err := gen.Corpus(seed)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var modalities []string
	for _, o := range objs {
		if o.NumberOfFrames == 0 || seen[o.Modality] {
			continue
		}
		seen[o.Modality] = true
		modalities = append(modalities, o.Modality)
		for _, c := range cases {
			if c.Modalities != nil && !slices.Contains(c.Modalities, o.Modality) {
				continue
			}
			data, err := encode(t, tool, c.Args, o.Data)
			if err != nil {
				t.Logf("%s %v: %v", o.Name, c.Args, err)
				continue
			}
			check(c, o, Compressed{Modality: o.Modality, Args: c.Args, Data: data, Frames: Frames(t, data)})
		}
	}
	return modalities
}

// errRefused is an encoder's refusal of an option set as unsupported.
type errRefused struct{ msg string }

func (e errRefused) Error() string { return "the encoder refuses it: " + e.msg }

func encode(t testing.TB, tool string, args []string, in []byte) ([]byte, error) {
	t.Helper()
	bin := tools.DCMTK(t, tool)
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "out.dcm")
	if err := os.WriteFile(src, in, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(bin, append(append([]string(nil), args...), src, dst)...).CombinedOutput(); err != nil {
		if bytes.Contains(b, []byte("Unsupported")) {
			return nil, errRefused{strings.TrimSpace(string(b))}
		}
		t.Fatalf("%s %v: %v\n%s", tool, args, err, b)
	}
	out, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	return out, nil
}

// runTool runs a DCMTK converter (tool [args] in out) on a PS3.10 object and returns
// its output.
func runTool(t testing.TB, tool string, args []string, in []byte) []byte {
	t.Helper()
	out, err := encode(t, tool, args, in)
	if err != nil {
		t.Fatalf("%s %v: %v", tool, args, err)
	}
	return out
}

// Decompress runs a DCMTK decompressor (for example "dcmdjpeg", "+cn") on a PS3.10
// object and returns the native pixel data of each frame and the object's BitsAllocated.
func Decompress(t testing.TB, tool string, args []string, in []byte) ([][]byte, int) {
	t.Helper()
	out := runTool(t, tool, args, in)
	f, err := dcm.Parse(bytes.NewReader(out), nil)
	if err != nil {
		t.Fatal(err)
	}
	pl := f.PixelLayout()
	if pl == nil || pl.Encapsulated {
		t.Fatalf("%s: no native pixel data", tool)
	}
	ba, _ := f.Dataset.Int(dcm.TagBitsAllocated)
	var frames [][]byte
	for i := 0; i < pl.NumberOfFrames; i++ {
		frames = append(frames, out[pl.Offset+int64(i)*pl.FrameLength:pl.Offset+int64(i+1)*pl.FrameLength])
	}
	return frames, int(ba)
}

// Frames returns the compressed bytes of each frame of an encapsulated PS3.10 object.
func Frames(t testing.TB, data []byte) [][]byte {
	t.Helper()
	f, err := dcm.Parse(bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	jl := f.PixelLayout()
	if jl == nil || !jl.Encapsulated {
		t.Fatalf("no encapsulated pixel data")
	}
	var out [][]byte
	for fr := 0; fr < jl.NumberOfFrames; fr++ {
		rs, err := jl.Frame(fr)
		if err != nil {
			t.Fatal(err)
		}
		var frame []byte
		for _, r := range rs {
			frame = append(frame, data[r.Offset:r.Offset+r.Length]...)
		}
		out = append(out, frame)
	}
	return out
}

// PVRG encodes a phantom with the PVRG JPEG codec (an encoder independent of IJG's
// that can write 12-bit frames, restart intervals, non-interleaved scans and any
// sampling factors), one component per sampling factor pair. PVRG's optimized Huffman
// tables sometimes miss a symbol ("Null Code", exit status 3) for some data: the
// phantom's noise then changes, a few times at most.
func PVRG(t testing.TB, w, h, precision int, seed uint64, sampling [][2]int, opts ...string) []byte {
	t.Helper()
	hmax, vmax := 1, 1
	for _, s := range sampling {
		hmax, vmax = max(hmax, s[0]), max(vmax, s[1])
	}
	for try := uint64(0); ; try++ {
		var planes [][]uint16
		for ci, s := range sampling {
			p := Phantom(w, h, precision, 100*seed+10*try+uint64(ci))
			d, _, _ := downsample(p, w, h, hmax/s[0], vmax/s[1])
			planes = append(planes, d)
		}
		b, err := pvrgEncode(t, w, h, precision, planes, sampling, opts...)
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == 3 && try < 8 {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// pvrgEncode encodes raw samples with PVRG's codec; planes are the components at their
// own (subsampled) size.
func pvrgEncode(t testing.TB, w, h, precision int, planes [][]uint16, sampling [][2]int, opts ...string) ([]byte, error) {
	t.Helper()
	bin := tools.Require(t, "pvrg-jpeg", "pvrg-jpeg")
	dir := t.TempDir()
	args := []string{"-iw", fmt.Sprint(w), "-ih", fmt.Sprint(h), "-p", fmt.Sprint(precision)}
	args = append(args, opts...)
	out := filepath.Join(dir, "out.jpg")
	args = append(args, "-s", out)
	for i, pl := range planes {
		var b []byte
		for _, v := range pl {
			if precision > 8 {
				b = binary.BigEndian.AppendUint16(b, v)
			} else {
				b = append(b, byte(v))
			}
		}
		name := filepath.Join(dir, fmt.Sprintf("c%d", i))
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
		hf, vf := sampling[i][0], sampling[i][1]
		args = append(args, "-ci", fmt.Sprint(i+1), "-hf", fmt.Sprint(hf), "-vf", fmt.Sprint(vf), name)
	}
	if b, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pvrg-jpeg %v: %w\n%.300s", args, err, b)
	}
	return os.ReadFile(out)
}

// Encapsulate makes a Secondary Capture object in JPEG Extended (.4.51) of one frame
// (for DCMTK's decoders): MONOCHROME2 or, with 3 components, YBR_FULL.
func Encapsulate(t testing.TB, stream []byte, w, h, spp, precision int) []byte {
	t.Helper()
	const uid = "1.2.826.0.1.3680043.10.1234.99.51"
	ba := 8
	if precision > 8 {
		ba = 16
	}
	photometric := "MONOCHROME2"
	if spp == 3 {
		photometric = "YBR_FULL"
	}
	ds := &dcm.Dataset{}
	for _, e := range []*dcm.Element{
		dcm.NewString(dcm.TagSOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.7"),
		dcm.NewString(dcm.TagSOPInstanceUID, "UI", uid),
		dcm.NewString(dcm.TagStudyInstanceUID, "UI", uid+".1"),
		dcm.NewString(dcm.TagSeriesInstanceUID, "UI", uid+".2"),
		dcm.NewString(dcm.TagModality, "CS", "OT"),
		dcm.NewUS(dcm.TagSamplesPerPixel, uint16(spp)),
		dcm.NewString(dcm.TagPhotometricInterpretation, "CS", photometric),
		dcm.NewUS(dcm.TagRows, uint16(h)),
		dcm.NewUS(dcm.TagColumns, uint16(w)),
		dcm.NewUS(dcm.TagBitsAllocated, uint16(ba)),
		dcm.NewUS(dcm.TagBitsStored, uint16(precision)),
		dcm.NewUS(dcm.TagHighBit, uint16(precision-1)),
		dcm.NewUS(dcm.TagPixelRepresentation, 0),
	} {
		ds.Set(e)
	}
	if spp == 3 {
		ds.Set(dcm.NewUS(dcm.TagPlanarConfiguration, 0))
	}
	body, err := ds.Encode(dcm.ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	out := append(dcm.EncodeMeta(dcm.Meta{MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.7", MediaStorageSOPInstanceUID: uid, TransferSyntaxUID: "1.2.840.10008.1.2.4.51", ImplementationClassUID: "1.2.3.4"}), body...)
	le := binary.LittleEndian
	out = append(out, 0xE0, 0x7F, 0x10, 0x00, 'O', 'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF)
	out = append(out, 0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0) // empty basic offset table
	frag := stream
	if len(frag)%2 == 1 {
		frag = append(append([]byte(nil), frag...), 0)
	}
	out = append(out, 0xFE, 0xFF, 0x00, 0xE0)
	out = le.AppendUint32(out, uint32(len(frag)))
	out = append(out, frag...)
	return append(out, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0)
}

// Phantom is a test pattern of w×h samples of the given precision: gradients, a disc,
// sharp edges and noise, different for each seed.
func Phantom(w, h, precision int, seed uint64) []uint16 {
	r := rand.New(rand.NewPCG(seed, 7))
	maxv := 1<<precision - 1
	out := make([]uint16, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := (x*maxv/max(1, w-1) + y*maxv/max(1, h-1)) / 2
			dx, dy := x-w/2, y-h/3
			if dx*dx+dy*dy < w*h/10 {
				v = maxv - v/2
			}
			if (x/5+y/7)%4 == 0 {
				v = v * 3 / 4
			}
			v += r.IntN(maxv/16+1) - maxv/32
			out[y*w+x] = uint16(max(0, min(maxv, v)))
		}
	}
	return out
}

// downsample averages a plane by hs×vs (what the encoder's input would be).
func downsample(p []uint16, w, h, hs, vs int) ([]uint16, int, int) {
	dw, dh := (w+hs-1)/hs, (h+vs-1)/vs
	out := make([]uint16, dw*dh)
	for y := 0; y < dh; y++ {
		for x := 0; x < dw; x++ {
			sum, n := 0, 0
			for j := 0; j < vs; j++ {
				for i := 0; i < hs; i++ {
					if sx, sy := x*hs+i, y*vs+j; sx < w && sy < h {
						sum += int(p[sy*w+sx])
						n++
					}
				}
			}
			out[y*dw+x] = uint16(sum / n)
		}
	}
	return out, dw, dh
}
