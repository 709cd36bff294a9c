package emr_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dicomweb"
	"github.com/lumenpacs/lumen/emr"
	"github.com/lumenpacs/lumen/emr/links"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/indextest"
)

// Patients of the identity tests: A with one study, B (a temporary identifier) with
// three. Their objects carry the names as received ("Stale^Anna", "Temp^Bee") in their
// stored metadata too: no surface may show those once the records are corrected.
var (
	patientA = index.PatientKey{ID: "PA", Issuer: "HOSP"}
	patientB = index.PatientKey{ID: "PB", Issuer: "HOSP"}
)

func identityStudies() []study {
	out := []study{{uid: uid(100), date: "20240101", acc: "A100", desc: "CT Head", modality: "CT", class: ctClass, pid: "PA", issuer: "HOSP"}}
	for i := range 3 {
		out = append(out, study{uid: uid(200 + i), date: "2024020" + string(rune('1'+i)), acc: "B20" + string(rune('0'+i)), desc: "XA Coronary", modality: "XA", class: xaClass, pid: "PB", issuer: "HOSP"})
	}
	return out
}

// identityEnv serves the EMR routes, the link guard and DICOMweb (the QIDO requests the
// viewer makes) over a real index of the backend. A request with the header
// X-Test-Patient (ID^^^Issuer) is scoped to that patient, as httpkit/auth scopes a token
// limited to one patient.
type identityEnv struct {
	x   index.Index
	id  index.Identity
	e   *echo.Echo
	svc *emr.Service
}

func newIdentityEnv(t *testing.T, backend string) *identityEnv {
	t.Helper()
	x := indextest.Open(t, backend)
	ctx := context.Background()
	for i, s := range identityStudies() {
		in := s.instance(i)
		name := "Stale^Anna"
		if s.pid == "PB" {
			name = "Temp^Bee"
		}
		in.PatientName, in.PatientBirthDate, in.PatientSex = name, "19010101", "O"
		in.Metadata = []byte(`{"00100010":{"vr":"PN","Value":[{"Alphabetic":"` + name + `"}]},"00100020":{"vr":"LO","Value":["` + s.pid +
			`"]},"00100021":{"vr":"LO","Value":["` + s.issuer + `"]},"00100030":{"vr":"DA","Value":["19010101"]},"00100040":{"vr":"CS","Value":["O"]}}`)
		if err := x.Put(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	sum := sha256.Sum256([]byte("minter"))
	svc := &emr.Service{Index: x, PublicURL: "http://lumen.test",
		Links:           &links.Signer{Keys: []links.Key{{ID: "k1", Secret: bytes.Repeat([]byte{1}, 32)}}, Active: "k1"},
		MintTokenHashes: []string{hex.EncodeToString(sum[:])}}
	e := echo.New()
	e.Use(svc.Guard)
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if v := c.Request().Header.Get("X-Test-Patient"); v != "" {
				id, issuer, _ := strings.Cut(v, "^^^")
				r := c.Request()
				c.SetRequest(r.WithContext(index.WithScope(r.Context(), index.Scope{Patient: &index.PatientKey{ID: id, Issuer: issuer}})))
			}
			return next(c)
		}
	})
	svc.Register(e)
	(&dicomweb.Service{Index: x}).Register(e)
	id, ok := index.Index(x).(index.Identity)
	if !ok {
		t.Fatal("the index keeps no patient records")
	}
	return &identityEnv{x: x, id: id, e: e, svc: svc}
}

func (v *identityEnv) get(t *testing.T, target string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	v.e.ServeHTTP(rec, req)
	return rec
}

// mint mints a link; body is the MintRequest.
func (v *identityEnv) mint(t *testing.T, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/emr/v1/links", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer minter")
	rec := httptest.NewRecorder()
	v.e.ServeHTTP(rec, req)
	var m map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	return rec.Code, m
}

func (v *identityEnv) token(t *testing.T, body string) string {
	t.Helper()
	code, m := v.mint(t, body)
	tok, _ := m["token"].(string)
	if code != http.StatusCreated || tok == "" {
		t.Fatalf("mint %s: %d %v", body, code, m)
	}
	return tok
}

func (v *identityEnv) chart(t *testing.T, target string, header ...string) (int, emr.Chart, string) {
	t.Helper()
	rec := v.get(t, target, header...)
	var ch emr.Chart
	_ = json.Unmarshal(rec.Body.Bytes(), &ch)
	return rec.Code, ch, rec.Body.String()
}

func chartUIDs(ch emr.Chart) []string {
	var out []string
	for _, s := range ch.Studies {
		out = append(out, s.StudyInstanceUID)
	}
	return out
}

// qidoPatient returns name, ID, birth date and sex of the first study a QIDO answer
// lists (DICOM JSON).
func qidoPatient(t *testing.T, rec *httptest.ResponseRecorder) []string {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("QIDO: %d %s", rec.Code, rec.Body)
	}
	var list []jsonObject
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list) == 0 {
		t.Fatalf("QIDO: %v %s", err, rec.Body)
	}
	var out []string
	for _, tag := range []string{"00100010", "00100020", "00100030", "00100040"} {
		out = append(out, jsonValue(list[0], tag))
	}
	return out
}

func str(s string) *string { return &s }

func forBackends(t *testing.T, fn func(t *testing.T, v *identityEnv)) {
	for _, b := range indextest.Backends {
		t.Run(b, func(t *testing.T) { fn(t, newIdentityEnv(t, b)) })
	}
}

// TestCorrectionsOnEMRSurfaces: after a demographics update (HL7 A08 or the admin API,
// index.Identity.UpdatePatient), the chart API, the patient and study links and the
// viewer's queries (its study list and its study page header) show the corrected name,
// birth date and sex, although the stored objects still carry the old ones.
func TestCorrectionsOnEMRSurfaces(t *testing.T) {
	forBackends(t, func(t *testing.T, v *identityEnv) {
		if _, err := v.id.UpdatePatient(context.Background(), patientA, index.Demographics{Name: str("Right^Anna"), BirthDate: str("19700203"), Sex: str("F")},
			index.Change{Source: "test"}); err != nil {
			t.Fatal(err)
		}
		want := []string{"Right^Anna", "PA", "19700203", "F"}
		code, ch, body := v.chart(t, "/emr/v1/patients/PA/studies?issuer=HOSP")
		if code != 200 || ch.PatientName != "Right^Anna" || ch.PatientBirthDate != "19700203" || ch.PatientSex != "F" {
			t.Fatalf("chart API: %d %s", code, body)
		}
		ptok := v.token(t, `{"scope":"patient","patientID":"PA","issuerOfPatientID":"HOSP"}`)
		code, ch, body = v.chart(t, "/emr/v1/patients/PA/studies?issuer=HOSP&token="+url.QueryEscape(ptok))
		if code != 200 || ch.PatientName != "Right^Anna" || len(ch.Studies) != 1 {
			t.Fatalf("chart API with a patient link: %d %s", code, body)
		}
		if rec := v.get(t, "/emr/v1/patients/PA/chart?issuer=HOSP&token="+url.QueryEscape(ptok)); rec.Code != 200 || strings.Contains(rec.Body.String(), "Stale") {
			t.Fatalf("widget: %d %.300s", rec.Code, rec.Body)
		}
		// The viewer's study list (a patient link) and study page (a study link).
		list := "/dicom-web/studies?PatientID=PA&IssuerOfPatientID=HOSP&limit=100&includefield=00081030,00080061,00201208,00100030,00100040&token=" + url.QueryEscape(ptok)
		if got := qidoPatient(t, v.get(t, list)); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("viewer study list: %q, want %q", got, want)
		}
		stok := v.token(t, `{"scope":"study","studyInstanceUID":"`+uid(100)+`"}`)
		page := "/dicom-web/studies?StudyInstanceUID=" + uid(100) + "&includefield=00081030&token=" + url.QueryEscape(stok)
		if got := qidoPatient(t, v.get(t, page)); got[0] != "Right^Anna" || got[1] != "PA" {
			t.Errorf("viewer study page header: %q", got)
		}
	})
}

// TestMergeOnEMRSurfaces: patient B (3 studies) is merged into A (1 study). A's chart
// lists all four; B's chart lists none and says where they went (to an unscoped
// caller); study links keep working and show the survivor's record; patient links and
// patient-limited tokens for B are refused with a "merged" answer that names no
// identifier, never widened to A's studies; minting for B is refused.
func TestMergeOnEMRSurfaces(t *testing.T) {
	forBackends(t, func(t *testing.T, v *identityEnv) {
		ctx := context.Background()
		bLink := v.token(t, `{"scope":"patient","patientID":"PB","issuerOfPatientID":"HOSP"}`)
		aLink := v.token(t, `{"scope":"patient","patientID":"PA","issuerOfPatientID":"HOSP"}`)
		studyLink := v.token(t, `{"scope":"study","studyInstanceUID":"`+uid(201)+`"}`)
		if err := v.id.MergePatients(ctx, patientA, patientB, index.Change{Source: "test"}); err != nil {
			t.Fatal(err)
		}
		if _, err := v.id.UpdatePatient(ctx, patientA, index.Demographics{Name: str("Right^Anna")}, index.Change{Source: "test"}); err != nil {
			t.Fatal(err)
		}

		// The survivor's chart: all four studies, newest first.
		all := []string{uid(202), uid(201), uid(200), uid(100)}
		for _, target := range []string{"/emr/v1/patients/PA/studies?issuer=HOSP", "/emr/v1/patients/PA/studies?issuer=HOSP&token=" + url.QueryEscape(aLink)} {
			code, ch, body := v.chart(t, target)
			if code != 200 || ch.Total != 4 || strings.Join(chartUIDs(ch), ",") != strings.Join(all, ",") || ch.PatientName != "Right^Anna" {
				t.Fatalf("%s: %d %s", target, code, body)
			}
		}
		if rec := v.get(t, "/emr/v1/patients/PA/chart?issuer=HOSP"); rec.Code != 200 || strings.Count(rec.Body.String(), `class="card"`) != 4 {
			t.Fatalf("survivor's widget: %d %.400s", rec.Code, rec.Body)
		}

		// The merged-away chart, unscoped (an EMR service account): none, and where.
		code, ch, body := v.chart(t, "/emr/v1/patients/PB/studies?issuer=HOSP")
		if code != http.StatusGone || len(ch.Studies) != 0 || ch.Total != 0 || ch.MergedInto == nil || *ch.MergedInto != (emr.PatientRef{PatientID: "PA", Issuer: "HOSP"}) ||
			!strings.Contains(ch.Notice, "merged into PA^^^HOSP") {
			t.Fatalf("merged chart API: %d %s", code, body)
		}
		rec := v.get(t, "/emr/v1/patients/PB/chart?issuer=HOSP")
		if rec.Code != http.StatusGone || !strings.Contains(rec.Body.String(), "This patient record was merged") ||
			!strings.Contains(rec.Body.String(), `href="/emr/v1/patients/PA/chart?issuer=HOSP"`) || strings.Contains(rec.Body.String(), `class="card"`) {
			t.Fatalf("merged widget: %d %.600s", rec.Code, rec.Body)
		}
		rec = v.get(t, "/IHEInvokeImageDisplay?requestType=PATIENT&patientID="+url.QueryEscape("PB^^^HOSP"))
		if rec.Code != http.StatusGone || !strings.Contains(rec.Body.String(), "merged into PA^^^HOSP") || rec.Header().Get("Location") != "" {
			t.Fatalf("IID for the merged patient: %d %.600s", rec.Code, rec.Body)
		}

		// B's patient link: refused everywhere with the merged answer, naming nobody.
		tok := "token=" + url.QueryEscape(bLink)
		for _, c := range []struct {
			target string
			page   bool
		}{
			{"/emr/v1/patients/PB/chart?issuer=HOSP&" + tok, true},
			{"/emr/v1/patients/PB/studies?issuer=HOSP&" + tok, false},
			{"/viewer/?PatientID=PB&IssuerOfPatientID=HOSP&" + tok, true},
			{"/dicom-web/studies?PatientID=PB&IssuerOfPatientID=HOSP&" + tok, false},
			{"/viewer/studies/" + uid(201) + "?" + tok, true},
			{"/dicom-web/studies/" + uid(201) + "/series?" + tok, false},
			{"/dicom-web/studies/" + uid(201) + "/thumbnail?" + tok, false},
		} {
			rec := v.get(t, c.target)
			b := rec.Body.String()
			if rec.Code != http.StatusForbidden || !strings.Contains(b, "This patient record was merged") || !strings.Contains(b, "new link") ||
				namesPA(b) || strings.Contains(b, uid(100)) {
				t.Errorf("B's link, %s: %d %.400s", c.target, rec.Code, b)
			}
			if !c.page && !strings.Contains(b, `"reason":"patient-merged"`) {
				t.Errorf("B's link, %s: no reason: %s", c.target, b)
			}
			if c.page && !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
				t.Errorf("B's link, %s: %s, want a page", c.target, rec.Header().Get("Content-Type"))
			}
		}
		// ... and it opens none of A's own studies either.
		if rec := v.get(t, "/dicom-web/studies/"+uid(100)+"/series?"+tok); rec.Code != http.StatusForbidden || namesPA(rec.Body.String()) {
			t.Errorf("B's link on A's study: %d %s", rec.Code, rec.Body)
		}
		if rec := v.get(t, "/emr/v1/patients/PA/studies?issuer=HOSP&"+tok); rec.Code != http.StatusForbidden {
			t.Errorf("B's link on A's chart: %d %s", rec.Code, rec.Body)
		}

		// A token limited to B (httpkit/auth scope): refused, on B's chart and on A's.
		for _, target := range []string{"/emr/v1/patients/PB/studies?issuer=HOSP", "/emr/v1/patients/PA/studies?issuer=HOSP",
			"/IHEInvokeImageDisplay?requestType=PATIENT&patientID=" + url.QueryEscape("PB^^^HOSP")} {
			rec := v.get(t, target, "X-Test-Patient", "PB^^^HOSP")
			if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "merged") || namesPA(rec.Body.String()) {
				t.Errorf("token limited to B, %s: %d %.300s", target, rec.Code, rec.Body)
			}
		}

		// A study link of a study that came with the merge works, with the survivor's record.
		got := qidoPatient(t, v.get(t, "/dicom-web/studies?StudyInstanceUID="+uid(201)+"&includefield=00081030&token="+url.QueryEscape(studyLink)))
		if got[0] != "Right^Anna" || got[1] != "PA" {
			t.Errorf("study link after the merge: %q", got)
		}
		if rec := v.get(t, "/dicom-web/studies?StudyInstanceUID="+uid(100)+"&token="+url.QueryEscape(studyLink)); rec.Code != http.StatusForbidden {
			t.Errorf("study link on another study: %d", rec.Code)
		}

		// Minting for B: refused, saying where the studies are; a patient ID with a
		// control character: refused.
		code, m := v.mint(t, `{"scope":"patient","patientID":"PB","issuerOfPatientID":"HOSP"}`)
		if into, _ := m["mergedInto"].(map[string]any); code != http.StatusConflict || m["reason"] != "patient-merged" || into["patientID"] != "PA" {
			t.Errorf("mint for B: %d %v", code, m)
		}
		for _, body := range []string{`{"scope":"patient","patientID":"P\u0001A"}`, `{"scope":"patient","patientID":"PA","issuerOfPatientID":"HO\nSP"}`,
			`{"scope":"patient","patientID":"P\u0085A"}`} {
			if code, m := v.mint(t, body); code != http.StatusBadRequest {
				t.Errorf("mint %s: %d %v", body, code, m)
			}
		}
	})
}

// jsonObject is one object of a DICOM JSON answer (PS3.18 F.2).
type jsonObject map[string]struct {
	VR    string            `json:"vr"`
	Value []json.RawMessage `json:"Value"`
}

// jsonValue is the first value of a tag of a DICOM JSON object, as text (a person name's
// alphabetic group).
func jsonValue(o jsonObject, tag string) string {
	el, ok := o[tag]
	if !ok || len(el.Value) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(el.Value[0], &s) == nil {
		return s
	}
	var pn struct{ Alphabetic string }
	if json.Unmarshal(el.Value[0], &pn) == nil {
		return pn.Alphabetic
	}
	return ""
}

// randomText matches what a page carries at random: a CSP nonce and a link's token,
// whose base64 may spell "PA".
var randomText = regexp.MustCompile(`nonce="[^"]*"|token=[A-Za-z0-9._~%+-]+`)

// wordPA is PA as a word.
var wordPA = regexp.MustCompile(`\bPA\b`)

// namesPA tells whether a body names the survivor PA (as a word), leaving out the text
// that is random.
func namesPA(b string) bool {
	return wordPA.MatchString(randomText.ReplaceAllString(b, ""))
}

// TestChangeOfIdentifierOnEMRSurfaces: after a change of identifier (HL7 A47, the key
// changed in place, the old key kept as an alias merged into the record), a patient link
// for the old identifier opens nothing, neither under the old identifier (refused as
// merged, with the page that asks for a new link, rather than an empty chart that would
// read as "no images") nor under the new one; a study link keeps working.
func TestChangeOfIdentifierOnEMRSurfaces(t *testing.T) {
	forBackends(t, func(t *testing.T, v *identityEnv) {
		oldLink := "token=" + url.QueryEscape(v.token(t, `{"scope":"patient","patientID":"PA","issuerOfPatientID":"HOSP"}`))
		studyLink := "token=" + url.QueryEscape(v.token(t, `{"scope":"study","studyInstanceUID":"`+uid(100)+`"}`))
		if err := v.id.ChangePatientID(context.Background(), patientA, index.PatientKey{ID: "PA2", Issuer: "HOSP"}, index.Change{Source: "test"}); err != nil {
			t.Fatal(err)
		}
		if rec := v.get(t, "/emr/v1/patients/PA/studies?issuer=HOSP&"+oldLink); rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), `"reason":"patient-merged"`) {
			t.Errorf("old identifier's chart with its link: %d %s", rec.Code, rec.Body)
		}
		if rec := v.get(t, "/emr/v1/patients/PA2/studies?issuer=HOSP&"+oldLink); rec.Code != http.StatusForbidden {
			t.Errorf("new identifier's chart with the old link: %d %s", rec.Code, rec.Body)
		}
		if rec := v.get(t, "/dicom-web/studies/"+uid(100)+"/series?"+oldLink); rec.Code != http.StatusForbidden {
			t.Errorf("the study with the old link: %d %s", rec.Code, rec.Body)
		}
		if got := qidoPatient(t, v.get(t, "/dicom-web/studies?StudyInstanceUID="+uid(100)+"&"+studyLink)); got[1] != "PA2" {
			t.Errorf("study link after the change: %q", got)
		}
		if code, ch, body := v.chart(t, "/emr/v1/patients/PA2/studies?issuer=HOSP"); code != 200 || ch.Total != 1 {
			t.Errorf("new identifier's chart: %d %s", code, body)
		}
		if rec := v.get(t, "/IHEInvokeImageDisplay?requestType=PATIENT&patientID="+url.QueryEscape("PA^^^HOSP")); rec.Code != http.StatusGone {
			t.Errorf("IID for the old identifier: %d", rec.Code)
		}
	})
}
