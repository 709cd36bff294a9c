package dicomweb_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dicomweb"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// corpusObject returns the first object of the corpus with the modality.
func corpusObject(t *testing.T, seed uint64, modality string) gen.Object {
	t.Helper()
	corpus, err := gen.Corpus(seed)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range corpus {
		if o.Modality == modality {
			return o
		}
	}
	t.Fatalf("no %s in the corpus", modality)
	return gen.Object{}
}

// wantStatus checks an answer's status and that its reason contains each of want.
func wantStatus(t *testing.T, what string, r *http.Response, code int, want ...string) {
	t.Helper()
	if r.StatusCode != code {
		t.Fatalf("%s: %d %.300q, want %d", what, r.StatusCode, readAll(t, r), code)
	}
	reason := errorReason(t, r)
	for _, w := range want {
		if !strings.Contains(reason, w) {
			t.Fatalf("%s: reason %q does not say %q", what, reason, w)
		}
	}
}

// TestFramesList checks that a frame list naming a frame twice, or more frames than
// the instance has, is 400 with the reason, and that a URL over MaxURLLength is 414.
func TestFramesList(t *testing.T) {
	xa := corpusObject(t, 21, "XA") // 10 frames
	e := newEnv(t, "sqlite", func(s *dicomweb.Service) { s.MaxURLLength = 2048 })
	if code, resp := e.stow(t, "/studies", xa.Data); code != http.StatusOK {
		t.Fatalf("STOW: %d %v", code, resp)
	}
	u := instanceURL(e, xa) + "/frames/"
	get := func(list string) *http.Response {
		return e.do(t, http.MethodGet, u+list, nil, "Accept", acceptFrames)
	}
	wantStatus(t, "frames/3,1,3", get("3,1,3"), http.StatusBadRequest, "frame 3", "more than once")
	wantStatus(t, "11 frames", get("1,2,3,4,5,6,7,8,9,10,1"), http.StatusBadRequest, "11 frames", "has 10")
	wantStatus(t, "frames/0", get("0"), http.StatusBadRequest)

	// 2,000 references in one URL: over the URL length limit, before anything is read.
	long := strings.Repeat("1,", 1000) + "1"
	wantStatus(t, "long frame list", get(long), http.StatusRequestURITooLong, "2048")
	wantStatus(t, "long query", e.do(t, http.MethodGet, e.base+"/studies?PatientID="+strings.Repeat("x", 3000), nil), http.StatusRequestURITooLong, "2048")
	wantStatus(t, "long WADO-URI", e.do(t, http.MethodGet, e.srv.URL+"/wado?requestType=WADO&x="+strings.Repeat("x", 3000), nil), http.StatusRequestURITooLong)

	// All ten frames, in any order, once each: fine.
	parts := readParts(t, get("10,9,8,7,6,5,4,3,2,1"), "application/octet-stream")
	_, want := pixelFrames(t, xa.Data)
	if len(parts) != 10 || !bytes.Equal(parts[0].body, want[9]) || !bytes.Equal(parts[9].body, want[0]) {
		t.Fatalf("%d parts", len(parts))
	}
}

// TestFramesStreamed checks that decompressed frames are decoded and sent one at a
// time: with the last frame's stored bytes destroyed, the first frame has been sent
// (status 200, a complete first part) before the decoder meets the broken frame, and
// the transfer then breaks off. Decoding every frame first would answer 406 instead.
func TestFramesStreamed(t *testing.T) {
	xa := jpegCopies(t, []gen.Object{corpusObject(t, 22, "XA")}, "+un")[0] // JPEG lossless, 10 frames
	native := corpusObject(t, 22, "XA")
	e := newEnv(t, "sqlite", nil)
	if code, resp := e.stow(t, "/studies", xa.Data); code != http.StatusOK {
		t.Fatalf("STOW: %d %v", code, resp)
	}
	ctx := context.Background()
	in, err := e.idx.Instance(ctx, xa.SOPInstanceUID)
	if err != nil {
		t.Fatal(err)
	}
	f, err := dcm.Parse(bytes.NewReader(xa.Data), nil)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := f.PixelLayout().Frame(9)
	if err != nil {
		t.Fatal(err)
	}
	broken := bytes.Clone(xa.Data)
	for _, r := range rs {
		clear(broken[r.Offset : r.Offset+r.Length])
	}
	if _, err := e.store.Put(ctx, in.BlobKey, bytes.NewReader(broken), int64(len(broken))); err != nil {
		t.Fatal(err)
	}
	resp := e.do(t, http.MethodGet, instanceURL(e, xa)+"/frames/1,10", nil, "Accept", `multipart/related; type="application/octet-stream"`)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d %.200s: the frames were decoded before the answer started", resp.StatusCode, readAll(t, resp))
	}
	_, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	mr := multipart.NewReader(resp.Body, params["boundary"])
	p, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	// The first part is complete (the reader may still wait for the boundary that
	// would end it when the transfer breaks off).
	first, err := io.ReadAll(p)
	_, frames := pixelFrames(t, native.Data)
	if !bytes.Equal(first, frames[0]) || p.Header.Get("Content-Length") != strconv.Itoa(len(frames[0])) {
		t.Fatalf("first frame: %d bytes, %v", len(first), err)
	}
	if err == nil {
		if p, err := mr.NextPart(); err == nil {
			if _, err := io.ReadAll(p); err == nil {
				t.Fatal("the broken frame was sent as if complete")
			}
		}
	}
	// Frame 1 alone still decodes, and the service still answers.
	parts := readParts(t, e.do(t, http.MethodGet, instanceURL(e, xa)+"/frames/1", nil, "Accept", `multipart/related; type="application/octet-stream"`), "application/octet-stream")
	if len(parts) != 1 || !bytes.Equal(parts[0].body, frames[0]) {
		t.Fatalf("frame 1: %d parts", len(parts))
	}
}

// TestFramesWithoutBytes checks that an encapsulated instance whose only frame has no
// fragment (just the Basic Offset Table) is answered, not a panic.
func TestFramesWithoutBytes(t *testing.T) {
	ct := jpegCopies(t, []gen.Object{corpusObject(t, 23, "CT")}, "+un")[0]
	f, err := dcm.Parse(bytes.NewReader(ct.Data), nil)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := f.PixelLayout().Frame(0)
	if err != nil || len(rs) != 1 {
		t.Fatalf("%d fragments, %v", len(rs), err)
	}
	// Cut the fragment (its item header and data) out of the pixel data.
	data := append(bytes.Clone(ct.Data[:rs[0].Offset-8]), ct.Data[rs[0].Offset+rs[0].Length:]...)
	e := newEnv(t, "sqlite", nil)
	if code, resp := e.stow(t, "/studies", data); code != http.StatusOK {
		t.Fatalf("STOW: %d %v", code, resp)
	}
	parts := readParts(t, e.do(t, http.MethodGet, instanceURL(e, ct)+"/frames/1", nil, "Accept", acceptFrames), "application/octet-stream")
	if len(parts) != 1 || len(parts[0].body) != 0 {
		t.Fatalf("%d parts", len(parts))
	}
	r := e.do(t, http.MethodGet, instanceURL(e, ct)+"/frames/1", nil, "Accept", `multipart/related; type="application/octet-stream"`)
	if b := readAll(t, r); r.StatusCode != http.StatusNotAcceptable {
		t.Fatalf("decompressed: %d %s", r.StatusCode, b)
	}
}

// stowParts posts raw parts and returns the status, the Warning headers and the
// response body as one text, and the decoded DICOM JSON of a 2xx answer.
func stowParts(t *testing.T, e *env, parts ...[]byte) (int, string, map[string]any) {
	t.Helper()
	body, ct := stowBody(t, parts...)
	resp := e.do(t, http.MethodPost, e.base+"/studies", body, "Content-Type", ct, "Accept", "application/dicom+json")
	b := readAll(t, resp)
	var out map[string]any
	if resp.StatusCode < 300 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("STOW response %d is not JSON: %s", resp.StatusCode, b)
		}
	}
	return resp.StatusCode, strings.Join(resp.Header.Values("Warning"), "\n") + "\n" + string(b), out
}

func seqLen(resp map[string]any, tag string) int {
	a, ok := resp[tag].(map[string]any)
	if !ok {
		return 0
	}
	v, _ := a["Value"].([]any)
	return len(v)
}

// TestSTOWLimits checks MaxSTOWParts (later parts are not read, the answer names the
// limit: 202 with what was stored, 413 when nothing was) and MaxFailures (failures
// beyond it are counted, not listed).
func TestSTOWLimits(t *testing.T) {
	objs, err := gen.CTSeries(gen.Options{Seed: 24}, 8, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	bad := []byte(strings.Repeat("not DICOM ", 30))
	e := newEnv(t, "sqlite", func(s *dicomweb.Service) { s.MaxSTOWParts = 6; s.MaxFailures = 2 })
	stored := func(o gen.Object) bool {
		_, err := e.idx.Instance(context.Background(), o.SOPInstanceUID)
		return err == nil
	}

	// 7 parts, limit 6: the 7th is not read.
	code, warn, resp := stowParts(t, e, objs[0].Data, bad, bad, bad, objs[1].Data, objs[2].Data, objs[3].Data)
	if code != http.StatusAccepted || seqLen(resp, "00081199") != 3 || !strings.Contains(warn, "6 parts") {
		t.Fatalf("over the part limit: %d refs %d Warning %q", code, seqLen(resp, "00081199"), warn)
	}
	if stored(objs[3]) || !stored(objs[2]) {
		t.Fatal("the part over the limit was stored, or one under it was not")
	}
	// Three failures, MaxFailures 2: two listed, the third counted.
	if n := seqLen(resp, "00081198"); n != 2 || !strings.Contains(warn, "1 more") {
		t.Fatalf("failures listed %d, Warning %q", n, warn)
	}

	// Nothing stored before the limit: 413 naming it; the later good part is not stored.
	code, warn, _ = stowParts(t, e, bad, bad, bad, bad, bad, bad, objs[4].Data)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(warn, "6 parts") || stored(objs[4]) {
		t.Fatalf("nothing stored, over the limit: %d %q stored %v", code, warn, stored(objs[4]))
	}
	// At the limit: all stored.
	code, _, resp = stowParts(t, e, objs[4].Data, objs[5].Data, objs[6].Data, objs[7].Data)
	if code != http.StatusOK || seqLen(resp, "00081199") != 4 {
		t.Fatalf("under the limit: %d %v", code, resp)
	}
}

// TestQIDOCostlyParameters checks that oversized value lists and includefield lists
// are 400 with the limit in the reason before the index is asked, that a query the
// index itself cannot run is 400 as well, and that values the index cannot hold
// (control characters, invalid UTF-8, integers out of range) are 400, never 503.
func TestQIDOCostlyParameters(t *testing.T) {
	list := func(n int, f func(i int) string) string {
		v := make([]string, n)
		for i := range v {
			v[i] = f(i)
		}
		return strings.Join(v, ",")
	}
	for _, be := range backends {
		t.Run(be, func(t *testing.T) {
			e := newEnv(t, be, func(s *dicomweb.Service) { s.MaxQueryValues = 5; s.MaxIncludeFields = 3 })
			ok := func(q string) {
				t.Helper()
				if r := e.do(t, http.MethodGet, e.base+"/studies?"+q, nil); r.StatusCode != http.StatusOK {
					t.Fatalf("%s: %d %s", q, r.StatusCode, readAll(t, r))
				}
			}
			uid := func(i int) string { return "1.2.3." + strconv.Itoa(i) }
			ok("StudyInstanceUID=" + list(5, uid))
			wantStatus(t, "6 UIDs", e.do(t, http.MethodGet, e.base+"/studies?StudyInstanceUID="+list(6, uid), nil), http.StatusBadRequest, "5")
			wantStatus(t, "6 UIDs on the path's series", e.do(t, http.MethodGet, e.base+"/studies/1.2.3/series/1.2.4/instances?SOPInstanceUID="+list(6, uid), nil), http.StatusBadRequest, "5")
			wantStatus(t, "6 modalities", e.do(t, http.MethodGet, e.base+"/studies?ModalitiesInStudy="+list(6, func(i int) string { return "M" + strconv.Itoa(i) }), nil), http.StatusBadRequest, "5")
			wantStatus(t, "6 alternatives", e.do(t, http.MethodGet, e.base+"/series?Modality=CT%5CMR%5CUS%5CXA%5CCR%5CDX", nil), http.StatusBadRequest, "5")
			wantStatus(t, "6 fuzzy words", e.do(t, http.MethodGet, e.base+"/studies?fuzzymatching=true&PatientName=a%20b%20c%20d%20e%20f", nil), http.StatusBadRequest, "5")
			wantStatus(t, "6 keys", e.do(t, http.MethodGet, e.base+"/studies?PatientID=a&AccessionNumber=b&StudyID=c&StudyDescription=d&PatientSex=M&StudyDate=20240101", nil), http.StatusBadRequest, "5")
			ok("includefield=00100010,00100020&includefield=00080020")
			wantStatus(t, "4 includefields", e.do(t, http.MethodGet, e.base+"/studies?includefield=00100010,00100020&includefield=00080020,00080030", nil), http.StatusBadRequest, "3")

			for _, q := range []string{"PatientID=%00", "PatientID=a%FFb", "StudyDate=2024%00-", "Modality=%00%5CCT", "StudyInstanceUID=1.2%00", "PatientID=a%01b", "SeriesNumber=9223372036854775807", "SeriesNumber=2147483648"} {
				wantStatus(t, q, e.do(t, http.MethodGet, e.base+"/series?"+q, nil), http.StatusBadRequest)
			}
			ok("SeriesNumber=2147483647")
		})
	}
	// The defaults refuse what the index cannot run (SQLite: an expression tree deeper
	// than 1000; both: too many SQL parameters), and a limit raised above what the
	// index can run is 400 too, not 503.
	for _, be := range backends {
		t.Run(be+"/defaults", func(t *testing.T) {
			e := newEnv(t, be, nil)
			alts := list(1100, func(i int) string { return "M" + strconv.Itoa(i) })
			wantStatus(t, "1100 modalities", e.do(t, http.MethodGet, e.base+"/studies?ModalitiesInStudy="+alts, nil), http.StatusBadRequest, "500")
			e.svc.MaxQueryValues = 1 << 20
			e.svc.MaxURLLength = 1 << 20
			wantStatus(t, "1100 modalities past the index", e.do(t, http.MethodGet, e.base+"/studies?ModalitiesInStudy="+alts, nil), http.StatusBadRequest)
			uids := list(70000, func(i int) string { return "1.2." + strconv.Itoa(i) })
			wantStatus(t, "70000 UIDs past the index", e.do(t, http.MethodGet, e.base+"/studies?StudyInstanceUID="+uids, nil), http.StatusBadRequest)
			if r := e.do(t, http.MethodGet, e.base+"/studies?offset=9223372036854775807", nil); r.StatusCode != http.StatusOK {
				t.Fatalf("offset at the int64 maximum: %d", r.StatusCode)
			}
			wantStatus(t, "offset past int64", e.do(t, http.MethodGet, e.base+"/studies?offset=9999999999999999999", nil), http.StatusBadRequest)
			// The index itself refuses values it cannot hold as the caller's fault, and
			// matches an IS value no column can hold as nothing.
			ctx := context.Background()
			for _, v := range []string{"a\x00", "a\xffb"} {
				if _, err := e.idx.Find(ctx, index.Query{Level: index.StudyLevel, Filters: []index.Filter{{Tag: dcm.TagPatientID, Value: v}}}); !errors.Is(err, index.ErrBadQuery) {
					t.Fatalf("index Find with %q: %v", v, err)
				}
			}
			if res, err := e.idx.Find(ctx, index.Query{Level: index.SeriesLevel, Filters: []index.Filter{{Tag: dcm.TagSeriesNumber, Value: "9223372036854775807"}}}); err != nil || len(res.Series) != 0 {
				t.Fatalf("index Find with a SeriesNumber past int32: %v", err)
			}
		})
	}
}

// TestHostHeader checks that a Host header is never reflected into the absolute URLs
// of answers unless AllowedHosts lists it: without PublicURL, the local address the
// connection arrived on is used.
func TestHostHeader(t *testing.T) {
	xa := corpusObject(t, 25, "XA")
	cts, err := gen.CTSeries(gen.Options{Seed: 25}, 10, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "sqlite", func(s *dicomweb.Service) { s.AllowedHosts = []string{"pacs.example", "other.example:8443"} })
	if code, resp := e.stow(t, "/studies", xa.Data); code != http.StatusOK {
		t.Fatalf("STOW: %d %v", code, resp)
	}
	local := strings.TrimPrefix(e.srv.URL, "http://")
	_, port, _ := strings.Cut(local, ":")
	do := func(host, method, u string, body io.Reader, header ...string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, u, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp, readAll(t, resp)
	}
	// everything returns the headers and bodies of the answers that carry URLs.
	next := 0
	everything := func(host string) string {
		var all bytes.Buffer
		add := func(resp *http.Response, b []byte) {
			if resp.StatusCode >= 300 {
				t.Fatalf("%s %s: %d %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, b)
			}
			resp.Header.Write(&all)
			all.Write(b)
		}
		body, ct := stowBody(t, cts[next].Data)
		next++
		add(do(host, http.MethodPost, e.base+"/studies", body, "Content-Type", ct))
		for _, p := range []string{"/studies", "/series", "/instances", "/studies/" + xa.StudyUID + "/metadata"} {
			add(do(host, http.MethodGet, e.base+p, nil))
		}
		add(do(host, http.MethodGet, e.base+"/studies/"+xa.StudyUID, nil, "Accept", acceptDICOM+"; transfer-syntax=*"))
		add(do(host, http.MethodGet, instanceURL(e, xa)+"/frames/1,2", nil, "Accept", acceptFrames))
		add(do(host, http.MethodGet, e.base+"/studies/"+xa.StudyUID+"/rendered", nil))
		add(do(host, http.MethodGet, e.base, nil))
		return all.String()
	}
	for _, c := range []struct{ host, want string }{
		{"evil.example", local},
		{"evil.example:" + port, local},
		{"pacs.example.evil.example", local},
		{"pacs.example:1", local},
		{"other.example", local},
		{"pacs.example", "pacs.example"},
		{"PACS.example:" + port, "pacs.example:" + port},
		{"other.example:8443", "other.example:8443"},
	} {
		all := everything(c.host)
		if strings.Contains(strings.ToLower(all), "evil") {
			t.Fatalf("Host %s: reflected in an answer", c.host)
		}
		n := strings.Count(all, "http://"+c.want+"/dicom-web/")
		if n < 10 {
			t.Fatalf("Host %s: %d URLs under http://%s/dicom-web/, want them all:\n%.2000s", c.host, n, c.want, all)
		}
		if strings.Count(all, "http://") != n+strings.Count(all, "http://"+c.want+"/dicom-web\"") {
			t.Fatalf("Host %s: URLs not under http://%s/dicom-web:\n%.3000s", c.host, c.want, all)
		}
	}
	// PublicURL wins.
	e.svc.PublicURL = "https://public.example"
	if all := everything("pacs.example"); strings.Contains(all, "pacs.example") || !strings.Contains(all, "https://public.example/dicom-web/") {
		t.Fatal("PublicURL not used")
	}
}

// TestHostileParameters checks that rendering and WADO-URI parameters out of any
// meaningful range are 400 with a reason: non-finite windows, frame numbers past int64.
func TestHostileParameters(t *testing.T) {
	xa := corpusObject(t, 26, "XA")
	e := newEnv(t, "sqlite", nil)
	if code, resp := e.stow(t, "/studies", xa.Data); code != http.StatusOK {
		t.Fatalf("STOW: %d %v", code, resp)
	}
	u := instanceURL(e, xa)
	wado := e.srv.URL + "/wado?requestType=WADO&studyUID=" + xa.StudyUID + "&seriesUID=" + xa.SeriesUID + "&objectUID=" + xa.SOPInstanceUID
	for _, q := range []string{
		u + "/rendered?window=NaN,1,linear", u + "/rendered?window=1,NaN,linear", u + "/rendered?window=1,Inf,linear", u + "/rendered?window=-Inf,1,sigmoid",
		u + "/frames/1/rendered?window=NaN,NaN,linear",
		wado + "&windowCenter=NaN&windowWidth=1", wado + "&windowCenter=1&windowWidth=Inf",
		u + "/frames/9223372036854775807", u + "/frames/99999999999999999999999", u + "/frames/1,1/rendered",
		wado + "&frameNumber=9223372036854775807", e.base + "/studies?offset=9999999999999999999", e.base + "/studies?limit=-9223372036854775808",
	} {
		wantStatus(t, q, e.do(t, http.MethodGet, q, nil, "Accept", acceptFrames+", image/jpeg, application/dicom+json"), http.StatusBadRequest)
	}
}
