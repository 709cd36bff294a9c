package transcode_test

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/archive/dcm"
	"github.com/lumenpacs/lumen/archive/fs"
	"github.com/lumenpacs/lumen/archive/transcode"
	"github.com/lumenpacs/lumen/testdata/tools"
)

const pydicomFiles = "/usr/lib/python3/dist-packages/pydicom/data/test_files"

// parsed is a PS3.10 file parsed with the bytes its offsets refer to (a deflated
// file's data set inflated).
type parsed struct {
	f    *dcm.File
	data []byte
}

func parse(t *testing.T, file []byte) parsed {
	t.Helper()
	f, err := dcm.Parse(bytes.NewReader(file), &dcm.Options{BulkThreshold: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if !f.Deflated {
		return parsed{f, file}
	}
	inflated, err := io.ReadAll(flate.NewReader(bytes.NewReader(file[f.DatasetOffset:])))
	if err != nil {
		t.Fatal(err)
	}
	g, err := dcm.ParseDataset(bytes.NewReader(inflated), dcm.ExplicitVRLittleEndian, f.DatasetOffset, &dcm.Options{BulkThreshold: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	g.Meta, g.TransferSyntax = f.Meta, f.TransferSyntax
	return parsed{g, append(append([]byte(nil), file[:f.DatasetOffset]...), inflated...)}
}

// value is the value bytes of a top-level element (pixel data and other bulk values
// read from the data).
func (p parsed) value(e *dcm.Element) []byte {
	if e.Value != nil || e.Length == dcm.UndefinedLength {
		return e.Value
	}
	return p.data[e.Offset : e.Offset+int64(e.Length)]
}

// TestConvertPydicom converts every pydicom test file that parses, stored in a
// filesystem store, to each syntax Lumen produces (Explicit and Implicit VR Little
// Endian, Deflated Explicit VR Little Endian). The file from an uncompressed syntax
// (big endian included, its 32-bit OW pixel data too) has, element for element, the
// values of DCMTK's dcmconv +te; from a compressed syntax, the pixel data the decoder
// produced (compared with DCMTK and GDCM in cmd/lumen's TestPydicomRetrieve), or a
// *ConversionError with a reason. WriteDataSet writes what WriteFile does, without the
// meta information.
func TestConvertPydicom(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(pydicomFiles, "*.dcm"))
	if len(files) == 0 {
		tools.Missing(t, "python3-pydicom's test files are not installed")
	}
	dcmconv := tools.DCMTK(t, "dcmconv")
	st, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	converted, compared, refused := 0, 0, 0
	for _, path := range files {
		name := filepath.Base(path)
		data, _ := os.ReadFile(path)
		f, err := dcm.Parse(bytes.NewReader(data), nil)
		if err != nil {
			continue // what Lumen cannot read, it does not store
		}
		if _, err := st.Put(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		obj := transcode.Object{Key: name, TransferSyntax: f.TransferSyntax, Size: int64(len(data))}
		var ref *parsed
		if transcode.Native(f.TransferSyntax) {
			out := filepath.Join(t.TempDir(), "ref.dcm")
			if b, err := exec.Command(dcmconv, "+te", path, out).CombinedOutput(); err != nil {
				t.Fatalf("%s: dcmconv: %v\n%s", name, err, b)
			}
			b, _ := os.ReadFile(out)
			r := parse(t, b)
			ref = &r
		}
		for _, ts := range transcode.Outputs {
			var file, set bytes.Buffer
			c, err := transcode.Prepare(ctx, st, obj, ts)
			if err == nil {
				err = c.WriteFile(&file)
			}
			var ce *transcode.ConversionError
			if errors.As(err, &ce) && ref == nil {
				refused++
				t.Logf("%s to %s: %v", name, ts, err)
				continue
			}
			if err != nil {
				t.Fatalf("%s to %s: %v", name, ts, err)
			}
			if c, err = transcode.Prepare(ctx, st, obj, ts); err != nil {
				t.Fatal(err)
			}
			if err := c.WriteDataSet(&set); err != nil {
				t.Fatal(err)
			}
			if r := bytes.NewReader(file.Bytes()); ts == f.TransferSyntax {
				if !bytes.Equal(file.Bytes(), data) {
					t.Fatalf("%s as stored: altered", name)
				}
			} else if _, err := transcode.SkipMeta(r); err != nil || !bytes.Equal(file.Bytes()[file.Len()-r.Len():], set.Bytes()) {
				t.Fatalf("%s to %s: WriteDataSet is not WriteFile's data set (%v)", name, ts, err)
			}
			got := parse(t, file.Bytes())
			if got.f.TransferSyntax != ts {
				t.Fatalf("%s to %s: the meta information says %s", name, ts, got.f.TransferSyntax)
			}
			converted++
			if ref == nil || ts == f.TransferSyntax {
				continue
			}
			// Element for element, DCMTK's values (group lengths are left out).
			for _, e := range ref.f.Dataset.Elements {
				if e.Tag.Element() == 0 || len(e.Items) > 0 {
					continue
				}
				g := got.f.Dataset.Get(e.Tag)
				if g == nil {
					t.Fatalf("%s to %s: %s missing", name, ts, e.Tag)
				}
				if a, b := got.value(g), ref.value(e); !bytes.Equal(a, b) {
					t.Fatalf("%s to %s: %s is % x, dcmconv +te has % x", name, ts, e.Tag, head(a), head(b))
				}
			}
			compared++
		}
	}
	t.Logf("%d conversions, %d compared with dcmconv +te, %d refused", converted, compared, refused)
	if compared < 40 || converted < 100 {
		t.Fatalf("only %d conversions, %d compared", converted, compared)
	}
}

func head(b []byte) []byte { return b[:min(len(b), 16)] }

// TestRefusals: conversions that cannot be done fail in Prepare, before a byte is
// written, with a ConversionError that says why; a missing object is a StoreError.
func TestRefusals(t *testing.T) {
	st, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	data, err := os.ReadFile(filepath.Join(pydicomFiles, "SC_rgb_jpeg_dcmtk.dcm"))
	if err != nil {
		tools.Missing(t, "python3-pydicom's test files are not installed")
	}
	f, _ := dcm.Parse(bytes.NewReader(data), nil)
	r, _ := f.PixelLayout().Frame(0)
	bad := bytes.Clone(data)
	clear(bad[r[0].Offset : r[0].Offset+r[0].Length])
	st.Put(ctx, "bad", bytes.NewReader(bad), int64(len(bad)))
	st.Put(ctx, "good", bytes.NewReader(data), int64(len(data)))
	jpeg := "1.2.840.10008.1.2.4.50"
	for _, c := range []struct {
		key, stored, ts, reason string
	}{
		{"bad", jpeg, transcode.ExplicitVRLittleEndian, "cannot decode: JPEG: invalid JPEG format: missing SOI marker"},
		{"good", jpeg, "1.2.840.10008.1.2.4.80", "no conversion between these syntaxes"},
		{"good", jpeg, transcode.ExplicitVRBigEndian, "no conversion between these syntaxes"},
		{"good", "1.2.840.10008.1.2.4.100", transcode.ExplicitVRLittleEndian, "no decoder for the stored syntax"},
	} {
		_, err := transcode.Prepare(ctx, st, transcode.Object{Key: c.key, TransferSyntax: c.stored, Size: int64(len(data))}, c.ts)
		var ce *transcode.ConversionError
		if !errors.As(err, &ce) || ce.Reason != c.reason || !errors.Is(err, transcode.ErrNoConversion) {
			t.Errorf("%s %s to %s: %v; want the reason %q", c.key, c.stored, c.ts, err, c.reason)
		}
		if err := transcode.Check(ctx, st, transcode.Object{Key: c.key, TransferSyntax: c.stored}, c.ts); !errors.As(err, &ce) || ce.Reason != c.reason {
			t.Errorf("Check %s %s to %s: %v; want the reason %q", c.key, c.stored, c.ts, err, c.reason)
		}
	}
	_, err = transcode.Prepare(ctx, st, transcode.Object{Key: "gone", TransferSyntax: jpeg}, transcode.ExplicitVRLittleEndian)
	var se *transcode.StoreError
	if !errors.As(err, &se) || errors.Is(err, transcode.ErrNoConversion) || !strings.Contains(err.Error(), "object store") {
		t.Errorf("missing object: %v", err)
	}
}
