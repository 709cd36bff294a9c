package ingest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
)

// UIDRoot is the root of the UIDs Lumen makes (its implementation class UID is
// UIDRoot + ".1"); rejection notes get UIDs under UIDRoot + ".2".
const UIDRoot = "1.2.826.0.1.3680043.10.1234"

// NewUID returns a fresh UID under UIDRoot + ".2": the time in milliseconds and 48
// random bits, at most 59 characters.
func NewUID(t time.Time) string {
	var b [8]byte
	rand.Read(b[2:])
	return fmt.Sprintf("%s.2.%d.%d", UIDRoot, t.UnixMilli(), binary.BigEndian.Uint64(b[:]))
}

// RejectionRequest asks Lumen to write a rejection note (IHE IOCM) and store it.
type RejectionRequest struct {
	// StudyInstanceUID names the study; SeriesInstanceUID, when set, one series of it;
	// SOPInstanceUIDs, when set, the instances (of that series, or of the study).
	// Without SOPInstanceUIDs every instance of the series or study is rejected, except
	// Key Object Selection documents (earlier notes among them).
	StudyInstanceUID  string
	SeriesInstanceUID string
	SOPInstanceUIDs   []string
	// Reason is the rejection code (index.RejectQuality, ...): the note's title.
	Reason string
	// Description says why, in words (required): the note's Key Object Description.
	Description string
}

// MaxRejectionRefs bounds the instances one rejection note Lumen writes may reference.
const MaxRejectionRefs = 10000

// Reject writes a rejection note for req (a Key Object Selection document titled with
// the reason, referencing the instances in CurrentRequestedProcedureEvidenceSequence and
// in its content, in the study it rejects from, in a series of its own) and stores it
// through the pipeline, exactly as a received note: the instances are hidden once the
// note and the rejections are durable. by says who asked (Via "admin" by default).
func (p *Pipeline) Reject(ctx context.Context, req RejectionRequest, by Source) (*Result, error) {
	meaning := index.RejectionCodes[req.Reason]
	if meaning == "" {
		return nil, fail(ErrInvalid, nil, "reason %q is not a rejection code (113001, 113037, 113038 or 113039)", req.Reason)
	}
	if strings.TrimSpace(req.Description) == "" {
		return nil, fail(ErrInvalid, nil, "a rejection needs a description of why")
	}
	if !dcm.ValidUID(req.StudyInstanceUID) || req.SeriesInstanceUID != "" && !dcm.ValidUID(req.SeriesInstanceUID) {
		return nil, fail(ErrInvalid, nil, "study or series UID missing or malformed")
	}
	if len(req.SOPInstanceUIDs) > MaxRejectionRefs {
		return nil, fail(ErrInvalid, nil, "at most %d instances per rejection", MaxRejectionRefs)
	}
	q := index.Query{Level: index.ImageLevel, Filters: []index.Filter{{Tag: dcm.TagStudyInstanceUID, Value: req.StudyInstanceUID}}, Limit: MaxRejectionRefs + 1}
	if req.SeriesInstanceUID != "" {
		q.Filters = append(q.Filters, index.Filter{Tag: dcm.TagSeriesInstanceUID, Value: req.SeriesInstanceUID})
	}
	for _, uid := range req.SOPInstanceUIDs {
		if !dcm.ValidUID(uid) {
			return nil, fail(ErrInvalid, nil, "SOP Instance UID %q malformed", uid)
		}
	}
	if len(req.SOPInstanceUIDs) > 0 {
		q.Filters = append(q.Filters, index.Filter{Tag: dcm.TagSOPInstanceUID, Values: req.SOPInstanceUIDs})
	}
	r, err := p.Index.Find(ctx, q)
	if err != nil {
		return nil, fail(ErrUnavailable, err, "could not find the instances to reject")
	}
	if len(r.Instances) > MaxRejectionRefs {
		// Counted before the notes are left out, so that none of what was asked for is
		// cut off by the query's limit.
		return nil, fail(ErrInvalid, nil, "more than %d instances: reject series by series", MaxRejectionRefs)
	}
	var insts []index.Instance
	for _, in := range r.Instances {
		if len(req.SOPInstanceUIDs) == 0 && in.SOPClassUID == KeyObjectSelectionDocumentStorage {
			continue
		}
		insts = append(insts, in)
	}
	if len(insts) > MaxRejectionRefs {
		return nil, fail(ErrInvalid, nil, "more than %d instances: reject series by series", MaxRejectionRefs)
	}
	for _, uid := range req.SOPInstanceUIDs {
		if !slices.ContainsFunc(insts, func(in index.Instance) bool { return in.SOPInstanceUID == uid }) {
			return nil, fail(ErrNotFound, nil, "no instance %s in the study or series named (unknown, or rejected already)", uid)
		}
	}
	if len(insts) == 0 {
		return nil, fail(ErrNotFound, nil, "no instance to reject in the study or series named")
	}
	now := p.now()
	b, err := RejectionNote(insts, req.Reason, req.Description, NewUID(now), NewUID(now), now)
	if err != nil {
		return nil, fail(ErrInvalid, err, "could not write the rejection note")
	}
	by.Via = orDefault(by.Via, "admin")
	return p.IngestFile(ctx, bytes.NewReader(b), int64(len(b)), by)
}

// RejectionNote encodes a rejection note as a PS3.10 file (Explicit VR Little Endian):
// a Key Object Selection document (PS3.3 A.35.4; TID 2010) of the patient and study of
// insts (which must share one study), titled (reason, DCM), with description as its Key
// Object Description and one IMAGE (or COMPOSITE) item per instance, in a new series.
func RejectionNote(insts []index.Instance, reason, description, sopUID, seriesUID string, at time.Time) ([]byte, error) {
	if len(insts) == 0 {
		return nil, fmt.Errorf("ingest: rejection note: no instance")
	}
	st := insts[0].Study
	str := func(d *dcm.Dataset, t dcm.Tag, vr string, v ...string) { d.Set(dcm.NewString(t, vr, v...)) }
	code := func(value, scheme, meaning string) *dcm.Dataset {
		c := &dcm.Dataset{}
		str(c, tagCodeValue, "SH", value)
		str(c, tagCodingSchemeDesignator, "SH", scheme)
		str(c, tagCodeMeaning, "LO", meaning)
		return c
	}
	ref := func(in *index.Instance) *dcm.Dataset {
		r := &dcm.Dataset{}
		str(r, dcm.TagReferencedSOPClassUID, "UI", in.SOPClassUID)
		str(r, dcm.TagReferencedSOPInstanceUID, "UI", in.SOPInstanceUID)
		return r
	}
	d := &dcm.Dataset{}
	date, tm := at.UTC().Format("20060102"), at.UTC().Format("150405")
	str(d, dcm.NewTag(0x0008, 0x0005), "CS", "ISO_IR 192")
	str(d, dcm.NewTag(0x0008, 0x0012), "DA", date)
	str(d, dcm.NewTag(0x0008, 0x0013), "TM", tm)
	str(d, dcm.TagSOPClassUID, "UI", KeyObjectSelectionDocumentStorage)
	str(d, dcm.TagSOPInstanceUID, "UI", sopUID)
	str(d, dcm.TagStudyDate, "DA", st.StudyDate)
	str(d, dcm.NewTag(0x0008, 0x0023), "DA", date) // ContentDate
	str(d, dcm.TagStudyTime, "TM", st.StudyTime)
	str(d, dcm.NewTag(0x0008, 0x0033), "TM", tm) // ContentTime
	str(d, dcm.TagAccessionNumber, "SH", st.AccessionNumber)
	str(d, dcm.TagModality, "CS", "KO")
	str(d, dcm.NewTag(0x0008, 0x0070), "LO", "Lumen") // Manufacturer
	str(d, dcm.TagReferringPhysicianName, "PN", st.ReferringPhysicianName)
	d.Set(dcm.NewSequence(dcm.NewTag(0x0008, 0x1111))) // ReferencedPerformedProcedureStepSequence (type 2)
	str(d, dcm.TagPatientName, "PN", st.PatientName)
	str(d, dcm.TagPatientID, "LO", st.PatientID)
	if st.IssuerOfPatientID != "" {
		str(d, dcm.TagIssuerOfPatientID, "LO", st.IssuerOfPatientID)
	}
	str(d, dcm.TagPatientBirthDate, "DA", st.PatientBirthDate)
	str(d, dcm.TagPatientSex, "CS", st.PatientSex)
	str(d, dcm.TagStudyInstanceUID, "UI", st.StudyInstanceUID)
	str(d, dcm.TagSeriesInstanceUID, "UI", seriesUID)
	str(d, dcm.TagStudyID, "SH", st.StudyID)
	str(d, dcm.TagSeriesNumber, "IS", "9999")
	str(d, dcm.TagInstanceNumber, "IS", "1")
	str(d, dcm.NewTag(0x0040, 0xA040), "CS", "CONTAINER") // ValueType
	d.Set(dcm.NewSequence(tagConceptNameCodeSequence, code(reason, "DCM", index.RejectionCodes[reason])))
	str(d, dcm.NewTag(0x0040, 0xA050), "CS", "SEPARATE") // ContinuityOfContent
	tpl := &dcm.Dataset{}
	str(tpl, dcm.NewTag(0x0008, 0x0105), "CS", "DCMR") // MappingResource
	str(tpl, dcm.NewTag(0x0040, 0xDB00), "CS", "2010") // TemplateIdentifier
	d.Set(dcm.NewSequence(dcm.NewTag(0x0040, 0xA504), tpl))

	// Evidence: the instances by series, in the order given.
	var seriesItems []*dcm.Dataset
	bySeries := map[string]*dcm.Dataset{}
	content := []*dcm.Dataset{}
	desc := &dcm.Dataset{}
	str(desc, dcm.NewTag(0x0040, 0xA010), "CS", "CONTAINS") // RelationshipType
	str(desc, dcm.NewTag(0x0040, 0xA040), "CS", "TEXT")
	desc.Set(dcm.NewSequence(tagConceptNameCodeSequence, code("113012", "DCM", "Key Object Description")))
	str(desc, dcm.NewTag(0x0040, 0xA160), "UT", description) // TextValue
	content = append(content, desc)
	for i := range insts {
		in := &insts[i]
		if in.StudyInstanceUID != st.StudyInstanceUID {
			return nil, fmt.Errorf("ingest: rejection note: instances of more than one study")
		}
		se := bySeries[in.SeriesInstanceUID]
		if se == nil {
			se = &dcm.Dataset{}
			str(se, dcm.TagSeriesInstanceUID, "UI", in.SeriesInstanceUID)
			bySeries[in.SeriesInstanceUID] = se
			seriesItems = append(seriesItems, se)
		}
		var items []*dcm.Dataset
		if e := se.Get(dcm.TagReferencedSOPSequence); e != nil {
			items = e.Items
		}
		se.Set(dcm.NewSequence(dcm.TagReferencedSOPSequence, append(items, ref(in))...))
		it := &dcm.Dataset{}
		str(it, dcm.NewTag(0x0040, 0xA010), "CS", "CONTAINS")
		vt := "COMPOSITE"
		if in.Rows > 0 {
			vt = "IMAGE"
		}
		str(it, dcm.NewTag(0x0040, 0xA040), "CS", vt)
		it.Set(dcm.NewSequence(dcm.TagReferencedSOPSequence, ref(in)))
		content = append(content, it)
	}
	studyItem := &dcm.Dataset{}
	str(studyItem, dcm.TagStudyInstanceUID, "UI", st.StudyInstanceUID)
	studyItem.Set(dcm.NewSequence(tagReferencedSeriesSequence, seriesItems...))
	d.Set(dcm.NewSequence(tagCurrentRequestedProcedureEvidenceSequence, studyItem))
	d.Set(dcm.NewSequence(dcm.NewTag(0x0040, 0xA730), content...)) // ContentSequence

	body, err := d.Encode(dcm.ExplicitVRLittleEndian)
	if err != nil {
		return nil, fmt.Errorf("ingest: rejection note: %w", err)
	}
	meta := dcm.EncodeMeta(dcm.Meta{
		MediaStorageSOPClassUID:    KeyObjectSelectionDocumentStorage,
		MediaStorageSOPInstanceUID: sopUID,
		TransferSyntaxUID:          dcm.ExplicitVRLittleEndian,
		ImplementationClassUID:     DefaultImplementationClassUID,
		ImplementationVersionName:  DefaultImplementationVersionName,
	})
	return append(meta, body...), nil
}
