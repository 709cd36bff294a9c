package dcm

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func samplesDir(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOMODCACHE: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "github.com", "suyashkumar", "dicom@v1.1.0", "testdata")
	if _, err := os.Stat(filepath.Join(dir, "1.dcm")); err != nil {
		t.Fatalf("suyashkumar/dicom samples not in the module cache (run go mod download): %v", err)
	}
	return dir
}

func parseFile(t testing.TB, path string) *File {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	st, _ := fh.Stat()
	f, err := Parse(fh, &Options{Size: st.Size()})
	if err != nil {
		t.Fatalf("Parse(%s): %v", path, err)
	}
	if f.Size != st.Size() {
		t.Fatalf("Parse(%s) consumed %d of %d bytes", path, f.Size, st.Size())
	}
	return f
}

func TestSamples(t *testing.T) {
	dir := samplesDir(t)
	for _, name := range []string{"1.dcm", "2.dcm", "3.dcm", "4.dcm", "5.dcm", "6.dcm"} {
		t.Run(name, func(t *testing.T) {
			f := parseFile(t, filepath.Join(dir, name))
			ds := f.Dataset
			if ds.String(TagSOPInstanceUID) == "" || ds.String(TagStudyInstanceUID) == "" {
				t.Fatal("missing UIDs")
			}
			if got, want := ds.String(TagSOPInstanceUID), f.Meta.String(TagMediaStorageSOPInstanceUID); got != want {
				t.Fatalf("SOPInstanceUID %q != meta %q", got, want)
			}
			js, bulk, err := ds.JSON(nil)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(js, &m); err != nil {
				t.Fatalf("invalid JSON: %v\n%s", err, js)
			}
			if _, ok := m["7FE00010"]; !ok {
				t.Fatal("no pixel data in JSON")
			}
			if len(bulk) == 0 {
				t.Fatal("no bulk refs")
			}
			if !f.Deflated {
				pl := f.PixelLayout()
				if pl == nil {
					t.Fatal("no pixel layout")
				}
				if _, err := pl.Frame(pl.NumberOfFrames - 1); err != nil {
					t.Fatal(err)
				}
			}
			compareWithDCMTK(t, filepath.Join(dir, name), m)
		})
	}
}

// compareWithDCMTK checks our DICOM JSON against DCMTK's dcm2json when it is installed.
func compareWithDCMTK(t *testing.T, path string, ours map[string]any) {
	bin, err := exec.LookPath("dcm2json")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dcm2json (DCMTK) not installed")
		}
		t.Log("dcm2json not installed; skipping the DCMTK comparison")
		return
	}
	out, err := exec.Command(bin, "-fc", path).Output()
	if err != nil {
		t.Fatalf("dcm2json: %v", err)
	}
	var ref map[string]any
	if err := json.Unmarshal(out, &ref); err != nil {
		t.Fatalf("dcm2json output: %v", err)
	}
	compareJSON(t, "", ref, ours)
}

func compareJSON(t *testing.T, path string, ref, ours map[string]any) {
	for k, rv := range ref {
		if len(k) == 8 && strings.HasSuffix(k, "0000") {
			continue
		}
		ov, ok := ours[k]
		if !ok {
			t.Errorf("%s%s: missing (DCMTK has %v)", path, k, rv)
			continue
		}
		re, oe := rv.(map[string]any), ov.(map[string]any)
		if re["vr"] != oe["vr"] {
			t.Errorf("%s%s: vr %v, DCMTK %v", path, k, oe["vr"], re["vr"])
			continue
		}
		rval, rok := re["Value"].([]any)
		oval, ook := oe["Value"].([]any)
		if rok != ook {
			if _, bulk := oe["BulkDataURI"]; bulk {
				continue
			}
			if _, inl := oe["InlineBinary"]; inl {
				continue
			}
			t.Errorf("%s%s: Value present %v, DCMTK %v", path, k, ook, rok)
			continue
		}
		if !rok {
			continue
		}
		if re["vr"] == "SQ" {
			if len(rval) != len(oval) {
				t.Errorf("%s%s: %d items, DCMTK %d", path, k, len(oval), len(rval))
				continue
			}
			for i := range rval {
				compareJSON(t, path+k+"/", rval[i].(map[string]any), oval[i].(map[string]any))
			}
			continue
		}
		rb, _ := json.Marshal(rval)
		ob, _ := json.Marshal(oval)
		if !bytes.Equal(rb, ob) {
			t.Errorf("%s%s (%v): %s, DCMTK %s", path, k, re["vr"], ob, rb)
		}
	}
	for k := range ours {
		if _, ok := ref[k]; !ok {
			t.Errorf("%s%s: extra element not in DCMTK output", path, k)
		}
	}
}

func TestRejects(t *testing.T) {
	dir := samplesDir(t)
	good, err := os.ReadFile(filepath.Join(dir, "3.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		data []byte
		want error
	}{
		"empty":     {nil, ErrNotDICOM},
		"text":      {bytes.Repeat([]byte("hello world\n"), 30), ErrNotDICOM},
		"truncated": {good[:len(good)/2], ErrTruncated},
		"meta only": {good[:300], ErrTruncated},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(bytes.NewReader(c.data), &Options{Size: int64(len(c.data))})
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			// Without a known size, the outcome must be the same kind of error.
			_, err = Parse(bytes.NewReader(c.data), nil)
			if !errors.Is(err, c.want) {
				t.Fatalf("streaming err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestHugeLengthDoesNotAllocate(t *testing.T) {
	// A header claiming a 4 GB value must fail on the missing bytes, not allocate them.
	b := EncodeMeta(Meta{MediaStorageSOPClassUID: "1.2.3", MediaStorageSOPInstanceUID: "1.2.3.4", TransferSyntaxUID: ExplicitVRLittleEndian, ImplementationClassUID: "1.2.3.5"})
	b = append(b, 0x10, 0x00, 0x10, 0x00, 'U', 'T', 0, 0, 0xF0, 0xFF, 0xFF, 0xFF)
	_, err := Parse(bytes.NewReader(b), nil)
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("err = %v", err)
	}
	// Deep nesting is refused.
	b2 := EncodeMeta(Meta{MediaStorageSOPClassUID: "1.2.3", MediaStorageSOPInstanceUID: "1.2.3.4", TransferSyntaxUID: ImplicitVRLittleEndian, ImplementationClassUID: "1.2.3.5"})
	for range 100 {
		b2 = append(b2, 0x08, 0x00, 0x15, 0x11, 0xFF, 0xFF, 0xFF, 0xFF) // SQ undefined
		b2 = append(b2, 0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF) // item undefined
	}
	_, err = Parse(bytes.NewReader(b2), nil)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("deep nesting err = %v", err)
	}
}

func TestMetaRoundTrip(t *testing.T) {
	m := Meta{MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.2", MediaStorageSOPInstanceUID: "1.2.3.4.5", TransferSyntaxUID: ImplicitVRLittleEndian, ImplementationClassUID: "1.2.3", ImplementationVersionName: "LUMEN", SourceApplicationEntityTitle: "CT1"}
	b := EncodeMeta(m)
	// implicit VR LE data set: SOPInstanceUID
	b = append(b, 0x08, 0x00, 0x18, 0x00, 10, 0, 0, 0)
	b = append(b, "1.2.3.4.5\x00"...)
	f, err := Parse(bytes.NewReader(b), nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Meta.String(TagSourceApplicationEntityTitle) != "CT1" || f.TransferSyntax != ImplicitVRLittleEndian {
		t.Fatalf("meta = %v", f.Meta.Elements)
	}
	if f.Dataset.String(TagSOPInstanceUID) != "1.2.3.4.5" {
		t.Fatal("dataset")
	}
	if f.DatasetOffset != int64(len(EncodeMeta(m))) {
		t.Fatal("offset")
	}
}

func FuzzParse(f *testing.F) {
	dir := samplesDir(f)
	for _, n := range []string{"3.dcm", "6.dcm"} {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			f.Fatal(err)
		}
		if len(b) > 70000 {
			b = b[:70000]
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fl, err := Parse(bytes.NewReader(b), &Options{Size: int64(len(b)), MaxRetained: 1 << 20, InflateFloor: 1 << 20})
		if err != nil {
			return
		}
		fl.Dataset.JSON(nil)
		if pl := fl.PixelLayout(); pl != nil {
			for i := 0; i < pl.NumberOfFrames && i < 10; i++ {
				pl.Frame(i)
			}
		}
	})
}

func TestDeflateBomb(t *testing.T) {
	// A deflated data set whose one element claims a huge value made of zeros.
	var body bytes.Buffer
	zw, _ := flate.NewWriter(&body, flate.BestCompression)
	hdr := []byte{0x09, 0x00, 0x10, 0x00, 'O', 'B', 0, 0, 0x00, 0x00, 0x00, 0x40} // (0009,0010) OB, 1 GiB
	zw.Write(hdr)
	zeros := make([]byte, 1<<20)
	for range 64 {
		zw.Write(zeros)
	}
	zw.Close()
	b := EncodeMeta(Meta{MediaStorageSOPClassUID: "1.2.3", MediaStorageSOPInstanceUID: "1.2.3.4", TransferSyntaxUID: DeflatedExplicitVRLittleEndian, ImplementationClassUID: "1.2.3.5"})
	b = append(b, body.Bytes()...)
	_, err := Parse(bytes.NewReader(b), &Options{Size: int64(len(b))})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge (compressed %d bytes)", err, len(b))
	}
}
