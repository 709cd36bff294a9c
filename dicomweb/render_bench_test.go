package dicomweb

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
)

// BenchmarkStudyResults renders a page of 101 study results as the QIDO-RS study list
// of OHIF asks for them (the default attributes, StudyDescription and Modality), one
// name in ten outside ASCII. go test -run '^$' -bench StudyResults ./dicomweb
func BenchmarkStudyResults(b *testing.B) {
	recs := make([]index.Record, 101)
	for i := range recs {
		s := &index.Study{StudyInstanceUID: fmt.Sprintf("1.2.826.0.1.3680043.10.1234.9.%d", i), StudyDate: "20240131", StudyTime: "101500",
			AccessionNumber: fmt.Sprintf("A%07d", i), StudyID: fmt.Sprint(i), StudyDescription: "Study CT", ModalitiesInStudy: []string{"CT"},
			SOPClassesInStudy: []string{"1.2.840.10008.5.1.4.1.1.2"}, NumberOfStudyRelatedSeries: 1, NumberOfStudyRelatedInstances: 10, UpdatedAt: time.Now()}
		s.PatientID, s.IssuerOfPatientID, s.PatientName, s.PatientBirthDate, s.PatientSex = fmt.Sprintf("P%06d", i), "HOSP", "SMITH^ANNA", "19700101", "F"
		if i%10 == 0 {
			s.PatientName = "MÜLLER^JÜRGEN"
		}
		recs[i] = s
	}
	tags := append([]dcm.Tag{dcm.TagStudyDescription, dcm.TagModality}, studyTags...)
	slices.Sort(tags)
	tags = slices.Compact(tags)
	b.ReportAllocs()
	for b.Loop() {
		for _, rec := range recs {
			if _, err := resultObject(rec, tags, "http://localhost/dicom-web", false); err != nil {
				b.Fatal(err)
			}
		}
	}
}
