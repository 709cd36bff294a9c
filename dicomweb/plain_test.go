package dicomweb

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
)

// TestPlainResult checks that a result written straight from the record (plainResult)
// is the one built through its data set (builtResult), byte for byte, for records at
// every level with plain and awkward values, and that it leaves to builtResult the
// records it cannot write (an instance with stored metadata, text that is not valid
// UTF-8, values with padding, separators, empty values beside others, component
// groups); text beyond ASCII it writes in UTF-8.
func TestPlainResult(t *testing.T) {
	num := func(n int) *int { return &n }
	plain := &index.Instance{SOPInstanceUID: "1.2.3.4.5", SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", InstanceNumber: num(7), Rows: 512, Columns: 512, BitsAllocated: 16, NumberOfFrames: 1}
	plain.SeriesInstanceUID, plain.Modality, plain.SeriesNumber, plain.SeriesDescription = "1.2.3.4", "CT", num(2), `Say "axial"`
	plain.StudyInstanceUID, plain.StudyDate, plain.StudyTime, plain.AccessionNumber, plain.StudyDescription = "1.2.3", "20240131", "101500.25", "A1", "CT Thorax"
	plain.ModalitiesInStudy, plain.SOPClassesInStudy = []string{"CT", "SR"}, []string{"1.2.840.10008.5.1.4.1.1.2"}
	plain.NumberOfStudyRelatedSeries, plain.NumberOfStudyRelatedInstances = 2, 30
	plain.PatientID, plain.IssuerOfPatientID, plain.PatientName, plain.PatientBirthDate, plain.PatientSex = "P1", "HOSP", "O'Brien^Mary Ann", "19700101", "F"
	plain.ReferringPhysicianName = "WELBY^MARCUS^^DR"
	empty := &index.Instance{}
	empty.StudyInstanceUID = "1.2.9"
	variants := map[string]func(in *index.Instance){
		"non-ASCII name": func(in *index.Instance) { in.PatientName = "Müller^Jürgen" },
		"non-ASCII texts": func(in *index.Instance) {
			in.PatientName, in.StudyDescription, in.SeriesDescription = "山田^太郎", "MR Schädel", "Ü"
		},
		"non-ASCII padded":       func(in *index.Instance) { in.PatientName, in.StudyDescription = "Müller^Jürgen", "Schädel " },
		"non-ASCII groups":       func(in *index.Instance) { in.PatientName = "Yamada^Tarou=山田^太郎" },
		"invalid UTF-8":          func(in *index.Instance) { in.StudyDescription = "Sch\xe4del" },
		"component groups":       func(in *index.Instance) { in.PatientName = "Yamada^Tarou=YAMADA^TAROU" },
		"separators only":        func(in *index.Instance) { in.PatientName = "^^" },
		"padded description":     func(in *index.Instance) { in.StudyDescription = "CT Thorax " },
		"backslash":              func(in *index.Instance) { in.AccessionNumber = `A\B` },
		"control character":      func(in *index.Instance) { in.StudyDescription = "CT\tThorax" },
		"empty modality beside":  func(in *index.Instance) { in.ModalitiesInStudy = []string{"", "CT"} },
		"no modalities":          func(in *index.Instance) { in.ModalitiesInStudy = nil },
		"no series number":       func(in *index.Instance) { in.SeriesNumber = nil },
		"large rows":             func(in *index.Instance) { in.Rows = 70000 },
		"stored metadata":        func(in *index.Instance) { in.Metadata = []byte(`{"00080060":{"vr":"CS","Value":["CT"]}}`) },
		"number of frames unset": func(in *index.Instance) { in.NumberOfFrames = 0 },
	}
	records := map[string]*index.Instance{"plain": plain, "empty": empty}
	for name, change := range variants {
		in := *plain
		change(&in)
		records[name] = &in
	}
	base := slices.Concat(instanceTags, seriesTags, studyTags, studyAllTags)
	tagSets := [][]dcm.Tag{
		base,
		append(slices.Clone(base), dcm.TagRetrieveURL, dcm.TagInstanceAvailability),
		append(slices.Clone(base), dcm.NewTag(0x0008, 0x0080), dcm.TagSpecificCharacterSet, dcm.NewTag(0x0008, 0x0000)),
		{dcm.TagStudyInstanceUID},
		nil,
	}
	for i := range tagSets {
		slices.Sort(tagSets[i])
		tagSets[i] = slices.Compact(tagSets[i])
	}
	taken := map[string]bool{}
	for name, in := range records {
		for _, level := range []index.Level{index.PatientLevel, index.StudyLevel, index.SeriesLevel, index.ImageLevel} {
			var rec index.Record
			switch level {
			case index.PatientLevel:
				rec = &in.Patient
			case index.StudyLevel:
				rec = &in.Study
			case index.SeriesLevel:
				rec = &in.Series
			default:
				rec = in
			}
			for i, tags := range tagSets {
				want, err := builtResult(rec, tags, testRoot, false)
				if err != nil {
					t.Fatal(err)
				}
				got, ok := plainResult([]byte("["), rec, tags, retrieveURL(testRoot, rec))
				if !ok {
					if string(got) != "[" {
						t.Fatalf("%s %s: refused, but dst changed", name, level)
					}
					continue
				}
				taken[fmt.Sprintf("%s/%s/%d", name, level, i)] = true
				if !bytes.Equal(got[1:], want) {
					t.Fatalf("%s %s tags %v:\nplain %s\nbuilt %s", name, level, tags, got[1:], want)
				}
			}
		}
	}
	for _, name := range []string{"plain", "empty", "no modalities", "no series number", "number of frames unset", "non-ASCII name", "non-ASCII texts"} {
		if !taken[name+"/IMAGE/0"] {
			t.Errorf("%s: not written straight", name)
		}
	}
	// The instance record holds every value the variants change, and the first tag set
	// asks for all of them.
	for _, name := range []string{"non-ASCII padded", "non-ASCII groups", "invalid UTF-8", "component groups", "separators only", "padded description", "backslash", "control character", "empty modality beside", "large rows", "stored metadata"} {
		if taken[name+"/IMAGE/0"] {
			t.Errorf("%s: written straight", name)
		}
	}
}
