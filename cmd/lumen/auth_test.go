package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/httpkit/auth"
	"github.com/lumenpacs/lumen/httpkit/auth/authtest"
	"github.com/lumenpacs/lumen/testdata/gen"
)

func digest(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// TestAuth runs Lumen with authentication on (a test OpenID Connect issuer and static
// API tokens): every protected surface answers 401 without a token and 403 without the
// role; an OIDC token works end to end; a patient-scoped token sees its patient only,
// through QIDO, WADO, metadata, thumbnails, FHIR and the chart; signed links still work.
func TestAuth(t *testing.T) {
	is := authtest.NewIssuer(t)
	s := startLumen(t, func(c *Config) {
		c.Auth = AuthConfig{Mode: "on", Issuer: is.URL, Audience: "lumen", Tokens: []auth.StaticToken{
			{Name: "reader", SHA256: digest("reader-secret"), Roles: []string{"read"}},
			{Name: "modality-gw", SHA256: digest("writer-secret"), Roles: []string{"read", "write"}},
			{Name: "carla-app", SHA256: digest("carla-secret"), Roles: []string{"read"}, Patient: "LUMEN-C0001^^^LUMEN-TEST"},
			{Name: "carla-gw", SHA256: digest("carla-writer"), Roles: []string{"read", "write"}, Patient: "LUMEN-C0001^^^LUMEN-TEST"},
		}}
		c.EMR.LinkKeys = []string{linkKey("k1", 1)}
		c.EMR.MintTokenSHA256 = []string{digest(mintSecret)}
		c.DIMSE.Addr = "" // HTTP only (TestAuthDIMSE checks DICOM under auth)
	})
	base := "http://" + s.addr.HTTP
	objs := map[string][]gen.Object{}
	for _, p := range []gen.Patient{chartPatient, twin} {
		o, err := gen.ChartPatient(9, p, 3)
		if err != nil {
			t.Fatal(err)
		}
		stowAll(t, base+"/dicom-web", o, "writer-secret")
		objs[p.Issuer] = o
	}
	of := func(issuer, modality string) gen.Object {
		for _, o := range objs[issuer] {
			if o.Modality == modality {
				return o
			}
		}
		return gen.Object{}
	}
	ct, twinCT := of("LUMEN-TEST", "CT"), of("OTHER-HOSP", "CT")
	inst := func(o gen.Object) string {
		return "/dicom-web/studies/" + o.StudyUID + "/series/" + o.SeriesUID + "/instances/" + o.SOPInstanceUID
	}
	do := func(method, path, token string) (int, string) {
		t.Helper()
		return httpDo(t, method, base+path, token, nil, "Accept", "application/dicom+json, application/fhir+json, application/json, image/*, text/html, */*")
	}
	protected := []struct{ method, path string }{
		{"GET", "/dicom-web/studies"},
		{"GET", "/dicom-web/studies/" + ct.StudyUID + "/metadata"},
		{"GET", inst(ct)},
		{"GET", inst(ct) + "/thumbnail"},
		{"GET", inst(ct) + "/rendered"},
		{"GET", "/wado?requestType=WADO&studyUID=" + ct.StudyUID + "&seriesUID=" + ct.SeriesUID + "&objectUID=" + ct.SOPInstanceUID},
		{"GET", "/fhir/ImagingStudy?identifier=urn:oid:" + ct.StudyUID},
		{"GET", "/fhir/ImagingStudy/" + ct.StudyUID},
		{"GET", "/emr/v1/patients/LUMEN-C0001/studies?issuer=LUMEN-TEST"},
		{"GET", "/emr/v1/patients/LUMEN-C0001/chart?issuer=LUMEN-TEST"},
		{"GET", "/IHEInvokeImageDisplay?requestType=STUDY&studyUID=" + ct.StudyUID},
		{"POST", "/dicom-web/studies"},
		{"DELETE", "/dicom-web/studies/" + ct.StudyUID},
		{"POST", "/api/v1/send"},
	}
	for _, p := range protected {
		if code, _ := do(p.method, p.path, ""); code != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %d, want 401", p.method, p.path, code)
		}
		if code, _ := do(p.method, p.path, "wrong-secret"); code != http.StatusUnauthorized {
			t.Errorf("%s %s with an unknown token: %d, want 401", p.method, p.path, code)
		}
	}
	for _, p := range protected[len(protected)-3:] {
		if code, _ := do(p.method, p.path, "reader-secret"); code != http.StatusForbidden {
			t.Errorf("%s %s with a read-only token: %d, want 403", p.method, p.path, code)
		}
	}
	for _, p := range protected[:len(protected)-3] {
		if code, b := do(p.method, p.path, "reader-secret"); code >= 400 {
			t.Errorf("%s %s with a reader token: %d %.200s", p.method, p.path, code, b)
		}
	}
	for _, path := range []string{"/healthz", "/fhir/metadata", "/viewer/", "/viewer/assets/app.js"} {
		if code, _ := do("GET", path, ""); code != http.StatusOK {
			t.Errorf("public %s: %d", path, code)
		}
	}

	// An OpenID Connect token of the issuer; and one of another audience.
	claims := func(aud string) map[string]any {
		return map[string]any{"iss": is.URL, "aud": aud, "sub": "dr-who", "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "roles": []string{"read"}}
	}
	if code, b := do("GET", "/dicom-web/studies", is.Token(t, claims("lumen"), nil)); code != http.StatusOK || strings.Count(b, `"0020000D"`) != 8 {
		t.Fatalf("OIDC token: %d, %d studies", code, strings.Count(b, `"0020000D"`))
	}
	if code, _ := do("GET", "/dicom-web/studies", is.Token(t, claims("another-app"), nil)); code != http.StatusUnauthorized {
		t.Fatalf("OIDC token for another audience: %d", code)
	}

	// The patient-scoped token sees Carla's four studies and nothing of her twin's.
	const carla = "carla-secret"
	count := func(path string) int {
		t.Helper()
		code, b := do("GET", path, carla)
		if code != http.StatusOK && code != http.StatusNoContent {
			t.Fatalf("%s: %d %.200s", path, code, b)
		}
		return strings.Count(b, `"0020000D"`)
	}
	if n := count("/dicom-web/studies"); n != 4 {
		t.Errorf("QIDO studies: %d, want 4", n)
	}
	if n := count("/dicom-web/studies?PatientID=LUMEN-C0001&IssuerOfPatientID=OTHER-HOSP"); n != 0 {
		t.Errorf("QIDO for the twin: %d", n)
	}
	if n := count("/dicom-web/instances?SOPInstanceUID=" + twinCT.SOPInstanceUID); n != 0 {
		t.Errorf("QIDO instances of the twin: %d", n)
	}
	for _, path := range []string{
		"/dicom-web/studies/" + twinCT.StudyUID + "/metadata", inst(twinCT), inst(twinCT) + "/thumbnail", inst(twinCT) + "/rendered",
		"/dicom-web/studies/" + twinCT.StudyUID + "/thumbnail", "/fhir/ImagingStudy/" + twinCT.StudyUID,
		"/wado?requestType=WADO&studyUID=" + twinCT.StudyUID + "&seriesUID=" + twinCT.SeriesUID + "&objectUID=" + twinCT.SOPInstanceUID,
	} {
		if code, _ := do("GET", path, carla); code != http.StatusNotFound {
			t.Errorf("%s with Carla's token: %d, want 404", path, code)
		}
	}
	for _, path := range []string{inst(ct) + "/thumbnail", "/dicom-web/studies/" + ct.StudyUID + "/metadata", "/fhir/ImagingStudy/" + ct.StudyUID} {
		if code, _ := do("GET", path, carla); code != http.StatusOK {
			t.Errorf("%s with Carla's token: %d, want 200", path, code)
		}
	}
	var bundle struct{ Total int }
	_, b := do("GET", "/fhir/ImagingStudy?subject:identifier="+url.QueryEscape("urn:lumen:issuer:OTHER-HOSP|LUMEN-C0001"), carla)
	if json.Unmarshal([]byte(b), &bundle); bundle.Total != 0 {
		t.Errorf("FHIR search for the twin: total %d", bundle.Total)
	}
	_, b = do("GET", "/fhir/ImagingStudy", carla)
	if json.Unmarshal([]byte(b), &bundle); bundle.Total != 4 {
		t.Errorf("FHIR search with Carla's token: total %d, want 4", bundle.Total)
	}
	var chart struct{ Total int }
	_, b = do("GET", "/emr/v1/patients/LUMEN-C0001/studies?issuer=OTHER-HOSP", carla)
	if json.Unmarshal([]byte(b), &chart); chart.Total != 0 {
		t.Errorf("the twin's chart with Carla's token: %d studies", chart.Total)
	}
	if code, b := do("GET", "/emr/v1/patients/LUMEN-C0001/chart?issuer=OTHER-HOSP", carla); code != http.StatusOK || strings.Contains(b, `class="card"`) {
		t.Errorf("the twin's widget with Carla's token: %d, cards shown: %v", code, strings.Contains(b, `class="card"`))
	}

	checkScopedWrites(t, base, ct, twinCT)

	// Signed links keep working without a bearer token.
	e := &emrEnv{base: base}
	code, link := e.mint(t, mintSecret, map[string]any{"scope": "study", "studyInstanceUID": ct.StudyUID})
	if code != http.StatusCreated {
		t.Fatalf("mint: %d", code)
	}
	if code, _ := do("GET", strings.TrimPrefix(link.ThumbnailURL, base), ""); code != http.StatusOK {
		t.Fatalf("a signed link with authentication on: %d", code)
	}
}

// TestAuthDIMSE: with authentication on, the DICOM listener is not an open side door.
// Lumen refuses to start while any calling AE could C-FIND and C-GET every patient; it
// starts with dimse.allow_unauthenticated (saying so in the log), or with the production
// policy, under which an unknown AE, or a known one from another host or with no host
// configured, is refused, and a known peer from its host is served.
func TestAuthDIMSE(t *testing.T) {
	tokens := []auth.StaticToken{{Name: "modality-gw", SHA256: digest("writer-secret"), Roles: []string{"read", "write"}}}
	on := func(c *Config) { c.Auth = AuthConfig{Mode: "on", Tokens: tokens} }

	// The defaults with auth on: refused at start, naming the fix.
	c := testConfig(t, t.TempDir())
	c.HTTP.Addr, c.DIMSE.Addr, c.Fsck.OnStart = "127.0.0.1:0", "127.0.0.1:0", false
	on(c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ready := make(chan listening, 1)
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, c, discardLogger(), ready) }()
	select {
	case <-ready:
		cancel()
		<-errc
		t.Fatal("lumen serve started with auth on and a DICOM listener open to every calling AE")
	case err := <-errc:
		for _, want := range []string{"dimse.reject_unknown_calling_ae", "dimse.check_host", "dimse.tls_client_ca", "dimse.allow_unauthenticated"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("start-up error %v does not name %s", err, want)
			}
		}
	}

	// Knowingly unauthenticated: it starts and says so at Warn.
	var logBuf syncBuffer
	s := startLumenLogged(t, func(c *Config) { on(c); c.DIMSE.AllowUnauthenticated = true }, slog.New(slog.NewJSONHandler(&logBuf, nil)))
	s.stop()
	if !strings.Contains(logBuf.String(), `"level":"WARN","msg":"DICOM IS UNAUTHENTICATED`) {
		t.Fatalf("no warning for dimse.allow_unauthenticated:\n%s", logBuf.String())
	}

	// The production policy.
	s = startLumen(t, func(c *Config) {
		on(c)
		c.DIMSE.RejectUnknownCallingAE, c.DIMSE.CheckHost = true, true
		c.DIMSE.Peers = []PeerConfig{
			{AETitle: "READING_WS", Host: "127.0.0.1", Port: 11112, Services: []string{"echo", "find", "get"}},
			{AETitle: "ELSEWHERE", Host: "192.0.2.1", Port: 104, Services: []string{"echo", "find", "get"}},
			{AETitle: "NOHOST", Services: []string{"echo", "find", "get"}},
			{AETitle: "CT_SCANNER", Host: "127.0.0.1", Port: 104, Services: []string{"echo", "store"}},
		}
	})
	objs, err := gen.ChartPatient(9, chartPatient, 3)
	if err != nil {
		t.Fatal(err)
	}
	stowAll(t, "http://"+s.addr.HTTP+"/dicom-web", objs, "writer-secret")
	h, p := splitAddr(s.addr.DIMSE)
	find := func(aet string) (string, error) {
		out := t.TempDir()
		cmd := exec.Command(dcmtkTool(t, "findscu"), "-S", "-aet", aet, "-aec", "LUMEN", "-X", "-od", out,
			"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID", "-k", "PatientID", h, p)
		cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
		b, err := cmd.CombinedOutput()
		files, _ := filepath.Glob(filepath.Join(out, "rsp*.dcm"))
		return fmt.Sprintf("%d matches\n%s", len(files), b), err
	}
	for _, aet := range []string{"ROGUE", "ELSEWHERE", "NOHOST"} {
		if out, err := find(aet); err == nil || !strings.Contains(out, "0 matches") || !strings.Contains(out, "Association Rejected") {
			t.Errorf("C-FIND as %s: %v\n%s", aet, err, out)
		}
	}
	if out, err := find("CT_SCANNER"); err == nil || !strings.Contains(out, "0 matches") {
		t.Errorf("C-FIND as a peer allowed only echo and store: %v\n%s", err, out)
	}
	if out, err := find("READING_WS"); err != nil || !strings.Contains(out, "4 matches") {
		t.Errorf("C-FIND as the reading workstation from its host: %v\n%s", err, out)
	}
}

// newSOPInstanceUID gives an object another SOP Instance UID of the same length (in the
// meta information and the data set alike): a new instance of the same series.
func newSOPInstanceUID(o gen.Object) gen.Object {
	i := strings.LastIndexByte(o.SOPInstanceUID, '.') - 1 // the last digit of the series hash
	uid := o.SOPInstanceUID[:i] + string('0'+(o.SOPInstanceUID[i]-'0'+5)%10) + o.SOPInstanceUID[i+1:]
	o.Data = bytes.ReplaceAll(o.Data, []byte(o.SOPInstanceUID), []byte(uid))
	o.SOPInstanceUID = uid
	return o
}

// checkScopedWrites: a patient-scoped account with the write role stores into its own
// patient only, and every refusal of a foreign object reads the same, whether the
// object names another patient or its UIDs are another patient's (the same bytes,
// other content, or a study of another patient): no existence oracle, and never 503.
// The twin's records are untouched.
func checkScopedWrites(t *testing.T, base string, own, foreign gen.Object) {
	t.Helper()
	stow := func(o gen.Object) (int, string) {
		t.Helper()
		code, body, warning := stowOne(t, base+"/dicom-web", o.Data, "carla-writer")
		// What a caller sees, without the UIDs it sent itself.
		seen := fmt.Sprintf("%d %s %s", code, warning, body)
		for _, u := range []string{o.SOPInstanceUID, o.SOPClassUID, o.StudyUID} {
			seen = strings.ReplaceAll(seen, u, "<uid>")
		}
		return code, seen
	}
	// The twin's identity (same PatientID, issuer OTHER-HOSP) rewritten to Carla's
	// (LUMEN-TEST, the same length): an object of Carla's bearing the twin's UIDs.
	asCarla := func(o gen.Object) gen.Object {
		o.Data = bytes.ReplaceAll(o.Data, []byte("OTHER-HOSP"), []byte("LUMEN-TEST"))
		return o
	}
	if code, seen := stow(newSOPInstanceUID(own)); code != http.StatusOK {
		t.Fatalf("a new instance of Carla's by her scoped writer: %s", seen)
	}
	cases := []struct {
		name string
		o    gen.Object
	}{
		{"a new instance of the twin's", newSOPInstanceUID(foreign)},
		{"a copy of the twin's stored instance", foreign},
		{"Carla's identity on the twin's stored SOP Instance UID", asCarla(foreign)},
		{"Carla's identity in the twin's study", asCarla(newSOPInstanceUID(foreign))},
	}
	first := ""
	for _, c := range cases {
		code, seen := stow(c.o)
		if code != http.StatusConflict || !strings.Contains(seen, `"00081197":{"vr":"US","Value":[292]}`) {
			t.Errorf("%s: %s; want 409 with FailureReason 0x0124", c.name, seen)
		}
		if first == "" {
			first = seen
		} else if seen != first {
			t.Errorf("%s is answered otherwise than %s (an existence oracle):\n%s\n%s", c.name, cases[0].name, seen, first)
		}
	}
	// The twin's instance is as it was, and nothing new was filed under the twin.
	code, b := httpDo(t, "GET", base+"/dicom-web/studies/"+foreign.StudyUID+"/series/"+foreign.SeriesUID+"/instances/"+foreign.SOPInstanceUID, "reader-secret", nil, "Accept", "application/dicom")
	if code != http.StatusOK || !strings.Contains(b, "OTHER-HOSP") || strings.Contains(b, "LUMEN-TEST") {
		t.Errorf("the twin's instance after the attempts: %d", code)
	}
	if code, b := httpDo(t, "GET", base+"/dicom-web/instances?SOPInstanceUID="+newSOPInstanceUID(foreign).SOPInstanceUID, "reader-secret", nil); code == http.StatusOK && strings.Contains(b, "00080018") {
		t.Errorf("a foreign instance was stored by a scoped writer: %.300s", b)
	}
}
