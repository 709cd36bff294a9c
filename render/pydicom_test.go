package render_test

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dcm/codec"
	"github.com/lumenpacs/lumen/dcm/codec/openjpeg"
	"github.com/lumenpacs/lumen/render"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// pydicomData is where Debian's python3-pydicom installs pydicom's test files.
const pydicomData = "/usr/lib/python3/dist-packages/pydicom/data"

// TestPydicomFiles parses and renders every test file pydicom ships (read from the
// installed package, not copied): each must render or fail with an error, never panic.
// Those that render with a stored window or in colour are compared with dcmj2pnm. The
// outcome of each file is logged (go test -v) for docs/rendering.md.
func TestPydicomFiles(t *testing.T) {
	if _, err := os.Stat(pydicomData); err != nil {
		tools.Missing(t, "python3-pydicom's test files are not installed: "+err.Error())
	}
	var files []string
	filepath.WalkDir(pydicomData, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".dcm") {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	outcome := map[string][]string{}
	compared := 0
	for _, p := range files {
		name := strings.TrimPrefix(p, pydicomData+"/")
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		result, err := func() (string, error) {
			f, err := dcm.Parse(bytes.NewReader(data), &dcm.Options{BulkThreshold: 1 << 20})
			if err != nil {
				return "does not parse", err
			}
			pl := f.PixelLayout()
			if f.Dataset.Get(dcm.TagPixelData) == nil {
				return "no pixel data", nil
			}
			if pl == nil {
				return "pixel data not locatable (deflated or inconsistent)", nil
			}
			img, err := render.Frame(f.Dataset, f.TransferSyntax, pl, 0, func(off, n int64) ([]byte, error) {
				if off < 0 || off+n > int64(len(data)) {
					return nil, fmt.Errorf("range beyond the file")
				}
				return data[off : off+n], nil
			}, render.Options{})
			if errors.Is(err, render.ErrUnsupported) {
				return "no decoder", err
			}
			if err != nil {
				return "fails cleanly", err
			}
			if f.TransferSyntax == "1.2.840.10008.1.2.4.90" || f.TransferSyntax == "1.2.840.10008.1.2.4.91" {
				// JPEG 2000: the stored values against GDCM's decoding (gdcmconv --raw).
				if err := sameAsGDCM(t, data, f); err != nil {
					return "renders, differs from GDCM", err
				}
				compared++
				return "renders, matches GDCM", nil
			}
			_, hasWindow := f.Dataset.Int(dcm.NewTag(0x0028, 0x1050))
			ph := f.Dataset.String(dcm.TagPhotometricInterpretation)
			if hasWindow || ph == "RGB" || strings.HasPrefix(ph, "YBR") || ph == "PALETTE COLOR" {
				var args []string
				if hasWindow && !strings.HasPrefix(ph, "YBR") && ph != "RGB" && ph != "PALETTE COLOR" {
					args = []string{"+Wi", "1"}
				}
				if f.TransferSyntax == "1.2.840.10008.1.2.4.80" || f.TransferSyntax == "1.2.840.10008.1.2.4.81" {
					args = append([]string{"jpeg-ls"}, args...)
				}
				if ref, ok := tryReference(t, data, args...); ok {
					maxd, mean, err := diff(img, ref)
					// Lossy JPEG: decoders differ in chroma upsampling at colour edges.
					limit := 1.0
					if f.TransferSyntax == "1.2.840.10008.1.2.4.50" || f.TransferSyntax == "1.2.840.10008.1.2.4.51" {
						limit = 3
					}
					if err != nil || mean > limit {
						return "renders, differs from dcmj2pnm", fmt.Errorf("max %d mean %.2f %v", maxd, mean, err)
					}
					compared++
					return "renders, matches dcmj2pnm", nil
				}
			}
			return "renders", nil
		}()
		line := name
		if err != nil {
			line += " (" + strings.TrimPrefix(err.Error(), "render: ") + ")"
		}
		outcome[result] = append(outcome[result], line)
	}
	for _, k := range []string{"renders, matches dcmj2pnm", "renders, matches GDCM", "renders", "renders, differs from dcmj2pnm", "renders, differs from GDCM", "no decoder", "fails cleanly", "pixel data not locatable (deflated or inconsistent)", "does not parse", "no pixel data"} {
		t.Logf("%s: %d", k, len(outcome[k]))
		for _, l := range outcome[k] {
			t.Logf("    %s", l)
		}
	}
	if n := len(outcome["renders, matches dcmj2pnm"]) + len(outcome["renders, matches GDCM"]) + len(outcome["renders"]); n < 30 || compared < 10 {
		t.Fatalf("only %d of %d files render (%d compared with dcmj2pnm)", n, len(files), compared)
	}
	if d := outcome["renders, differs from dcmj2pnm"]; len(d) > 0 {
		t.Errorf("differ from dcmj2pnm: %v", d)
	}
	if d := outcome["renders, differs from GDCM"]; len(d) > 0 {
		t.Errorf("differ from GDCM: %v", d)
	}
	if openjpeg.Available && len(outcome["renders, matches GDCM"]) < 4 {
		t.Errorf("only %d JPEG 2000 files match GDCM", len(outcome["renders, matches GDCM"]))
	}
}

// sameAsGDCM compares the first frame's stored values, decoded by Lumen, with those of
// the same file decompressed by GDCM (gdcmconv --raw).
func sameAsGDCM(t *testing.T, data []byte, f *dcm.File) error {
	t.Helper()
	bin := tools.Require(t, "gdcmconv", "GDCM's libgdcm-tools")
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "out.dcm")
	os.WriteFile(in, data, 0o644)
	if b, err := exec.Command(bin, "--raw", in, out).CombinedOutput(); err != nil {
		return fmt.Errorf("gdcmconv --raw: %v: %s", err, bytes.TrimSpace(b))
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	g, err := dcm.Parse(bytes.NewReader(raw), &dcm.Options{BulkThreshold: 1 << 20})
	if err != nil {
		return err
	}
	ours, err := decodeFirstFrame(f, data)
	if err != nil {
		return err
	}
	theirs, err := decodeFirstFrame(g, raw)
	if err != nil {
		return fmt.Errorf("GDCM's output: %v", err)
	}
	if len(ours.Data) != len(theirs.Data) {
		return fmt.Errorf("%d samples, GDCM %d", len(ours.Data), len(theirs.Data))
	}
	for i := range ours.Data {
		if ours.Data[i] != theirs.Data[i] {
			return fmt.Errorf("sample %d is %d, GDCM %d", i, ours.Data[i], theirs.Data[i])
		}
	}
	return nil
}

// decodeFirstFrame decodes the first frame of a parsed PS3.10 file held in memory.
func decodeFirstFrame(f *dcm.File, data []byte) (*codec.Frame, error) {
	p, err := render.ParamsOf(f.Dataset, f.TransferSyntax, 0)
	if err != nil {
		return nil, err
	}
	pl := f.PixelLayout()
	if pl == nil {
		return nil, fmt.Errorf("no pixel data")
	}
	rs, err := pl.Frame(0)
	if err != nil {
		return nil, err
	}
	var frame []byte
	for _, r := range rs {
		frame = append(frame, data[r.Offset:r.Offset+r.Length]...)
	}
	return codec.Decode(f.TransferSyntax, &p.Pixels, frame)
}

// TestPydicomJPEGExtended decodes pydicom's two 12-bit JPEG files (JPEG extended,
// process 4): JPEG-lossy.dcm, whose scan header says Se=0 (as PVRG's encoder writes it;
// IJG warns and decodes), and JPGExtended.dcm, the same image with Se=63. The stored
// values are compared with dcmdjpeg's sample by sample, within what two correct IDCTs
// may differ by, and the rendering with dcmj2pnm's (the files have no stored window: one
// over their values is given to both).
func TestPydicomJPEGExtended(t *testing.T) {
	for _, name := range []string{"JPEG-lossy.dcm", "JPGExtended.dcm"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(pydicomData, "test_files", name))
			if err != nil {
				tools.Missing(t, "python3-pydicom's test files are not installed: "+err.Error())
			}
			parse := func(b []byte) *dcm.File {
				f, err := dcm.Parse(bytes.NewReader(b), &dcm.Options{BulkThreshold: 1 << 20})
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
			f := parse(data)
			if f.TransferSyntax != "1.2.840.10008.1.2.4.51" {
				t.Fatalf("transfer syntax %s", f.TransferSyntax)
			}
			ours, err := decodeFirstFrame(f, data)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			raw := tool(t, "dcmdjpeg")(data)
			theirs, err := decodeFirstFrame(parse(raw), raw)
			if err != nil {
				t.Fatalf("dcmdjpeg's output: %v", err)
			}
			if len(ours.Data) != len(theirs.Data) || ours.Photometric != "MONOCHROME2" {
				t.Fatalf("%d samples (%s), dcmdjpeg %d", len(ours.Data), ours.Photometric, len(theirs.Data))
			}
			maxd, sum := int64(0), 0.0
			for i := range ours.Data {
				d := ours.Data[i] - theirs.Data[i]
				if d < 0 {
					d = -d
				}
				maxd = max(maxd, d)
				sum += float64(d)
			}
			mean := sum / float64(len(ours.Data))
			t.Logf("stored values against dcmdjpeg: max difference %d, mean %.4f", maxd, mean)
			if maxd > 2 || mean > 0.1 {
				t.Fatalf("stored values differ from dcmdjpeg's: max %d, mean %.4f", maxd, mean)
			}
			w := render.Window{Center: 60, Width: 120}
			got := renderBytes(t, data, 0, render.Options{Window: &w})
			want := reference(t, data, "+Ww", "60", "120")
			if sd := spread(want); sd < 10 {
				t.Fatalf("the reference is nearly uniform (standard deviation %.1f)", sd)
			}
			md, mn, err := diff(got, want)
			t.Logf("rendering against dcmj2pnm: max difference %d, mean %.4f", md, mn)
			if err != nil || md > 3 || mn > 0.5 {
				t.Fatalf("differs from dcmj2pnm: max %d, mean %.2f %v", md, mn, err)
			}
		})
	}
}

// tryReference is reference without failing when dcmj2pnm cannot render the file.
func tryReference(t *testing.T, data []byte, args ...string) (image.Image, bool) {
	t.Helper()
	tool := "dcmj2pnm"
	if len(args) > 0 && args[0] == "jpeg-ls" {
		tool, args = "dcml2pnm", args[1:]
	}
	d2p := tools.DCMTK(t, tool)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "out.png")
	os.WriteFile(in, data, 0o644)
	if err := exec.Command(d2p, append(append([]string{"+on"}, args...), in, out)...).Run(); err != nil {
		return nil, false
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, false
	}
	img, err := png.Decode(bytes.NewReader(b))
	return img, err == nil
}

// TestPydicomWaveform reads pydicom's ECG test file and draws it.
func TestPydicomWaveform(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(pydicomData, "test_files", "waveform_ecg.dcm"))
	if err != nil {
		tools.Missing(t, "python3-pydicom's test files are not installed: "+err.Error())
	}
	f, err := dcm.Parse(bytes.NewReader(data), &dcm.Options{BulkThreshold: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := render.Waveforms(f.Dataset)
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, c := range ws[0].Channels {
		labels = append(labels, c.Label)
	}
	t.Logf("%d groups; first: %d channels at %g Hz: %v", len(ws), len(ws[0].Channels), ws[0].Rate, labels)
	img := render.DrawECG(ws[0], 4)
	if img.Bounds().Dx() < 100 {
		t.Fatalf("tracing %v", img.Bounds())
	}
}
