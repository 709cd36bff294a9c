package qr_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/index/indextest"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// answer is one C-FIND match as received.
type answer struct {
	ds *dcm.Dataset
}

// find runs one C-FIND and returns its final status and the matches.
func find(t *testing.T, c *dimse.Client, model string, identifier []byte) (dimse.Status, []answer) {
	t.Helper()
	var out []answer
	st, err := c.Find(context.Background(), model, identifier, func(id []byte) bool {
		f, err := dcm.ParseDataset(bytes.NewReader(id), dcm.ExplicitVRLittleEndian, 0, nil)
		if err != nil {
			t.Errorf("a C-FIND answer does not parse: %v", err)
			return false
		}
		out = append(out, answer{f.Dataset})
		return true
	})
	if err != nil {
		t.Fatalf("C-FIND: %v", err)
	}
	return st, out
}

// value is an answer's value of tag as text: text VRs decoded with the answer's
// character set, multiple values joined with a backslash, binary integers in decimal;
// "<absent>" when the answer lacks the element.
func value(ds *dcm.Dataset, tag dcm.Tag) string {
	e := ds.Get(tag)
	if e == nil {
		return "<absent>"
	}
	if e.VR == "US" {
		var v []string
		for _, n := range e.Ints() {
			v = append(v, fmt.Sprint(n))
		}
		return strings.Join(v, `\`)
	}
	return strings.Join(ds.Texts(tag), `\`)
}

// checkAnswer compares an answer with want (every key requested, with its value) and
// checks that it holds exactly the requested keys and the three the SCP adds
// (QueryRetrieveLevel, RetrieveAETitle, InstanceAvailability), and Specific Character
// Set only when charset is not "".
func checkAnswer(t *testing.T, what string, a answer, level string, want map[dcm.Tag]string, charset string) {
	t.Helper()
	extra := map[dcm.Tag]string{dcm.TagQueryRetrieveLevel: level, dcm.TagRetrieveAETitle: "LUMEN", dcm.TagInstanceAvailability: "ONLINE"}
	if charset != "" {
		extra[dcm.TagSpecificCharacterSet] = charset
	}
	var got, exp []string
	for _, e := range a.ds.Elements {
		got = append(got, e.Tag.String())
	}
	for _, m := range []map[dcm.Tag]string{want, extra} {
		for tag, v := range m {
			exp = append(exp, tag.String())
			if g := value(a.ds, tag); g != v {
				t.Errorf("%s: %s = %q, want %q", what, tag, g, v)
			}
		}
	}
	slices.Sort(got)
	slices.Sort(exp)
	if !slices.Equal(got, exp) {
		t.Errorf("%s: answer holds %v, want exactly %v", what, got, exp)
	}
}

// studyObjects are the corpus objects of study n, in corpus order. The corpus lays the
// studies out in order (1: CT and SR, 2: MR, 3: XA and ECG, 4: US; 5: the Greek CT).
func studyObjects(objs []gen.Object, n int) []gen.Object {
	var studies []string
	for _, o := range objs {
		if !slices.Contains(studies, o.StudyUID) {
			studies = append(studies, o.StudyUID)
		}
	}
	return filter(objs, func(o gen.Object) bool { return o.StudyUID == studies[n-1] })
}

// TestFind answers C-FIND at each level of both information models from an index
// filled through ingest: matching keys select, the answers come in index order, and
// each holds exactly the requested return keys with the indexed values.
func TestFind(t *testing.T) {
	for _, be := range indextest.Backends {
		t.Run(be, func(t *testing.T) {
			e := newEnv(t, be)
			c := e.dial(t)
			ct := filter(studyObjects(e.objs, 1), func(o gen.Object) bool { return o.Modality == "CT" })
			mr := studyObjects(e.objs, 2)
			t2 := filter(mr, func(o gen.Object) bool { return o.SeriesNumber == 4 })
			t1 := filter(mr, func(o gen.Object) bool { return o.SeriesNumber == 3 })
			xa, us := studyObjects(e.objs, 3), studyObjects(e.objs, 4)
			for _, tc := range []struct {
				name  string
				model string
				level string
				keys  []*dcm.Element
				want  []map[dcm.Tag]string
			}{
				{"patient level, patient root", dimse.PatientRootFind, "PATIENT",
					[]*dcm.Element{str(dcm.TagPatientID, "LO", "LUMEN-P0002"), str(dcm.TagPatientName, "PN"), str(dcm.TagIssuerOfPatientID, "LO"),
						str(dcm.TagPatientBirthDate, "DA"), str(dcm.TagPatientSex, "CS"), str(dcm.TagNumberOfPatientRelatedStudies, "IS")},
					[]map[dcm.Tag]string{{dcm.TagPatientID: "LUMEN-P0002", dcm.TagPatientName: "Synthetic^Anna", dcm.TagIssuerOfPatientID: "LUMEN-TEST",
						dcm.TagPatientBirthDate: "19820923", dcm.TagPatientSex: "F", dcm.TagNumberOfPatientRelatedStudies: "2"}}},
				{"study level, study root, person name wildcard", dimse.StudyRootFind, "STUDY",
					[]*dcm.Element{str(dcm.TagPatientName, "PN", "Synth*"), str(dcm.TagStudyInstanceUID, "UI"), str(dcm.TagAccessionNumber, "SH"),
						str(dcm.TagStudyDescription, "LO"), str(dcm.TagStudyDate, "DA"), str(dcm.TagModalitiesInStudy, "CS"),
						str(dcm.TagNumberOfStudyRelatedSeries, "IS"), str(dcm.TagNumberOfStudyRelatedInstances, "IS")},
					[]map[dcm.Tag]string{
						{dcm.TagPatientName: "Synthetic^Anna", dcm.TagStudyInstanceUID: us[0].StudyUID, dcm.TagAccessionNumber: "LUM0004", dcm.TagStudyDescription: "Echocardiography",
							dcm.TagStudyDate: "20240702", dcm.TagModalitiesInStudy: "US", dcm.TagNumberOfStudyRelatedSeries: "1", dcm.TagNumberOfStudyRelatedInstances: "1"},
						{dcm.TagPatientName: "Synthetic^Anna", dcm.TagStudyInstanceUID: xa[0].StudyUID, dcm.TagAccessionNumber: "LUM0003", dcm.TagStudyDescription: "Coronary angiography",
							dcm.TagStudyDate: "20240611", dcm.TagModalitiesInStudy: "ECG\\XA", dcm.TagNumberOfStudyRelatedSeries: "2", dcm.TagNumberOfStudyRelatedInstances: "2"}}},
				{"study level, patient root, date range", dimse.PatientRootFind, "STUDY",
					[]*dcm.Element{str(dcm.TagPatientID, "LO", "LUMEN-P0001"), str(dcm.TagStudyDate, "DA", "20240101-20240331"), str(dcm.TagStudyInstanceUID, "UI"), str(dcm.TagStudyTime, "TM")},
					[]map[dcm.Tag]string{{dcm.TagPatientID: "LUMEN-P0001", dcm.TagStudyDate: "20240312", dcm.TagStudyInstanceUID: ct[0].StudyUID, dcm.TagStudyTime: "081500"}}},
				{"series level, patient root, modality", dimse.PatientRootFind, "SERIES",
					[]*dcm.Element{str(dcm.TagPatientID, "LO", "LUMEN-P0001"), str(dcm.TagStudyInstanceUID, "UI", mr[0].StudyUID), str(dcm.TagModality, "CS", "MR"),
						str(dcm.TagSeriesInstanceUID, "UI"), str(dcm.TagSeriesNumber, "IS"), str(dcm.TagNumberOfSeriesRelatedInstances, "IS")},
					[]map[dcm.Tag]string{
						{dcm.TagPatientID: "LUMEN-P0001", dcm.TagStudyInstanceUID: mr[0].StudyUID, dcm.TagModality: "MR", dcm.TagSeriesInstanceUID: t1[0].SeriesUID, dcm.TagSeriesNumber: "3", dcm.TagNumberOfSeriesRelatedInstances: "10"},
						{dcm.TagPatientID: "LUMEN-P0001", dcm.TagStudyInstanceUID: mr[0].StudyUID, dcm.TagModality: "MR", dcm.TagSeriesInstanceUID: t2[0].SeriesUID, dcm.TagSeriesNumber: "4", dcm.TagNumberOfSeriesRelatedInstances: "5"}}},
				{"image level, study root, UID list", dimse.StudyRootFind, "IMAGE",
					[]*dcm.Element{str(dcm.TagStudyInstanceUID, "UI", ct[0].StudyUID), str(dcm.TagSeriesInstanceUID, "UI", ct[0].SeriesUID),
						str(dcm.TagSOPInstanceUID, "UI", ct[11].SOPInstanceUID, ct[4].SOPInstanceUID), str(dcm.TagSOPClassUID, "UI"), str(dcm.TagInstanceNumber, "IS"),
						str(dcm.TagRows, "US"), str(dcm.TagColumns, "US"), str(dcm.TagNumberOfFrames, "IS")},
					[]map[dcm.Tag]string{
						{dcm.TagStudyInstanceUID: ct[0].StudyUID, dcm.TagSeriesInstanceUID: ct[0].SeriesUID, dcm.TagSOPInstanceUID: ct[4].SOPInstanceUID, dcm.TagSOPClassUID: ct[4].SOPClassUID,
							dcm.TagInstanceNumber: "5", dcm.TagRows: "64", dcm.TagColumns: "64", dcm.TagNumberOfFrames: "1"},
						{dcm.TagStudyInstanceUID: ct[0].StudyUID, dcm.TagSeriesInstanceUID: ct[0].SeriesUID, dcm.TagSOPInstanceUID: ct[11].SOPInstanceUID, dcm.TagSOPClassUID: ct[11].SOPClassUID,
							dcm.TagInstanceNumber: "12", dcm.TagRows: "64", dcm.TagColumns: "64", dcm.TagNumberOfFrames: "1"}}},
				{"a return key the index does not keep comes back empty", dimse.StudyRootFind, "STUDY",
					[]*dcm.Element{str(dcm.TagStudyInstanceUID, "UI", xa[0].StudyUID), str(dcm.TagInstitutionName, "LO"), str(dcm.TagAccessionNumber, "SH")},
					[]map[dcm.Tag]string{{dcm.TagStudyInstanceUID: xa[0].StudyUID, dcm.TagInstitutionName: "", dcm.TagAccessionNumber: "LUM0003"}}},
				{"no match", dimse.StudyRootFind, "SERIES",
					[]*dcm.Element{str(dcm.TagStudyInstanceUID, "UI", xa[0].StudyUID), str(dcm.TagModality, "CS", "MR")}, nil},
			} {
				t.Run(tc.name, func(t *testing.T) {
					st, got := find(t, c, tc.model, ident(t, tc.level, tc.keys...))
					if st.Code != dimse.StatusSuccess || st.ErrorComment != "" {
						t.Fatalf("final status 0x%04X %q, want Success", st.Code, st.ErrorComment)
					}
					if len(got) != len(tc.want) {
						t.Fatalf("%d answers, want %d", len(got), len(tc.want))
					}
					for i, w := range tc.want {
						checkAnswer(t, fmt.Sprintf("answer %d", i), got[i], tc.level, w, "")
					}
				})
			}
			// Each C-FIND is audited with its calling AE, study and outcome.
			if list := e.audits(t, "query"); len(list) != 7 || list[1].Detail != "C-FIND" || list[1].Outcome != "ok" || list[1].StudyInstanceUID != xa[0].StudyUID {
				t.Errorf("audit records of the C-FINDs: %+v", list)
			}
		})
	}
}

// TestFindCharacterSet: answers come in the request's character set when it can hold
// them (ISO_IR 100 for a German name), in UTF-8 (ISO_IR 192) when it cannot (a Greek
// name asked in Latin-1, any non-ASCII name asked in the default repertoire), and
// without Specific Character Set when they are ASCII.
func TestFindCharacterSet(t *testing.T) {
	for _, be := range indextest.Backends {
		t.Run(be, func(t *testing.T) {
			e := newEnv(t, be)
			c := e.dial(t)
			latin1 := str(dcm.TagSpecificCharacterSet, "CS", "ISO_IR 100")
			for _, tc := range []struct {
				name    string
				keys    []*dcm.Element
				charset string   // of the answers
				raw     []string // PatientName's bytes in each answer, padding included
				text    string   // PatientName decoded
			}{
				{"Latin-1 request, Latin-1 answers", []*dcm.Element{latin1, dcm.NewElement(dcm.TagPatientName, "PN", []byte("M\xfcller*"))},
					"ISO_IR 100", []string{"M\xfcller^J\xfcrgen ", "M\xfcller^J\xfcrgen "}, "Müller^Jürgen"},
				{"Latin-1 request, a name Latin-1 cannot hold: UTF-8", []*dcm.Element{latin1, str(dcm.TagPatientID, "LO", greekPatient.ID), str(dcm.TagPatientName, "PN")},
					"ISO_IR 192", []string{greekPatient.Name}, greekPatient.Name},
				{"default repertoire request, non-ASCII name: UTF-8", []*dcm.Element{str(dcm.TagPatientID, "LO", "LUMEN-P0001"), str(dcm.TagPatientName, "PN")},
					"ISO_IR 192", []string{"Müller^Jürgen ", "Müller^Jürgen "}, "Müller^Jürgen"},
				{"ASCII answer: no Specific Character Set", []*dcm.Element{latin1, str(dcm.TagPatientID, "LO", "LUMEN-P0002"), str(dcm.TagPatientName, "PN")},
					"", []string{"Synthetic^Anna", "Synthetic^Anna"}, "Synthetic^Anna"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					st, got := find(t, c, dimse.StudyRootFind, ident(t, "STUDY", append(tc.keys, str(dcm.TagStudyInstanceUID, "UI"))...))
					if st.Code != dimse.StatusSuccess || len(got) != len(tc.raw) {
						t.Fatalf("0x%04X %q, %d answers, want Success and %d", st.Code, st.ErrorComment, len(got), len(tc.raw))
					}
					for i, a := range got {
						if cs := strings.Join(a.ds.Strings(dcm.TagSpecificCharacterSet), `\`); cs != tc.charset || (tc.charset == "") != (a.ds.Get(dcm.TagSpecificCharacterSet) == nil) {
							t.Errorf("answer %d: Specific Character Set %q, want %q", i, cs, tc.charset)
						}
						raw := a.ds.Get(dcm.TagPatientName).Value
						want := tc.raw[i]
						if len(want)%2 == 1 {
							want += " "
						}
						if string(raw) != want {
							t.Errorf("answer %d: PatientName bytes %q, want %q", i, raw, want)
						}
						if txt := a.ds.Text(dcm.TagPatientName); txt != tc.text {
							t.Errorf("answer %d: PatientName %q, want %q", i, txt, tc.text)
						}
					}
				})
			}
		})
	}
}

// TestFindRefusals: identifiers the SCP cannot run are refused with the status of PS3.4
// C.4.1.1.4 and a comment, without answers, and the association goes on.
func TestFindRefusals(t *testing.T) {
	for _, be := range indextest.Backends {
		t.Run(be, func(t *testing.T) {
			e := newEnv(t, be)
			c := e.dial(t)
			many := make([]string, 1000)
			for i := range many {
				many[i] = fmt.Sprintf("1.2.3.%d", i+1)
			}
			// An element whose length runs past the end of the identifier.
			truncated := []byte{0x08, 0x00, 0x52, 0x00, 'C', 'S', 0x40, 0x00, 'S', 'T'}
			for _, tc := range []struct {
				name       string
				model      string
				identifier []byte
				code       uint16
				comment    string
			}{
				{"study root has no patient level", dimse.StudyRootFind, ident(t, "PATIENT", str(dcm.TagPatientID, "LO", "LUMEN-P0001")),
					dimse.StatusDataSetMismatch, "Study Root has no PATIENT level"},
				{"no level", dimse.StudyRootFind, ident(t, "", str(dcm.TagStudyInstanceUID, "UI")),
					dimse.StatusDataSetMismatch, "QueryRetrieveLevel missing or not PATIENT/STUDY/SERIES/IMAGE"},
				{"unknown level", dimse.PatientRootFind, ident(t, "FRAME", str(dcm.TagStudyInstanceUID, "UI")),
					dimse.StatusDataSetMismatch, "QueryRetrieveLevel missing or not PATIENT/STUDY/SERIES/IMAGE"},
				{"unparsable identifier", dimse.StudyRootFind, truncated,
					dimse.StatusCannotUnderstand, "identifier does not parse"},
				{"more terms than the index runs", dimse.StudyRootFind, ident(t, "STUDY", str(dcm.TagStudyInstanceUID, "UI", many...)),
					dimse.StatusCannotUnderstand, "terms"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					st, got := find(t, c, tc.model, tc.identifier)
					if st.Code != tc.code || !strings.Contains(st.ErrorComment, tc.comment) || len(got) != 0 {
						t.Fatalf("0x%04X %q with %d answers, want 0x%04X %q and none", st.Code, st.ErrorComment, len(got), tc.code, tc.comment)
					}
				})
			}
			// The association is still usable, and the refusals are audited.
			if st, got := find(t, c, dimse.StudyRootFind, ident(t, "STUDY", str(dcm.TagStudyInstanceUID, "UI"))); st.Code != dimse.StatusSuccess || len(got) != 5 {
				t.Fatalf("after the refusals: 0x%04X, %d studies", st.Code, len(got))
			}
			list := e.audits(t, "query")
			var outcomes []string
			for _, r := range list {
				outcomes = append(outcomes, r.Outcome)
			}
			if want := "ok 0xC000 0xC000 0xA900 0xA900 0xA900"; strings.Join(outcomes, " ") != want {
				t.Errorf("audited outcomes %v, want %s", outcomes, want)
			}
		})
	}
}
