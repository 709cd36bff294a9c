package dcm

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// TestTranscodeToExplicit converts each corpus object to Implicit VR LE with DCMTK's
// dcmconv, transcodes it back with bulk values copied from the stored bytes (a low bulk
// threshold makes most values bulk), and checks that the result has the same DICOM JSON
// and pixel data as the original, and that DCMTK reads it.
func TestTranscodeToExplicit(t *testing.T) {
	dcmconv := tools.DCMTK(t, "dcmconv")
	dcmdump := tools.DCMTK(t, "dcmdump")
	objs, err := gen.Corpus(3)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	seen := map[string]bool{}
	for _, o := range objs {
		if seen[o.Modality] {
			continue
		}
		seen[o.Modality] = true
		in, imp, out := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "implicit.dcm"), filepath.Join(dir, "out.dcm")
		if err := os.WriteFile(in, o.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := exec.Command(dcmconv, "+ti", in, imp).CombinedOutput(); err != nil {
			t.Fatalf("dcmconv: %v\n%s", err, b)
		}
		stored, err := os.ReadFile(imp)
		if err != nil {
			t.Fatal(err)
		}
		f, err := Parse(bytes.NewReader(stored), &Options{BulkThreshold: 64})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		err = TranscodeToExplicit(&buf, f, func(off, n int64) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(stored[off : off+n])), nil
		})
		if err != nil {
			t.Fatalf("%s: %v", o.Name, err)
		}
		got, err := Parse(bytes.NewReader(buf.Bytes()), nil)
		if err != nil {
			t.Fatalf("%s: transcoded output does not parse: %v", o.Name, err)
		}
		orig, _ := Parse(bytes.NewReader(o.Data), nil)
		if got.TransferSyntax != ExplicitVRLittleEndian {
			t.Fatalf("%s: transfer syntax %s", o.Name, got.TransferSyntax)
		}
		gj, _, _ := got.Dataset.JSON(nil)
		oj, _, _ := orig.Dataset.JSON(nil)
		// 8-bit pixel data is OB in the original and OW (PS3.5 A.1, implicit) after the
		// round trip through Implicit VR; both are valid and the bytes are the same.
		oj = bytes.ReplaceAll(oj, []byte(`"7FE00010":{"vr":"OB"`), []byte(`"7FE00010":{"vr":"OW"`))
		if !bytes.Equal(gj, oj) {
			t.Fatalf("%s: JSON differs after transcoding:\n%s\n%s", o.Name, gj, oj)
		}
		if pl := orig.PixelLayout(); pl != nil {
			gl := got.PixelLayout()
			if gl == nil || gl.Length != pl.Length || !bytes.Equal(buf.Bytes()[gl.Offset:gl.Offset+gl.Length], o.Data[pl.Offset:pl.Offset+pl.Length]) {
				t.Fatalf("%s: pixel data differs", o.Name)
			}
		}
		if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := exec.Command(dcmdump, "-q", out).CombinedOutput(); err != nil || bytes.Contains(b, []byte("E: ")) || bytes.Contains(b, []byte("W: ")) {
			t.Fatalf("%s: dcmdump: %v\n%s", o.Name, err, b)
		}
	}
	if len(seen) < 5 {
		t.Fatalf("kinds %v", seen)
	}
}
