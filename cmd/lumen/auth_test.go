package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/dicomweb/auth"
	"github.com/lumenpacs/lumen/dicomweb/auth/authtest"
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
		}}
		c.EMR.LinkKeys = []string{linkKey("k1", 1)}
		c.EMR.MintTokenSHA256 = []string{digest(mintSecret)}
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
