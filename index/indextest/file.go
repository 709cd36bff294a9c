package indextest

import (
	"fmt"

	"github.com/lumenpacs/lumen/archive/dcm"
	"github.com/lumenpacs/lumen/index"
)

// File returns a minimal PS3.10 file (Explicit VR Little Endian, UTF-8) holding the
// attributes of an index record, so that the matching table can be run end to end
// through ingest (C-FIND, QIDO-RS).
func File(in *index.Instance) ([]byte, error) {
	ds := &dcm.Dataset{}
	set := func(tag dcm.Tag, vr, v string) {
		if v != "" {
			ds.Set(dcm.NewString(tag, vr, v))
		}
	}
	ds.Set(dcm.NewString(dcm.TagSpecificCharacterSet, "CS", "ISO_IR 192"))
	set(dcm.TagSOPClassUID, "UI", in.SOPClassUID)
	set(dcm.TagSOPInstanceUID, "UI", in.SOPInstanceUID)
	set(dcm.TagStudyDate, "DA", in.StudyDate)
	set(dcm.TagStudyTime, "TM", in.StudyTime)
	set(dcm.TagAccessionNumber, "SH", in.AccessionNumber)
	set(dcm.TagModality, "CS", in.Modality)
	set(dcm.TagReferringPhysicianName, "PN", in.ReferringPhysicianName)
	set(dcm.TagStudyDescription, "LO", in.StudyDescription)
	set(dcm.TagPatientName, "PN", in.PatientName)
	set(dcm.TagPatientID, "LO", in.PatientID)
	set(dcm.TagIssuerOfPatientID, "LO", in.IssuerOfPatientID)
	set(dcm.TagPatientBirthDate, "DA", in.PatientBirthDate)
	set(dcm.TagPatientSex, "CS", in.PatientSex)
	set(dcm.TagStudyInstanceUID, "UI", in.StudyInstanceUID)
	set(dcm.TagSeriesInstanceUID, "UI", in.SeriesInstanceUID)
	set(dcm.TagStudyID, "SH", in.StudyID)
	if in.SeriesNumber != nil {
		set(dcm.TagSeriesNumber, "IS", fmt.Sprint(*in.SeriesNumber))
	}
	if in.InstanceNumber != nil {
		set(dcm.TagInstanceNumber, "IS", fmt.Sprint(*in.InstanceNumber))
	}
	body, err := ds.Encode(dcm.ExplicitVRLittleEndian)
	if err != nil {
		return nil, err
	}
	return append(dcm.EncodeMeta(dcm.Meta{MediaStorageSOPClassUID: in.SOPClassUID, MediaStorageSOPInstanceUID: in.SOPInstanceUID, TransferSyntaxUID: dcm.ExplicitVRLittleEndian, ImplementationClassUID: "1.2.3.4"}), body...), nil
}
