package index

import (
	"strconv"

	"github.com/lumenpacs/lumen/dcm"
)

// Attribute returns the VR and values of a patient-level attribute held by the record;
// ok is false when the record does not hold the attribute. C-FIND and QIDO-RS build
// their answers from these accessors (PS3.4 C.6.1.1.2, PS3.18 10.6.3.3).
func (p *Patient) Attribute(t dcm.Tag) (vr string, values []string, ok bool) {
	switch t {
	case dcm.TagPatientID:
		return "LO", []string{p.PatientID}, true
	case dcm.TagIssuerOfPatientID:
		return "LO", []string{p.IssuerOfPatientID}, true
	case dcm.TagPatientName:
		return "PN", []string{p.PatientName}, true
	case dcm.TagPatientBirthDate:
		return "DA", []string{p.PatientBirthDate}, true
	case dcm.TagPatientSex:
		return "CS", []string{p.PatientSex}, true
	case dcm.TagNumberOfPatientRelatedStudies:
		return "IS", []string{strconv.Itoa(p.NumberOfPatientRelatedStudies)}, true
	}
	return "", nil, false
}

// Attribute returns a study- or patient-level attribute of the record.
func (s *Study) Attribute(t dcm.Tag) (vr string, values []string, ok bool) {
	switch t {
	case dcm.TagStudyInstanceUID:
		return "UI", []string{s.StudyInstanceUID}, true
	case dcm.TagStudyDate:
		return "DA", []string{s.StudyDate}, true
	case dcm.TagStudyTime:
		return "TM", []string{s.StudyTime}, true
	case dcm.TagAccessionNumber:
		return "SH", []string{s.AccessionNumber}, true
	case dcm.TagStudyID:
		return "SH", []string{s.StudyID}, true
	case dcm.TagStudyDescription:
		return "LO", []string{s.StudyDescription}, true
	case dcm.TagReferringPhysicianName:
		return "PN", []string{s.ReferringPhysicianName}, true
	case dcm.TagModalitiesInStudy:
		return "CS", s.ModalitiesInStudy, true
	case dcm.TagSOPClassesInStudy:
		return "UI", s.SOPClassesInStudy, true
	case dcm.TagNumberOfStudyRelatedSeries:
		return "IS", []string{strconv.Itoa(s.NumberOfStudyRelatedSeries)}, true
	case dcm.TagNumberOfStudyRelatedInstances:
		return "IS", []string{strconv.Itoa(s.NumberOfStudyRelatedInstances)}, true
	}
	return s.Patient.Attribute(t)
}

// Attribute returns a series-, study- or patient-level attribute of the record.
func (s *Series) Attribute(t dcm.Tag) (vr string, values []string, ok bool) {
	switch t {
	case dcm.TagSeriesInstanceUID:
		return "UI", []string{s.SeriesInstanceUID}, true
	case dcm.TagModality:
		return "CS", []string{s.Modality}, true
	case dcm.TagSeriesNumber:
		return "IS", optionalInt(s.SeriesNumber), true
	case dcm.TagSeriesDescription:
		return "LO", []string{s.SeriesDescription}, true
	case dcm.TagBodyPartExamined:
		return "CS", []string{s.BodyPartExamined}, true
	case dcm.TagSeriesDate:
		return "DA", []string{s.SeriesDate}, true
	case dcm.TagSeriesTime:
		return "TM", []string{s.SeriesTime}, true
	case dcm.TagNumberOfSeriesRelatedInstances:
		return "IS", []string{strconv.Itoa(s.NumberOfSeriesRelatedInstances)}, true
	}
	return s.Study.Attribute(t)
}

// Attribute returns an attribute of the instance record or of its series, study or
// patient.
func (in *Instance) Attribute(t dcm.Tag) (vr string, values []string, ok bool) {
	switch t {
	case dcm.TagSOPInstanceUID:
		return "UI", []string{in.SOPInstanceUID}, true
	case dcm.TagSOPClassUID:
		return "UI", []string{in.SOPClassUID}, true
	case dcm.TagInstanceNumber:
		return "IS", optionalInt(in.InstanceNumber), true
	case dcm.TagNumberOfFrames:
		if in.NumberOfFrames == 0 {
			return "IS", nil, true
		}
		return "IS", []string{strconv.Itoa(in.NumberOfFrames)}, true
	case dcm.TagRows:
		if in.Rows == 0 {
			return "US", nil, true
		}
		return "US", []string{strconv.Itoa(in.Rows)}, true
	case dcm.TagColumns:
		if in.Columns == 0 {
			return "US", nil, true
		}
		return "US", []string{strconv.Itoa(in.Columns)}, true
	case dcm.TagBitsAllocated:
		if in.BitsAllocated == 0 {
			return "US", nil, true
		}
		return "US", []string{strconv.Itoa(in.BitsAllocated)}, true
	}
	return in.Series.Attribute(t)
}

func optionalInt(p *int) []string {
	if p == nil {
		return nil
	}
	return []string{strconv.Itoa(*p)}
}
