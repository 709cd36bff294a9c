package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/emr"
	"github.com/lumenpacs/lumen/emr/links"
	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

const mintSecret = "emr-service-account-secret"

var (
	chartPatient = gen.Patient{ID: "LUMEN-C0001", Issuer: "LUMEN-TEST", Name: "Chart^Carla", BirthDate: "19610203", Sex: "F"}
	// twin has the same PatientID under another issuer: another person.
	twin = gen.Patient{ID: "LUMEN-C0001", Issuer: "OTHER-HOSP", Name: "Twin^Tom", BirthDate: "19700101", Sex: "M"}
)

func linkKey(id string, fill byte) string {
	return id + ":" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, 32))
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// emrServer starts Lumen with links (key k1), a minting account and frame ancestors,
// and stores the chart patient's studies and the twin's.
type emrEnv struct {
	s    *lumenServer
	base string
	log  *syncBuffer
	objs map[string][]gen.Object // by patient issuer
}

func startEMR(t *testing.T, mutate func(*Config)) *emrEnv {
	t.Helper()
	sum := sha256.Sum256([]byte(mintSecret))
	logs := &syncBuffer{}
	s := startLumenLogged(t, func(c *Config) {
		c.EMR.LinkKeys = []string{linkKey("k1", 1)}
		c.EMR.MintTokenSHA256 = []string{hex.EncodeToString(sum[:])}
		if mutate != nil {
			mutate(c)
		}
	}, slog.New(slog.NewJSONHandler(logs, nil)))
	e := &emrEnv{s: s, base: "http://" + s.addr.HTTP, log: logs, objs: map[string][]gen.Object{}}
	for _, p := range []gen.Patient{chartPatient, twin} {
		objs, err := gen.ChartPatient(7, p, 6)
		if err != nil {
			t.Fatal(err)
		}
		stowAll(t, e.base+"/dicom-web", objs)
		e.objs[p.Issuer] = objs
	}
	return e
}

func (e *emrEnv) get(t *testing.T, path string, header ...string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.base+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func (e *emrEnv) mint(t *testing.T, auth string, body any) (int, emr.MintResponse) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, e.base+"/emr/v1/links", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out emr.MintResponse
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (e *emrEnv) studyOf(issuer, modality string) string {
	for _, o := range e.objs[issuer] {
		if o.Modality == modality {
			return o.StudyUID
		}
	}
	return ""
}

// TestChartAPI checks the chart API: the patient's studies newest first, sorted into
// radiology and cardiology, the filters, paging, the exact (PatientID, issuer) pair, the
// links of each study, and 400 for bad parameters.
func TestChartAPI(t *testing.T) {
	e := startEMR(t, nil)
	chart := func(q string) emr.Chart {
		t.Helper()
		code, _, b := e.get(t, "/emr/v1/patients/LUMEN-C0001/studies?issuer=LUMEN-TEST"+q)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", q, code, b)
		}
		var c emr.Chart
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	all := chart("")
	var got []string
	for _, s := range all.Studies {
		got = append(got, fmt.Sprintf("%s %s %s %v %d/%d", s.Date, s.Description, s.ServiceLine, s.Kinds, s.NumberOfSeries, s.NumberOfInstances))
	}
	want := []string{
		"2026-04-10 Echocardiography cardiology [cine] 1/1",
		"2025-03-20 Coronary angiography cardiology [ecg cine] 2/2",
		"2024-02-14 MR Knee radiology [images] 1/4",
		"2023-01-05 CT Abdomen radiology [images] 1/6",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || all.Total != 4 || all.ServiceLineCounts["cardiology"] != 2 || all.ServiceLineCounts["radiology"] != 2 {
		t.Fatalf("chart:\n%s\nwant\n%s\n(total %d, counts %v)", strings.Join(got, "\n"), strings.Join(want, "\n"), all.Total, all.ServiceLineCounts)
	}
	ct := all.Studies[3]
	if ct.StudyInstanceUID != e.studyOf("LUMEN-TEST", "CT") || ct.AccessionNumber == "" || ct.FHIRReference != "ImagingStudy/"+ct.StudyInstanceUID ||
		!strings.HasSuffix(ct.ViewerURL, "/viewer/studies/"+ct.StudyInstanceUID) || !strings.Contains(ct.IIDURL, "studyUID="+ct.StudyInstanceUID) {
		t.Fatalf("CT study links: %+v", ct)
	}
	for _, s := range all.Studies {
		resp, err := http.Get(s.ThumbnailURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/jpeg" && resp.Header.Get("Content-Type") != "image/png" || resp.Header.Get("Warning") != "" {
			t.Fatalf("%s thumbnail: %d %s %s", s.Description, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Warning"))
		}
	}
	for q, want := range map[string]int{
		"&service=cardiology":             2,
		"&service=radiology":              2,
		"&modality=CT":                    1,
		"&modality=ECG":                   1,
		"&from=2024-01-01":                3,
		"&from=2024-01-01&to=20251231":    2,
		"&to=2023-12-31":                  1,
		"&service=cardiology&modality=XA": 1,
	} {
		if c := chart(q); c.Total != want || len(c.Studies) != want {
			t.Errorf("%s: total %d, %d studies, want %d", q, c.Total, len(c.Studies), want)
		}
	}
	if p := chart("&limit=1&offset=1"); p.Total != 4 || len(p.Studies) != 1 || p.Studies[0].Description != "Coronary angiography" {
		t.Fatalf("paging: %+v", p)
	}
	// The pair: without the issuer nothing matches; the twin has his own four studies.
	if code, _, b := e.get(t, "/emr/v1/patients/LUMEN-C0001/studies"); code != http.StatusOK || !strings.Contains(string(b), `"total":0`) {
		t.Fatalf("without issuer: %d %s", code, b)
	}
	code, _, b := e.get(t, "/emr/v1/patients/LUMEN-C0001/studies?issuer=OTHER-HOSP")
	var tw emr.Chart
	json.Unmarshal(b, &tw)
	if code != http.StatusOK || tw.Total != 4 || tw.Studies[0].StudyInstanceUID == all.Studies[0].StudyInstanceUID {
		t.Fatalf("twin: %d %+v", code, tw)
	}
	for _, q := range []string{"&service=oncology", "&from=2024-13", "&to=yesterday", "&limit=0", "&limit=9999", "&offset=-1", "&modality=c%3Bt"} {
		if code, _, b := e.get(t, "/emr/v1/patients/LUMEN-C0001/studies?issuer=LUMEN-TEST"+q); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s", q, code, b)
		}
	}
}

// TestSignedLinks checks minting and using signed links: who may mint, what each scope
// opens, tampered, foreign, unknown-key and expired tokens, key rotation, and the audit
// log of every use.
func TestSignedLinks(t *testing.T) {
	e := startEMR(t, nil)
	ct, xa := e.studyOf("LUMEN-TEST", "CT"), e.studyOf("LUMEN-TEST", "XA")
	twinCT := e.studyOf("OTHER-HOSP", "CT")

	// Minting needs the service account's token and a valid body.
	if code, _ := e.mint(t, "", map[string]any{"scope": "study", "studyInstanceUID": ct}); code != http.StatusUnauthorized {
		t.Fatalf("mint without a token: %d", code)
	}
	if code, _ := e.mint(t, "wrong", map[string]any{"scope": "study", "studyInstanceUID": ct}); code != http.StatusUnauthorized {
		t.Fatalf("mint with a wrong token: %d", code)
	}
	for _, body := range []map[string]any{{"scope": "site"}, {"scope": "study"}, {"scope": "study", "studyInstanceUID": "1.2.3.999"},
		{"scope": "patient"}, {"scope": "study", "studyInstanceUID": ct, "ttlSeconds": 99999999}} {
		if code, _ := e.mint(t, mintSecret, body); code != http.StatusBadRequest && code != http.StatusNotFound {
			t.Errorf("mint %v: %d", body, code)
		}
	}
	code, study := e.mint(t, mintSecret, map[string]any{"scope": "study", "studyInstanceUID": ct})
	if code != http.StatusCreated || study.Token == "" || study.KeyID != "k1" || !strings.Contains(study.ViewerURL, "token=") {
		t.Fatalf("mint study: %d %+v", code, study)
	}
	code, patient := e.mint(t, mintSecret, map[string]any{"scope": "patient", "patientID": chartPatient.ID, "issuerOfPatientID": chartPatient.Issuer})
	if code != http.StatusCreated || patient.ChartURL == "" {
		t.Fatalf("mint patient: %d %+v", code, patient)
	}
	if strings.Contains(patient.Token, chartPatient.ID) {
		t.Fatal("the patient ID is readable in the token")
	}
	tok := func(v string) string { return "token=" + url.QueryEscape(v) }
	dw := "/dicom-web/studies/"
	for _, c := range []struct {
		name string
		path string
		want int
	}{
		{"study link: its thumbnail", dw + ct + "/thumbnail?" + tok(study.Token), 200},
		{"study link: its metadata", dw + ct + "/metadata?" + tok(study.Token), 200},
		{"study link: its viewer", "/viewer/studies/" + ct + "?" + tok(study.Token), 200},
		{"study link: QIDO is limited to the study", "/dicom-web/studies?" + tok(study.Token), 200},
		{"study link: another study", dw + xa + "/thumbnail?" + tok(study.Token), 403},
		{"study link: another study by QIDO", "/dicom-web/studies?StudyInstanceUID=" + xa + "&" + tok(study.Token), 403},
		{"study link: the chart", "/emr/v1/patients/LUMEN-C0001/chart?issuer=LUMEN-TEST&" + tok(study.Token), 403},
		{"study link: not a link surface", "/metrics?" + tok(study.Token), 403},
		{"patient link: the chart", "/emr/v1/patients/LUMEN-C0001/chart?issuer=LUMEN-TEST&" + tok(patient.Token), 200},
		{"patient link: the chart API", "/emr/v1/patients/LUMEN-C0001/studies?issuer=LUMEN-TEST&" + tok(patient.Token), 200},
		{"patient link: a study's thumbnail", dw + xa + "/thumbnail?" + tok(patient.Token), 200},
		{"patient link: QIDO naming the patient", "/dicom-web/studies?PatientID=LUMEN-C0001&IssuerOfPatientID=LUMEN-TEST&" + tok(patient.Token), 200},
		{"patient link: QIDO for one of its studies", "/dicom-web/studies?StudyInstanceUID=" + ct + "&" + tok(patient.Token), 200},
		{"patient link: the twin's chart", "/emr/v1/patients/LUMEN-C0001/chart?issuer=OTHER-HOSP&" + tok(patient.Token), 403},
		{"patient link: the twin's study", dw + twinCT + "/thumbnail?" + tok(patient.Token), 403},
		{"patient link: QIDO without the patient", "/dicom-web/studies?" + tok(patient.Token), 403},
		{"patient link: QIDO for the twin", "/dicom-web/studies?PatientID=LUMEN-C0001&IssuerOfPatientID=OTHER-HOSP&" + tok(patient.Token), 403},
	} {
		code, _, b := e.get(t, c.path, "Accept", "application/dicom+json, image/*, text/html")
		if code != c.want {
			t.Errorf("%s: %d, want %d: %.200s", c.name, code, c.want, b)
		}
	}
	// QIDO with a link answers within its scope only.
	_, _, b := e.get(t, "/dicom-web/studies?"+tok(study.Token), "Accept", "application/dicom+json")
	if n := strings.Count(string(b), `"0020000D"`); n != 1 || !strings.Contains(string(b), ct) {
		t.Fatalf("QIDO with a study link: %d studies", n)
	}
	_, _, b = e.get(t, "/dicom-web/studies?PatientID=LUMEN-C0001&IssuerOfPatientID=&"+tok(patient.Token), "Accept", "application/dicom+json")
	_, _, b2 := e.get(t, "/dicom-web/studies?PatientID=LUMEN-C0001&IssuerOfPatientID=LUMEN-TEST&"+tok(patient.Token), "Accept", "application/dicom+json")
	if strings.Count(string(b2), `"0020000D"`) != 4 || strings.Contains(string(b2), twinCT) || len(b) > 0 && strings.Contains(string(b), twinCT) {
		t.Fatalf("QIDO with a patient link shows %d studies (twin: %v)", strings.Count(string(b2), `"0020000D"`), strings.Contains(string(b2), twinCT))
	}
	// Writing with a link is refused.
	resp, err := http.Post(e.base+"/dicom-web/studies?"+tok(study.Token), `multipart/related; type="application/dicom"`, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("STOW with a link: %d", resp.StatusCode)
	}

	// Tampered, foreign-key and unknown-key tokens.
	parts := strings.Split(study.Token, ".")
	forged := (&links.Signer{Keys: []links.Key{{ID: "k1", Secret: bytes.Repeat([]byte{9}, 32)}}, Active: "k1"})
	fTok, _, _ := forged.Sign(links.ScopeStudy, ct, time.Hour)
	uTok, _, _ := (&links.Signer{Keys: []links.Key{{ID: "k9", Secret: bytes.Repeat([]byte{1}, 32)}}, Active: "k9"}).Sign(links.ScopeStudy, ct, time.Hour)
	other := base64.RawURLEncoding.EncodeToString([]byte(`{"scope":"study","sub":"` + xa + `","exp":4102444800,"jti":"x"}`))
	for name, bad := range map[string]string{
		"claims changed": parts[0] + "." + other + "." + parts[2],
		"signature cut":  parts[0] + "." + parts[1] + "." + parts[2][:20],
		"another secret": fTok,
		"unknown key":    uTok,
		"not a token":    "hello",
	} {
		code, _, b := e.get(t, "/viewer/studies/"+ct+"?"+tok(bad))
		if code != http.StatusForbidden || !strings.Contains(string(b), "not valid") {
			t.Errorf("%s: %d %.120s", name, code, b)
		}
	}

	// Expiry: a one-second link, refused with a "link expired" page after it.
	code, short := e.mint(t, mintSecret, map[string]any{"scope": "study", "studyInstanceUID": ct, "ttlSeconds": 1})
	if code != http.StatusCreated {
		t.Fatal(code)
	}
	time.Sleep(1100 * time.Millisecond)
	if code, _, b := e.get(t, "/viewer/studies/"+ct+"?"+tok(short.Token)); code != http.StatusForbidden || !strings.Contains(string(b), "This link has expired") {
		t.Fatalf("expired link: %d %.300s", code, b)
	}

	// Audit: every use is logged, with the token's ID and never the patient ID.
	logs := e.log.String()
	for _, want := range []string{`"outcome":"admitted"`, `"outcome":"out of scope"`, `"outcome":"refused"`, `"outcome":"expired"`, `"msg":"audit: link minted"`, `"token_id":"` + study.TokenID + `"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
	// 17 table rows, 3 QIDO checks, 1 STOW, 5 bad tokens, 1 expired: 27 uses.
	if n := strings.Count(logs, `"msg":"audit: link use"`); n != 27 {
		t.Errorf("%d link uses logged, want 27", n)
	}
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "audit") && strings.Contains(line, chartPatient.ID) {
			t.Errorf("an audit line names the patient: %s", line)
		}
	}

	// Rotation: a server with k2 active and k1 still known accepts k1's links and
	// signs new ones with k2; once k1 is dropped, its links are refused.
	e.s.stop()
	restart := func(keys []string, active string) *lumenServer {
		return startLumen(t, func(c *Config) {
			c.Store.FS.Dir, c.Index.SQLite.Path = e.s.c.Store.FS.Dir, e.s.c.Index.SQLite.Path
			c.EMR.LinkKeys, c.EMR.LinkKey = keys, active
			c.EMR.MintTokenSHA256 = e.s.c.EMR.MintTokenSHA256
		})
	}
	r := restart([]string{linkKey("k2", 2), linkKey("k1", 1)}, "k2")
	e.base = "http://" + r.addr.HTTP
	if code, _, b := e.get(t, "/viewer/studies/"+ct+"?"+tok(study.Token)); code != http.StatusOK {
		t.Fatalf("k1 link after rotation: %d %.200s", code, b)
	}
	if code, fresh := e.mint(t, mintSecret, map[string]any{"scope": "study", "studyInstanceUID": ct}); code != http.StatusCreated || fresh.KeyID != "k2" {
		t.Fatalf("mint after rotation: %d %+v", code, fresh)
	}
	r.stop()
	r = restart([]string{linkKey("k2", 2)}, "k2")
	e.base = "http://" + r.addr.HTTP
	if code, _, _ := e.get(t, "/viewer/studies/"+ct+"?"+tok(study.Token)); code != http.StatusForbidden {
		t.Fatalf("k1 link after k1 was retired: %d", code)
	}
}

// TestInvokeImageDisplay checks IHE IID: each request type and parameter, and a page
// for each error.
func TestInvokeImageDisplay(t *testing.T) {
	e := startEMR(t, nil)
	ct, xa, us := e.studyOf("LUMEN-TEST", "CT"), e.studyOf("LUMEN-TEST", "XA"), e.studyOf("LUMEN-TEST", "US")
	acc := "CHL0103" // gen.ChartPatient: the XA study
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	iid := func(q string) (int, string, string) {
		t.Helper()
		resp, err := noRedirect.Get(e.base + "/IHEInvokeImageDisplay?" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Location"), string(b)
	}
	pid := url.QueryEscape("LUMEN-C0001^^^LUMEN-TEST")
	for _, c := range []struct {
		q        string
		location string // the viewer path and query the redirect must have
	}{
		{"requestType=STUDY&studyUID=" + ct, "/viewer/studies/" + ct},
		{"requestType=STUDY&studyUID=" + ct + "," + xa, "/viewer/studies/" + ct + "?studies=" + url.QueryEscape(ct+","+xa)},
		{"requestType=STUDY&accessionNumber=" + acc, "/viewer/studies/" + xa},
		{"requestType=STUDY&studyUID=" + ct + "&diagnosticQuality=true&viewerType=IHE_BIR", "/viewer/studies/" + ct + "?quality=diagnostic"},
		{"requestType=STUDY&studyUID=" + ct + ",1.2.3.404", "/viewer/studies/" + ct},
		{"requestType=PATIENT&patientID=" + pid, "/viewer/studies/" + us + "?studies="},
		{"requestType=PATIENT&patientID=" + pid + "&mostRecentResults=1", "/viewer/studies/" + us},
		{"requestType=PATIENT&patientID=" + pid + "&modalitiesInStudy=CT", "/viewer/studies/" + ct},
		{"requestType=PATIENT&patientID=" + pid + "&modalitiesInStudy=CT,XA&mostRecentResults=1", "/viewer/studies/" + xa},
		{"requestType=PATIENT&patientID=" + pid + "&lowerDateTime=2023-01-01T00:00:00&upperDateTime=2023-12-31T23:59:59", "/viewer/studies/" + ct},
		{"requestType=PATIENT&patientID=" + pid + "&lowerDateTime=2025-03-20T13:00:00&upperDateTime=2025-03-20T14:00:00", "/viewer/studies/" + xa},
		{"requestType=PATIENT&patientID=" + url.QueryEscape("LUMEN-C0001^^^&LUMEN-TEST&ISO") + "&mostRecentResults=1", "/viewer/studies/" + us},
	} {
		code, loc, body := iid(c.q)
		if code != http.StatusFound || !strings.Contains(loc, c.location) {
			t.Errorf("%s: %d %q (want %s) %.200s", c.q, code, loc, c.location, body)
		}
	}
	for _, c := range []struct {
		q    string
		code int
		text string
	}{
		{"", 400, "requestType is missing"},
		{"requestType=SERIES", 400, "not supported"},
		{"requestType=STUDY", 400, "needs studyUID or accessionNumber"},
		{"requestType=STUDY&studyUID=" + ct + "&accessionNumber=" + acc, 400, "not both"},
		{"requestType=STUDY&studyUID=abc", 400, "not a valid Study Instance UID"},
		{"requestType=STUDY&studyUID=" + ct + "&patientID=X", 400, "belongs to requestType=PATIENT"},
		{"requestType=STUDY&studyUID=1.2.3.404", 404, "No images found"},
		{"requestType=STUDY&accessionNumber=NOPE", 404, "No images found"},
		{"requestType=PATIENT", 400, "needs patientID"},
		{"requestType=PATIENT&patientID=" + pid + "&studyUID=" + ct, 400, "belongs to requestType=STUDY"},
		{"requestType=PATIENT&patientID=" + pid + "&mostRecentResults=0", 400, "mostRecentResults"},
		{"requestType=PATIENT&patientID=" + pid + "&lowerDateTime=yesterday", 400, "lowerDateTime"},
		{"requestType=PATIENT&patientID=" + pid + "&lowerDateTime=2026-01-01&upperDateTime=2025-01-01", 400, "after upperDateTime"},
		{"requestType=PATIENT&patientID=" + pid + "&modalitiesInStudy=C%3BT", 400, "not a modality"},
		{"requestType=PATIENT&patientID=LUMEN-C0001", 404, "No images found"}, // no issuer: another patient
		{"requestType=PATIENT&patientID=" + pid + "&lowerDateTime=2030-01-01", 404, "No images found"},
		{"requestType=STUDY&studyUID=" + ct + "&viewerType=CUSTOM", 400, "viewerType"},
		{"requestType=STUDY&studyUID=" + ct + "&diagnosticQuality=maybe", 400, "diagnosticQuality"},
		{"requestType=STUDY&studyUID=" + ct + "&keyImagesOnly=yes", 400, "keyImagesOnly"},
		{"requestType=STUDY&studyUID=" + ct + "&studyUid=" + ct, 400, "not part of IHE"},
	} {
		code, _, body := iid(c.q)
		if code != c.code || !strings.Contains(body, c.text) || !strings.Contains(body, "<h1>") {
			t.Errorf("%q: %d, want %d with %q: %.300s", c.q, code, c.code, c.text, body)
		}
	}

	// With OHIF configured, IID goes to OHIF unless the built-in viewer is asked for.
	o := startEMR(t, func(c *Config) { c.EMR.OHIFURL = "http://127.0.0.1:3000/viewer?StudyInstanceUIDs={studies}" })
	e.base = o.base
	ct = o.studyOf("LUMEN-TEST", "CT")
	if code, loc, _ := iid("requestType=STUDY&studyUID=" + ct); code != http.StatusFound || loc != "http://127.0.0.1:3000/viewer?StudyInstanceUIDs="+ct {
		t.Errorf("OHIF: %d %q", code, loc)
	}
	if code, loc, _ := iid("requestType=STUDY&studyUID=" + ct + "&viewerType=IHE_BIR"); code != http.StatusFound || !strings.Contains(loc, "/viewer/studies/"+ct) {
		t.Errorf("IHE_BIR with OHIF configured: %d %q", code, loc)
	}
}

// TestFHIR checks the FHIR ImagingStudy searches, read, Endpoint and CapabilityStatement.
func TestFHIR(t *testing.T) {
	e := startEMR(t, nil)
	ct, xa := e.studyOf("LUMEN-TEST", "CT"), e.studyOf("LUMEN-TEST", "XA")
	type bundle struct {
		ResourceType string `json:"resourceType"`
		Type         string `json:"type"`
		Total        int    `json:"total"`
		Link         []struct{ Relation, URL string }
		Entry        []struct {
			FullURL  string          `json:"fullUrl"`
			Resource json.RawMessage `json:"resource"`
			Search   struct{ Mode string }
		}
	}
	search := func(q string) bundle {
		t.Helper()
		code, h, b := e.get(t, "/fhir/ImagingStudy?"+q, "Accept", "application/fhir+json")
		if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "application/fhir+json") {
			t.Fatalf("%s: %d %s %.300s", q, code, h.Get("Content-Type"), b)
		}
		var bu bundle
		if err := json.Unmarshal(b, &bu); err != nil || bu.ResourceType != "Bundle" || bu.Type != "searchset" {
			t.Fatalf("%s: not a searchset Bundle: %v %.200s", q, err, b)
		}
		return bu
	}
	subject := "subject:identifier=" + url.QueryEscape("urn:lumen:issuer:LUMEN-TEST|LUMEN-C0001")
	for q, want := range map[string]int{
		subject: 4,
		"subject:identifier=" + url.QueryEscape("urn:lumen:issuer:OTHER-HOSP|LUMEN-C0001"): 4,
		"subject:identifier=LUMEN-C0001": 0, // no system: the patient without an issuer
		subject + "&modality=CT":         1,
		subject + "&modality=" + url.QueryEscape("http://dicom.nema.org/resources/ontology/DCM|XA"): 1,
		subject + "&modality=CT,MR":                                  2,
		subject + "&started=ge2024-01-01":                            3,
		subject + "&started=lt2024-02-14":                            1,
		subject + "&started=2025":                                    1,
		subject + "&started=ge2024&started=le2025-12":                2,
		"identifier=" + url.QueryEscape("urn:dicom:uid|urn:oid:"+ct): 1,
		"identifier=CHL0103":                                         1,
		"identifier=urn:oid:" + xa:                                   1,
	} {
		if b := search(q); b.Total != want || len(b.Entry) != want {
			t.Errorf("%s: total %d, %d entries, want %d", q, b.Total, len(b.Entry), want)
		}
	}
	// Paging, sort and include.
	p := search(subject + "&_count=3&_include=ImagingStudy:endpoint")
	if p.Total != 4 || len(p.Entry) != 4 || p.Entry[3].Search.Mode != "include" || !strings.Contains(string(p.Entry[3].Resource), "dicom-wado-rs") {
		t.Fatalf("include: total %d, %d entries", p.Total, len(p.Entry))
	}
	next := ""
	for _, l := range p.Link {
		if l.Relation == "next" {
			next = l.URL
		}
	}
	if !strings.Contains(next, "_offset=3") {
		t.Fatalf("next link %q", next)
	}
	asc := search(subject + "&_sort=started&_count=1")
	if !strings.Contains(string(asc.Entry[0].Resource), ct) {
		t.Fatal("_sort=started does not start with the oldest (CT) study")
	}
	// Read: the US-Core-shaped resource.
	code, _, b := e.get(t, "/fhir/ImagingStudy/"+xa)
	var is map[string]any
	if code != http.StatusOK || json.Unmarshal(b, &is) != nil {
		t.Fatalf("read: %d %.200s", code, b)
	}
	for _, want := range []string{`"resourceType":"ImagingStudy"`, `"system":"urn:dicom:uid","value":"urn:oid:` + xa, `"code":"ACSN"`, `"status":"available"`,
		`"system":"http://dicom.nema.org/resources/ontology/DCM","code":"XA"`, `"numberOfSeries":2`, `"numberOfInstances":2`,
		`"endpoint":[{"reference":"Endpoint/dicomweb"}]`, `"value":"LUMEN-C0001"`, `"sopClass":{"system":"urn:ietf:rfc:3986","code":"urn:oid:1.2.840.10008.5.1.4.1.1.12.1"}`, `"started":"2025-03-20T13:45:00`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("ImagingStudy lacks %s", want)
		}
	}
	series := is["series"].([]any)
	if len(series) != 2 || len(series[0].(map[string]any)["instance"].([]any)) != 1 {
		t.Fatalf("series %v", series)
	}
	if code, _, b := e.get(t, "/fhir/Endpoint/dicomweb"); code != http.StatusOK || !strings.Contains(string(b), `"address":"`+e.base+`/dicom-web"`) || !strings.Contains(string(b), `"code":"dicom-wado-rs"`) {
		t.Fatalf("Endpoint: %d %s", code, b)
	}
	if code, _, b := e.get(t, "/fhir/metadata"); code != http.StatusOK || !strings.Contains(string(b), `"CapabilityStatement"`) || !strings.Contains(string(b), `"4.0.1"`) {
		t.Fatalf("metadata: %d %.200s", code, b)
	}
	for _, c := range []struct {
		path string
		code int
	}{
		{"/fhir/ImagingStudy/1.2.3.404", 404}, {"/fhir/ImagingStudy/not-a-uid", 404}, {"/fhir/Endpoint/other", 404},
		{"/fhir/ImagingStudy?bodysite=chest", 400}, {"/fhir/ImagingStudy?started=soon", 400}, {"/fhir/ImagingStudy?_count=100000", 400},
		{"/fhir/ImagingStudy?_include=ImagingStudy:patient", 400}, {"/fhir/ImagingStudy?modality=c%3Bt", 400}, {"/fhir/ImagingStudy?_sort=description", 400},
	} {
		code, h, b := e.get(t, c.path)
		if code != c.code || !strings.Contains(string(b), "OperationOutcome") || !strings.HasPrefix(h.Get("Content-Type"), "application/fhir+json") {
			t.Errorf("%s: %d (want %d) %.200s", c.path, code, c.code, b)
		}
	}
	if code, _, _ := e.get(t, "/fhir/ImagingStudy/"+xa, "Accept", "application/fhir+xml"); code != http.StatusNotAcceptable {
		t.Errorf("XML: %d", code)
	}

	// Every kind of resource Lumen emits validates against the official FHIR R4 JSON
	// schema (run under Node).
	var resources []json.RawMessage
	for _, path := range []string{
		"/fhir/ImagingStudy/" + xa, "/fhir/ImagingStudy/" + ct, "/fhir/ImagingStudy/" + e.studyOf("LUMEN-TEST", "US"),
		"/fhir/ImagingStudy?" + subject + "&_include=ImagingStudy:endpoint&_count=2", "/fhir/ImagingStudy?identifier=NOPE",
		"/fhir/Endpoint/dicomweb", "/fhir/metadata", "/fhir/ImagingStudy/1.2.3.404", "/fhir/ImagingStudy?started=soon",
	} {
		_, _, b := e.get(t, path)
		resources = append(resources, b)
	}
	all, _ := json.Marshal(resources)
	dir := tools.NPM(t, "testdata/fhir")
	cmd := exec.Command("node", "validate.cjs")
	cmd.Dir, cmd.Stdin = dir, bytes.NewReader(all)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Count(string(out), "ok ") != len(resources) {
		t.Fatalf("FHIR R4 schema validation: %v\n%s", err, out)
	}
	t.Logf("FHIR R4 schema: %s", strings.Join(strings.Fields(string(out)), " "))
}

// TestHostHeaderEMR: the chart API, the widget, IHE IID and FHIR never write a forged
// Host header into their links; a host in dicomweb.allowed_hosts is used.
func TestHostHeaderEMR(t *testing.T) {
	s := startLumen(t, func(c *Config) { c.DICOMweb.AllowedHosts = []string{"pacs.example"} })
	base := "http://" + s.addr.HTTP
	objs, err := gen.ChartPatient(9, chartPatient, 2)
	if err != nil {
		t.Fatal(err)
	}
	stowAll(t, base+"/dicom-web", objs)
	paths := []string{
		"/emr/v1/patients/LUMEN-C0001/studies?issuer=LUMEN-TEST",
		"/emr/v1/patients/LUMEN-C0001/chart?issuer=LUMEN-TEST",
		"/fhir/ImagingStudy?_include=ImagingStudy:endpoint",
		"/IHEInvokeImageDisplay?requestType=STUDY&studyUID=" + objs[0].StudyUID,
		"/dicom-web/studies",
	}
	get := func(host, path string) string {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Host = host
		noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 400 {
			t.Fatalf("%s: %d %.200s", path, resp.StatusCode, b)
		}
		return string(b) + fmt.Sprint(resp.Header)
	}
	for _, p := range paths {
		if b := get("evil.example", p); strings.Contains(b, "evil.example") {
			t.Errorf("%s: the forged Host is in the answer", p)
		} else if !strings.Contains(b, s.addr.HTTP) {
			t.Errorf("%s: the answer's links do not use the listener's address %s", p, s.addr.HTTP)
		}
		if b := get("pacs.example", p); !strings.Contains(b, "http://pacs.example/") {
			t.Errorf("%s: an allowed Host is not used", p)
		}
	}
}
