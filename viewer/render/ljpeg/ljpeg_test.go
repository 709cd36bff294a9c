package ljpeg_test

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
	"github.com/lumenpacs/lumen/viewer/render/ljpeg"
)

// TestDecodeMatchesOriginal compresses native objects with DCMTK's dcmcjpeg (lossless,
// several predictors and a point transform of 0) and checks that every decoded sample
// equals the original.
func TestDecodeMatchesOriginal(t *testing.T) {
	cjpeg := tools.DCMTK(t, "dcmcjpeg")
	objs, err := gen.Corpus(9)
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
		for _, args := range [][]string{{"+e1"}, {"+el", "+sv", "4"}, {"+el", "+sv", "7"}, {"+el", "+sv", "1", "+pt", "2"}} {
			pt := 0
			if len(args) == 5 {
				pt = 2
			}
			in, out := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "out.dcm")
			os.WriteFile(in, o.Data, 0o644)
			if b, err := exec.Command(cjpeg, append(args, in, out)...).CombinedOutput(); err != nil {
				t.Fatalf("dcmcjpeg %v: %v\n%s", args, err, b)
			}
			data, _ := os.ReadFile(out)
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
				img, err := ljpeg.Decode(frame)
				if err != nil {
					t.Fatalf("%s %v frame %d: %v", o.Name, args, fr, err)
				}
				want := o.Data[pl.Offset+int64(fr)*pl.FrameLength : pl.Offset+int64(fr+1)*pl.FrameLength]
				for i, v := range img.Data {
					var w uint16
					if ba == 16 {
						w = binary.LittleEndian.Uint16(want[2*i:])
					} else {
						w = uint16(want[i])
					}
					w = w >> pt << pt
					if v != w {
						t.Fatalf("%s %v frame %d sample %d: %d, want %d", o.Name, args, fr, i, v, w)
					}
				}
			}
		}
	}
	if len(seen) < 3 {
		t.Fatalf("kinds %v", seen)
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, {0xFF, 0xD8}, {0xFF, 0xD8, 0xFF, 0xC0, 0, 2}, bytes.Repeat([]byte{0xFF}, 64)} {
		if _, err := ljpeg.Decode(b); err == nil {
			t.Fatalf("%x decoded", b)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xC3, 0, 11, 8, 0, 2, 0, 2, 1, 1, 0x11, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ljpeg.Decode(b)
	})
}
