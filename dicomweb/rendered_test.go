package dicomweb_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"image"
	"image/color"
	_ "image/gif"
	_ "image/jpeg"
	_ "image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dicomweb"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/sqlindex"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dcm/codec/openjpeg"
	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

func decodeImage(t *testing.T, resp *http.Response, wantType string) image.Image {
	t.Helper()
	b := readAll(t, resp)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != wantType {
		t.Fatalf("status %d, Content-Type %q (want %s): %.200s", resp.StatusCode, resp.Header.Get("Content-Type"), wantType, b)
	}
	img, format, err := image.Decode(bytes.NewReader(b))
	if err != nil || "image/"+format != wantType {
		t.Fatalf("body is not %s: %v (%s)", wantType, err, format)
	}
	return img
}

// pdfObject builds an Encapsulated PDF instance around doc.
func pdfObject(t *testing.T, doc []byte) gen.Object {
	t.Helper()
	o := gen.Object{StudyUID: "1.2.826.0.1.3680043.10.1234.98.1", SeriesUID: "1.2.826.0.1.3680043.10.1234.98.2", SOPInstanceUID: "1.2.826.0.1.3680043.10.1234.98.3", SOPClassUID: "1.2.840.10008.5.1.4.1.1.104.1"}
	ds := &dcm.Dataset{}
	if len(doc)%2 == 1 {
		doc = append(bytes.Clone(doc), 0)
	}
	for _, el := range []*dcm.Element{
		dcm.NewString(dcm.TagSOPClassUID, "UI", o.SOPClassUID), dcm.NewString(dcm.TagSOPInstanceUID, "UI", o.SOPInstanceUID),
		dcm.NewString(dcm.TagStudyInstanceUID, "UI", o.StudyUID), dcm.NewString(dcm.TagSeriesInstanceUID, "UI", o.SeriesUID),
		dcm.NewString(dcm.TagModality, "CS", "DOC"), dcm.NewString(dcm.NewTag(0x0042, 0x0012), "LO", "application/pdf"),
		dcm.NewElement(dcm.NewTag(0x0042, 0x0011), "OB", doc),
	} {
		ds.Set(el)
	}
	body, err := ds.Encode(dcm.ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	o.Data = append(dcm.EncodeMeta(dcm.Meta{MediaStorageSOPClassUID: o.SOPClassUID, MediaStorageSOPInstanceUID: o.SOPInstanceUID, TransferSyntaxUID: dcm.ExplicitVRLittleEndian, ImplementationClassUID: "1.2.3.4"}), body...)
	return o
}

func distinctLevels(img image.Image) int {
	seen := map[uint8]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			seen[color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y] = true
		}
	}
	return len(seen)
}

func sameImage(a, b image.Image) bool {
	if a.Bounds() != b.Bounds() {
		return false
	}
	for y := a.Bounds().Min.Y; y < a.Bounds().Max.Y; y++ {
		for x := a.Bounds().Min.X; x < a.Bounds().Max.X; x++ {
			if color.RGBAModel.Convert(a.At(x, y)) != color.RGBAModel.Convert(b.At(x, y)) {
				return false
			}
		}
	}
	return true
}

// TestRendered covers the rendered and thumbnail resources: media types, viewport,
// window, frames, representative frames, the study and series thumbnail choice, the
// placeholder for objects without pixels, ETags and bad parameters.
func TestRendered(t *testing.T) {
	corpus, err := gen.Corpus(13)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "sqlite", nil)
	var datas [][]byte
	kind := map[string]gen.Object{}
	for _, o := range corpus {
		datas = append(datas, o.Data)
		if _, ok := kind[o.Modality]; !ok {
			kind[o.Modality] = o
		}
	}
	if code, resp := e.stow(t, "/studies", datas...); code != http.StatusOK {
		t.Fatalf("STOW: %d %v", code, resp)
	}
	ct, xa, ecg, sr := kind["CT"], kind["XA"], kind["ECG"], kind["SR"]

	png := decodeImage(t, e.do(t, http.MethodGet, instanceURL(e, ct)+"/rendered?accept=image/png", nil), "image/png")
	if png.Bounds().Dx() != 64 || png.Bounds().Dy() != 64 || distinctLevels(png) < 10 {
		t.Fatalf("CT rendered: %v, %d grey levels", png.Bounds(), distinctLevels(png))
	}
	decodeImage(t, e.do(t, http.MethodGet, instanceURL(e, ct)+"/rendered", nil), "image/jpeg")
	decodeImage(t, e.do(t, http.MethodGet, instanceURL(e, ct)+"/rendered", nil, "Accept", "image/gif"), "image/gif")
	small := decodeImage(t, e.do(t, http.MethodGet, instanceURL(e, ct)+"/rendered?accept=image/png&viewport=32,32", nil), "image/png")
	if small.Bounds().Dx() != 32 || small.Bounds().Dy() != 32 {
		t.Fatalf("viewport 32,32 gave %v", small.Bounds())
	}
	wide := decodeImage(t, e.do(t, http.MethodGet, instanceURL(e, ct)+"/rendered?accept=image/png&window=0,4000,linear", nil), "image/png")
	if sameImage(wide, png) {
		t.Fatal("the window parameter changed nothing")
	}
	// Frames of the XA cine differ from each other; frame 1 is the instance rendering.
	f1 := decodeImage(t, e.do(t, http.MethodGet, instanceURL(e, xa)+"/frames/1/rendered?accept=image/png", nil), "image/png")
	f6 := decodeImage(t, e.do(t, http.MethodGet, instanceURL(e, xa)+"/frames/6/rendered?accept=image/png", nil), "image/png")
	inst := decodeImage(t, e.do(t, http.MethodGet, instanceURL(e, xa)+"/rendered?accept=image/png", nil), "image/png")
	if sameImage(f1, f6) || !sameImage(f1, inst) {
		t.Fatalf("XA frames: frame 1 vs 6 equal %v, frame 1 vs instance equal %v", sameImage(f1, f6), sameImage(f1, inst))
	}
	// The instance thumbnail of a cine is its middle frame (10 frames: frame 6).
	thumb := decodeImage(t, e.do(t, http.MethodGet, instanceURL(e, xa)+"/thumbnail?accept=image/png&viewport=64,64", nil), "image/png")
	if !sameImage(thumb, f6) {
		t.Fatal("the XA thumbnail is not the middle frame")
	}
	// Study thumbnail: study 1 holds a CT series and an SR; the CT is chosen.
	st := decodeImage(t, e.do(t, http.MethodGet, e.base+"/studies/"+ct.StudyUID+"/thumbnail?accept=image/png", nil), "image/png")
	if st.Bounds().Dx() > 128 || distinctLevels(st) < 10 {
		t.Fatalf("study thumbnail %v with %d levels", st.Bounds(), distinctLevels(st))
	}
	se := decodeImage(t, e.do(t, http.MethodGet, e.base+"/studies/"+ct.StudyUID+"/series/"+ct.SeriesUID+"/thumbnail?accept=image/png", nil), "image/png")
	if !sameImage(se, st) {
		t.Fatal("the study thumbnail is not its CT series' thumbnail")
	}
	// ECG: a tracing on ECG paper (PNG by default), also as thumbnail.
	trace := decodeImage(t, e.do(t, http.MethodGet, instanceURL(e, ecg)+"/rendered", nil), "image/png")
	if trace.Bounds().Dx() != 1001 || trace.Bounds().Dy() != 501 {
		t.Fatalf("ECG tracing %v, want 10 s × 25 mm/s × 4 px/mm wide", trace.Bounds())
	}
	et := e.do(t, http.MethodGet, instanceURL(e, ecg)+"/thumbnail", nil)
	if et.Header.Get("Warning") != "" {
		t.Fatalf("ECG thumbnail Warning %q", et.Header.Get("Warning"))
	}
	if th := decodeImage(t, et, "image/png"); th.Bounds().Dx() != 128 || th.Bounds().Dy() >= 128 {
		t.Fatalf("ECG thumbnail %v", th.Bounds())
	}
	// SR: readable HTML; its thumbnail is the placeholder with a Warning.
	resp := e.do(t, http.MethodGet, instanceURL(e, sr)+"/rendered", nil)
	page := string(readAll(t, resp))
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(page, "Impression") || !strings.Contains(page, "<!DOCTYPE html>") {
		t.Fatalf("SR rendered: %d %s\n%.300s", resp.StatusCode, resp.Header.Get("Content-Type"), page)
	}
	// A report is not an image: asked for as one, it is 406; as text/html, the page.
	for _, accept := range []string{"image/png", "image/jpeg, image/gif"} {
		resp = e.do(t, http.MethodGet, instanceURL(e, sr)+"/rendered", nil, "Accept", accept)
		if b := readAll(t, resp); resp.StatusCode != http.StatusNotAcceptable || !strings.Contains(string(b), "text/html only") {
			t.Fatalf("SR rendered as %s: %d %s %.100s", accept, resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
	}
	for _, accept := range []string{"text/html", "image/png, text/html;q=0.5", "*/*"} {
		resp = e.do(t, http.MethodGet, instanceURL(e, sr)+"/rendered", nil, "Accept", accept)
		if b := readAll(t, resp); resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("SR rendered as %s: %d %s %.100s", accept, resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
	}
	if resp = e.do(t, http.MethodGet, instanceURL(e, ct)+"/rendered", nil, "Accept", "text/html"); resp.StatusCode != http.StatusNotAcceptable {
		t.Fatalf("a CT image rendered as text/html: %d", resp.StatusCode)
	}
	resp = e.do(t, http.MethodGet, instanceURL(e, sr)+"/thumbnail", nil)
	if !strings.Contains(resp.Header.Get("Warning"), "no picture") {
		t.Fatalf("SR thumbnail Warning %q", resp.Header.Get("Warning"))
	}
	decodeImage(t, resp, "image/jpeg")
	// Encapsulated PDF passes through.
	pdf := []byte("%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
	doc := pdfObject(t, pdf)
	if code, resp := e.stow(t, "/studies", doc.Data); code != http.StatusOK {
		t.Fatalf("STOW PDF: %d %v", code, resp)
	}
	resp = e.do(t, http.MethodGet, instanceURL(e, doc)+"/rendered", nil)
	if b := readAll(t, resp); resp.Header.Get("Content-Type") != "application/pdf" || !bytes.Equal(b, pdf) {
		t.Fatalf("PDF rendered: %s %q", resp.Header.Get("Content-Type"), b)
	}
	if resp = e.do(t, http.MethodGet, instanceURL(e, doc)+"/rendered", nil, "Accept", "image/png"); resp.StatusCode != http.StatusNotAcceptable {
		t.Fatalf("a PDF rendered as image/png: %d", resp.StatusCode)
	}
	// WADO-URI rendered: rows/columns as maxima, a window, a frame.
	wado := func(o gen.Object, q string) string {
		return e.srv.URL + "/wado?requestType=WADO&studyUID=" + o.StudyUID + "&seriesUID=" + o.SeriesUID + "&objectUID=" + o.SOPInstanceUID + q
	}
	if img := decodeImage(t, e.do(t, http.MethodGet, wado(ct, "&rows=32"), nil), "image/jpeg"); img.Bounds().Dy() != 32 {
		t.Fatalf("WADO-URI rows=32: %v", img.Bounds())
	}
	uw := decodeImage(t, e.do(t, http.MethodGet, wado(ct, "&contentType=image/png&windowCenter=0&windowWidth=4000"), nil), "image/png")
	if !sameImage(uw, wide) {
		t.Fatal("WADO-URI window differs from the DICOMweb window")
	}
	if u6 := decodeImage(t, e.do(t, http.MethodGet, wado(xa, "&contentType=image/png&frameNumber=6"), nil), "image/png"); !sameImage(u6, f6) {
		t.Fatal("WADO-URI frameNumber=6 differs from frames/6/rendered")
	}
	// ETag and conditional GET.
	r := e.do(t, http.MethodGet, instanceURL(e, ct)+"/thumbnail", nil)
	readAll(t, r)
	if etag := r.Header.Get("ETag"); etag == "" || r.Header.Get("Cache-Control") == "" {
		t.Fatalf("headers %v", r.Header)
	} else if r2 := e.do(t, http.MethodGet, instanceURL(e, ct)+"/thumbnail", nil, "If-None-Match", etag); r2.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d", r2.StatusCode)
	}
	// Bad parameters.
	for q, want := range map[string]int{"viewport=0,0": 400, "viewport=1,2,3": 400, "window=1,2": 400, "window=1,0,linear": 400, "window=1,2,cubic": 400, "quality=0": 400, "accept=text/plain": 406} {
		if r := e.do(t, http.MethodGet, instanceURL(e, ct)+"/rendered?"+q, nil); r.StatusCode != want {
			t.Fatalf("%s: %d, want %d", q, r.StatusCode, want)
		}
	}
	if r := e.do(t, http.MethodGet, instanceURL(e, xa)+"/frames/11/rendered", nil); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("frame 11 of 10: %d", r.StatusCode)
	}
	// Rendered studies and series: one part per image instance, each the picture of
	// the instance's own rendered resource; instances without pixels are counted in a
	// Warning; a study without any image is 406.
	images, all := map[string]int{}, map[string]int{}
	for _, o := range corpus {
		all[o.StudyUID]++
		all[o.SeriesUID]++
		if o.NumberOfFrames > 0 && o.Modality != "ECG" {
			images[o.StudyUID]++
			images[o.SeriesUID]++
		}
	}
	checked := 0
	for _, o := range corpus {
		for _, u := range []string{e.base + "/studies/" + o.StudyUID, e.base + "/studies/" + o.StudyUID + "/series/" + o.SeriesUID} {
			key := o.StudyUID
			if strings.Contains(u, "/series/") {
				key = o.SeriesUID
			}
			resp := e.do(t, http.MethodGet, u+"/rendered?accept=image/png", nil)
			if images[key] == 0 {
				if readAll(t, resp); resp.StatusCode != http.StatusNotAcceptable {
					t.Fatalf("%s/rendered without images: %d, want 406", u, resp.StatusCode)
				}
				continue
			}
			if w := resp.Header.Get("Warning"); (w != "") != (images[key] < all[key]) {
				t.Fatalf("%s/rendered: Warning %q with %d of %d instances images", u, w, images[key], all[key])
			}
			parts := readParts(t, resp, "image/png")
			if len(parts) != images[key] {
				t.Fatalf("%s/rendered: %d parts, want %d", u, len(parts), images[key])
			}
			for _, p := range parts {
				loc := p.header.Get("Content-Location")
				img, format, err := image.Decode(bytes.NewReader(p.body))
				if err != nil || format != "png" || p.header.Get("Content-Type") != "image/png" || !strings.HasSuffix(loc, "/rendered") {
					t.Fatalf("%s/rendered part %v: %v %s", u, p.header, err, format)
				}
				if strings.Contains(loc, o.SOPInstanceUID) {
					own := decodeImage(t, e.do(t, http.MethodGet, loc+"?accept=image/png", nil), "image/png")
					if !sameImage(img, own) {
						t.Fatalf("%s: the part differs from the instance's rendered resource", loc)
					}
					checked++
				}
			}
		}
	}
	if checked < 4 {
		t.Fatalf("only %d parts compared with their instance's rendering", checked)
	}
}

// TestNoDecoder stores an object whose transfer syntax Lumen cannot decode (progressive
// JPEG, processes 10 and 12, retired, as DCMTK's dcmcjpeg +ep writes it): its thumbnail
// is the placeholder with a Warning giving the reason, /rendered and decompressed frames
// are 406 with the reason, the object itself is still retrieved as stored, and the
// study's rendered resource leaves it out.
func TestNoDecoder(t *testing.T) {
	const progressive = "1.2.840.10008.1.2.4.55"
	corpus, err := gen.Corpus(17)
	if err != nil {
		t.Fatal(err)
	}
	var mr gen.Object
	for _, o := range corpus {
		if o.Modality == "MR" {
			mr = o
			break
		}
	}
	mr = jpegCopies(t, []gen.Object{mr}, "+ep", "+un")[0] // +un: the same SOP Instance UID
	if ts, _ := pixelFrames(t, mr.Data); ts != progressive {
		t.Fatalf("dcmcjpeg +ep wrote %s", ts)
	}
	e := newEnv(t, "sqlite", nil)
	if code, resp := e.stow(t, "/studies", mr.Data); code != http.StatusOK {
		t.Fatalf("STOW: %d %v", code, resp)
	}
	thumb := e.do(t, http.MethodGet, instanceURL(e, mr)+"/thumbnail", nil)
	if w := thumb.Header.Get("Warning"); !strings.Contains(w, "no picture") || !strings.Contains(w, progressive) {
		t.Fatalf("thumbnail %d Warning %q %v %.300s", thumb.StatusCode, w, thumb.Header, readAll(t, thumb))
	}
	if img := decodeImage(t, thumb, "image/jpeg"); img.Bounds().Dx() != 128 {
		t.Fatalf("placeholder %v", img.Bounds())
	}
	for _, u := range []string{instanceURL(e, mr) + "/rendered", instanceURL(e, mr) + "/frames/1/rendered"} {
		r := e.do(t, http.MethodGet, u, nil)
		if b := readAll(t, r); r.StatusCode != http.StatusNotAcceptable || !strings.Contains(string(b), progressive) {
			t.Fatalf("%s: %d %s", u, r.StatusCode, b)
		}
	}
	r := e.do(t, http.MethodGet, instanceURL(e, mr)+"/frames/1", nil, "Accept", `multipart/related; type="application/octet-stream"`)
	if b := readAll(t, r); r.StatusCode != http.StatusNotAcceptable {
		t.Fatalf("decompressed frame: %d %s", r.StatusCode, b)
	}
	parts := readParts(t, e.do(t, http.MethodGet, instanceURL(e, mr), nil, "Accept", `multipart/related; type="application/dicom"; transfer-syntax=*`), "application/dicom")
	if len(parts) != 1 || !bytes.Equal(parts[0].body, mr.Data) {
		t.Fatalf("retrieve as stored: %d parts", len(parts))
	}
	r = e.do(t, http.MethodGet, e.base+"/studies/"+mr.StudyUID+"/rendered", nil)
	if b := readAll(t, r); r.StatusCode != http.StatusNotAcceptable {
		t.Fatalf("rendered study of one undecodable instance: %d %s", r.StatusCode, b)
	}
}

// TestJPEGExtended12 stores 12-bit JPEG extended copies (dcmcjpeg +ee, process 4) of
// the corpus' CT and MR objects: their thumbnails and renderings are pictures, and their
// frames and whole instances go out decompressed, each sample within one unit of
// DCMTK's decoding (dcmdjpeg; the two IDCTs round differently).
func TestJPEGExtended12(t *testing.T) {
	corpus, err := gen.Corpus(29)
	if err != nil {
		t.Fatal(err)
	}
	var objs []gen.Object
	done := map[string]bool{}
	for _, o := range corpus {
		if (o.Modality == "CT" || o.Modality == "MR") && !done[o.Modality] {
			done[o.Modality] = true
			objs = append(objs, o)
		}
	}
	objs = jpegCopies(t, objs, "+ee", "+un")
	e := newEnv(t, "sqlite", nil)
	dir := t.TempDir()
	near := func(what string, got, want []byte) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d bytes, dcmdjpeg %d", what, len(got), len(want))
		}
		for i := 0; i+1 < len(got); i += 2 {
			if d := int(int16(binary.LittleEndian.Uint16(got[i:]) - binary.LittleEndian.Uint16(want[i:]))); d > 1 || d < -1 {
				t.Fatalf("%s: sample %d differs from dcmdjpeg's by %d", what, i/2, d)
			}
		}
	}
	for _, o := range objs {
		if ts, _ := pixelFrames(t, o.Data); ts != "1.2.840.10008.1.2.4.51" {
			t.Fatalf("dcmcjpeg +ee wrote %s", ts)
		}
		if code, resp := e.stow(t, "/studies", o.Data); code != http.StatusOK {
			t.Fatalf("STOW: %d %v", code, resp)
		}
		in, out := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "out.dcm")
		os.WriteFile(in, o.Data, 0o644)
		if b, err := exec.Command(dcmtk(t, "dcmdjpeg"), in, out).CombinedOutput(); err != nil {
			t.Fatalf("dcmdjpeg: %v %s", err, b)
		}
		ref, _ := os.ReadFile(out)
		_, want := pixelFrames(t, ref)
		thumb := e.do(t, http.MethodGet, instanceURL(e, o)+"/thumbnail?accept=image/png", nil)
		if w := thumb.Header.Get("Warning"); w != "" {
			t.Fatalf("%s thumbnail: %s", o.Modality, w)
		}
		if img := decodeImage(t, thumb, "image/png"); distinctLevels(img) < 10 {
			t.Fatalf("%s thumbnail has %d grey levels", o.Modality, distinctLevels(img))
		}
		decodeImage(t, e.do(t, http.MethodGet, instanceURL(e, o)+"/frames/1/rendered?accept=image/png", nil), "image/png")
		parts := readParts(t, e.do(t, http.MethodGet, instanceURL(e, o)+"/frames/1", nil, "Accept", `multipart/related; type="application/octet-stream"`), "application/octet-stream")
		if len(parts) != 1 {
			t.Fatalf("%s: %d frames", o.Modality, len(parts))
		}
		near(o.Modality+" frame 1", parts[0].body, want[0])
		parts = readParts(t, e.do(t, http.MethodGet, instanceURL(e, o), nil, "Accept", acceptDICOM), "application/dicom")
		if len(parts) != 1 || parts[0].header.Get("Content-Type") != "application/dicom; transfer-syntax=1.2.840.10008.1.2.1" {
			t.Fatalf("%s: %v", o.Modality, parts)
		}
		ts, got := pixelFrames(t, parts[0].body)
		if ts != "1.2.840.10008.1.2.1" || len(got) != 1 {
			t.Fatalf("%s: decompressed instance in %s with %d frames", o.Modality, ts, len(got))
		}
		near(o.Modality+" instance", got[0], want[0])
	}
}

// TestThumbnailCache checks that thumbnails are kept in the store and in memory: once
// rendered, a thumbnail is served even after its source object is gone, from memory and
// (for a fresh server on the same store) from the store; DELETE removes them.
func TestThumbnailCache(t *testing.T) {
	objs, err := gen.CTSeries(gen.Options{Seed: 6}, 1, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	o := objs[0]
	e := newEnv(t, "sqlite", nil)
	if code, resp := e.stow(t, "/studies", o.Data); code != http.StatusOK {
		t.Fatalf("STOW: %d %v", code, resp)
	}
	u := instanceURL(e, o) + "/thumbnail?accept=image/png"
	first := readAll(t, e.do(t, http.MethodGet, u, nil))
	e.svc.Wait()
	var kept []string
	for obj, err := range e.store.List(context.Background(), "thumbnails/"+o.SOPInstanceUID+"/") {
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, obj.Key)
	}
	if len(kept) != 1 {
		t.Fatalf("thumbnails in the store: %v", kept)
	}
	// Remove the DICOM object behind the index's back: only a cache can answer now.
	in, err := e.idx.Instance(context.Background(), o.SOPInstanceUID)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Delete(context.Background(), in.BlobKey); err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, e.do(t, http.MethodGet, u, nil)); !bytes.Equal(b, first) {
		t.Fatal("the cached thumbnail differs")
	}
	// A fresh service on the same store and index: from the store.
	e2 := &dicomweb.Service{Index: e.idx, Store: e.store, Ingest: e.svc.Ingest}
	ec := echo.New()
	e2.Register(ec)
	srv := httptest.NewServer(ec)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/dicom-web" + strings.TrimPrefix(u, e.base))
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, resp); resp.StatusCode != http.StatusOK || !bytes.Equal(b, first) {
		t.Fatalf("from the store: %d", resp.StatusCode)
	}
	// DELETE drops the cached thumbnails.
	e.svc.AllowDelete = true
	if r := e.do(t, http.MethodDelete, instanceURL(e, o), nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", r.StatusCode)
	}
	for obj := range e.store.List(context.Background(), "thumbnails/") {
		t.Fatalf("left in the store: %s", obj.Key)
	}
}

// TestBackgroundThumbnails stores studies and lets the queue worker render their
// thumbnails: afterwards the study thumbnail is a cache hit, served even once the source
// object is gone.
func TestBackgroundThumbnails(t *testing.T) {
	for _, be := range backends {
		t.Run(be, func(t *testing.T) {
			e := newEnv(t, be, nil)
			db := e.idx.(*sqlindex.DB)
			db.QuietPeriod = time.Millisecond
			objs, err := gen.CTSeries(gen.Options{Seed: 15}, 5, 64, 64)
			if err != nil {
				t.Fatal(err)
			}
			var datas [][]byte
			for _, o := range objs {
				datas = append(datas, o.Data)
			}
			if code, resp := e.stow(t, "/studies", datas...); code != http.StatusOK {
				t.Fatalf("STOW: %d %v", code, resp)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { e.svc.RunThumbnails(ctx, db, "test", 10*time.Millisecond); close(done) }()
			middle := objs[len(objs)/2]
			deadline := time.Now().Add(20 * time.Second)
			for {
				n := 0
				for range e.store.List(context.Background(), "thumbnails/"+middle.SOPInstanceUID+"/") {
					n++
				}
				e.svc.Wait()
				if n > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no thumbnail rendered in the background")
				}
				time.Sleep(20 * time.Millisecond)
			}
			cancel()
			<-done
			in, err := e.idx.Instance(context.Background(), middle.SOPInstanceUID)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.store.Delete(context.Background(), in.BlobKey); err != nil {
				t.Fatal(err)
			}
			resp := e.do(t, http.MethodGet, e.base+"/studies/"+middle.StudyUID+"/thumbnail", nil)
			if resp.Header.Get("Warning") != "" {
				t.Fatalf("study thumbnail not from the cache: %q", resp.Header.Get("Warning"))
			}
			decodeImage(t, resp, "image/jpeg")
			// The job is done: nothing left to claim.
			if j, err := db.ClaimJob(context.Background(), index.JobThumbnails, "check", time.Minute); err != nil || j != nil {
				t.Fatalf("left in the queue: %+v %v", j, err)
			}
		})
	}
}

// TestDeflatedRendered renders a Deflated Explicit VR Little Endian copy (DCMTK dcmconv
// +td) like its original.
func TestDeflatedRendered(t *testing.T) {
	conv := dcmtk(t, "dcmconv")
	objs, err := gen.CTSeries(gen.Options{Seed: 16}, 1, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	o := objs[0]
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "out.dcm")
	os.WriteFile(in, o.Data, 0o644)
	if b, err := exec.Command(conv, "+td", in, out).CombinedOutput(); err != nil {
		t.Fatalf("dcmconv +td: %v\n%s", err, b)
	}
	deflated := o
	deflated.Data, _ = os.ReadFile(out)
	e := newEnv(t, "sqlite", nil)
	if code, resp := e.stow(t, "/studies", deflated.Data); code != http.StatusOK {
		t.Fatalf("STOW: %d %v", code, resp)
	}
	got := decodeImage(t, e.do(t, http.MethodGet, instanceURL(e, deflated)+"/rendered?accept=image/png", nil), "image/png")
	e2 := newEnv(t, "sqlite", nil)
	if code, resp := e2.stow(t, "/studies", o.Data); code != http.StatusOK {
		t.Fatalf("STOW: %d %v", code, resp)
	}
	want := decodeImage(t, e2.do(t, http.MethodGet, instanceURL(e2, o)+"/rendered?accept=image/png", nil), "image/png")
	if !sameImage(got, want) {
		t.Fatal("the deflated copy renders differently")
	}
}

// TestJPEG2000 stores JPEG 2000 lossless copies (GDCM's gdcmconv --j2k) of the corpus'
// CT and XA objects: their frames go out as image/jp2 as stored, decompressed as
// octet-stream equal to the original native frames, and their thumbnails are pictures,
// not the placeholder.
func TestJPEG2000(t *testing.T) {
	if !openjpeg.Available {
		tools.Missing(t, "built without JPEG 2000 (go test -tags openjpeg, with libopenjp2-7-dev)")
	}
	gdcmconv := tools.Require(t, "gdcmconv", "GDCM's libgdcm-tools")
	corpus, err := gen.Corpus(19)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "sqlite", nil)
	dir := t.TempDir()
	done := map[string]bool{}
	for _, o := range corpus {
		if (o.Modality != "CT" && o.Modality != "XA") || done[o.Modality] {
			continue
		}
		done[o.Modality] = true
		in, out := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "out.dcm")
		if err := os.WriteFile(in, o.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := exec.Command(gdcmconv, "--j2k", in, out).CombinedOutput(); err != nil {
			t.Fatalf("gdcmconv: %v %s", err, b)
		}
		j2k, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		ts, stored := pixelFrames(t, j2k)
		if ts != "1.2.840.10008.1.2.4.90" {
			t.Fatalf("gdcmconv --j2k wrote %s", ts)
		}
		if code, resp := e.stow(t, "/studies", j2k); code != http.StatusOK {
			t.Fatalf("STOW: %d %v", code, resp)
		}
		_, native := pixelFrames(t, o.Data)
		n := strconv.Itoa(len(native))
		parts := readParts(t, e.do(t, http.MethodGet, instanceURL(e, o)+"/frames/1", nil, "Accept", `multipart/related; type="image/jp2"`), "image/jp2")
		if len(parts) != 1 || !bytes.Equal(parts[0].body, stored[0]) {
			t.Fatalf("%s: image/jp2 frame differs from the stored one", o.Modality)
		}
		list, want := "1,"+n, 2 // the first and last frames (a frame is listed once)
		if n == "1" {
			list, want = "1", 1
		}
		parts = readParts(t, e.do(t, http.MethodGet, instanceURL(e, o)+"/frames/"+list, nil, "Accept", `multipart/related; type="application/octet-stream"`), "application/octet-stream")
		if len(parts) != want || !bytes.Equal(parts[0].body, native[0]) || !bytes.Equal(parts[len(parts)-1].body, native[len(native)-1]) {
			t.Fatalf("%s: decompressed frames differ from the original native frames", o.Modality)
		}
		thumb := e.do(t, http.MethodGet, instanceURL(e, o)+"/thumbnail?accept=image/png", nil)
		if w := thumb.Header.Get("Warning"); w != "" {
			t.Fatalf("%s thumbnail: %s", o.Modality, w)
		}
		if img := decodeImage(t, thumb, "image/png"); distinctLevels(img) < 10 {
			t.Fatalf("%s thumbnail has %d grey levels", o.Modality, distinctLevels(img))
		}
	}
}
