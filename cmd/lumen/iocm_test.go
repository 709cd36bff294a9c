package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dicomweb/admin"
	"github.com/lumenpacs/lumen/emr/fhir"
	"github.com/lumenpacs/lumen/index/postgres/pgtest"
	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// iocmEnv is a Lumen (ingest.default_issuer HOSP, as hl7Env) that objects are sent to
// with storescu.
type iocmEnv struct {
	*hl7Env
	t *testing.T
}

// storescu sends files to Lumen with DCMTK storescu and returns its output (it fails
// the test on an error unless allowFail).
func (e *iocmEnv) storescu(allowFail bool, files ...string) string {
	t := e.t
	t.Helper()
	h, p := splitAddr(e.s.addr.DIMSE)
	cmd := exec.Command(dcmtkTool(t, "storescu"), append([]string{"-v", "-aet", "MODALITY", "-aec", "LUMEN", h, p}, files...)...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	out, err := cmd.CombinedOutput()
	if !allowFail && (err != nil || bytes.Contains(out, []byte("E: "))) {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	return string(out)
}

// qidoAt answers a QIDO-RS request (path and query under /dicom-web).
func (e *iocmEnv) qidoAt(path string) []map[string]any {
	t := e.t
	t.Helper()
	code, body := httpDo(t, http.MethodGet, e.base+"/dicom-web"+path, "", nil, "Accept", "application/dicom+json")
	if code == http.StatusNoContent {
		return nil
	}
	if code != http.StatusOK {
		t.Fatalf("QIDO %s: %d %s", path, code, body)
	}
	var out []map[string]any
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// jsonValue is the first value of a DICOM JSON attribute as text (numbers too).
func jsonValue(attr any) string {
	m, _ := attr.(map[string]any)
	v, _ := m["Value"].([]any)
	if len(v) == 0 {
		return ""
	}
	switch x := v[0].(type) {
	case string:
		return x
	case float64:
		return fmt.Sprint(x)
	case map[string]any:
		s, _ := x["Alphabetic"].(string)
		return s
	}
	return fmt.Sprint(v[0])
}

// qidoStudy returns "patientID name series/instances" of a study by QIDO-RS, or "" when
// QIDO does not find it.
func (e *iocmEnv) qidoStudy(uid string) string {
	r := e.qidoAt("/studies?StudyInstanceUID=" + uid)
	if len(r) == 0 {
		return ""
	}
	if len(r) != 1 {
		e.t.Fatalf("QIDO study %s: %d answers", uid, len(r))
	}
	return jsonValue(r[0]["00100020"]) + " " + jsonValue(r[0]["00100010"]) + " " + jsonValue(r[0]["00201206"]) + "/" + jsonValue(r[0]["00201208"])
}

// qidoSeries returns "seriesUID:instances" of a study's series by QIDO-RS, sorted.
func (e *iocmEnv) qidoSeries(study string) []string {
	var out []string
	for _, r := range e.qidoAt("/studies/" + study + "/series") {
		out = append(out, jsonValue(r["0020000E"])+":"+jsonValue(r["00201209"]))
	}
	slices.Sort(out)
	return out
}

// qidoInstances returns the SOP Instance UIDs of a study by QIDO-RS, sorted.
func (e *iocmEnv) qidoInstances(study string) []string {
	var out []string
	for _, r := range e.qidoAt("/studies/" + study + "/instances") {
		out = append(out, jsonValue(r["00080018"]))
	}
	slices.Sort(out)
	return out
}

// findscu runs DCMTK findscu (Study Root) with keys and returns the answers' data sets.
func (e *iocmEnv) findscu(keys ...string) []*dcm.Dataset {
	t := e.t
	t.Helper()
	h, p := splitAddr(e.s.addr.DIMSE)
	dir := t.TempDir()
	args := []string{"-S", "-aet", "FINDER", "-aec", "LUMEN", "-X", "-od", dir}
	for _, k := range keys {
		args = append(args, "-k", k)
	}
	runDCMTK(t, "findscu", append(args, h, p)...)
	files, _ := filepath.Glob(filepath.Join(dir, "rsp*.dcm"))
	slices.Sort(files)
	var out []*dcm.Dataset
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fl, err := dcm.Parse(bytes.NewReader(b), nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fl.Dataset)
	}
	return out
}

// findSeries returns "seriesUID:instances" of a study by C-FIND at SERIES level, sorted.
func (e *iocmEnv) findSeries(study string) []string {
	var out []string
	for _, d := range e.findscu("QueryRetrieveLevel=SERIES", "StudyInstanceUID="+study, "SeriesInstanceUID", "NumberOfSeriesRelatedInstances") {
		out = append(out, d.String(dcm.TagSeriesInstanceUID)+":"+d.String(dcm.TagNumberOfSeriesRelatedInstances))
	}
	slices.Sort(out)
	return out
}

// findImages returns the SOP Instance UIDs of a series by C-FIND at IMAGE level, sorted.
func (e *iocmEnv) findImages(study, series string) []string {
	var out []string
	for _, d := range e.findscu("QueryRetrieveLevel=IMAGE", "StudyInstanceUID="+study, "SeriesInstanceUID="+series, "SOPInstanceUID") {
		out = append(out, d.String(dcm.TagSOPInstanceUID))
	}
	slices.Sort(out)
	return out
}

// wado retrieves one instance with WADO-RS: the status and the object.
func (e *iocmEnv) wado(study, series, sop string) (int, []byte) {
	e.t.Helper()
	r := wadoGet(e.t, e.base+"/dicom-web/studies/"+study+"/series/"+series+"/instances/"+sop, `multipart/related; type="application/dicom"`)
	if r.err != nil {
		e.t.Fatalf("WADO-RS %s: %v", sop, r.err)
	}
	if r.code != http.StatusOK {
		return r.code, r.body
	}
	if len(r.parts) != 1 {
		e.t.Fatalf("WADO-RS %s: %d parts", sop, len(r.parts))
	}
	return r.code, r.parts[0]
}

// wadoURI retrieves one instance with WADO-URI and returns the status.
func (e *iocmEnv) wadoURI(study, series, sop string) int {
	code, _ := httpDo(e.t, http.MethodGet, e.base+"/wado?requestType=WADO&contentType=application/dicom&studyUID="+study+"&seriesUID="+series+"&objectUID="+sop, "", nil)
	return code
}

// chartStudy returns "studies: series/instances" of a patient's chart (one study
// expected) and the study's UID.
func (e *iocmEnv) chartStudy(id string) (string, string) {
	c := e.chart(e.t, id)
	if c.Total != 1 || len(c.Studies) != 1 {
		e.t.Fatalf("chart of %s: %d studies", id, c.Total)
	}
	s := c.Studies[0]
	return fmt.Sprintf("%s %d/%d", c.PatientName, s.NumberOfSeries, s.NumberOfInstances), s.StudyInstanceUID
}

// fhirOf returns the FHIR ImagingStudy of a study.
func (e *iocmEnv) fhirOf(uid string) fhir.ImagingStudy {
	var is fhir.ImagingStudy
	if err := json.Unmarshal([]byte(e.fhirStudy(e.t, uid)), &is); err != nil {
		e.t.Fatal(err)
	}
	return is
}

// fhirSummary is "patient series/instances [seriesUID:instances:uid,uid...]" of a FHIR
// ImagingStudy, series sorted.
func fhirSummary(is fhir.ImagingStudy) string {
	var series []string
	for _, s := range is.Series {
		var uids []string
		for _, in := range s.Instance {
			uids = append(uids, in.UID)
		}
		slices.Sort(uids)
		series = append(series, fmt.Sprintf("%s:%d:%s", s.UID, s.NumberOfInstances, strings.Join(uids, ",")))
	}
	slices.Sort(series)
	id := ""
	if is.Subject.Identifier != nil {
		id = is.Subject.Identifier.Value
	}
	return fmt.Sprintf("%s %d/%d %v", id, is.NumberOfSeries, is.NumberOfInstances, series)
}

// post sends an admin API request with a JSON body and returns the status and body.
func (e *iocmEnv) post(path string, body any) (int, string) {
	b, err := json.Marshal(body)
	if err != nil {
		e.t.Fatal(err)
	}
	return httpDo(e.t, http.MethodPost, e.base+path, "", bytes.NewReader(b), "Content-Type", "application/json")
}

// rejections lists the rejections (GET /api/v1/rejections) with a query.
func (e *iocmEnv) rejections(query string) []admin.Rejected {
	code, body := httpDo(e.t, http.MethodGet, e.base+"/api/v1/rejections?"+query, "", nil)
	if code != http.StatusOK {
		e.t.Fatalf("GET /api/v1/rejections?%s: %d %s", query, code, body)
	}
	var out []admin.Rejected
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// pixelData returns the pixel data value of a PS3.10 object.
func pixelData(t *testing.T, b []byte) []byte {
	t.Helper()
	f, err := dcm.Parse(bytes.NewReader(b), nil)
	if err != nil {
		t.Fatal(err)
	}
	pl := f.PixelLayout()
	if pl == nil || pl.Offset+pl.Length > int64(len(b)) {
		t.Fatal("no pixel data")
	}
	return b[pl.Offset : pl.Offset+pl.Length]
}

// header returns "StudyInstanceUID PatientID PatientName" of a PS3.10 object.
func header(t *testing.T, b []byte) string {
	t.Helper()
	f, err := dcm.Parse(bytes.NewReader(b), nil)
	if err != nil {
		t.Fatal(err)
	}
	d := f.Dataset
	return d.String(dcm.TagStudyInstanceUID) + " " + d.String(dcm.TagPatientID) + " " + d.String(dcm.TagPatientName)
}

// TestIOCMMoveRejectRestorePurge is the issue-16 acceptance for moves and rejections,
// end to end on a running Lumen, on both index backends: a series stored with storescu
// under the wrong patient's study is moved to the right patient's study (admin API) and
// every surface (QIDO-RS, C-FIND, WADO-RS metadata and instance, the chart, FHIR) shows
// it in its new place; an instance rejected with a Key Object Selection document made
// with DCMTK and sent with storescu is hidden from every surface and refused when sent
// again (0x0110); an instance rejected with the admin API and restored is back,
// byte-identical; a purge deletes the blob and the rows; every step is audited with its
// reason and recorded as a patient event.
func TestIOCMMoveRejectRestorePurge(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var mutate func(*Config)
			if backend == "postgres" {
				dsn := pgtest.Schema(t)
				mutate = func(c *Config) { c.Index.Backend, c.Index.Postgres.DSN = "postgres", dsn }
			}
			testIOCM(t, &iocmEnv{hl7Env: startHL7Env(t, mutate), t: t})
		})
	}
}

func testIOCM(t *testing.T, e *iocmEnv) {
	const (
		idA, nameA = "IOCM-A", "Wrong^Walter"
		idB, nameB = "IOCM-B", "Right^Rosa"
	)
	// Patient A's study holds its CT series and an MR series of patient B sent under A.
	optA := gen.Options{Seed: 1601, Patient: gen.Patient{ID: idA, Name: nameA, BirthDate: "19600101", Sex: "M"}, StudyDescription: "CT A"}
	ctA := must(gen.CTSeries(optA, 2, 16, 16))
	wrong := must(gen.MRSeries(optA, 2, 16, 16))
	optB := gen.Options{Seed: 1602, Patient: gen.Patient{ID: idB, Name: nameB, BirthDate: "19800202", Sex: "F"}, StudyDescription: "CT B"}
	ctB := must(gen.CTSeries(optB, 2, 16, 16))
	stA, stB, seA, seB, seX := ctA[0].StudyUID, ctB[0].StudyUID, ctA[0].SeriesUID, ctB[0].SeriesUID, wrong[0].SeriesUID
	if wrong[0].StudyUID != stA || stA == stB {
		t.Fatal("generator: the wrong series is not in patient A's study")
	}
	dir := t.TempDir()
	file := map[string]string{}
	var files []string
	for _, o := range slices.Concat(ctA, wrong, ctB) {
		f := filepath.Join(dir, o.SOPInstanceUID+".dcm")
		if err := os.WriteFile(f, o.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		file[o.SOPInstanceUID] = f
		files = append(files, f)
	}
	e.storescu(false, files...)
	if got := e.qidoStudy(stA); got != idA+" "+nameA+" 2/4" {
		t.Fatalf("before the move: QIDO study A %q", got)
	}

	// 1. Move the wrong series into patient B's study.
	const moveWhy = "MR series sent under the wrong patient"
	if code, body := e.post("/api/v1/patients/move-series", map[string]string{"seriesInstanceUID": seX, "toStudyInstanceUID": stB, "reason": moveWhy}); code != http.StatusOK {
		t.Fatalf("move-series: %d %s", code, body)
	}
	t.Run("moved", func(t *testing.T) {
		e := &iocmEnv{e.hl7Env, t}
		if got, want := e.qidoStudy(stA), idA+" "+nameA+" 1/2"; got != want {
			t.Errorf("QIDO study A %q, want %q", got, want)
		}
		if got, want := e.qidoStudy(stB), idB+" "+nameB+" 2/4"; got != want {
			t.Errorf("QIDO study B %q, want %q", got, want)
		}
		for _, q := range []struct{ id, want string }{{idA, stA}, {idB, stB}} {
			r := e.qidoAt("/studies?PatientID=" + q.id)
			if len(r) != 1 || jsonValue(r[0]["0020000D"]) != q.want {
				t.Errorf("QIDO studies of %s: %v", q.id, r)
			}
		}
		wantA, wantB := []string{seA + ":2"}, sorted(seB+":2", seX+":2")
		if got := e.qidoSeries(stA); !slices.Equal(got, wantA) {
			t.Errorf("QIDO series of A %v, want %v", got, wantA)
		}
		if got := e.qidoSeries(stB); !slices.Equal(got, wantB) {
			t.Errorf("QIDO series of B %v, want %v", got, wantB)
		}
		if r := e.qidoAt("/series?SeriesInstanceUID=" + seX); len(r) != 1 || jsonValue(r[0]["0020000D"]) != stB {
			t.Errorf("QIDO the moved series: %v", r)
		}
		if got := e.findSeries(stA); !slices.Equal(got, wantA) {
			t.Errorf("findscu series of A %v, want %v", got, wantA)
		}
		if got := e.findSeries(stB); !slices.Equal(got, wantB) {
			t.Errorf("findscu series of B %v, want %v", got, wantB)
		}
		var meta []map[string]any
		getJSON(t, e.base+"/dicom-web/studies/"+stB+"/series/"+seX+"/metadata", &meta)
		if len(meta) != 2 {
			t.Fatalf("WADO-RS metadata of the moved series: %d instances", len(meta))
		}
		for _, m := range meta {
			if got := jsonValue(m["0020000D"]) + " " + jsonValue(m["00100020"]) + " " + jsonValue(m["00100010"]); got != stB+" "+idB+" "+nameB {
				t.Errorf("WADO-RS metadata of the moved series: %q", got)
			}
		}
		for _, o := range wrong {
			code, b := e.wado(stB, seX, o.SOPInstanceUID)
			if code != http.StatusOK {
				t.Fatalf("WADO-RS moved instance: %d %s", code, b)
			}
			if got, want := header(t, b), stB+" "+idB+" "+nameB; got != want {
				t.Errorf("WADO-RS moved instance header %q, want %q", got, want)
			}
			if !bytes.Equal(pixelData(t, b), pixelData(t, o.Data)) {
				t.Error("WADO-RS moved instance: pixel data changed")
			}
			if code, _ := e.wado(stA, seX, o.SOPInstanceUID); code != http.StatusNotFound {
				t.Errorf("WADO-RS under the old study: %d, want 404", code)
			}
		}
		if got, uid := e.chartStudy(idA); got != nameA+" 1/2" || uid != stA {
			t.Errorf("chart of A: %q %s", got, uid)
		}
		if got, uid := e.chartStudy(idB); got != nameB+" 2/4" || uid != stB {
			t.Errorf("chart of B: %q %s", got, uid)
		}
		if got, want := fhirSummary(e.fhirOf(stA)), fmt.Sprintf("%s 1/2 [%s:2:%s]", idA, seA, strings.Join(sorted(ctA[0].SOPInstanceUID, ctA[1].SOPInstanceUID), ",")); got != want {
			t.Errorf("FHIR study A\n%s, want\n%s", got, want)
		}
		if got, want := fhirSummary(e.fhirOf(stB)), fmt.Sprintf("%s 2/4 %v", idB, sorted(
			seB+":2:"+strings.Join(sorted(ctB[0].SOPInstanceUID, ctB[1].SOPInstanceUID), ","),
			seX+":2:"+strings.Join(sorted(wrong[0].SOPInstanceUID, wrong[1].SOPInstanceUID), ","))); got != want {
			t.Errorf("FHIR study B\n%s, want\n%s", got, want)
		}
	})

	// 2. Reject one of patient B's own instances with a KO made with DCMTK, sent with
	// storescu (Rejected for Patient Safety Reasons).
	gone := ctB[0]
	koUID := "2.25.160116011601160116011601"
	ko := tools.DCMTKRejectionNote(t, tools.RejectionNote{SOP: koUID, Study: stB, PatientID: idB, Code: "113037", Meaning: "Rejected for Patient Safety Reasons",
		Refs: []tools.KORef{{Study: stB, Series: seB, Class: gone.SOPClassUID, SOP: gone.SOPInstanceUID}}})
	e.storescu(false, ko)
	blobs := func() []string {
		var out []string
		filepath.WalkDir(e.s.c.Store.FS.Dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				out = append(out, p)
			}
			return nil
		})
		return out
	}
	before := blobs()
	t.Run("rejected by a DCMTK note", func(t *testing.T) {
		e := &iocmEnv{e.hl7Env, t}
		if got, want := e.qidoStudy(stB), idB+" "+nameB+" 3/4"; got != want { // B's CT, the moved MR, the note
			t.Errorf("QIDO study B %q, want %q", got, want)
		}
		wantInst := sorted(ctB[1].SOPInstanceUID, wrong[0].SOPInstanceUID, wrong[1].SOPInstanceUID, koUID)
		if got := e.qidoInstances(stB); !slices.Equal(got, wantInst) {
			t.Errorf("QIDO instances of B %v, want %v", got, wantInst)
		}
		if r := e.qidoAt("/instances?SOPInstanceUID=" + gone.SOPInstanceUID); len(r) != 0 {
			t.Errorf("QIDO finds the rejected instance: %v", r)
		}
		if got := e.qidoSeries(stB); !slices.Contains(got, seB+":1") || !slices.Contains(got, koUID+".1:1") {
			t.Errorf("QIDO series of B %v", got)
		}
		if r := e.qidoAt("/studies/" + stB + "/series?Modality=KO"); len(r) != 1 || jsonValue(r[0]["0020000E"]) != koUID+".1" {
			t.Errorf("QIDO the note's series: %v", r)
		}
		if got := e.findImages(stB, seB); !slices.Equal(got, []string{ctB[1].SOPInstanceUID}) {
			t.Errorf("findscu images of B's CT %v", got)
		}
		if got := e.findImages(stB, koUID+".1"); !slices.Equal(got, []string{koUID}) {
			t.Errorf("findscu the note: %v", got)
		}
		if code, _ := e.wado(stB, seB, gone.SOPInstanceUID); code != http.StatusNotFound {
			t.Errorf("WADO-RS rejected instance: %d, want 404", code)
		}
		if code := e.wadoURI(stB, seB, gone.SOPInstanceUID); code != http.StatusNotFound {
			t.Errorf("WADO-URI rejected instance: %d, want 404", code)
		}
		if code, b := e.wado(stB, koUID+".1", koUID); code != http.StatusOK || !strings.Contains(header(t, b), stB) {
			t.Errorf("WADO-RS the note: %d", code)
		}
		if got, _ := e.chartStudy(idB); got != nameB+" 3/4" {
			t.Errorf("chart of B: %q", got)
		}
		is := e.fhirOf(stB)
		if is.NumberOfInstances != 4 || strings.Contains(fhirSummary(is), gone.SOPInstanceUID) {
			t.Errorf("FHIR study B: %s", fhirSummary(is))
		}
		l := e.rejections("sop=" + gone.SOPInstanceUID)
		if len(l) != 1 || l[0].Code != "113037" || l[0].Note != koUID || !l[0].Received || l[0].StudyInstanceUID != stB || l[0].PatientID != idB || l[0].Source != "dimse" {
			t.Errorf("GET /api/v1/rejections: %+v", l)
		}
		// Sent again: refused, 0x0110, nothing kept.
		out := e.storescu(true, file[gone.SOPInstanceUID])
		// DCMTK 3.6.7 names no C-STORE status 0x0110 (Processing Failure, PS3.7 C.4.2):
		// "Received Store Response (Unknown Status: 0x110)".
		if !regexp.MustCompile(`Received Store Response \(.*0x0?110\)`).MatchString(out) {
			t.Errorf("storescu of the rejected instance, want status 0x0110:\n%s", out)
		}
		if got := blobs(); !slices.Equal(got, before) {
			t.Errorf("the refused instance left blobs: %v, before %v", got, before)
		}
		if got := e.qidoInstances(stB); !slices.Equal(got, wantInst) {
			t.Errorf("QIDO instances of B after the re-send %v", got)
		}
	})

	// 3. Reject an instance of the moved series with the admin API, then restore it.
	back := wrong[1]
	_, orig := e.wado(stB, seX, back.SOPInstanceUID)
	const rejectWhy, restoreWhy = "motion blur on the second slice", "rejected the wrong slice"
	code, body := e.post("/api/v1/rejections", map[string]any{"studyInstanceUID": stB, "seriesInstanceUID": seX, "sopInstanceUIDs": []string{back.SOPInstanceUID}, "code": "113001", "reason": rejectWhy})
	if code != http.StatusCreated {
		t.Fatalf("POST /api/v1/rejections: %d %s", code, body)
	}
	var ans admin.RejectAnswer
	if err := json.Unmarshal([]byte(body), &ans); err != nil || len(ans.Rejected) != 1 || ans.Rejected[0].SOPInstanceUID != back.SOPInstanceUID ||
		ans.Rejected[0].StudyInstanceUID != stB || ans.Rejected[0].SeriesInstanceUID != seX || ans.Rejected[0].Code != "113001" {
		t.Fatalf("POST /api/v1/rejections: %v %s", err, body)
	}
	t.Run("rejected by the admin API", func(t *testing.T) {
		e := &iocmEnv{e.hl7Env, t}
		if got := e.qidoSeries(stB); !slices.Contains(got, seX+":1") || !slices.Contains(got, ans.Series+":1") {
			t.Errorf("QIDO series of B %v (the admin note in %s)", got, ans.Series)
		}
		if got := e.findImages(stB, seX); !slices.Equal(got, []string{wrong[0].SOPInstanceUID}) {
			t.Errorf("findscu images of the moved series %v", got)
		}
		if code, _ := e.wado(stB, seX, back.SOPInstanceUID); code != http.StatusNotFound {
			t.Errorf("WADO-RS: %d, want 404", code)
		}
		if code := e.wadoURI(stB, seX, back.SOPInstanceUID); code != http.StatusNotFound {
			t.Errorf("WADO-URI: %d, want 404", code)
		}
		if got, _ := e.chartStudy(idB); got != nameB+" 4/4" { // one more note, one instance less
			t.Errorf("chart of B: %q", got)
		}
		if is := e.fhirOf(stB); is.NumberOfInstances != 4 || strings.Contains(fhirSummary(is), back.SOPInstanceUID) {
			t.Errorf("FHIR study B: %s", fhirSummary(is))
		}
	})
	code, body = e.post("/api/v1/rejections/restore", map[string]any{"sopInstanceUIDs": []string{back.SOPInstanceUID}, "reason": restoreWhy})
	if code != http.StatusOK {
		t.Fatalf("restore: %d %s", code, body)
	}
	t.Run("restored", func(t *testing.T) {
		e := &iocmEnv{e.hl7Env, t}
		if got, want := e.qidoStudy(stB), idB+" "+nameB+" 4/5"; got != want {
			t.Errorf("QIDO study B %q, want %q", got, want)
		}
		if got := e.qidoSeries(stB); !slices.Contains(got, seX+":2") {
			t.Errorf("QIDO series of B %v", got)
		}
		if got := e.qidoInstances(stB); !slices.Contains(got, back.SOPInstanceUID) {
			t.Errorf("QIDO instances of B %v", got)
		}
		if got, want := e.findImages(stB, seX), sorted(wrong[0].SOPInstanceUID, wrong[1].SOPInstanceUID); !slices.Equal(got, want) {
			t.Errorf("findscu images of the moved series %v", got)
		}
		if got := e.findImages(stA, seX); len(got) != 0 {
			t.Errorf("findscu finds the restored instance under its old study: %v", got)
		}
		code, b := e.wado(stB, seX, back.SOPInstanceUID)
		if code != http.StatusOK || !bytes.Equal(b, orig) {
			t.Errorf("WADO-RS after the restore: %d, identical %v (%s)", code, bytes.Equal(b, orig), header(t, b))
		}
		if code := e.wadoURI(stB, seX, back.SOPInstanceUID); code != http.StatusOK {
			t.Errorf("WADO-URI: %d", code)
		}
		if got, _ := e.chartStudy(idB); got != nameB+" 4/5" {
			t.Errorf("chart of B: %q", got)
		}
		if is := e.fhirOf(stB); is.NumberOfInstances != 5 || !strings.Contains(fhirSummary(is), back.SOPInstanceUID) {
			t.Errorf("FHIR study B: %s", fhirSummary(is))
		}
		if l := e.rejections("sop=" + back.SOPInstanceUID); len(l) != 0 {
			t.Errorf("still listed as rejected: %+v", l)
		}
	})

	// 4. Purge the DCMTK note's rejection: the blob and the rows go.
	l := e.rejections("note=" + koUID)
	if len(l) != 1 || l[0].BlobKey == "" {
		t.Fatalf("rejections of the note: %+v", l)
	}
	blob := filepath.Join(e.s.c.Store.FS.Dir, filepath.FromSlash(l[0].BlobKey))
	if _, err := os.Stat(blob); err != nil {
		t.Fatalf("the rejected instance's blob: %v", err)
	}
	const purgeWhy = "patient safety: delete for good"
	code, body = e.post("/api/v1/rejections/purge", map[string]any{"note": koUID, "reason": purgeWhy})
	if code != http.StatusOK || !strings.Contains(body, gone.SOPInstanceUID) {
		t.Fatalf("purge: %d %s", code, body)
	}
	t.Run("purged", func(t *testing.T) {
		e := &iocmEnv{e.hl7Env, t}
		if _, err := os.Stat(blob); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the purged blob %s: %v", blob, err)
		}
		for _, r := range e.rejections("") {
			if r.SOPInstanceUID == gone.SOPInstanceUID {
				t.Errorf("still listed: %+v", r)
			}
		}
		if l := e.rejections("sop=" + gone.SOPInstanceUID); len(l) != 0 {
			t.Errorf("still listed by SOP Instance UID: %+v", l)
		}
		if got, want := e.qidoStudy(stB), idB+" "+nameB+" 4/5"; got != want {
			t.Errorf("QIDO study B %q, want %q", got, want)
		}
		if code, _ := e.wado(stB, koUID+".1", koUID); code != http.StatusOK {
			t.Errorf("the note after the purge: %d", code)
		}
	})

	// 5. Every step audited, with its reason, and recorded as a patient event.
	t.Run("audited", func(t *testing.T) {
		e := &iocmEnv{e.hl7Env, t}
		for _, c := range []struct{ action, detail string }{
			{"series-move", "/api/v1/patients/move-series series=" + seX + " reason=" + fmt.Sprintf("%q", moveWhy)},
			{"reject", "/api/v1/rejections reason: " + fmt.Sprintf("%q", rejectWhy)},
			{"reject-restore", "/api/v1/rejections/restore reason: " + fmt.Sprintf("%q", restoreWhy)},
			{"reject-purge", "/api/v1/rejections/purge reason: " + fmt.Sprintf("%q", purgeWhy)},
		} {
			rows := e.auditRows(t, c.action)
			if len(rows) != 1 || rows[0].Outcome != "ok" || rows[0].Detail != c.detail || rows[0].StudyInstanceUID != stB {
				t.Errorf("audit %s: %+v, want one row ok, study %s, detail %q", c.action, rows, stB, c.detail)
			}
		}
		var note, refused bool
		for _, r := range e.auditRows(t, "store") {
			if r.Via != "dimse" || r.Actor != "ae:MODALITY" || r.Detail != "C-STORE" {
				continue
			}
			switch {
			case r.Outcome == "ok" && r.StudyInstanceUID == stB:
				note = true
			case r.Outcome == "0x0110": // refused before its study was known
				refused = true
			}
		}
		if !note || !refused {
			t.Errorf("audit of the C-STOREs: the note %v, the refused re-send %v", note, refused)
		}
		var evs []admin.Event
		getJSON(t, e.base+"/api/v1/patients/events?limit=1000", &evs)
		var got []string
		for _, ev := range evs {
			if ev.Kind == "create" {
				continue
			}
			p := ""
			if ev.Patient != nil {
				p = ev.Patient.ID + "^^^" + ev.Patient.Issuer
			}
			got = append(got, strings.Join([]string{ev.Kind, ev.Source, p, ev.Study, ev.Series, ev.FromStudy, strings.Join(ev.Instances, ","), ev.Reason}, " "))
		}
		want := []string{
			"move-series admin IOCM-B^^^HOSP " + stB + " " + seX + " " + stA + "  " + moveWhy,
			"reject dimse IOCM-B^^^HOSP " + stB + " " + seB + "  " + gone.SOPInstanceUID + " 113037",
			"reject admin IOCM-B^^^HOSP " + stB + " " + seX + "  " + back.SOPInstanceUID + " 113001",
			"restore admin IOCM-B^^^HOSP " + stB + " " + seX + "  " + back.SOPInstanceUID + " " + restoreWhy,
			"purge admin IOCM-B^^^HOSP " + stB + " " + seB + "  " + gone.SOPInstanceUID + " " + purgeWhy,
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("patient events:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

// TestIOCMOverSTOW: a rejection note made with DCMTK (113037) and sent with STOW-RS hides
// the instance it names from QIDO-RS and WADO-RS; the rejected instance sent again with
// STOW-RS is refused (409, FailedSOPSequence with FailureReason 0x0110).
func TestIOCMOverSTOW(t *testing.T) {
	s := startLumen(t, nil)
	base := "http://" + s.addr.HTTP + "/dicom-web"
	ct, err := gen.CTSeries(gen.Options{Seed: 7701, Patient: gen.Patient{ID: "STOWKO", Name: "Stow^Ko"}}, 2, 32, 32)
	if err != nil {
		t.Fatal(err)
	}
	stowAll(t, base, ct)
	gone := ct[0]
	koPath := tools.DCMTKRejectionNote(t, tools.RejectionNote{SOP: "2.25.770177017701770177017701", Study: gone.StudyUID, PatientID: "STOWKO", Code: "113037",
		Meaning: "Rejected for Patient Safety Reasons", Refs: []tools.KORef{{Study: gone.StudyUID, Series: gone.SeriesUID, Class: gone.SOPClassUID, SOP: gone.SOPInstanceUID}}})
	ko, err := os.ReadFile(koPath)
	if err != nil {
		t.Fatal(err)
	}
	stowAll(t, base, []gen.Object{{Data: ko}})

	code, body := httpDo(t, http.MethodGet, base+"/studies/"+gone.StudyUID+"/series/"+gone.SeriesUID+"/instances", "", nil, "Accept", "application/dicom+json")
	if code != http.StatusOK || strings.Contains(body, gone.SOPInstanceUID) || !strings.Contains(body, ct[1].SOPInstanceUID) {
		t.Fatalf("QIDO-RS after the note: %d %s", code, body)
	}
	if code, _ := httpDo(t, http.MethodGet, base+"/studies/"+gone.StudyUID+"/series/"+gone.SeriesUID+"/instances/"+gone.SOPInstanceUID, "", nil,
		"Accept", `multipart/related; type="application/dicom"; transfer-syntax=*`); code != http.StatusNotFound {
		t.Fatalf("WADO-RS of the rejected instance: %d", code)
	}

	// Sent again: refused with its reason, per instance.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	w, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
	w.Write(gone.Data)
	mw.Close()
	code, body = httpDo(t, http.MethodPost, base+"/studies", "", &buf, "Content-Type", `multipart/related; type="application/dicom"; boundary=`+mw.Boundary(), "Accept", "application/dicom+json")
	if code != http.StatusConflict {
		t.Fatalf("STOW-RS of the rejected instance: %d %s", code, body)
	}
	var resp map[string]struct {
		Value []map[string]struct {
			Value []any `json:"Value"`
		} `json:"Value"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	failed := resp["00081198"].Value
	if len(failed) != 1 || fmt.Sprint(failed[0]["00081155"].Value) != "["+gone.SOPInstanceUID+"]" || fmt.Sprint(failed[0]["00081197"].Value) != "[272]" {
		t.Fatalf("FailedSOPSequence: %s", body)
	}
}
