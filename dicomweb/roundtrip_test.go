package dicomweb_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/testdata/gen"
)

const (
	acceptDICOM  = `multipart/related; type="application/dicom"`
	acceptFrames = `multipart/related; type="application/octet-stream"; transfer-syntax=*`
	tsJPEGSV1    = "1.2.840.10008.1.2.4.70"
)

// jpegCopies compresses the image objects with DCMTK's dcmcjpeg (JPEG Lossless SV1
// unless args choose another process; SOP Instance UIDs kept).
func jpegCopies(t *testing.T, objs []gen.Object, args ...string) []gen.Object {
	t.Helper()
	cjpeg := dcmtk(t, "dcmcjpeg")
	dir := t.TempDir()
	var out []gen.Object
	for _, o := range objs {
		if o.NumberOfFrames == 0 {
			continue
		}
		in, res := filepath.Join(dir, "in.dcm"), filepath.Join(dir, o.SOPInstanceUID+".dcm")
		if err := os.WriteFile(in, o.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := exec.Command(cjpeg, append(args, in, res)...).CombinedOutput(); err != nil {
			t.Fatalf("dcmcjpeg %s: %v\n%s", o.Name, err, b)
		}
		b, err := os.ReadFile(res)
		if err != nil {
			t.Fatal(err)
		}
		o.Data = b
		out = append(out, o)
	}
	return out
}

// TestRoundTrip stores the generated corpus and JPEG-compressed copies with STOW-RS and
// retrieves everything back: instances byte for byte, frames equal to the stored pixel
// data, metadata with working BulkDataURIs, and WADO-URI.
func TestRoundTrip(t *testing.T) {
	corpus, err := gen.Corpus(7)
	if err != nil {
		t.Fatal(err)
	}
	// The compressed copies go to a second archive (same SOP Instance UIDs).
	jpeg := jpegCopies(t, corpus)
	natives := map[string][]byte{}
	for _, o := range corpus {
		natives[o.SOPInstanceUID] = o.Data
	}
	for _, be := range backends {
		t.Run(be, func(t *testing.T) {
			for _, set := range []struct {
				name string
				objs []gen.Object
			}{{"native", corpus}, {"jpeg", jpeg}} {
				t.Run(set.name, func(t *testing.T) {
					e := newEnv(t, be, nil)
					var datas [][]byte
					for _, o := range set.objs {
						datas = append(datas, o.Data)
					}
					code, resp := e.stow(t, "/studies", datas...)
					if code != http.StatusOK {
						t.Fatalf("STOW: %d %v", code, resp)
					}
					refs := resp["00081199"].(map[string]any)["Value"].([]any)
					if len(refs) != len(set.objs) {
						t.Fatalf("%d referenced, want %d", len(refs), len(set.objs))
					}
					for _, r := range refs {
						u := value(r.(map[string]any), "00081190")
						if !strings.HasPrefix(u, e.base+"/studies/") || !strings.HasSuffix(u, value(r.(map[string]any), "00081155")) {
							t.Fatalf("RetrieveURL %q", u)
						}
					}
					checkRetrieve(t, e, set.objs)
					checkFrames(t, e, set.objs, set.name == "jpeg", natives)
					checkMetadata(t, e, set.objs)
					if set.name == "jpeg" {
						checkDecompressed(t, e, set.objs, natives)
					}
				})
			}
		})
	}
}

func instanceURL(e *env, o gen.Object) string {
	return e.base + "/studies/" + o.StudyUID + "/series/" + o.SeriesUID + "/instances/" + o.SOPInstanceUID
}

func checkRetrieve(t *testing.T, e *env, objs []gen.Object) {
	byUID := map[string][]byte{}
	perStudy := map[string]int{}
	for _, o := range objs {
		byUID[o.SOPInstanceUID] = o.Data
		perStudy[o.StudyUID]++
		parts := readParts(t, e.do(t, http.MethodGet, instanceURL(e, o), nil, "Accept", acceptDICOM+"; transfer-syntax=*"), "application/dicom")
		if len(parts) != 1 || !bytes.Equal(parts[0].body, o.Data) {
			t.Fatalf("%s: retrieved %d parts, bytes equal: %v", o.Name, len(parts), len(parts) == 1 && bytes.Equal(parts[0].body, o.Data))
		}
		if !strings.Contains(parts[0].header.Get("Content-Type"), "transfer-syntax=1.2.840.10008.1.2") {
			t.Fatalf("part Content-Type %q has no transfer-syntax", parts[0].header.Get("Content-Type"))
		}
		// WADO-URI returns the same bytes.
		resp := e.do(t, http.MethodGet, e.srv.URL+"/wado?requestType=WADO&studyUID="+o.StudyUID+"&seriesUID="+o.SeriesUID+"&objectUID="+o.SOPInstanceUID+"&contentType=application/dicom&transferSyntax=*", nil)
		b := readAll(t, resp)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/dicom" || !bytes.Equal(b, o.Data) {
			t.Fatalf("WADO-URI %s: %d %s", o.Name, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	for study, n := range perStudy {
		parts := readParts(t, e.do(t, http.MethodGet, e.base+"/studies/"+study, nil, "Accept", acceptDICOM+"; transfer-syntax=*"), "application/dicom")
		if len(parts) != n {
			t.Fatalf("study %s: %d parts, want %d", study, len(parts), n)
		}
		for _, p := range parts {
			uid := p.header.Get("Content-Location")
			uid = uid[strings.LastIndex(uid, "/")+1:]
			if !bytes.Equal(byUID[uid], p.body) {
				t.Fatalf("study retrieve: part for %s differs", uid)
			}
		}
	}
}

func checkFrames(t *testing.T, e *env, objs []gen.Object, compressed bool, natives map[string][]byte) {
	for _, o := range objs {
		if o.NumberOfFrames == 0 {
			continue
		}
		ts, want := pixelFrames(t, o.Data)
		list := "1"
		idx := []int{0}
		if len(want) >= 3 {
			list, idx = "1,3,"+strconv.Itoa(len(want)), []int{0, 2, len(want) - 1}
		}
		parts := readParts(t, e.do(t, http.MethodGet, instanceURL(e, o)+"/frames/"+list, nil, "Accept", acceptFrames), "application/octet-stream")
		if len(parts) != len(idx) {
			t.Fatalf("%s: %d frames, want %d", o.Name, len(parts), len(idx))
		}
		wantTS := "1.2.840.10008.1.2.1"
		if compressed {
			wantTS = ts
		}
		for i, p := range parts {
			if ct := p.header.Get("Content-Type"); ct != "application/octet-stream; transfer-syntax="+wantTS {
				t.Fatalf("%s frame part Content-Type %q", o.Name, ct)
			}
			if !bytes.Equal(p.body, want[idx[i]]) {
				t.Fatalf("%s frame %d: %d bytes differ from the stored %d", o.Name, idx[i]+1, len(p.body), len(want[idx[i]]))
			}
		}
		if compressed {
			if ts != tsJPEGSV1 {
				t.Fatalf("dcmcjpeg produced %s", ts)
			}
			// As image/jpeg too; but not as uncompressed octet-stream (no transcoding).
			parts := readParts(t, e.do(t, http.MethodGet, instanceURL(e, o)+"/frames/1", nil, "Accept", `multipart/related; type="image/jpeg"`), "image/jpeg")
			if len(parts) != 1 || parts[0].header.Get("Content-Type") != "image/jpeg; transfer-syntax="+ts || !bytes.Equal(parts[0].body, want[0]) {
				t.Fatalf("%s: image/jpeg frame wrong: %v", o.Name, parts[0].header)
			}
			// Uncompressed frames of a JPEG lossless instance: decoded, equal to the
			// original native frames.
			native := natives[o.SOPInstanceUID]
			_, nframes := pixelFrames(t, native)
			list, last := "1", 0 // a frame is listed at most once
			if len(nframes) > 1 {
				list, last = "1,"+strconv.Itoa(len(nframes)), 1
			}
			parts = readParts(t, e.do(t, http.MethodGet, instanceURL(e, o)+"/frames/"+list, nil, "Accept", `multipart/related; type="application/octet-stream"`), "application/octet-stream")
			if len(parts) != last+1 || parts[0].header.Get("Content-Type") != "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1" ||
				!bytes.Equal(parts[0].body, nframes[0]) || !bytes.Equal(parts[last].body, nframes[len(nframes)-1]) {
				t.Fatalf("%s: decompressed frames differ from the original native frames", o.Name)
			}
		} else if resp := e.do(t, http.MethodGet, instanceURL(e, o)+"/frames/1", nil, "Accept", `multipart/related; type="image/jpeg"`); resp.StatusCode != http.StatusNotAcceptable {
			t.Fatalf("JPEG frames of a native instance: %d, want 406", resp.StatusCode)
		}
	}
}

func checkMetadata(t *testing.T, e *env, objs []gen.Object) {
	series := map[string][]gen.Object{}
	for _, o := range objs {
		series[o.SeriesUID] = append(series[o.SeriesUID], o)
	}
	for _, list := range series {
		o := list[0]
		url := e.base + "/studies/" + o.StudyUID + "/series/" + o.SeriesUID + "/metadata"
		meta, resp := e.getJSON(t, url, "Accept", "application/dicom+json")
		if len(meta) != len(list) {
			t.Fatalf("series metadata: %d objects, want %d", len(meta), len(list))
		}
		etag := resp.Header.Get("ETag")
		if r := e.do(t, http.MethodGet, url, nil, "If-None-Match", etag); r.StatusCode != http.StatusNotModified || etag == "" {
			t.Fatalf("conditional GET with ETag %q: %d, want 304", etag, r.StatusCode)
		}
		for _, m := range meta {
			uid := value(m, "00080018")
			var obj gen.Object
			for _, x := range list {
				if x.SOPInstanceUID == uid {
					obj = x
				}
			}
			if obj.Data == nil {
				t.Fatalf("metadata for unknown instance %q", uid)
			}
			pd, ok := m["7FE00010"].(map[string]any)
			if obj.NumberOfFrames == 0 {
				continue
			}
			if !ok {
				t.Fatalf("%s: no PixelData in metadata", obj.Name)
			}
			uri, _ := pd["BulkDataURI"].(string)
			if !strings.HasPrefix(uri, instanceURL(e, obj)+"/bulkdata/") {
				t.Fatalf("%s: BulkDataURI %q", obj.Name, uri)
			}
			parts := readParts(t, e.do(t, http.MethodGet, uri, nil), "application/octet-stream")
			ts, frames := pixelFrames(t, obj.Data)
			if len(parts) != 1 {
				t.Fatalf("%s: bulk data in %d parts", obj.Name, len(parts))
			}
			if ts != tsJPEGSV1 && !bytes.Equal(parts[0].body, bytes.Join(frames, nil)) {
				t.Fatalf("%s: native PixelData bulk data differs from the frames", obj.Name)
			}
		}
	}
}

func readAll(t testing.TB, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestImplicitGoesOutExplicit stores Implicit VR Little Endian copies (DCMTK dcmconv +ti)
// and checks that WADO-RS and WADO-URI send them as Explicit VR Little Endian by
// default (PS3.18: the web's default), and byte for byte as stored with
// transfer-syntax=*.
func TestImplicitGoesOutExplicit(t *testing.T) {
	dcmconv := dcmtk(t, "dcmconv")
	corpus, err := gen.Corpus(5)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var objs []gen.Object
	for _, o := range corpus {
		if o.Modality != "XA" && o.Modality != "ECG" && o.Modality != "SR" && len(objs) > 0 {
			continue
		}
		in, out := filepath.Join(dir, "in.dcm"), filepath.Join(dir, o.SOPInstanceUID+".dcm")
		os.WriteFile(in, o.Data, 0o644)
		if b, err := exec.Command(dcmconv, "+ti", in, out).CombinedOutput(); err != nil {
			t.Fatalf("dcmconv: %v\n%s", err, b)
		}
		o.Data, _ = os.ReadFile(out)
		objs = append(objs, o)
	}
	e := newEnv(t, "sqlite", nil)
	for _, o := range objs {
		if code, resp := e.stow(t, "/studies", o.Data); code != http.StatusOK {
			t.Fatalf("STOW: %d %v", code, resp)
		}
		parts := readParts(t, e.do(t, http.MethodGet, instanceURL(e, o), nil, "Accept", acceptDICOM), "application/dicom")
		if len(parts) != 1 || parts[0].header.Get("Content-Type") != "application/dicom; transfer-syntax=1.2.840.10008.1.2.1" {
			t.Fatalf("%s: %v", o.Name, parts[0].header)
		}
		f, err := dcm.Parse(bytes.NewReader(parts[0].body), nil)
		if err != nil || f.TransferSyntax != "1.2.840.10008.1.2.1" || f.Dataset.String(dcm.TagSOPInstanceUID) != o.SOPInstanceUID {
			t.Fatalf("%s: transcoded object: %v", o.Name, err)
		}
		orig, _ := dcm.Parse(bytes.NewReader(o.Data), nil)
		gj, _, _ := f.Dataset.JSON(nil)
		oj, _, _ := orig.Dataset.JSON(nil)
		if !bytes.Equal(gj, oj) {
			t.Fatalf("%s: data set differs after transcoding", o.Name)
		}
		parts = readParts(t, e.do(t, http.MethodGet, instanceURL(e, o), nil, "Accept", acceptDICOM+"; transfer-syntax=*"), "application/dicom")
		if !bytes.Equal(parts[0].body, o.Data) || parts[0].header.Get("Content-Type") != "application/dicom; transfer-syntax=1.2.840.10008.1.2" {
			t.Fatalf("%s: transfer-syntax=* is not the stored object", o.Name)
		}
		resp := e.do(t, http.MethodGet, e.srv.URL+"/wado?requestType=WADO&studyUID="+o.StudyUID+"&seriesUID="+o.SeriesUID+"&objectUID="+o.SOPInstanceUID+"&contentType=application/dicom", nil)
		wf, err := dcm.Parse(bytes.NewReader(readAll(t, resp)), nil)
		if err != nil || wf.TransferSyntax != "1.2.840.10008.1.2.1" {
			t.Fatalf("%s: WADO-URI object not Explicit VR LE (%v)", o.Name, err)
		}
		if wj, _, _ := wf.Dataset.JSON(nil); !bytes.Equal(wj, oj) {
			t.Fatalf("%s: WADO-URI data set differs", o.Name)
		}
	}
}

// checkDecompressed retrieves JPEG lossless instances without a transfer-syntax
// parameter (PS3.18's default, Explicit VR Little Endian) and checks that the pixel data
// equals the original native pixel data and the rest of the data set is unchanged.
func checkDecompressed(t *testing.T, e *env, objs []gen.Object, natives map[string][]byte) {
	for _, o := range objs {
		parts := readParts(t, e.do(t, http.MethodGet, instanceURL(e, o), nil, "Accept", acceptDICOM), "application/dicom")
		if len(parts) != 1 || parts[0].header.Get("Content-Type") != "application/dicom; transfer-syntax=1.2.840.10008.1.2.1" {
			t.Fatalf("%s: %v", o.Name, parts[0].header)
		}
		got, err := dcm.Parse(bytes.NewReader(parts[0].body), nil)
		if err != nil || got.TransferSyntax != "1.2.840.10008.1.2.1" {
			t.Fatalf("%s: decompressed object: %v", o.Name, err)
		}
		orig, _ := dcm.Parse(bytes.NewReader(natives[o.SOPInstanceUID]), nil)
		gl, ol := got.PixelLayout(), orig.PixelLayout()
		body, native := parts[0].body, natives[o.SOPInstanceUID]
		if gl == nil || !bytes.Equal(body[gl.Offset:gl.Offset+gl.Length], native[ol.Offset:ol.Offset+ol.Length]) {
			t.Fatalf("%s: decompressed pixel data differs from the original", o.Name)
		}
		for _, tag := range []dcm.Tag{dcm.TagSOPInstanceUID, dcm.TagPatientName, dcm.TagRows, dcm.TagPhotometricInterpretation} {
			if got.Dataset.Text(tag) != orig.Dataset.Text(tag) {
				t.Fatalf("%s: %s changed: %q → %q", o.Name, tag, orig.Dataset.Text(tag), got.Dataset.Text(tag))
			}
		}
		// WADO-URI without transferSyntax: the same.
		resp := e.do(t, http.MethodGet, e.srv.URL+"/wado?requestType=WADO&studyUID="+o.StudyUID+"&seriesUID="+o.SeriesUID+"&objectUID="+o.SOPInstanceUID+"&contentType=application/dicom", nil)
		if b := readAll(t, resp); !bytes.Equal(b, body) {
			t.Fatalf("%s: WADO-URI default differs from WADO-RS default", o.Name)
		}
	}
}
