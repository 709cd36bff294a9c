package emr_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/emr"
	"github.com/lumenpacs/lumen/emr/links"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/sqlite"
)

// countingIndex wraps the real index and records every Find: the queries and how many
// records each answered. It counts; it does not answer anything itself.
type countingIndex struct {
	index.Index
	mu      sync.Mutex
	queries []index.Query
	records int
}

func (c *countingIndex) Find(ctx context.Context, q index.Query) (*index.Result, error) {
	r, err := c.Index.Find(ctx, q)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queries = append(c.queries, q)
	if r != nil {
		c.records += len(r.Patients) + len(r.Studies) + len(r.Series) + len(r.Instances)
	}
	return r, err
}

func (c *countingIndex) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queries, c.records = nil, 0
}

func (c *countingIndex) counts() (finds, records int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queries), c.records
}

// study is one study of the test patient: one series, one instance.
type study struct {
	uid, date, acc, desc, modality, class, bodyPart string
	pid, issuer                                     string
}

func (s study) instance(n int) *index.Instance {
	in := &index.Instance{}
	in.PatientID, in.IssuerOfPatientID, in.PatientName = s.pid, s.issuer, "Test^Patient"
	in.StudyInstanceUID, in.StudyDate, in.StudyTime, in.AccessionNumber, in.StudyDescription = s.uid, s.date, "120000", s.acc, s.desc
	in.SeriesInstanceUID, in.Modality, in.BodyPartExamined = s.uid+".1", s.modality, s.bodyPart
	in.SOPInstanceUID, in.SOPClassUID = s.uid+".1.1", s.class
	in.TransferSyntaxUID = dcm.ExplicitVRLittleEndian
	in.BlobKey = "dicom/test/" + in.SOPInstanceUID
	in.Size, in.Digest = 100, strings.Repeat("ab", 32)
	in.Metadata = []byte(`{}`)
	_ = n
	return in
}

const (
	ctClass = "1.2.840.10008.5.1.4.1.1.2"
	xaClass = "1.2.840.10008.5.1.4.1.1.12.1"
	usClass = "1.2.840.10008.5.1.4.1.1.6.1"
	ecg     = "1.2.840.10008.5.1.4.1.1.9.1.1"
)

type env struct {
	idx *countingIndex
	svc *emr.Service
	e   *echo.Echo
}

func newEnv(t *testing.T, studies []study, mod func(*emr.Service)) *env {
	t.Helper()
	x, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	for i, s := range studies {
		if err := x.Put(context.Background(), s.instance(i)); err != nil {
			t.Fatal(err)
		}
	}
	idx := &countingIndex{Index: x}
	sum := sha256.Sum256([]byte("minter"))
	svc := &emr.Service{Index: idx, PublicURL: "http://lumen.test",
		Links:           &links.Signer{Keys: []links.Key{{ID: "k1", Secret: bytes.Repeat([]byte{1}, 32)}}, Active: "k1"},
		MintTokenHashes: []string{hex.EncodeToString(sum[:])}}
	if mod != nil {
		mod(svc)
	}
	e := echo.New()
	svc.Register(e)
	return &env{idx: idx, svc: svc, e: e}
}

// get serves one request; a panic is reported as the test's failure.
func (v *env) do(t *testing.T, req *http.Request) (rec *httptest.ResponseRecorder) {
	t.Helper()
	rec = httptest.NewRecorder()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("%s %s panicked: %v", req.Method, req.URL, p)
		}
	}()
	v.e.ServeHTTP(rec, req)
	return rec
}

func (v *env) get(t *testing.T, target string) *httptest.ResponseRecorder {
	t.Helper()
	return v.do(t, httptest.NewRequest(http.MethodGet, target, nil))
}

func uid(i int) string { return fmt.Sprintf("1.2.826.0.1.3680043.10.1137.%d", i) }

// TestIIDResolvesListsInOneQuery checks that IHE Invoke Image Display resolves a list of
// Study Instance UIDs, or of accession numbers, with one index query, and opens the
// studies in the order the request lists them.
func TestIIDResolvesListsInOneQuery(t *testing.T) {
	var studies []study
	for i := range 6 {
		studies = append(studies, study{uid: uid(i), date: fmt.Sprintf("202401%02d", i+1), acc: fmt.Sprintf("ACC%d", i), desc: "CT", modality: "CT", class: ctClass, pid: "P1", issuer: "H"})
	}
	// A second study with accession ACC2 (accession numbers are not unique everywhere).
	studies = append(studies, study{uid: uid(99), date: "20230101", acc: "ACC2", desc: "CT", modality: "CT", class: ctClass, pid: "P1", issuer: "H"})
	v := newEnv(t, studies, nil)
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"studyUID=" + uid(3) + "," + uid(1) + "," + uid(5) + ",1.2.3.404", []string{uid(3), uid(1), uid(5)}},
		{"accessionNumber=ACC4,ACC2,NOPE,ACC0", []string{uid(4), uid(2), uid(99), uid(0)}},
	} {
		v.idx.reset()
		rec := v.get(t, "/IHEInvokeImageDisplay?requestType=STUDY&"+c.query)
		if rec.Code != http.StatusFound {
			t.Fatalf("%s: %d %s", c.query, rec.Code, rec.Body)
		}
		loc, _ := url.Parse(rec.Header().Get("Location"))
		got := strings.Split(loc.Query().Get("studies"), ",")
		if !strings.HasSuffix(loc.Path, "/viewer/studies/"+c.want[0]) || fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Fatalf("%s: redirected to %s, want studies %v", c.query, loc, c.want)
		}
		if finds, _ := v.idx.counts(); finds != 1 {
			t.Fatalf("%s: %d index queries, want 1", c.query, finds)
		}
	}
}

// TestIIDListIsBounded checks that a request naming more studies than the limit is
// refused with a 400 page that says the limit, before the index is asked.
func TestIIDListIsBounded(t *testing.T) {
	v := newEnv(t, nil, nil)
	var uids, accs []string
	const limit = 100 // emr.DefaultMaxIIDStudies
	for i := range limit + 1 {
		uids = append(uids, uid(i))
		accs = append(accs, fmt.Sprintf("A%d", i))
	}
	for _, q := range []string{"studyUID=" + strings.Join(uids, ","), "accessionNumber=" + strings.Join(accs, ",")} {
		v.idx.reset()
		rec := v.get(t, "/IHEInvokeImageDisplay?requestType=STUDY&"+q)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), fmt.Sprint(limit)) {
			t.Fatalf("%.40s...: %d %.300s", q, rec.Code, rec.Body)
		}
		if finds, _ := v.idx.counts(); finds != 0 {
			t.Fatalf("%d index queries for a refused request", finds)
		}
	}
}

// chartStudies is a patient with studies of both service lines (by modality, SOP class,
// body part and description keyword), one a day, and a few studies of other patients.
func chartStudies() []study {
	var out []study
	for i := range 30 {
		s := study{uid: uid(i), date: fmt.Sprintf("2024%02d%02d", i/28+1, i%28+1), acc: fmt.Sprintf("ACC%d", i), desc: "CT Abdomen", modality: "CT", class: ctClass, pid: "P1", issuer: "H"}
		switch i % 5 {
		case 1:
			s.modality, s.class, s.desc = "XA", xaClass, "Angio"
		case 2:
			s.modality, s.class, s.desc = "US", usClass, "Echo-cardiography (TTE)"
		case 3:
			s.modality, s.class, s.desc = "ECG", ecg, "Resting ECG"
		case 4:
			s.bodyPart, s.modality, s.desc = "heart", "MR", "MR" // case-insensitive body part
		}
		out = append(out, s)
	}
	// Another patient with the same ID under another issuer, and one without issuer.
	out = append(out, study{uid: uid(100), date: "20240101", acc: "X1", desc: "CT", modality: "CT", class: ctClass, pid: "P1", issuer: "OTHER"})
	out = append(out, study{uid: uid(101), date: "20240101", acc: "X2", desc: "XA", modality: "XA", class: xaClass, pid: "P1"})
	return out
}

// TestChartPagesInIndex checks that the chart API asks the index for one page (and
// counts), never for every study of the patient, and that the page, the total and the
// service-line counts are those of the whole list.
func TestChartPagesInIndex(t *testing.T) {
	all := chartStudies()
	v := newEnv(t, all, nil)
	// The patient's studies newest first, with their service line (the reference
	// classification of the chart's rules).
	var mine []study
	for _, s := range all {
		if s.pid == "P1" && s.issuer == "H" {
			mine = append(mine, s)
		}
	}
	slices.Reverse(mine)
	line := func(s study) string {
		if s.modality == "XA" || s.modality == "ECG" || s.bodyPart != "" || strings.Contains(s.desc, "TTE") {
			return emr.Cardiology
		}
		return emr.Radiology
	}
	counts := map[string]int{}
	for _, s := range mine {
		counts[line(s)]++
	}
	for _, c := range []struct {
		query   string
		service string
		offset  int
		limit   int
	}{
		{"limit=5&offset=5", "", 5, 5},
		{"limit=4&offset=28", "", 28, 4},
		{"limit=3&offset=2&service=cardiology", emr.Cardiology, 2, 3},
		{"limit=3&service=radiology", emr.Radiology, 0, 3},
		{"limit=2&offset=1000", "", 1000, 2},
	} {
		v.idx.reset()
		rec := v.get(t, "/emr/v1/patients/P1/studies?issuer=H&"+c.query)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", c.query, rec.Code, rec.Body)
		}
		var ch emr.Chart
		if err := json.Unmarshal(rec.Body.Bytes(), &ch); err != nil {
			t.Fatal(err)
		}
		var want []string
		total := 0
		for _, s := range mine {
			if c.service != "" && line(s) != c.service {
				continue
			}
			total++
			if total > c.offset && len(want) < c.limit {
				want = append(want, s.uid+" "+line(s))
			}
		}
		var got []string
		for _, s := range ch.Studies {
			got = append(got, s.StudyInstanceUID+" "+s.ServiceLine)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || ch.Total != total || ch.ServiceLineCounts[emr.Cardiology] != counts[emr.Cardiology] || ch.ServiceLineCounts[emr.Radiology] != counts[emr.Radiology] {
			t.Fatalf("%s:\n got %v total %d counts %v\nwant %v total %d counts %v", c.query, got, ch.Total, ch.ServiceLineCounts, want, total, counts)
		}
		// The page is read from the index, not the patient's whole list: at most the page
		// and the page again (its service lines).
		if _, records := v.idx.counts(); records > 2*c.limit {
			t.Fatalf("%s: the index answered %d records for a page of %d", c.query, records, c.limit)
		}
	}
}

// TestIntegerParameters checks that integer parameters out of range, negative or
// overflowing are refused with 400, never wrapped or panicking.
func TestIntegerParameters(t *testing.T) {
	v := newEnv(t, chartStudies(), nil)
	for _, q := range []string{
		"/emr/v1/patients/P1/studies?issuer=H&limit=9223372036854775807",
		"/emr/v1/patients/P1/studies?issuer=H&limit=99999999999999999999",
		"/emr/v1/patients/P1/studies?issuer=H&limit=-1",
		"/emr/v1/patients/P1/studies?issuer=H&offset=-1",
		"/emr/v1/patients/P1/studies?issuer=H&offset=9223372036854775807",
		"/emr/v1/patients/P1/chart?issuer=H&limit=-9223372036854775808",
		"/IHEInvokeImageDisplay?requestType=PATIENT&patientID=P1^^^H&mostRecentResults=9223372036854775807",
		"/IHEInvokeImageDisplay?requestType=PATIENT&patientID=P1^^^H&mostRecentResults=-1",
		"/IHEInvokeImageDisplay?requestType=PATIENT&patientID=P1^^^H&mostRecentResults=18446744073709551617",
		"/IHEInvokeImageDisplay?requestType=PATIENT&patientID=P1^^^H&mostRecentResults=101",
		"/emr/v1/patients/P1%00/studies?issuer=H",
		"/emr/v1/patients/P1/studies?issuer=H%ff",
		"/IHEInvokeImageDisplay?requestType=STUDY&accessionNumber=A%00B",
	} {
		if rec := v.get(t, q); rec.Code != http.StatusBadRequest {
			t.Errorf("%s: %d %.200s", q, rec.Code, rec.Body)
		}
	}
	// Link lifetimes: a number of seconds whose nanoseconds overflow is refused, not
	// wrapped into a short (or negative) lifetime.
	for _, ttl := range []string{"18446744074", "9223372037", "9223372036854775807", "-1", "604801"} {
		req := httptest.NewRequest(http.MethodPost, "/emr/v1/links", strings.NewReader(`{"scope":"patient","patientID":"P1","issuerOfPatientID":"H","ttlSeconds":`+ttl+`}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer minter")
		if rec := v.do(t, req); rec.Code != http.StatusBadRequest {
			t.Errorf("ttlSeconds=%s: %d %.300s", ttl, rec.Code, rec.Body)
		}
	}
}

// TestIIDPatientIsBounded checks requestType=PATIENT: one index query for the exact
// patient, reading at most one study more than a request may open, and a 400 page
// when more match than MaxIIDStudies.
func TestIIDPatientIsBounded(t *testing.T) {
	v := newEnv(t, chartStudies(), func(s *emr.Service) { s.MaxIIDStudies = 5 })
	for _, c := range []struct {
		query   string
		code    int
		studies int
	}{
		{"patientID=P1^^^H&mostRecentResults=3", http.StatusFound, 3},
		{"patientID=P1^^^H&mostRecentResults=5&lowerDateTime=2024-01-20T13:00", http.StatusFound, 5},
		{"patientID=P1^^^H&lowerDateTime=2024-01-27", http.StatusFound, 4},
		{"patientID=P1^^^H&modalitiesInStudy=XA", http.StatusBadRequest, 0}, // 6 match
		{"patientID=P1^^^H", http.StatusBadRequest, 0},
		{"patientID=P1^^^H&mostRecentResults=6", http.StatusBadRequest, 0},
		{"patientID=P1^^^OTHER", http.StatusFound, 1},
		{"patientID=P1", http.StatusFound, 1}, // the patient without issuer
		{"patientID=P*^^^H&mostRecentResults=1", http.StatusNotFound, 0},
		{"patientID=P1%01^^^H", http.StatusBadRequest, 0},
	} {
		v.idx.reset()
		rec := v.get(t, "/IHEInvokeImageDisplay?requestType=PATIENT&"+c.query)
		if rec.Code != c.code {
			t.Fatalf("%s: %d %.300s", c.query, rec.Code, rec.Body)
		}
		if c.code == http.StatusFound {
			loc, _ := url.Parse(rec.Header().Get("Location"))
			n := 1
			if s := loc.Query().Get("studies"); s != "" {
				n = len(strings.Split(s, ","))
			}
			if n != c.studies {
				t.Fatalf("%s: %d studies opened (%s), want %d", c.query, n, loc, c.studies)
			}
		}
		if finds, records := v.idx.counts(); finds > 1 || records > 6 {
			t.Fatalf("%s: %d index queries, %d records", c.query, finds, records)
		}
	}
	// An accession list whose studies are more than the limit.
	v2 := newEnv(t, []study{
		{uid: uid(1), date: "20240101", acc: "SAME", desc: "CT", modality: "CT", class: ctClass, pid: "P1", issuer: "H"},
		{uid: uid(2), date: "20240102", acc: "SAME", desc: "CT", modality: "CT", class: ctClass, pid: "P1", issuer: "H"},
		{uid: uid(3), date: "20240103", acc: "SAME", desc: "CT", modality: "CT", class: ctClass, pid: "P1", issuer: "H"},
	}, func(s *emr.Service) { s.MaxIIDStudies = 2 })
	if rec := v2.get(t, "/IHEInvokeImageDisplay?requestType=STUDY&accessionNumber=SAME"); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "more than 2 studies") {
		t.Fatalf("accession of 3 studies: %d %.300s", rec.Code, rec.Body)
	}
	if rec := v2.get(t, "/IHEInvokeImageDisplay?requestType=STUDY&studyUID="+uid(1)+","+uid(2)+","+uid(3)); rec.Code != http.StatusBadRequest {
		t.Fatalf("3 study UIDs: %d %.300s", rec.Code, rec.Body)
	}
}

// TestChartClassificationAgrees checks that the service lines the chart gets from the
// index are those of ServiceLines.Classify, for the default rules and configured ones.
func TestChartClassificationAgrees(t *testing.T) {
	for _, lines := range []emr.ServiceLines{{}, {Modalities: []string{"mr"}, Keywords: []string{"angio", "ECG"}}} {
		v := newEnv(t, chartStudies(), func(s *emr.Service) { s.ServiceLines = lines })
		rec := v.get(t, "/emr/v1/patients/P1/studies?issuer=H&limit=500")
		var ch emr.Chart
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &ch) != nil || ch.Total != 30 {
			t.Fatalf("%d %.300s", rec.Code, rec.Body)
		}
		ctx := index.WithScope(context.Background(), index.Scope{Patient: &index.PatientKey{ID: "P1", Issuer: "H"}})
		studies, err := v.idx.Index.Find(ctx, index.Query{Level: index.StudyLevel})
		if err != nil {
			t.Fatal(err)
		}
		series, err := v.idx.Index.Find(ctx, index.Query{Level: index.SeriesLevel})
		if err != nil {
			t.Fatal(err)
		}
		parts := map[string][]string{}
		for _, se := range series.Series {
			parts[se.StudyInstanceUID] = append(parts[se.StudyInstanceUID], se.BodyPartExamined)
		}
		n := 0
		for i, st := range studies.Studies {
			want := lines.Classify(&st, parts[st.StudyInstanceUID])
			if ch.Studies[i].StudyInstanceUID != st.StudyInstanceUID || ch.Studies[i].ServiceLine != want {
				t.Fatalf("%+v: %s %s, Classify says %s", lines, ch.Studies[i].StudyInstanceUID, ch.Studies[i].ServiceLine, want)
			}
			if want == emr.Cardiology {
				n++
			}
		}
		if ch.ServiceLineCounts[emr.Cardiology] != n || ch.ServiceLineCounts[emr.Radiology] != 30-n {
			t.Fatalf("%+v: counts %v, want %d cardiology", lines, ch.ServiceLineCounts, n)
		}
	}
}

// downIndex is an index that cannot answer.
type downIndex struct{}

func (downIndex) Find(context.Context, index.Query) (*index.Result, error) {
	return nil, errors.New("the index is down")
}

// TestIIDParameters pins each IHE Invoke Image Display parameter's answer: the page's
// status and text for bad, unknown, misplaced and repeated parameters (the first value
// of a repeated one is read), which error wins when several are wrong, and where valid
// requests lead.
func TestIIDParameters(t *testing.T) {
	long := strings.Repeat("x", 65)
	envs := map[bool]*env{}
	for _, ohif := range []bool{false, true} {
		envs[ohif] = newEnv(t, chartStudies(), func(s *emr.Service) {
			s.MaxIIDStudies = 5
			if ohif {
				s.OHIFURL = "http://ohif.test/v?s={studies}"
			}
		})
	}
	for _, c := range []struct {
		ohif  bool // with OHIF configured
		query string
		code  int
		text  string // the page's text, or the redirect's path and query
	}{
		// Parameters of every request, in the order they are checked.
		{false, "foo=1&viewerType=bad", 400, `The parameter "foo" is not part of IHE Invoke Image Display.`},
		{false, "requestType=SERIES&viewerType=bad&diagnosticQuality=maybe", 400, `viewerType "bad" is not available here; use IHE_BIR (the built-in viewer).`},
		{false, "requestType=STUDY&studyUID=" + uid(1) + "&viewerType=OHIF", 400, `viewerType "OHIF" is not available here; use IHE_BIR (the built-in viewer).`},
		{true, "requestType=STUDY&studyUID=" + uid(1) + "&viewerType=CUSTOM", 400, `viewerType "CUSTOM" is not available here; use IHE_BIR (the built-in viewer) or OHIF.`},
		{true, "requestType=STUDY&studyUID=" + uid(1) + "&viewerType=ohif", 302, "http://ohif.test/v?s=" + uid(1)},
		{true, "requestType=STUDY&studyUID=" + uid(1), 302, "http://ohif.test/v?s=" + uid(1)},
		{true, "requestType=STUDY&studyUID=" + uid(1) + "&viewerType=IHE_BIR", 302, "/viewer/studies/" + uid(1)},
		{false, "requestType=&diagnosticQuality=maybe&keyImagesOnly=yes", 400, `diagnosticQuality must be true or false, not "maybe".`},
		{false, "requestType=&keyImagesOnly=yes", 400, `keyImagesOnly must be true or false, not "yes".`},
		{false, "requestType=STUDY&studyUID=" + uid(1) + "&diagnosticQuality=TRUE&keyImagesOnly=false", 302, "/viewer/studies/" + uid(1) + "?quality=diagnostic"},
		{false, "", 400, "requestType is missing: STUDY or PATIENT."},
		{false, "requestType=patient", 400, `requestType "patient" is not supported: STUDY or PATIENT.`},
		// STUDY: the parameters of PATIENT are refused first (even empty), then both or
		// neither of studyUID and accessionNumber, then the list.
		{false, "requestType=STUDY&studyUID=abc&accessionNumber=A&lowerDateTime=", 400, "lowerDateTime belongs to requestType=PATIENT, not STUDY."},
		{false, "requestType=STUDY&studyUID=abc&patientName=X&patientID=X", 400, "patientID belongs to requestType=PATIENT, not STUDY."},
		{false, "requestType=STUDY&studyUID=abc&accessionNumber=A", 400, "Give either studyUID or accessionNumber, not both."},
		{false, "requestType=STUDY&studyUID=&accessionNumber=", 400, "requestType=STUDY needs studyUID or accessionNumber."},
		{false, "requestType=STUDY&studyUID=&accessionNumber=ACC3", 302, "/viewer/studies/" + uid(3)},
		{false, "requestType=STUDY&studyUID=bad&studyUID=" + uid(1), 400, `"bad" is not a valid Study Instance UID.`},
		{false, "requestType=STUDY&studyUID=" + uid(1) + "&studyUID=bad", 302, "/viewer/studies/" + uid(1)},
		{false, "requestType=STUDY&studyUID=" + uid(1) + ",," + uid(2), 400, `"" is not a valid Study Instance UID.`},
		{false, "requestType=STUDY&accessionNumber=A*", 400, `"A*" is not an accession number.`},
		{false, `requestType=STUDY&accessionNumber=A%5CB`, 400, `"A\\B" is not an accession number.`},
		{false, "requestType=STUDY&accessionNumber=12345678901234567", 400, `"12345678901234567" is not an accession number.`},
		{false, "requestType=STUDY&accessionNumber=ACC1,,ACC2", 400, `"" is not an accession number.`},
		// PATIENT: the parameters of STUDY are refused first (even empty), then
		// patientID, the date-times, their order, mostRecentResults, modalitiesInStudy.
		{false, "requestType=PATIENT&patientID=&studyUID=", 400, "studyUID belongs to requestType=STUDY, not PATIENT."},
		{false, "requestType=PATIENT&patientID=P1^^^H&accessionNumber=", 400, "accessionNumber belongs to requestType=STUDY, not PATIENT."},
		{false, "requestType=PATIENT&patientID=&lowerDateTime=bad", 400, "requestType=PATIENT needs patientID (ID^^^Issuer)."},
		{false, "requestType=PATIENT&patientID=%5E%5E%5EH", 400, `the patient ID "^^^H" is empty or longer than 64 characters.`},
		{false, "requestType=PATIENT&patientID=" + long, 400, `the patient ID "` + long + `" is empty or longer than 64 characters.`},
		{false, "requestType=PATIENT&patientID=P1%5E%5E%5E" + long, 400, `the issuer of patient ID "P1^^^` + long + `" is longer than 64 characters or not text.`},
		{false, "requestType=PATIENT&patientID=P1^^^H&lowerDateTime=bad&upperDateTime=bad", 400, `lowerDateTime "bad" is not a date-time (YYYY-MM-DDThh:mm:ss).`},
		{false, "requestType=PATIENT&patientID=P1^^^H&upperDateTime=soon&mostRecentResults=0", 400, `upperDateTime "soon" is not a date-time (YYYY-MM-DDThh:mm:ss).`},
		{false, "requestType=PATIENT&patientID=P1^^^H&lowerDateTime=2024-01-02T10:00&upperDateTime=2024-01-02T09:00&mostRecentResults=0", 400, "lowerDateTime is after upperDateTime."},
		{false, "requestType=PATIENT&patientID=P1^^^H&mostRecentResults=x&modalitiesInStudy=C;T", 400, `mostRecentResults must be a whole number from 1 to 5, not "x".`},
		{false, "requestType=PATIENT&patientID=P1^^^H&modalitiesInStudy=CT,", 400, `"" is not a modality code (CT, MR, XA, ...).`},
		{false, "requestType=PATIENT&patientID=P1^^^H&mostRecentResults=1&mostRecentResults=x", 302, "/viewer/studies/" + uid(29)},
		{false, "requestType=PATIENT&patientID=P1^^^H&patientName=X&patientBirthDate=Y&mostRecentResults=1", 302, "/viewer/studies/" + uid(29)},
		{false, "requestType=PATIENT&patientID=P1%5E%5E%5E%26H%26ISO&mostRecentResults=1", 302, "/viewer/studies/" + uid(29)},  // the namespace ID, else
		{false, "requestType=PATIENT&patientID=P1%5E%5E%5EH%26X%26ISO&mostRecentResults=1", 302, "/viewer/studies/" + uid(29)}, // the universal ID
		{false, "requestType=PATIENT&patientID=P1%5E%5E%5E%26%26ISO", 302, "/viewer/studies/" + uid(101)},
		{false, "requestType=PATIENT&patientID=P1^^^H&modalitiesInStudy=XA,US&mostRecentResults=3", 302, "/viewer/studies/" + uid(27) + "?studies=" + url.QueryEscape(uid(27)+","+uid(26)+","+uid(22))},
		{false, "requestType=PATIENT&patientID=P1^^^H&lowerDateTime=20240120T130000&upperDateTime=2024-01-24T11:00", 302, "/viewer/studies/" + uid(22) + "?studies=" + url.QueryEscape(uid(22)+","+uid(21)+","+uid(20))},
		{false, "requestType=PATIENT&patientID=P1^^^H&upperDateTime=2024-01-03T11:59:59", 302, "/viewer/studies/" + uid(1) + "?studies=" + url.QueryEscape(uid(1)+","+uid(0))},
		{false, "requestType=PATIENT&patientID=P1^^^H&lowerDateTime=2030-01-01", 404, "The archive has no study of this patient that matches the request."},
		{false, "requestType=STUDY&studyUID=1.2.3.404", 404, "The archive has no study with the given identifiers. The images may not have arrived yet."},
	} {
		rec := envs[c.ohif].get(t, "/IHEInvokeImageDisplay?"+c.query)
		got := rec.Header().Get("Location")
		if rec.Code != http.StatusFound {
			got = rec.Body.String()
			if i, j := strings.Index(got, "<p>"), strings.Index(got, "</p>"); i >= 0 && j > i {
				got = html.UnescapeString(got[i+3 : j])
			}
		}
		got = strings.TrimPrefix(got, "http://lumen.test")
		if rec.Code != c.code || got != c.text {
			t.Errorf("%s:\n got %d %s\nwant %d %s", c.query, rec.Code, got, c.code, c.text)
		}
	}
	// An index that cannot answer: 503, and a page that does not say why.
	v := newEnv(t, nil, func(s *emr.Service) { s.Index = downIndex{} })
	if rec := v.get(t, "/IHEInvokeImageDisplay?requestType=STUDY&studyUID="+uid(1)); rec.Code != http.StatusServiceUnavailable ||
		!strings.Contains(rec.Body.String(), "The archive could not answer. Try again in a moment.") || strings.Contains(rec.Body.String(), "down") {
		t.Errorf("index down: %d %.300s", rec.Code, rec.Body)
	}
}

// TestMintNeedsServiceToken pins who may mint: a bearer token whose SHA-256 is
// configured (hex in either case), sent exactly as "Bearer <token>" (no spaces trimmed);
// anyone else is answered 401 with a challenge, and no configured digest refuses all.
func TestMintNeedsServiceToken(t *testing.T) {
	sum := sha256.Sum256([]byte("minter"))
	upper := strings.ToUpper(hex.EncodeToString(sum[:]))
	for _, c := range []struct {
		hashes []string
		header string
		code   int
	}{
		{nil, "Bearer minter", 401},
		{[]string{upper}, "Bearer minter", 201},
		{[]string{"0123", upper}, "Bearer minter", 201},
		{[]string{upper}, "", 401},
		{[]string{upper}, "Bearer ", 401},
		{[]string{upper}, "bearer minter", 401},
		{[]string{upper}, "Bearer  minter", 401},
		{[]string{upper}, "Bearer minter ", 401},
		{[]string{upper}, "Basic minter", 401},
		{[]string{upper}, "Bearer other", 401},
	} {
		v := newEnv(t, []study{{uid: uid(1), date: "20240101", acc: "A1", desc: "CT", modality: "CT", class: ctClass, pid: "P1", issuer: "H"}},
			func(s *emr.Service) { s.MintTokenHashes = c.hashes })
		req := httptest.NewRequest(http.MethodPost, "/emr/v1/links", strings.NewReader(`{"scope":"study","studyInstanceUID":"`+uid(1)+`"}`))
		req.Header.Set("Content-Type", "application/json")
		if c.header != "" {
			req.Header.Set("Authorization", c.header)
		}
		rec := v.do(t, req)
		if rec.Code != c.code || c.code == 401 && rec.Header().Get("WWW-Authenticate") != `Bearer realm="lumen"` {
			t.Errorf("%d digests, %q: %d %q %.200s", len(c.hashes), c.header, rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body)
		}
	}
}
