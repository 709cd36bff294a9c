package codectest

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/lumenpacs/lumen/archive/dcm"
	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// Case is one set of encoder options and what the decoded samples may differ by.
type Case struct {
	Args  []string // options of the DCMTK tool
	Near  int      // largest difference allowed (near-lossless)
	Shift int      // point transform: samples compare after >> Shift << Shift
}

// RoundTrip compresses one image object of each modality of gen.Corpus(seed) with the
// DCMTK tool, once per case, decodes every frame with decode and compares the samples
// with the original's. A case the encoder refuses as unsupported is skipped; a decoder
// error for which tolerate returns true is accepted (a feature the decoder refuses
// cleanly).
func RoundTrip(t *testing.T, tool string, seed uint64, cases []Case, decode func([]byte) ([]uint16, error), tolerate func(c Case, modality string) bool) {
	t.Helper()
	bin := tools.DCMTK(t, tool)
	objs, err := gen.Corpus(seed)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	seen := map[string]bool{}
	for _, o := range objs {
		if o.NumberOfFrames == 0 || seen[o.Modality] {
			continue
		}
		seen[o.Modality] = true
		orig, err := dcm.Parse(bytes.NewReader(o.Data), nil)
		if err != nil {
			t.Fatal(err)
		}
		pl := orig.PixelLayout()
		ba, _ := orig.Dataset.Int(dcm.TagBitsAllocated)
		for _, c := range cases {
			in, out := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "out.dcm")
			if err := os.WriteFile(in, o.Data, 0o644); err != nil {
				t.Fatal(err)
			}
			if b, err := exec.Command(bin, append(append([]string(nil), c.Args...), in, out)...).CombinedOutput(); err != nil {
				if bytes.Contains(b, []byte("Unsupported")) {
					t.Logf("%s %v: the encoder refuses it: %s", o.Name, c.Args, bytes.TrimSpace(b))
					continue
				}
				t.Fatalf("%s %v: %v\n%s", tool, c.Args, err, b)
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			f, err := dcm.Parse(bytes.NewReader(data), nil)
			if err != nil {
				t.Fatal(err)
			}
			jl := f.PixelLayout()
			for fr := 0; fr < jl.NumberOfFrames; fr++ {
				rs, _ := jl.Frame(fr)
				var frame []byte
				for _, r := range rs {
					frame = append(frame, data[r.Offset:r.Offset+r.Length]...)
				}
				got, err := decode(frame)
				if err != nil {
					if tolerate != nil && tolerate(c, o.Modality) {
						break
					}
					t.Fatalf("%s %v frame %d: %v", o.Name, c.Args, fr, err)
				}
				want := o.Data[pl.Offset+int64(fr)*pl.FrameLength : pl.Offset+int64(fr+1)*pl.FrameLength]
				for i, v := range got {
					w := int(want[i])
					if ba == 16 {
						w = int(binary.LittleEndian.Uint16(want[2*i:]))
					}
					w = w >> c.Shift << c.Shift
					if d := int(v) - w; d > c.Near || d < -c.Near {
						t.Fatalf("%s %v frame %d sample %d: %d, want %d (within %d)", o.Name, c.Args, fr, i, v, w, c.Near)
					}
				}
			}
		}
	}
	if len(seen) < 3 {
		t.Fatalf("only %v were compared", seen)
	}
}
