package fhir_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/emr/fhir"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/sqlite"
)

// countingIndex wraps the real index and counts the study records Find answers.
type countingIndex struct {
	index.Index
	mu      sync.Mutex
	finds   int
	studies int
}

func (c *countingIndex) Find(ctx context.Context, q index.Query) (*index.Result, error) {
	r, err := c.Index.Find(ctx, q)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finds++
	if r != nil {
		c.studies += len(r.Studies)
	}
	return r, err
}

func (c *countingIndex) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finds, c.studies = 0, 0
}

func uid(i int) string { return fmt.Sprintf("1.2.826.0.1.3680043.10.1137.%d", i) }

// put indexes n studies, one a day from 2024-01-01, of patient P<i%3> (issuer H), with
// accession ACC<i>.
func newEnv(t *testing.T, n int, mod func(*fhir.Service)) (*countingIndex, *echo.Echo) {
	t.Helper()
	x, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	for i := range n {
		in := &index.Instance{}
		in.PatientID, in.IssuerOfPatientID = fmt.Sprintf("P%d", i%3), "H"
		in.StudyInstanceUID, in.StudyDate, in.StudyTime, in.AccessionNumber = uid(i), fmt.Sprintf("2024%02d%02d", i/28+1, i%28+1), "0900", fmt.Sprintf("ACC%d", i)
		in.SeriesInstanceUID, in.Modality = uid(i)+".1", "CT"
		in.SOPInstanceUID, in.SOPClassUID = uid(i)+".1.1", "1.2.840.10008.5.1.4.1.1.2"
		in.BlobKey, in.Size, in.Digest, in.Metadata = "k/"+uid(i), 1, strings.Repeat("ab", 32), []byte(`{}`)
		in.TransferSyntaxUID = dcm.ExplicitVRLittleEndian
		if err := x.Put(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	idx := &countingIndex{Index: x}
	svc := &fhir.Service{Index: idx, PublicURL: "http://lumen.test"}
	if mod != nil {
		mod(svc)
	}
	e := echo.New()
	svc.Register(e)
	return idx, e
}

type bundle struct {
	ResourceType string `json:"resourceType"`
	Total        int    `json:"total"`
	Link         []struct {
		Relation, URL string
	} `json:"link"`
	Entry []struct {
		Resource struct {
			ID    string `json:"id"`
			Issue []struct {
				Code string `json:"code"`
			} `json:"issue"`
		} `json:"resource"`
	} `json:"entry"`
	Issue []struct {
		Code        string `json:"code"`
		Diagnostics string `json:"diagnostics"`
	} `json:"issue"`
}

func search(t *testing.T, e *echo.Echo, query string) (int, bundle) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/fhir/ImagingStudy?"+query, nil)
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("%s panicked: %v", query, p)
			}
		}()
		e.ServeHTTP(rec, req)
	}()
	var b bundle
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("%s: %d %s", query, rec.Code, rec.Body)
	}
	return rec.Code, b
}

func ids(b bundle) []string {
	var out []string
	for _, e := range b.Entry {
		out = append(out, e.Resource.ID)
	}
	return out
}

// TestSearchByAccessionInIndex checks that identifier=<accession number> is matched by
// the index: it finds its study however many studies the archive holds (more than the
// search's match limit here), reading only that study.
func TestSearchByAccessionInIndex(t *testing.T) {
	idx, e := newEnv(t, 12, func(s *fhir.Service) { s.MaxMatches = 5 })
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"identifier=ACC7", []string{uid(7)}},
		{"identifier=ACC7&identifier=ACC2", []string{uid(7), uid(2)}},
		{"identifier=ACC7&patient=Patient/P0", nil}, // ACC7 is P1's
		{"identifier=ACC6&subject:identifier=urn:lumen:issuer:H|P0", []string{uid(6)}},
		{"identifier=NOPE", nil},
	} {
		idx.reset()
		code, b := search(t, e, c.query)
		if code != http.StatusOK || b.Total != len(c.want) || fmt.Sprint(ids(b)) != fmt.Sprint(c.want) {
			t.Fatalf("%s: %d total %d %v %+v, want %v", c.query, code, b.Total, ids(b), b.Issue, c.want)
		}
		if idx.studies > len(c.want) {
			t.Fatalf("%s: the index answered %d studies for %d matches", c.query, idx.studies, len(c.want))
		}
	}
	// A search matching more than the limit is still refused as too costly.
	if code, b := search(t, e, "started=ge2024"); code != http.StatusBadRequest || len(b.Issue) == 0 || b.Issue[0].Code != "too-costly" {
		t.Fatalf("broad search: %d %+v", code, b)
	}
}

// TestSearchPagesInIndex checks that a search reads its page from the index (with the
// total counted there), in both orders.
func TestSearchPagesInIndex(t *testing.T) {
	idx, e := newEnv(t, 30, nil)
	var p1 []string // P1's studies, newest first
	for i := 29; i >= 0; i-- {
		if i%3 == 1 {
			p1 = append(p1, uid(i))
		}
	}
	oldest := make([]string, len(p1))
	for i := range p1 {
		oldest[i] = p1[len(p1)-1-i]
	}
	for _, c := range []struct {
		query string
		want  []string
		next  bool
	}{
		{"subject:identifier=urn:lumen:issuer:H|P1&_count=3&_offset=2", p1[2:5], true},
		{"subject:identifier=urn:lumen:issuer:H|P1&_count=3&_offset=8", p1[8:10], false},
		{"subject:identifier=urn:lumen:issuer:H|P1&_count=4&_sort=started", oldest[:4], true},
		{"subject:identifier=urn:lumen:issuer:H|P1&_count=4&_offset=4&_sort=started", oldest[4:8], true},
		{"subject:identifier=urn:lumen:issuer:H|P1&_offset=10000", nil, false},
		{"subject:identifier=urn:lumen:issuer:H|P1&_count=0", nil, false},
	} {
		idx.reset()
		code, b := search(t, e, c.query)
		hasNext := false
		for _, l := range b.Link {
			hasNext = hasNext || l.Relation == "next"
		}
		if code != http.StatusOK || b.Total != len(p1) || fmt.Sprint(ids(b)) != fmt.Sprint(c.want) || hasNext != c.next {
			t.Fatalf("%s: %d total %d %v next %v %+v, want %v next %v", c.query, code, b.Total, ids(b), hasNext, b.Issue, c.want, c.next)
		}
		if idx.studies > len(c.want) {
			t.Fatalf("%s: the index answered %d studies for a page of %d", c.query, idx.studies, len(c.want))
		}
	}
}

// TestSearchIntegerParameters checks that _count and _offset out of range, negative or
// overflowing are answered 400 with an OperationOutcome, never a panic.
func TestSearchIntegerParameters(t *testing.T) {
	_, e := newEnv(t, 3, nil)
	for _, q := range []string{
		"_offset=9223372036854775807", "_offset=9223372036854775807&_count=1", "_offset=99999999999999999999",
		"_offset=-1", "_count=-1", "_count=9223372036854775807", "_count=501", "_offset=10001",
		"_count=1e3", "_offset=0x10",
	} {
		code, b := search(t, e, q)
		if code != http.StatusBadRequest || b.ResourceType != "OperationOutcome" || len(b.Issue) == 0 {
			t.Errorf("%s: %d %+v", q, code, b)
		}
	}
}

// TestSearchParameters pins each search parameter's answer: the status, issue code and
// diagnostics of a bad or unknown one, and what repeated ones do (a second patient that
// differs matches nothing, without asking the index; the last _count, _offset and _sort
// count; started and modality conditions add up).
func TestSearchParameters(t *testing.T) {
	idx, e := newEnv(t, 30, nil)
	long := strings.Repeat("x", 65)
	ref := "must be a Patient reference (Patient/<id>); for a patient with an issuer use subject:identifier=<system>|<value>"
	for _, c := range []struct {
		query string
		code  int
		issue string // the issue's code and diagnostics, or the total and ids of the page
		finds int    // index queries
	}{
		{"patient=", 400, "invalid: patient " + ref, 0},
		{"subject=Patient/a/b", 400, "invalid: subject " + ref, 0},
		{"subject=" + long, 400, "invalid: subject " + ref, 0},
		{"patient=P%01", 400, "invalid: patient " + ref, 0},
		{"subject:identifier=", 400, "invalid: subject:identifier needs a value: [system|]value", 0},
		{"patient:identifier=urn:lumen:issuer:H|", 400, "invalid: patient:identifier needs a value: [system|]value", 0},
		{"subject:identifier=H%01|P1", 400, "invalid: subject:identifier needs a value: [system|]value", 0},
		{"subject:identifier=" + long, 400, "invalid: subject:identifier needs a value: [system|]value", 0},
		{strings.Repeat("identifier=ACC1&", 100) + "identifier=ACC2", 400, "too-costly: at most 100 identifier values in one search", 0},
		{"identifier=urn:dicom:uid|abc", 400, "invalid: identifier urn:dicom:uid|abc is not a DICOM UID", 0},
		{"identifier=urn:oid:abc", 400, "invalid: identifier urn:oid:abc is not a DICOM UID", 0},
		{"identifier=", 400, "invalid: identifier  is neither urn:dicom:uid|urn:oid:<uid> nor an accession number", 0},
		{"identifier=A*", 400, "invalid: identifier A* is neither urn:dicom:uid|urn:oid:<uid> nor an accession number", 0},
		{`identifier=A%5CB`, 400, `invalid: identifier A\B is neither urn:dicom:uid|urn:oid:<uid> nor an accession number`, 0},
		{"identifier=12345678901234567", 400, "invalid: identifier 12345678901234567 is neither urn:dicom:uid|urn:oid:<uid> nor an accession number", 0},
		{"started=xx", 400, `invalid: started "xx" is not a FHIR date with an optional prefix (eq, gt, ge, lt, le)`, 0},
		{"started=ne2024", 400, "invalid: started: the prefix ne is not supported (eq, gt, ge, lt, le, sa, eb)", 0},
		{"modality=CT,XX|MR", 400, "invalid: modality XX|MR is not a DICOM modality code (http://dicom.nema.org/resources/ontology/DCM|CT)", 0},
		{"modality=ct", 400, "invalid: modality ct is not a DICOM modality code (http://dicom.nema.org/resources/ontology/DCM|CT)", 0},
		{"_include=ImagingStudy:patient", 400, "not-supported: _include supports ImagingStudy:endpoint only", 0},
		{"_count=x", 400, "invalid: _count must be a whole number from 0 to 500", 0},
		{"_offset=x", 400, "invalid: _offset must be a whole number from 0 to 10000", 0},
		{"_sort=description", 400, "not-supported: _sort supports started and -started", 0},
		{"foo=1&foo=2", 400, "not-supported: search parameter foo is not supported: patient, subject, subject:identifier, identifier, started, modality, _include, _count, _offset, _sort", 0},
		{"_format=xml", 406, "not-supported: only application/fhir+json is offered", 0},
		// Valid and repeated parameters.
		{"patient=Patient/P1&patient=Patient/P2", 200, "0 []", 0},
		{"patient=Patient/P1&subject:identifier=urn:lumen:issuer:H|P1", 200, "0 []", 0},
		{"patient:identifier=urn:lumen:issuer:H|P1&subject:identifier=urn:lumen:issuer:H|P1&_count=1", 200, "10 [" + uid(28) + "]", 2},
		{"patient=P0", 200, "0 []", 1}, // P0 has an issuer
		{"identifier=urn:dicom:uid|" + uid(4) + "&identifier=x|ACC4&identifier=urn:oid:" + uid(4), 200, "1 [" + uid(4) + "]", 2},
		{"started=ge2024-01-03&started=le2024-01-05", 200, "3 [" + uid(4) + " " + uid(3) + " " + uid(2) + "]", 2},
		{"started=gt2024-01-29&modality=" + url.QueryEscape(fhir.SystemDCM+"|CT") + "&modality=CT,MR", 200, "2 [" + uid(29) + " " + uid(28) + "]", 2},
		{"modality=CT&modality=MR", 200, "0 []", 1},
		{"_count=2&_count=3&_sort=started&_sort=-started&_offset=9&_offset=1&_format=json", 200, "30 [" + uid(28) + " " + uid(27) + " " + uid(26) + "]", 2},
	} {
		idx.reset()
		code, b := search(t, e, c.query)
		got := fmt.Sprint(b.Total, " ", ids(b))
		if len(b.Issue) > 0 {
			got = b.Issue[0].Code + ": " + b.Issue[0].Diagnostics
		}
		if code != c.code || got != c.issue || idx.finds != c.finds {
			t.Errorf("%.60s:\n got %d %s (%d index queries)\nwant %d %s (%d)", c.query, code, got, idx.finds, c.code, c.issue, c.finds)
		}
	}
}
