package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dicomweb"
	"github.com/lumenpacs/lumen/dicomweb/admin"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/indextest"
	"github.com/lumenpacs/lumen/service/audit"
)

// post sends a JSON body and returns the status and the answer.
func post(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// identityInstance is an instance record of patient (id, HOSP).
func identityInstance(id, name, study, series, sop, modality string) *index.Instance {
	in := &index.Instance{}
	in.PatientID, in.IssuerOfPatientID, in.PatientName = id, "HOSP", name
	in.StudyInstanceUID, in.StudyDate = study, "20260101"
	in.SeriesInstanceUID, in.Modality = series, modality
	in.SOPInstanceUID, in.SOPClassUID = sop, "1.2.840.10008.5.1.4.1.1.2"
	in.TransferSyntaxUID = dcm.ExplicitVRLittleEndian
	in.BlobKey, in.Size, in.Digest = "dicom/test/"+sop, 1000, strings.Repeat("ab", 32)
	in.Metadata = []byte(`{}`)
	return in
}

// identityAction is the audit action of the identity routes (what cmd/lumen's
// httpAction must answer for them).
func identityAction(method, route string) string {
	switch route {
	case admin.RoutePatientUpdate:
		return "patient-update"
	case admin.RoutePatientMerge:
		return "patient-merge"
	case admin.RoutePatientUnmerge:
		return "patient-unmerge"
	case admin.RouteStudyMove:
		return "study-move"
	case admin.RouteSeriesMove:
		return "series-move"
	case admin.RoutePatientEvents:
		return "patient-events"
	}
	return ""
}

// TestIdentityAPI: update, merge, unmerge, study and series moves and the event list
// through HTTP on both index backends, precise answers to bad requests (400), unknown
// records (404) and conflicts (409), and the audit records with patient and reason.
func TestIdentityAPI(t *testing.T) {
	for _, backend := range indextest.Backends {
		t.Run(backend, func(t *testing.T) {
			x := indextest.Open(t, backend)
			ctx := context.Background()
			trail := audit.New(x, nil, slog.New(slog.DiscardHandler))
			defer trail.Close()
			e := echo.New()
			e.HTTPErrorHandler = (&dicomweb.Service{Index: x}).ErrorHandler
			e.Use(trail.HTTP(identityAction, func(echo.Context) (string, string) { return "admin-1", "http" }))
			(&admin.Identity{Index: x}).Register(e)
			srv := httptest.NewServer(e)
			defer srv.Close()

			// A/1 (a Patient ID with a slash) has two studies, B one.
			for _, in := range []*index.Instance{
				identityInstance("A/1", "Alpha^A", "1.1", "1.1.1", "1.1.1.1", "CT"),
				identityInstance("A/1", "Alpha^A", "1.1", "1.1.2", "1.1.2.1", "SR"),
				identityInstance("A/1", "Alpha^A", "1.2", "1.2.1", "1.2.1.1", "CT"),
				identityInstance("B", "Beta^B", "2.1", "2.1.1", "2.1.1.1", "MR"),
			} {
				if err := x.Put(ctx, in); err != nil {
					t.Fatal(err)
				}
			}
			bad := []struct {
				route, body string
				want        int
				says        string
			}{
				{admin.RoutePatientUpdate, `{"patient":{"id":"A/1","issuer":"HOSP"},"name":"X^Y"}`, 400, "reason is required"},
				{admin.RoutePatientUpdate, `{"patient":{"id":"A/1","issuer":"HOSP"},"name":"X^Y","reason":"   "}`, 400, "reason is required"},
				{admin.RoutePatientUpdate, `{"patient":{"id":"A/1","issuer":"HOSP"},"nmae":"X^Y","reason":"r"}`, 400, "unknown field"},
				{admin.RoutePatientUpdate, `{"patient":{"id":"A/1","issuer":"HOSP"},"reason":"r"}`, 400, "nothing to update"},
				{admin.RoutePatientUpdate, `{"patient":{"id":"A/1","issuer":"HOSP"},"birthDate":"19601301","reason":"r"}`, 400, "birthDate"},
				{admin.RoutePatientUpdate, `{"patient":{"id":"A/1","issuer":"HOSP"},"sex":"X","reason":"r"}`, 400, "sex"},
				{admin.RoutePatientUpdate, `{"patient":{"id":"A/1","issuer":"HOSP"},"name":"A\\B","reason":"r"}`, 400, "PN"},
				{admin.RoutePatientUpdate, `{"patient":{"id":"","issuer":"HOSP"},"sex":"M","reason":"r"}`, 400, "patient.id"},
				{admin.RoutePatientUpdate, `{"patient":{"id":"` + strings.Repeat("9", 65) + `"},"sex":"M","reason":"r"}`, 400, "patient.id"},
				{admin.RoutePatientUpdate, `not json`, 400, "must be JSON"},
				{admin.RoutePatientMerge, `{"survivor":{"id":"B","issuer":"HOSP"},"merged":{"id":"B","issuer":"HOSP"},"reason":"r"}`, 400, "same patient"},
				{admin.RoutePatientMerge, `{"survivor":{"id":"B","issuer":"HOSP"},"merged":{"id":"NOBODY","issuer":"HOSP"},"reason":"r"}`, 404, "not a known patient"},
				{admin.RoutePatientMerge, `{"survivor":{"id":"NOBODY","issuer":"HOSP"},"merged":{"id":"B","issuer":"HOSP"},"reason":"r"}`, 404, "not a known patient"},
				{admin.RoutePatientMerge, `{"survivor":{"id":"B"},"merged":{"id":"A/1","issuer":"HOSP"},"reason":"r"}`, 404, "not a known patient"},
				{admin.RoutePatientUnmerge, `{"merged":{"id":"NOBODY","issuer":"HOSP"},"reason":"r"}`, 404, "not found"},
				{admin.RoutePatientUnmerge, `{"merged":{"id":"B","issuer":"HOSP"},"reason":"r"}`, 409, "not merged"},
				{admin.RouteStudyMove, `{"studyInstanceUID":"1.x","to":{"id":"B","issuer":"HOSP"},"reason":"r"}`, 400, "studyInstanceUID"},
				{admin.RouteStudyMove, `{"studyInstanceUID":"9.9","to":{"id":"B","issuer":"HOSP"},"reason":"r"}`, 404, "not found"},
				{admin.RouteStudyMove, `{"studyInstanceUID":"1.1","to":{"id":"NOBODY","issuer":"HOSP"},"reason":"r"}`, 404, "not found"},
				{admin.RouteStudyMove, `{"studyInstanceUID":"1.1","to":{"id":"A/1","issuer":"HOSP"},"reason":"r"}`, 409, "already"},
				{admin.RouteSeriesMove, `{"seriesInstanceUID":"1.1.2","toStudyInstanceUID":"9.9","reason":"r"}`, 404, "not found"},
				{admin.RouteSeriesMove, `{"seriesInstanceUID":"1.1.2","toStudyInstanceUID":"1.1","reason":"r"}`, 409, "already"},
				{admin.RouteSeriesMove, `{"seriesInstanceUID":"1.1.2","reason":"r"}`, 400, "toStudyInstanceUID"},
			}
			for _, c := range bad {
				code, body := post(t, srv.URL+c.route, c.body)
				if code != c.want || !bytes.Contains(body, []byte(`"error"`)) || !bytes.Contains(body, []byte(c.says)) {
					t.Errorf("%s %s: %d %s, want %d saying %q", c.route, c.body, code, body, c.want, c.says)
				}
			}
			if evs, _ := x.PatientEvents(ctx, 0, 0); len(evs) != 0 {
				t.Fatalf("refused requests made events: %+v", evs)
			}

			// Create C, correct A/1's name.
			if code, body := post(t, srv.URL+admin.RoutePatientUpdate, `{"patient":{"id":"C","issuer":"HOSP"},"name":"Gamma^C","birthDate":"19700101","sex":"F","reason":"registered for the correction"}`); code != 201 || !bytes.Contains(body, []byte(`"created":true`)) {
				t.Fatalf("create: %d %s", code, body)
			}
			if code, body := post(t, srv.URL+admin.RoutePatientUpdate, `{"patient":{"id":"A/1","issuer":"HOSP"},"name":"Alpha^Anna","sex":"","reason":"name typed wrong"}`); code != 200 {
				t.Fatalf("update: %d %s", code, body)
			}
			if got, err := x.Instance(ctx, "1.1.1.1"); err != nil || got.PatientName != "Alpha^Anna" {
				t.Fatalf("after the update: %+v %v", got, err)
			}
			// Merge B into A/1 and undo it.
			merge := `{"survivor":{"id":"A/1","issuer":"HOSP"},"merged":{"id":"B","issuer":"HOSP"},"reason":"same person"}`
			if code, body := post(t, srv.URL+admin.RoutePatientMerge, merge); code != 200 {
				t.Fatalf("merge: %d %s", code, body)
			}
			if got, err := x.Instance(ctx, "2.1.1.1"); err != nil || got.PatientID != "A/1" {
				t.Fatalf("after the merge: %+v %v", got, err)
			}
			if code, body := post(t, srv.URL+admin.RoutePatientMerge, merge); code != 200 {
				t.Fatalf("merge again: %d %s", code, body)
			}
			if code, body := post(t, srv.URL+admin.RoutePatientMerge, `{"survivor":{"id":"C","issuer":"HOSP"},"merged":{"id":"B","issuer":"HOSP"},"reason":"r"}`); code != 409 {
				t.Fatalf("merge of a merged record elsewhere: %d %s", code, body)
			}
			if code, body := post(t, srv.URL+admin.RoutePatientMerge, `{"survivor":{"id":"B","issuer":"HOSP"},"merged":{"id":"C","issuer":"HOSP"},"reason":"r"}`); code != 409 || !bytes.Contains(body, []byte("merged into another")) {
				t.Fatalf("merge into a merged record: %d %s", code, body)
			}
			if code, body := post(t, srv.URL+admin.RoutePatientUpdate, `{"patient":{"id":"B","issuer":"HOSP"},"sex":"M","reason":"r"}`); code != 409 || !bytes.Contains(body, []byte("merged")) {
				t.Fatalf("update of a merged record: %d %s", code, body)
			}
			var ans admin.IdentityAnswer
			code, body := post(t, srv.URL+admin.RoutePatientUnmerge, `{"merged":{"id":"B","issuer":"HOSP"},"reason":"different twins"}`)
			if code != 200 || json.Unmarshal(body, &ans) != nil || ans.Patient == nil || ans.Patient.ID != "A/1" || ans.Other.ID != "B" {
				t.Fatalf("unmerge: %d %s", code, body)
			}
			if got, err := x.Instance(ctx, "2.1.1.1"); err != nil || got.PatientID != "B" {
				t.Fatalf("after the unmerge: %+v %v", got, err)
			}
			// Move study 1.2 to C, series 1.1.2 into study 2.1 (of B).
			if code, body := post(t, srv.URL+admin.RouteStudyMove, `{"studyInstanceUID":"1.2","to":{"id":"C","issuer":"HOSP"},"reason":"wrong patient selected at the CT"}`); code != 200 {
				t.Fatalf("move study: %d %s", code, body)
			}
			if got, err := x.Instance(ctx, "1.2.1.1"); err != nil || got.PatientID != "C" || got.PatientName != "Gamma^C" {
				t.Fatalf("after the study move: %+v %v", got, err)
			}
			if code, body := post(t, srv.URL+admin.RouteSeriesMove, `{"seriesInstanceUID":"1.1.2","toStudyInstanceUID":"2.1","reason":"report filed with the wrong exam"}`); code != 200 {
				t.Fatalf("move series: %d %s", code, body)
			}
			if got, err := x.Instance(ctx, "1.1.2.1"); err != nil || got.StudyInstanceUID != "2.1" || got.PatientID != "B" {
				t.Fatalf("after the series move: %+v %v", got, err)
			}
			// Merge again: a move after it blocks the undo.
			if code, body := post(t, srv.URL+admin.RoutePatientMerge, merge); code != 200 {
				t.Fatalf("merge: %d %s", code, body)
			}
			if code, body := post(t, srv.URL+admin.RouteStudyMove, `{"studyInstanceUID":"1.2","to":{"id":"A/1","issuer":"HOSP"},"reason":"back"}`); code != 200 {
				t.Fatalf("move study back: %d %s", code, body)
			}
			if code, body := post(t, srv.URL+admin.RoutePatientUnmerge, `{"merged":{"id":"B","issuer":"HOSP"},"reason":"r"}`); code != 409 || !bytes.Contains(body, []byte("depends")) {
				t.Fatalf("unmerge after a move: %d %s", code, body)
			}

			// The events, paged.
			code, body = do(t, "GET", srv.URL+admin.RoutePatientEvents)
			var evs []admin.Event
			if code != 200 || json.Unmarshal(body, &evs) != nil {
				t.Fatalf("events: %d %s", code, body)
			}
			var got []string
			for _, e := range evs {
				got = append(got, e.Kind)
			}
			want := "create update merge unmerge move-study move-series merge move-study"
			if strings.Join(got, " ") != want {
				t.Fatalf("events %v, want %s", got, want)
			}
			if e := evs[4]; e.Patient.ID != "C" || e.Other.ID != "A/1" || e.Study != "1.2" || e.Reason != "wrong patient selected at the CT" || e.Source != "admin" || e.Actor != "anonymous" {
				t.Fatalf("move event: %+v", e)
			}
			if e := evs[5]; e.Series != "1.1.2" || e.Study != "2.1" || e.FromStudy != "1.1" {
				t.Fatalf("series event: %+v", e)
			}
			code, body = do(t, "GET", srv.URL+admin.RoutePatientEvents+"?after="+strconv.FormatInt(evs[5].ID, 10)+"&limit=1")
			var page []admin.Event
			if code != 200 || json.Unmarshal(body, &page) != nil || len(page) != 1 || page[0].ID != evs[6].ID {
				t.Fatalf("page: %d %s", code, body)
			}
			for _, q := range []string{"?limit=0", "?limit=1001", "?after=-1", "?after=x"} {
				if code, body := do(t, "GET", srv.URL+admin.RoutePatientEvents+q); code != 400 {
					t.Errorf("events%s: %d %s", q, code, body)
				}
			}

			// The audit trail: each action with its patient, study and reason.
			recs, err := trail.Search(ctx, index.AuditQuery{Action: "patient-merge"})
			if err != nil {
				t.Fatal(err)
			}
			var ok bool
			for _, r := range recs {
				if r.Outcome == "ok" && r.PatientID == "A/1" && r.IssuerOfPatientID == "HOSP" && r.Actor == "admin-1" &&
					strings.Contains(r.Detail, `merged="B^^^HOSP"`) && strings.Contains(r.Detail, `reason="same person"`) {
					ok = true
				}
			}
			if !ok {
				t.Fatalf("merge audit records: %+v", recs)
			}
			recs, _ = trail.Search(ctx, index.AuditQuery{Action: "study-move", StudyInstanceUID: "1.2"})
			if len(recs) == 0 || recs[len(recs)-1].PatientID != "C" || !strings.Contains(recs[len(recs)-1].Detail, "wrong patient selected") {
				t.Fatalf("study move audit records: %+v", recs)
			}
			recs, _ = trail.Search(ctx, index.AuditQuery{Action: "patient-update"})
			var refused bool
			for _, r := range recs {
				if r.Outcome == "400" && strings.Contains(r.Detail, `reason=""`) && r.PatientID == "A/1" {
					refused = true
				}
			}
			if !refused {
				t.Fatalf("a refused update is not audited: %+v", recs)
			}
		})
	}
}
