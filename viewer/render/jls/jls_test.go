package jls_test

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
	"github.com/lumenpacs/lumen/viewer/render/jls"
)

// TestDecodeMatchesOriginal compresses native objects with DCMTK's dcmcjpls (lossless,
// line interleaved for colour; and near-lossless) and checks the decoded samples against
// the originals: equal for lossless, within NEAR for near-lossless.
func TestDecodeMatchesOriginal(t *testing.T) {
	cjpls := tools.DCMTK(t, "dcmcjpls")
	objs, err := gen.Corpus(17)
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
		for _, c := range []struct {
			args []string
			near int
		}{{nil, 0}, {[]string{"+en", "+md", "2"}, 2}, {[]string{"+is"}, 0}, {[]string{"+in"}, 0}} {
			in, out := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "out.dcm")
			os.WriteFile(in, o.Data, 0o644)
			if b, err := exec.Command(cjpls, append(c.args, in, out)...).CombinedOutput(); err != nil {
				if c.near > 0 && bytes.Contains(b, []byte("Unsupported pixel representation")) {
					continue // DCMTK does not encode signed data near-lossless
				}
				t.Fatalf("dcmcjpls %v: %v\n%s", c.args, err, b)
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
				img, err := jls.Decode(frame)
				if err != nil {
					if c.args != nil && c.args[0] == "+is" && o.Modality == "US" {
						continue // sample-interleaved colour: not supported, must fail cleanly
					}
					t.Fatalf("%s %v frame %d: %v", o.Name, c.args, fr, err)
				}
				want := o.Data[pl.Offset+int64(fr)*pl.FrameLength : pl.Offset+int64(fr+1)*pl.FrameLength]
				for i, v := range img.Data {
					var w int
					if ba == 16 {
						w = int(binary.LittleEndian.Uint16(want[2*i:]))
					} else {
						w = int(want[i])
					}
					if d := int(v) - w; d > c.near || d < -c.near {
						t.Fatalf("%s %v frame %d sample %d: %d, want %d (NEAR %d)", o.Name, c.args, fr, i, v, w, c.near)
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
	for _, b := range [][]byte{nil, {0xFF, 0xD8}, {0xFF, 0xD8, 0xFF, 0xF7, 0, 2}, bytes.Repeat([]byte{0xFF}, 64)} {
		if _, err := jls.Decode(b); err == nil {
			t.Fatalf("%x decoded", b)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xF7, 0, 11, 8, 0, 2, 0, 2, 1, 1, 0x11, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		jls.Decode(b)
	})
}
