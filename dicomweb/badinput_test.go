package dicomweb_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/dicomweb"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// errorReason decodes the {"error": reason} body of a 4xx answer.
func errorReason(t *testing.T, resp *http.Response) string {
	t.Helper()
	var body struct{ Error string }
	if err := json.Unmarshal(readAll(t, resp), &body); err != nil || body.Error == "" {
		t.Fatalf("status %d without a JSON reason", resp.StatusCode)
	}
	return body.Error
}

// nothingStored checks that neither the index nor the store holds anything.
func nothingStored(t *testing.T, e *env) {
	t.Helper()
	c, err := e.idx.Counts(context.Background())
	if err != nil || c.Instances != 0 {
		t.Fatalf("index holds %d instances (%v)", c.Instances, err)
	}
	for o, err := range e.store.List(context.Background(), "") {
		t.Fatalf("store holds %s (%v)", o.Key, err)
	}
}

func TestBadInput(t *testing.T) {
	corpus, err := gen.Corpus(11)
	if err != nil {
		t.Fatal(err)
	}
	ct1, ct2 := corpus[0], corpus[1]
	e := newEnv(t, "sqlite", func(s *dicomweb.Service) { s.MaxUploadBytes = 1 << 20 })
	post := func(ct string, body io.Reader) *http.Response {
		return e.do(t, http.MethodPost, e.base+"/studies", body, "Content-Type", ct)
	}
	good, goodCT := stowBody(t, ct1.Data)

	t.Run("wrong Content-Type", func(t *testing.T) {
		if r := post("application/json", bytes.NewReader(good.Bytes())); r.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(errorReason(t, r), "multipart/related") {
			t.Fatalf("%d", r.StatusCode)
		}
		if r := post(strings.Replace(goodCT, "application/dicom", "application/dicom+json", 1), bytes.NewReader(good.Bytes())); r.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("type=application/dicom+json: %d", r.StatusCode)
		}
		nothingStored(t, e)
	})
	t.Run("boundary missing", func(t *testing.T) {
		if r := post(`multipart/related; type="application/dicom"`, bytes.NewReader(good.Bytes())); r.StatusCode != http.StatusBadRequest || !strings.Contains(errorReason(t, r), "boundary") {
			t.Fatalf("%d", r.StatusCode)
		}
		nothingStored(t, e)
	})
	t.Run("malformed multipart", func(t *testing.T) {
		if r := post(goodCT, strings.NewReader("this is not a multipart body")); r.StatusCode != http.StatusBadRequest || !strings.Contains(errorReason(t, r), "malformed") {
			t.Fatalf("%d", r.StatusCode)
		}
		// A body cut in the middle of its only part.
		if r := post(goodCT, bytes.NewReader(good.Bytes()[:good.Len()/2])); r.StatusCode != http.StatusBadRequest {
			t.Fatalf("truncated body: %d", r.StatusCode)
		}
		nothingStored(t, e)
	})
	t.Run("body over the limit", func(t *testing.T) {
		big := bytes.Repeat(ct1.Data, (2<<20)/len(ct1.Data)+1)
		body, ct := stowBody(t, big)
		if r := post(ct, bytes.NewReader(body.Bytes())); r.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(errorReason(t, r), "limit") {
			t.Fatalf("with Content-Length: %d", r.StatusCode)
		}
		// Without Content-Length (chunked): found while reading.
		pr, pw := io.Pipe()
		go func() { pw.Write(body.Bytes()); pw.Close() }()
		if r := post(ct, pr); r.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("chunked: %d", r.StatusCode)
		}
		nothingStored(t, e)
	})
	t.Run("non-DICOM part among good ones", func(t *testing.T) {
		code, resp := e.stow(t, "/studies", ct1.Data, []byte("definitely not DICOM, just text that is long enough to sniff past 132 bytes of preamble ......................................................................"), ct2.Data)
		if code != http.StatusAccepted {
			t.Fatalf("%d %v", code, resp)
		}
		fails := resp["00081198"].(map[string]any)["Value"].([]any)
		refs := resp["00081199"].(map[string]any)["Value"].([]any)
		if len(fails) != 1 || len(refs) != 2 || value(fails[0].(map[string]any), "00081197") != "49152" {
			t.Fatalf("fails %v refs %d", fails, len(refs))
		}
		for _, o := range []gen.Object{ct1, ct2} {
			if _, err := e.idx.Instance(context.Background(), o.SOPInstanceUID); err != nil {
				t.Fatalf("%s not stored: %v", o.Name, err)
			}
		}
	})
	t.Run("instance of another study", func(t *testing.T) {
		code, resp := e.stow(t, "/studies/1.2.826.0.1.3680043.2.1125.99", corpus[2].Data)
		if code != http.StatusConflict {
			t.Fatalf("%d %v", code, resp)
		}
		f := resp["00081198"].(map[string]any)["Value"].([]any)[0].(map[string]any)
		if value(f, "00081197") != "43264" || value(f, "00081155") != corpus[2].SOPInstanceUID {
			t.Fatalf("failed item %v", f)
		}
		if _, err := e.idx.Instance(context.Background(), corpus[2].SOPInstanceUID); err == nil {
			t.Fatal("stored anyway")
		}
	})
	t.Run("malformed UIDs in paths", func(t *testing.T) {
		for _, p := range []string{"/studies/abc/metadata", "/studies/1.2..3/series", "/studies/1.2.3/series/1.2.3a/metadata", "/studies/1.2.3/series/1.2.4/instances/x/frames/1"} {
			if r := e.do(t, http.MethodGet, e.base+p, nil); r.StatusCode != http.StatusBadRequest || !strings.Contains(errorReason(t, r), "not a valid UID") {
				t.Fatalf("%s: %d", p, r.StatusCode)
			}
		}
	})
	t.Run("query values crafted as SQL", func(t *testing.T) {
		for _, q := range []string{"PatientID=%27%20OR%201%3D1%20--", "PatientName=x%27%3BDROP%20TABLE%20studies%3B--", "StudyInstanceUID=1.2%27%20OR%20%271%27%3D%271", "AccessionNumber=%25"} {
			got, _ := e.getJSON(t, e.base+"/studies?"+q)
			if len(got) != 0 {
				t.Fatalf("%s matched %d studies", q, len(got))
			}
		}
		got, _ := e.getJSON(t, e.base+"/studies")
		if len(got) != 1 {
			t.Fatalf("after the crafted queries: %d studies", len(got))
		}
	})
	t.Run("bad query parameters", func(t *testing.T) {
		for _, q := range []string{"NoSuchAttribute=1", "limit=abc", "limit=0", "offset=-1", "fuzzymatching=maybe", "includefield=Bogus"} {
			if r := e.do(t, http.MethodGet, e.base+"/studies?"+q, nil); r.StatusCode != http.StatusBadRequest {
				t.Fatalf("%s: %d", q, r.StatusCode)
			} else {
				errorReason(t, r)
			}
		}
		if r := e.do(t, http.MethodGet, e.base+"/studies", nil, "Accept", "application/dicom+xml"); r.StatusCode != http.StatusNotAcceptable {
			t.Fatalf("XML: %d", r.StatusCode)
		}
	})
	t.Run("retrieve and frames", func(t *testing.T) {
		u := instanceURL(e, ct1)
		if r := e.do(t, http.MethodGet, u, nil, "Accept", acceptDICOM+"; transfer-syntax=1.2.840.10008.1.2.4.50"); r.StatusCode != http.StatusNotAcceptable || !strings.Contains(errorReason(t, r), "cannot be sent") {
			t.Fatalf("other syntax: %d", r.StatusCode)
		}
		for _, f := range []string{"0", "2", "1,x"} {
			if r := e.do(t, http.MethodGet, u+"/frames/"+f, nil, "Accept", acceptFrames); r.StatusCode != http.StatusBadRequest {
				t.Fatalf("frames/%s: %d", f, r.StatusCode)
			}
		}
		wrongSeries := e.base + "/studies/" + ct1.StudyUID + "/series/1.2.3/instances/" + ct1.SOPInstanceUID + "/frames/1"
		if r := e.do(t, http.MethodGet, wrongSeries, nil); r.StatusCode != http.StatusNotFound {
			t.Fatalf("wrong series: %d", r.StatusCode)
		}
		if r := e.do(t, http.MethodGet, e.base+"/studies/1.2.3.4.5", nil); r.StatusCode != http.StatusNotFound {
			t.Fatalf("unknown study: %d", r.StatusCode)
		}
	})
	t.Run("WADO-URI", func(t *testing.T) {
		base := e.srv.URL + "/wado?studyUID=" + ct1.StudyUID + "&seriesUID=" + ct1.SeriesUID + "&objectUID=" + ct1.SOPInstanceUID
		for q, want := range map[string]int{"": 400, "&requestType=WADO&contentType=image/jpeg": 200, "&requestType=WADO&frameNumber=2": 400, "&requestType=WADO&windowCenter=40": 400, "&requestType=WADO&rows=0": 400, "&requestType=WADO&contentType=text/plain": 406, "&requestType=WADO&contentType=application/dicom&transferSyntax=1.2.840.10008.1.2.4.50": 406} {
			if r := e.do(t, http.MethodGet, base+q, nil); r.StatusCode != want {
				t.Fatalf("%q: %d, want %d", q, r.StatusCode, want)
			}
		}
	})
	// The service still serves normally.
	if got, _ := e.getJSON(t, e.base+"/instances"); len(got) != 2 {
		t.Fatalf("%d instances after the bad input", len(got))
	}
}

func TestDeleteCORSCapabilities(t *testing.T) {
	corpus, err := gen.Corpus(12)
	if err != nil {
		t.Fatal(err)
	}
	o := corpus[0]
	e := newEnv(t, "sqlite", nil)
	if code, _ := e.stow(t, "/studies", o.Data); code != http.StatusOK {
		t.Fatal(code)
	}
	if r := e.do(t, http.MethodDelete, e.base+"/studies/"+o.StudyUID, nil); r.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(errorReason(t, r), "allow_delete") {
		t.Fatalf("delete while disabled: %d", r.StatusCode)
	}
	e.svc.AllowDelete = true
	if r := e.do(t, http.MethodDelete, instanceURL(e, o), nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", r.StatusCode)
	}
	if r := e.do(t, http.MethodGet, instanceURL(e, o), nil); r.StatusCode != http.StatusNotFound {
		t.Fatalf("after delete: %d", r.StatusCode)
	}
	nothingStored(t, e)

	// CORS pre-flight for what OHIF sends, and CORS headers on answers.
	r := e.do(t, http.MethodOptions, e.base+"/studies", nil, "Origin", "http://viewer.example", "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "authorization, accept")
	if r.StatusCode != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(strings.ToLower(r.Header.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Fatalf("pre-flight: %d %v", r.StatusCode, r.Header)
	}
	r = e.do(t, http.MethodGet, e.base+"/studies", nil, "Origin", "http://viewer.example")
	if r.Header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "Warning") {
		t.Fatalf("CORS on GET: %v", r.Header)
	}
	// The capabilities document.
	for _, m := range []string{http.MethodGet, http.MethodOptions} {
		r := e.do(t, m, e.base, nil)
		var doc struct {
			Resources []struct{ Path string }
		}
		if err := json.Unmarshal(readAll(t, r), &doc); err != nil || r.StatusCode != http.StatusOK || len(doc.Resources) < 10 {
			t.Fatalf("%s capabilities: %d %v", m, r.StatusCode, err)
		}
	}
	_ = index.StudyLevel
}
