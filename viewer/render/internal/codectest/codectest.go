package codectest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/archive/dcm"
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
			if c.Modalities != nil && !contains(c.Modalities, o.Modality) {
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

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
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
