package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// charsetFile is one of pydicom's character set test files, stored in Lumen.
type charsetFile struct {
	file      string
	data      []byte
	patientID string
	study     string
	scs       []string // Specific Character Set as stored
	rawName   []byte   // PatientName as stored
	// pn is pydicom's PatientName in the DICOM JSON model; name its component groups
	// joined by "=".
	pn   map[string]any
	name string
}

// charsetFiles reads pydicom's character set files that hold an instance (the
// constructed chrSQEncoding files do not; chrFrenMulti and chrJapMultiExplicitIR6
// repeat the SOP Instance UIDs of chrFren and chrJapMulti) with what pydicom decodes.
func charsetFiles(t *testing.T) []charsetFile {
	t.Helper()
	var paths []string
	for _, p := range tools.PydicomCharsetFiles(t) {
		switch filepath.Base(p) {
		case "chrSQEncoding.dcm", "chrSQEncoding1.dcm", "chrFrenMulti.dcm", "chrJapMultiExplicitIR6.dcm":
			continue
		}
		paths = append(paths, p)
	}
	want := tools.PydicomJSON(t, paths...)
	var out []charsetFile
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := dcm.Parse(bytes.NewReader(b), nil)
		if err != nil {
			t.Fatal(err)
		}
		el, _ := want[i]["00100010"].(map[string]any)
		vals, _ := el["Value"].([]any)
		if len(vals) != 1 {
			t.Fatalf("%s: pydicom's PatientName %v", p, el)
		}
		pn, _ := vals[0].(map[string]any)
		var groups []string
		for _, g := range []string{"Alphabetic", "Ideographic", "Phonetic"} {
			s, _ := pn[g].(string)
			groups = append(groups, s)
		}
		// chrJapMulti's MediaStorageSOPInstanceUID is not its SOPInstanceUID: the data
		// set gets a File Meta Information that agrees with it.
		if len(b) < 144 || string(b[128:132]) != "DICM" {
			t.Fatalf("%s: not a PS3.10 file", p)
		}
		body := b[144+int(binary.LittleEndian.Uint32(b[140:144])):]
		data := append(dcm.EncodeMeta(dcm.Meta{MediaStorageSOPClassUID: f.Dataset.String(dcm.TagSOPClassUID), MediaStorageSOPInstanceUID: f.Dataset.String(dcm.TagSOPInstanceUID),
			TransferSyntaxUID: f.Meta.String(dcm.TagTransferSyntaxUID), ImplementationClassUID: "1.2.3.4"}), body...)
		out = append(out, charsetFile{
			file: filepath.Base(p), data: data,
			patientID: f.Dataset.String(dcm.TagPatientID), study: f.Dataset.String(dcm.TagStudyInstanceUID),
			scs: f.Dataset.Strings(dcm.TagSpecificCharacterSet), rawName: f.Dataset.Get(dcm.TagPatientName).Value,
			pn: pn, name: strings.TrimRight(strings.Join(groups, "="), "="),
		})
	}
	return out
}

// getJSON GETs url and decodes its JSON into v.
func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, buf.Bytes())
	}
	if err := json.Unmarshal(buf.Bytes(), v); err != nil {
		t.Fatalf("GET %s: %v\n%s", u, err, buf.Bytes())
	}
}

// firstPN returns the first value of a PN element of a DICOM JSON object.
func firstPN(obj map[string]any) map[string]any {
	el, _ := obj["00100010"].(map[string]any)
	vals, _ := el["Value"].([]any)
	if len(vals) == 0 {
		return nil
	}
	pn, _ := vals[0].(map[string]any)
	return pn
}

var dumpPN = regexp.MustCompile(`(?m)^\(0010,0010\) PN \[(.*)\]`)

// dcmdumpName returns the PatientName DCMTK reads from a C-FIND answer converted to
// UTF-8 (dcmdump +U8), or ok false when DCMTK's character set library does not support
// the answer's character set (glibc's iconv has no JIS X 0208).
func dcmdumpName(t *testing.T, file string) (string, bool) {
	t.Helper()
	out, err := exec.Command(dcmtkTool(t, "dcmdump"), "+U8", "+L", file).CombinedOutput()
	if bytes.Contains(out, []byte("is not supported by the utilized character set conversion library")) {
		return "", false
	}
	m := dumpPN.FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("dcmdump +U8 %s: %v\n%s", file, err, out)
	}
	return string(m[1]), true
}

// TestCharsetEverywhere stores pydicom's character set test files (ISO 2022 IR 13/87
// Japanese, IR 149 Korean, GB18030, UTF-8 and the single-byte sets) and expects
// pydicom's decoded PatientName from QIDO-RS (DICOM JSON, and matching on the decoded
// name), from the stored WADO-RS metadata, from the chart API, and from C-FIND through
// DCMTK findscu: in UTF-8, and in the file's own character set with the name, encoded
// in it, as the matching key (the answer comes in that character set).
func TestCharsetEverywhere(t *testing.T) {
	findscu := dcmtkTool(t, "findscu")
	files := charsetFiles(t)
	s := startLumen(t, nil)
	base := "http://" + s.addr.HTTP
	var objs []gen.Object
	for _, f := range files {
		objs = append(objs, gen.Object{Data: f.data})
	}
	stowAll(t, base+"/dicom-web", objs)
	host, port := splitAddr(s.addr.DIMSE)
	py := tools.Python(t)

	for _, f := range files {
		t.Run(f.file, func(t *testing.T) {
			// QIDO-RS, by PatientID and by the decoded name.
			for _, q := range []string{"PatientID=" + url.QueryEscape(f.patientID), "PatientName=" + url.QueryEscape(f.name)} {
				var res []map[string]any
				getJSON(t, base+"/dicom-web/studies?"+q, &res)
				if len(res) != 1 {
					t.Errorf("QIDO %s: %d studies, want 1", q, len(res))
					continue
				}
				if got := firstPN(res[0]); !reflect.DeepEqual(got, f.pn) {
					t.Errorf("QIDO %s: PatientName %v, pydicom %v", q, got, f.pn)
				}
			}
			// The metadata precomputed at ingest.
			var meta []map[string]any
			getJSON(t, base+"/dicom-web/studies/"+f.study+"/metadata", &meta)
			if len(meta) != 1 || !reflect.DeepEqual(firstPN(meta[0]), f.pn) {
				t.Errorf("metadata: PatientName %v, pydicom %v", firstPN(meta[0]), f.pn)
			}
			// The chart API.
			var chart map[string]any
			getJSON(t, base+"/emr/v1/patients/"+url.PathEscape(f.patientID)+"/studies", &chart)
			if got, _ := chart["patientName"].(string); got != f.name {
				t.Errorf("chart: patientName %q, pydicom %q", got, f.name)
			}

			// C-FIND in UTF-8.
			out := t.TempDir()
			args := []string{"-S", "-aec", "LUMEN", "-X", "-od", out, "-k", "QueryRetrieveLevel=STUDY", "-k", "SpecificCharacterSet=ISO_IR 192",
				"-k", "PatientID=" + f.patientID, "-k", "PatientName", "-k", "StudyInstanceUID", host, port}
			if b, err := exec.Command(findscu, args...).CombinedOutput(); err != nil || bytes.Contains(b, []byte("E: ")) {
				t.Fatalf("findscu %v: %v\n%s", args, err, b)
			}
			rsp, _ := filepath.Glob(filepath.Join(out, "rsp*.dcm"))
			if len(rsp) != 1 {
				t.Fatalf("findscu by PatientID in UTF-8: %d answers", len(rsp))
			}
			if got, _ := dcmdumpName(t, rsp[0]); got != f.name {
				t.Errorf("findscu in UTF-8: PatientName %q, pydicom %q", got, f.name)
			}

			// C-FIND in the file's character set, matching on the name encoded in it.
			q := &dcm.Dataset{}
			q.Set(dcm.NewString(dcm.TagSpecificCharacterSet, "CS", f.scs...))
			q.Set(dcm.NewString(dcm.TagQueryRetrieveLevel, "CS", "STUDY"))
			q.Set(dcm.NewElement(dcm.TagPatientName, "PN", f.rawName))
			q.Set(dcm.NewString(dcm.TagPatientID, "LO"))
			q.Set(dcm.NewString(dcm.TagStudyInstanceUID, "UI"))
			body, err := q.Encode(dcm.ExplicitVRLittleEndian)
			if err != nil {
				t.Fatal(err)
			}
			qf := filepath.Join(t.TempDir(), "query.dcm")
			os.WriteFile(qf, append(dcm.EncodeMeta(dcm.Meta{MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.2.2.1", MediaStorageSOPInstanceUID: "1.2.3",
				TransferSyntaxUID: dcm.ExplicitVRLittleEndian, ImplementationClassUID: "1.2.3.4"}), body...), 0o644)
			out = t.TempDir()
			args = []string{"-S", "-aec", "LUMEN", "-X", "-od", out, host, port, qf}
			if b, err := exec.Command(findscu, args...).CombinedOutput(); err != nil || bytes.Contains(b, []byte("E: ")) {
				t.Fatalf("findscu %v: %v\n%s", args, err, b)
			}
			rsp, _ = filepath.Glob(filepath.Join(out, "rsp*.dcm"))
			if len(rsp) != 1 {
				t.Fatalf("findscu by the name in %q: %d answers, want 1", f.scs, len(rsp))
			}
			b, _ := os.ReadFile(rsp[0])
			a, err := dcm.Parse(bytes.NewReader(b), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := a.Dataset.String(dcm.TagPatientID); got != f.patientID {
				t.Errorf("findscu by the name in %q: PatientID %q, want %q", f.scs, got, f.patientID)
			}
			if got := a.Dataset.Strings(dcm.TagSpecificCharacterSet); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", f.scs) {
				t.Errorf("findscu by the name in %q: answered in %q", f.scs, got)
			}
			if got, ok := dcmdumpName(t, rsp[0]); ok && got != f.name {
				t.Errorf("findscu in %q: DCMTK reads PatientName %q, pydicom %q", f.scs, got, f.name)
			}
			pj, err := exec.Command(py, "-c", `import sys, pydicom; sys.stdout.buffer.write(str(pydicom.dcmread(sys.argv[1]).PatientName).encode("utf-8"))`, rsp[0]).Output()
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimRight(string(pj), "="); got != f.name {
				t.Errorf("findscu in %q: pydicom reads PatientName %q of the answer, %q of the file", f.scs, got, f.name)
			}
		})
	}

	// A name the request's character set cannot hold comes in UTF-8.
	for _, f := range files {
		if f.file != "chrH31.dcm" {
			continue
		}
		out := t.TempDir()
		args := []string{"-S", "-aec", "LUMEN", "-X", "-od", out, "-k", "QueryRetrieveLevel=STUDY", "-k", "SpecificCharacterSet=ISO_IR 100",
			"-k", "PatientID=" + f.patientID, "-k", "PatientName", host, port}
		if b, err := exec.Command(findscu, args...).CombinedOutput(); err != nil || bytes.Contains(b, []byte("E: ")) {
			t.Fatalf("findscu %v: %v\n%s", args, err, b)
		}
		rsp, _ := filepath.Glob(filepath.Join(out, "rsp*.dcm"))
		if len(rsp) != 1 {
			t.Fatalf("findscu in ISO_IR 100: %d answers", len(rsp))
		}
		b, _ := os.ReadFile(rsp[0])
		a, err := dcm.Parse(bytes.NewReader(b), nil)
		if err != nil {
			t.Fatal(err)
		}
		if cs := a.Dataset.String(dcm.TagSpecificCharacterSet); cs != "ISO_IR 192" {
			t.Errorf("a Japanese name asked in ISO_IR 100 came in %q, want ISO_IR 192", cs)
		}
		if got, _ := dcmdumpName(t, rsp[0]); got != f.name {
			t.Errorf("a Japanese name asked in ISO_IR 100: PatientName %q, pydicom %q", got, f.name)
		}
	}
}

// TestCharsetFHIRAndChart stores a Korean object (ISO 2022 IR 149) whose study
// description and referring physician's name need the code extensions, and expects
// pydicom's decoded texts from FHIR ImagingStudy (the referrer displayed as a name,
// the other component groups in parentheses), the chart API and QIDO-RS.
func TestCharsetFHIRAndChart(t *testing.T) {
	const study = "1.2.826.0.1.3680043.10.1234.96.1"
	ds := &dcm.Dataset{}
	for _, el := range []*dcm.Element{
		dcm.NewString(dcm.TagSpecificCharacterSet, "CS", "", "ISO 2022 IR 149"),
		dcm.NewString(dcm.TagSOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.7"), dcm.NewString(dcm.TagSOPInstanceUID, "UI", study+".1.1"),
		dcm.NewString(dcm.TagStudyInstanceUID, "UI", study), dcm.NewString(dcm.TagSeriesInstanceUID, "UI", study+".1"),
		dcm.NewString(dcm.TagModality, "CS", "OT"), dcm.NewString(dcm.TagPatientID, "LO", "KO-FHIR"),
		dcm.NewString(dcm.TagStudyDate, "DA", "20240102"),
		dcm.NewElement(dcm.TagPatientName, "PN", []byte("\x1b$)C\xb1\xe8\xc8\xf1\xc1\xdf")),
		dcm.NewElement(dcm.TagReferringPhysicianName, "PN", []byte("Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7=\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5\xbf")),
		dcm.NewElement(dcm.TagStudyDescription, "LO", []byte("\x1b$)C\xc8\xe4\xba\xce CT \x1b$)C\xb0\xcb\xbb\xe7 ")),
	} {
		ds.Set(el)
	}
	body, err := ds.Encode(dcm.ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	data := append(dcm.EncodeMeta(dcm.Meta{MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.7", MediaStorageSOPInstanceUID: study + ".1.1",
		TransferSyntaxUID: dcm.ExplicitVRLittleEndian, ImplementationClassUID: "1.2.3.4"}), body...)
	file := filepath.Join(t.TempDir(), "ko.dcm")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	want := tools.PydicomJSON(t, file)[0]
	text := func(obj map[string]any, tag string) (string, map[string]any) {
		el, _ := obj[tag].(map[string]any)
		vals, _ := el["Value"].([]any)
		if len(vals) == 0 {
			return "", nil
		}
		s, _ := vals[0].(string)
		pn, _ := vals[0].(map[string]any)
		return s, pn
	}
	desc, _ := text(want, "00081030")
	_, ref := text(want, "00080090")
	var groups []string
	for _, g := range []string{"Alphabetic", "Ideographic", "Phonetic"} {
		if s, _ := ref[g].(string); s != "" {
			groups = append(groups, strings.ReplaceAll(s, "^", " "))
		}
	}
	if desc == "" || len(groups) != 3 {
		t.Fatalf("pydicom: description %q, referrer %v", desc, ref)
	}
	display := groups[0] + " (" + groups[1] + ", " + groups[2] + ")"

	s := startLumen(t, nil)
	base := "http://" + s.addr.HTTP
	stowAll(t, base+"/dicom-web", []gen.Object{{Data: data}})

	var is struct {
		Description string `json:"description"`
		Referrer    struct {
			Display string `json:"display"`
		} `json:"referrer"`
	}
	getJSON(t, base+"/fhir/ImagingStudy/"+study, &is)
	if is.Description != desc || is.Referrer.Display != display {
		t.Errorf("FHIR: description %q, referrer %q; want %q, %q", is.Description, is.Referrer.Display, desc, display)
	}
	var chart struct {
		PatientName string `json:"patientName"`
		Studies     []struct {
			Description string `json:"description"`
		} `json:"studies"`
	}
	getJSON(t, base+"/emr/v1/patients/KO-FHIR/studies", &chart)
	if len(chart.Studies) != 1 || chart.Studies[0].Description != desc || chart.PatientName != "김희중" {
		t.Errorf("chart: %+v, want description %q", chart, desc)
	}
	var res []map[string]any
	getJSON(t, base+"/dicom-web/studies?PatientID=KO-FHIR&includefield=00080090", &res)
	if len(res) != 1 {
		t.Fatalf("QIDO: %d studies", len(res))
	}
	if got, _ := text(res[0], "00081030"); got != desc {
		t.Errorf("QIDO: StudyDescription %q, pydicom %q", got, desc)
	}
	if _, got := text(res[0], "00080090"); !reflect.DeepEqual(got, ref) {
		t.Errorf("QIDO: ReferringPhysicianName %v, pydicom %v", got, ref)
	}
}
