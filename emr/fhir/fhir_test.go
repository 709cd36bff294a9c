package fhir_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
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
		in.BlobKey, in.Size, in.SHA256, in.Metadata = "k/"+uid(i), 1, strings.Repeat("ab", 32), []byte(`{}`)
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
