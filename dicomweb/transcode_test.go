package dicomweb_test

import (
	"bytes"
	"compress/flate"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dicomweb"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// pydicomFile reads one of pydicom's test files (python3-pydicom).
func pydicomFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/usr/lib/python3/dist-packages/pydicom/data/test_files", name))
	if err != nil {
		tools.Missing(t, "python3-pydicom's test files are not installed: "+err.Error())
	}
	return b
}

// dcmtkPixelData converts a file with a DCMTK tool (dcmconv +te, dcmdjpeg, ...) and
// returns the value of its native pixel data.
func dcmtkPixelData(t *testing.T, data []byte, tool string, args ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "out.dcm")
	os.WriteFile(in, data, 0o644)
	if b, err := exec.Command(dcmtk(t, tool), append(args, in, out)...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", tool, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return pixelValue(t, b)
}

// pixelValue returns the native pixel data value of a PS3.10 file (deflated or not).
func pixelValue(t *testing.T, file []byte) []byte {
	t.Helper()
	f, err := dcm.Parse(bytes.NewReader(file), nil)
	if err != nil {
		t.Fatal(err)
	}
	data := file
	if f.Deflated {
		// Offsets are those of the inflated data set, after the meta information.
		inflated, err := io.ReadAll(flate.NewReader(bytes.NewReader(file[f.DatasetOffset:])))
		if err != nil {
			t.Fatal(err)
		}
		data = append(append([]byte(nil), file[:f.DatasetOffset]...), inflated...)
		g := *f
		g.Deflated = false
		f = &g
	}
	pl := f.PixelLayout()
	if pl == nil || pl.Encapsulated {
		t.Fatal("no native pixel data")
	}
	return data[pl.Offset : pl.Offset+pl.Length]
}

// uidsOf returns the study, series and SOP instance UIDs of a PS3.10 file.
func uidsOf(t *testing.T, data []byte) (string, string, string) {
	t.Helper()
	f, err := dcm.Parse(bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	d := f.Dataset
	return d.String(dcm.TagStudyInstanceUID), d.String(dcm.TagSeriesInstanceUID), d.String(dcm.TagSOPInstanceUID)
}

// TestRetrieveUncompressedSyntaxes retrieves objects stored deflated, in Explicit VR Big
// Endian (16-bit OW pixel data, and 1-bit OB) and in Implicit VR Little Endian in each
// uncompressed syntax Lumen produces: the part says the syntax, parses in it, and its
// pixel data are DCMTK's (dcmconv +te). Without transfer-syntax they go out as
// Explicit VR Little Endian, the default of PS3.18.
func TestRetrieveUncompressedSyntaxes(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	for _, name := range []string{"image_dfl.dcm", "MR_small_bigendian.dcm", "liver_expb_1frame.dcm", "SC_rgb_jpeg_dcmd.dcm"} {
		data := pydicomFile(t, name)
		if code, body := e.stow(t, "/studies", data); code != http.StatusOK {
			t.Fatalf("%s: STOW %d %v", name, code, body)
		}
		want := dcmtkPixelData(t, data, "dcmconv", "+te")
		study, series, sop := uidsOf(t, data)
		url := e.base + "/studies/" + study + "/series/" + series + "/instances/" + sop
		for _, ts := range []string{"", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.1.99"} {
			accept := `multipart/related; type="application/dicom"`
			wantTS := ts
			if ts != "" {
				accept += "; transfer-syntax=" + ts
			} else {
				wantTS = "1.2.840.10008.1.2.1"
			}
			parts := readParts(t, e.do(t, http.MethodGet, url, nil, "Accept", accept), "application/dicom")
			if len(parts) != 1 || parts[0].header.Get("Content-Type") != "application/dicom; transfer-syntax="+wantTS {
				t.Fatalf("%s as %q: %d parts, %q", name, ts, len(parts), parts[0].header.Get("Content-Type"))
			}
			f, err := dcm.Parse(bytes.NewReader(parts[0].body), nil)
			if err != nil || f.TransferSyntax != wantTS {
				t.Fatalf("%s as %q: %v, meta says %s", name, ts, err, f.TransferSyntax)
			}
			if got := pixelValue(t, parts[0].body); !bytes.Equal(got, want) {
				t.Fatalf("%s as %q: pixel data differ from dcmconv +te's (%d bytes, %d)", name, ts, len(got), len(want))
			}
		}
	}
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// modified rewrites a file with dcmodify (-nb: no backup), and then change (which may
// garble bytes of the result, located by dcm.Parse).
func modified(t *testing.T, data []byte, change func(f *dcm.File, b []byte), args ...string) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.dcm")
	os.WriteFile(p, data, 0o644)
	if len(args) > 0 {
		if b, err := exec.Command(dcmtk(t, "dcmodify"), append(append([]string{"-nb"}, args...), p)...).CombinedOutput(); err != nil {
			t.Fatalf("dcmodify: %v\n%s", err, b)
		}
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if change != nil {
		f, err := dcm.Parse(bytes.NewReader(b), nil)
		if err != nil {
			t.Fatal(err)
		}
		change(f, b)
	}
	return b
}

// TestRetrieveUndecodable: an instance whose pixel data do not decode, asked for as
// Explicit VR Little Endian, is answered 406 with the reason before any byte (not a
// connection closed without a status); in a study answer it is left out and named in a
// Warning header while the others are sent; without transfer-syntax it goes as stored.
// A frame that fails to decode after the answer has begun is logged, and the transfer
// is broken off.
func TestRetrieveUndecodable(t *testing.T) {
	var logs syncBuffer
	e := newEnv(t, "sqlite", func(s *dicomweb.Service) {
		s.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	good := pydicomFile(t, "SC_rgb_jpeg_dcmtk.dcm")
	study, series, sop := uidsOf(t, good)
	// The same image with its JPEG stream zeroed: it does not decode.
	bad := modified(t, good, func(f *dcm.File, b []byte) {
		r, _ := f.PixelLayout().Frame(0)
		clear(b[r[0].Offset : r[0].Offset+r[0].Length])
	}, "-m", "(0008,0018)="+sop+".1")
	// A two-frame RLE object of the same series whose second frame is garbled.
	rle := modified(t, pydicomFile(t, "SC_rgb_rle_2frame.dcm"), func(f *dcm.File, b []byte) {
		r, _ := f.PixelLayout().Frame(1)
		copy(b[r[0].Offset:], []byte{0xFF, 0, 0, 0})
	}, "-m", "(0020,000D)="+study, "-m", "(0020,000E)="+series, "-m", "(0008,0018)="+sop+".2")
	for _, o := range [][]byte{good, bad, rle} {
		if code, body := e.stow(t, "/studies", o); code != http.StatusOK {
			t.Fatalf("STOW %d %v", code, body)
		}
	}
	asExplicit := `multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1`
	inst := e.base + "/studies/" + study + "/series/" + series + "/instances/"

	for _, accept := range []string{asExplicit, "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"} {
		resp := e.do(t, http.MethodGet, inst+sop+".1", nil, "Accept", accept)
		b := readAll(t, resp)
		if resp.StatusCode != http.StatusNotAcceptable || !strings.Contains(string(b), "1.2.840.10008.1.2.4.50") || !strings.Contains(string(b), "cannot decode") {
			t.Fatalf("undecodable instance, Accept %s: %d %s", accept, resp.StatusCode, b)
		}
	}

	// The study as Explicit VR LE: the good JPEG decompressed, the bad one named in a
	// Warning; the RLE object's second frame fails midway and breaks the transfer off.
	resp := e.do(t, http.MethodGet, e.base+"/studies/"+study+"/series/"+series+"/instances/"+sop, nil, "Accept", asExplicit)
	if parts := readParts(t, resp, "application/dicom"); len(parts) != 1 || resp.Header.Get("Warning") != "" {
		t.Fatalf("good instance: %d parts, Warning %q", len(parts), resp.Header.Get("Warning"))
	}
	resp = e.do(t, http.MethodGet, e.base+"/studies/"+study, nil, "Accept", asExplicit)
	warning := resp.Header.Get("Warning")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(warning, `299 lumen "instance `+sop+`.1 is left out`) || !strings.Contains(warning, "cannot decode") {
		t.Fatalf("study: %d, Warning %q", resp.StatusCode, warning)
	}
	_, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	mr := multipart.NewReader(resp.Body, params["boundary"])
	var got []string
	var broken error
	for {
		p, err := mr.NextPart()
		if err != nil {
			if err != io.EOF {
				broken = err
			}
			break
		}
		b, err := io.ReadAll(p)
		if err != nil {
			broken = err
			break
		}
		got = append(got, p.Header.Get("Content-Location"))
		if f, err := dcm.Parse(bytes.NewReader(b), nil); err != nil || f.TransferSyntax != "1.2.840.10008.1.2.1" {
			t.Fatalf("part %s: %v", p.Header.Get("Content-Location"), err)
		}
	}
	resp.Body.Close()
	if broken == nil || len(got) != 1 || !strings.HasSuffix(got[0], "/instances/"+sop) {
		t.Fatalf("study: parts %v, broken off: %v", got, broken)
	}
	if l := logs.String(); !strings.Contains(l, "a frame did not decode mid-response") || !strings.Contains(l, "frame=2") {
		t.Fatalf("the frame that failed midway is not logged:\n%s", l)
	}

	// Without transfer-syntax (Explicit VR LE by default), what does not decode goes as
	// stored, and says so; transfer-syntax=* sends everything as stored.
	parts := readParts(t, e.do(t, http.MethodGet, inst+sop+".1", nil, "Accept", `multipart/related; type="application/dicom"`), "application/dicom")
	if len(parts) != 1 || parts[0].header.Get("Content-Type") != "application/dicom; transfer-syntax=1.2.840.10008.1.2.4.50" || !bytes.Equal(parts[0].body, bad) {
		t.Fatalf("undecodable instance without transfer-syntax: %d parts %q", len(parts), parts[0].header.Get("Content-Type"))
	}
	if parts := readParts(t, e.do(t, http.MethodGet, e.base+"/studies/"+study, nil, "Accept", `multipart/related; type="application/dicom"; transfer-syntax=*`), "application/dicom"); len(parts) != 3 {
		t.Fatalf("transfer-syntax=*: %d parts", len(parts))
	}
	// None left: 406 with the reason.
	resp = e.do(t, http.MethodGet, e.base+"/studies/"+study, nil, "Accept", `multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.80`)
	if b := readAll(t, resp); resp.StatusCode != http.StatusNotAcceptable || !strings.Contains(string(b), "none of the 3 instances") {
		t.Fatalf("study as JPEG-LS: %d %s", resp.StatusCode, b)
	}
}

// TestFramesDeflatedAndBitPacked serves frames of a deflated object (inflated, as
// dcmconv +te has them) and of bit-packed 1-bit pixel data: a frame starting on a byte
// boundary is served with the bits after it cleared, another is a 400 saying why.
func TestFramesDeflatedAndBitPacked(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	frame := func(url string) (int, []byte) {
		resp := e.do(t, http.MethodGet, url, nil, "Accept", acceptFrames)
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, readAll(t, resp)
		}
		parts := readParts(t, resp, "application/octet-stream")
		if len(parts) != 1 || parts[0].header.Get("Content-Type") != "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1" {
			t.Fatalf("%s: %d parts", url, len(parts))
		}
		return resp.StatusCode, parts[0].body
	}
	for _, name := range []string{"image_dfl.dcm", "liver_1frame.dcm"} {
		data := pydicomFile(t, name)
		if code, body := e.stow(t, "/studies", data); code != http.StatusOK {
			t.Fatalf("%s: STOW %d %v", name, code, body)
		}
		want := dcmtkPixelData(t, data, "dcmconv", "+te")
		study, series, sop := uidsOf(t, data)
		if code, got := frame(e.base + "/studies/" + study + "/series/" + series + "/instances/" + sop + "/frames/1"); code != http.StatusOK || !bytes.Equal(got, want) {
			t.Fatalf("%s frame 1: %d, %d bytes (want %d): %.200s", name, code, len(got), len(want), got)
		}
	}

	// Three 3x4 1-bit frames: 12 bits each; frames 1 and 3 start on a byte boundary.
	bits := []byte{0xFF, 0xFF, 0xAB, 0xCD, 0xEF}
	ds := &dcm.Dataset{}
	for _, el := range []*dcm.Element{
		dcm.NewString(dcm.TagSOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.7"),
		dcm.NewString(dcm.TagSOPInstanceUID, "UI", "1.2.826.0.1.3680043.10.1234.99.3"),
		dcm.NewString(dcm.TagStudyInstanceUID, "UI", "1.2.826.0.1.3680043.10.1234.99.1"),
		dcm.NewString(dcm.TagSeriesInstanceUID, "UI", "1.2.826.0.1.3680043.10.1234.99.2"),
		dcm.NewString(dcm.NewTag(0x0008, 0x0060), "CS", "OT"),
		dcm.NewUS(dcm.TagSamplesPerPixel, 1),
		dcm.NewString(dcm.TagPhotometricInterpretation, "CS", "MONOCHROME2"),
		dcm.NewString(dcm.TagNumberOfFrames, "IS", "3"),
		dcm.NewUS(dcm.TagRows, 3), dcm.NewUS(dcm.TagColumns, 4),
		dcm.NewUS(dcm.TagBitsAllocated, 1), dcm.NewUS(dcm.TagBitsStored, 1), dcm.NewUS(dcm.TagHighBit, 0), dcm.NewUS(dcm.TagPixelRepresentation, 0),
		dcm.NewElement(dcm.TagPixelData, "OB", append(bits, 0)),
	} {
		ds.Set(el)
	}
	body, err := ds.Encode(dcm.ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	obj := append(dcm.EncodeMeta(dcm.Meta{MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.7", MediaStorageSOPInstanceUID: "1.2.826.0.1.3680043.10.1234.99.3",
		TransferSyntaxUID: dcm.ExplicitVRLittleEndian, ImplementationClassUID: "1.2.826.0.1.3680043.10.1234.1"}), body...)
	if code, body := e.stow(t, "/studies", obj); code != http.StatusOK {
		t.Fatalf("1-bit object: STOW %d %v", code, body)
	}
	url := e.base + "/studies/1.2.826.0.1.3680043.10.1234.99.1/series/1.2.826.0.1.3680043.10.1234.99.2/instances/1.2.826.0.1.3680043.10.1234.99.3/frames/"
	for _, c := range []struct {
		frame string
		code  int
		want  []byte
	}{
		{"1", http.StatusOK, []byte{0xFF, 0x0F}},
		{"3", http.StatusOK, []byte{0xCD, 0x0F}},
		{"2", http.StatusBadRequest, []byte("frame 2 of the bit-packed pixel data does not start on a byte boundary")},
	} {
		code, got := frame(url + c.frame)
		if code != c.code || !bytes.Contains(got, c.want) || code == http.StatusOK && !bytes.Equal(got, c.want) {
			t.Errorf("1-bit frame %s: %d %x %q; want %d %x", c.frame, code, got, got, c.code, c.want)
		}
	}
}
