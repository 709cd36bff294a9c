package fhir_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/emr/fhir"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/indextest"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// newIdentityEnv serves FHIR over a real index of the backend holding patient PA (one
// study, uid 100) and PB (three studies, uids 200-202), both without an issuer, their
// objects received with stale demographics. A request with the header X-Test-Patient is
// scoped to that patient, as httpkit/auth scopes a token limited to one patient.
func newIdentityEnv(t *testing.T, backend string) (index.Identity, *echo.Echo) {
	t.Helper()
	x := indextest.Open(t, backend)
	for i, u := range []int{100, 200, 201, 202} {
		in := &index.Instance{}
		in.PatientID, in.PatientName, in.PatientBirthDate, in.PatientSex = "PA", "Stale^Anna", "19010101", "O"
		if u >= 200 {
			in.PatientID, in.PatientName = "PB", "Temp^Bee"
		}
		in.StudyInstanceUID, in.StudyDate, in.StudyTime = uid(u), "2024010"+string(rune('1'+i)), "0900"
		in.SeriesInstanceUID, in.Modality = uid(u)+".1", "CT"
		in.SOPInstanceUID, in.SOPClassUID = uid(u)+".1.1", "1.2.840.10008.5.1.4.1.1.2"
		in.BlobKey, in.Size, in.Digest = "k/"+uid(u), 1, strings.Repeat("ab", 32)
		in.Metadata = []byte(`{"00100010":{"vr":"PN","Value":[{"Alphabetic":"` + in.PatientName + `"}]},"00100020":{"vr":"LO","Value":["` + in.PatientID + `"]}}`)
		in.TransferSyntaxUID = dcm.ExplicitVRLittleEndian
		if err := x.Put(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	e := echo.New()
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if v := c.Request().Header.Get("X-Test-Patient"); v != "" {
				r := c.Request()
				c.SetRequest(r.WithContext(index.WithScope(r.Context(), index.Scope{Patient: &index.PatientKey{ID: v}})))
			}
			return next(c)
		}
	})
	(&fhir.Service{Index: x, PublicURL: "http://lumen.test"}).Register(e)
	return x, e
}

func getJSON(t *testing.T, e *echo.Echo, target string, scope string) (int, map[string]any, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	if scope != "" {
		req.Header.Set("X-Test-Patient", scope)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("%s: %d %s", target, rec.Code, rec.Body)
	}
	return rec.Code, m, rec.Body.Bytes()
}

// dig follows keys and indexes ("subject", "display"; "name", 0, "family").
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func str(s string) *string { return &s }

// TestIdentityOnFHIR: a demographics correction shows in ImagingStudy.subject and in
// Patient; after B is merged into A, B's Patient is inactive and replaced-by A, a
// search for B matches nothing and says why, B's former studies are A's, and a caller
// limited to B is refused without learning A.
func TestIdentityOnFHIR(t *testing.T) {
	for _, backend := range indextest.Backends {
		t.Run(backend, func(t *testing.T) {
			id, e := newIdentityEnv(t, backend)
			ctx := context.Background()
			if _, err := id.UpdatePatient(ctx, index.PatientKey{ID: "PA"}, index.Demographics{Name: str("Right^Anna^M^Dr"), BirthDate: str("19700203"), Sex: str("F")},
				index.Change{Source: "test"}); err != nil {
				t.Fatal(err)
			}
			var emitted [][]byte
			code, is, b := getJSON(t, e, "/fhir/ImagingStudy/"+uid(100), "")
			if code != 200 || dig(is, "subject", "display") != "Right Anna M Dr" || dig(is, "subject", "reference") != "Patient/PA" {
				t.Fatalf("ImagingStudy: %d %s", code, b)
			}
			emitted = append(emitted, b)
			code, bundle, b := getJSON(t, e, "/fhir/ImagingStudy?subject:identifier=PA", "")
			if code != 200 || dig(bundle, "entry", 0, "resource", "subject", "display") != "Right Anna M Dr" {
				t.Fatalf("search: %d %s", code, b)
			}
			code, p, b := getJSON(t, e, "/fhir/Patient/PA", "")
			if code != 200 || dig(p, "active") != true || dig(p, "name", 0, "family") != "Right" || dig(p, "name", 0, "given", 1) != "M" ||
				dig(p, "name", 0, "prefix", 0) != "Dr" || dig(p, "gender") != "female" || dig(p, "birthDate") != "1970-02-03" {
				t.Fatalf("Patient: %d %s", code, b)
			}
			emitted = append(emitted, b)

			if err := id.MergePatients(ctx, index.PatientKey{ID: "PA"}, index.PatientKey{ID: "PB"}, index.Change{Source: "test"}); err != nil {
				t.Fatal(err)
			}
			code, p, b = getJSON(t, e, "/fhir/Patient/PB", "")
			if code != 200 || dig(p, "active") != false || dig(p, "link", 0, "type") != "replaced-by" || dig(p, "link", 0, "other", "reference") != "Patient/PA" {
				t.Fatalf("merged Patient: %d %s", code, b)
			}
			emitted = append(emitted, b)
			code, bundle, b = getJSON(t, e, "/fhir/ImagingStudy?patient=PB", "")
			if code != 200 || dig(bundle, "total") != 0.0 || dig(bundle, "entry", 0, "search", "mode") != "outcome" ||
				!strings.Contains(string(b), "merged into patient PA") {
				t.Fatalf("search for the merged patient: %d %s", code, b)
			}
			emitted = append(emitted, b)
			code, bundle, b = getJSON(t, e, "/fhir/ImagingStudy?patient=PA", "")
			if code != 200 || dig(bundle, "total") != 4.0 {
				t.Fatalf("search for the survivor: %d %s", code, b)
			}
			if code, is, b := getJSON(t, e, "/fhir/ImagingStudy/"+uid(201), ""); code != 200 || dig(is, "subject", "reference") != "Patient/PA" ||
				dig(is, "subject", "display") != "Right Anna M Dr" {
				t.Fatalf("a study that came with the merge: %d %s", code, b)
			}
			for _, target := range []string{"/fhir/ImagingStudy/" + uid(201), "/fhir/ImagingStudy/" + uid(100), "/fhir/Patient/PB", "/fhir/Patient/PA",
				"/fhir/ImagingStudy?patient=PB", "/fhir/ImagingStudy?patient=PA"} {
				code, oo, b := getJSON(t, e, target, "PB")
				if code != http.StatusForbidden || dig(oo, "resourceType") != "OperationOutcome" || dig(oo, "issue", 0, "code") != "forbidden" ||
					!strings.Contains(string(b), "merged") || strings.Contains(string(b), "PA") {
					t.Errorf("scoped to B, %s: %d %s", target, code, b)
				}
				if target == "/fhir/Patient/PB" {
					emitted = append(emitted, b)
				}
			}
			if backend == "sqlite" {
				validate(t, emitted)
			}
		})
	}
}

// validate checks resources against the official FHIR R4 JSON schema, with the
// validator cmd/lumen's FHIR test uses (Node).
func validate(t *testing.T, resources [][]byte) {
	t.Helper()
	var raw []json.RawMessage
	for _, r := range resources {
		raw = append(raw, r)
	}
	all, _ := json.Marshal(raw)
	dir := tools.NPM(t, filepath.Join(tools.RepoRoot(t), "cmd", "lumen", "testdata", "fhir"))
	cmd := exec.Command("node", "validate.cjs")
	cmd.Dir, cmd.Stdin = dir, bytes.NewReader(all)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Count(string(out), "ok ") != len(resources) {
		t.Fatalf("FHIR R4 schema validation: %v\n%s", err, out)
	}
}
