package gen

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// UIDRoot is the root under which every generated UID is allocated. UIDs
// are UIDRoot + "." + kind + "." + a decimal FNV-1a hash (+ "." + counter
// for instances), at most 64 characters.
const UIDRoot = "1.2.826.0.1.3680043.10.1234"

// ImplementationClassUID is written into the File Meta Information of every
// generated file.
const ImplementationClassUID = UIDRoot + ".0.1"

// ImplementationVersionName is written into the File Meta Information of
// every generated file.
const ImplementationVersionName = "LUMEN_TESTGEN_1"

// Manufacturer is the General Equipment Manufacturer of every generated
// object.
const Manufacturer = "Lumen synthetic test data"

// Transfer syntax and SOP class UIDs used by the generators.
const (
	// ExplicitVRLittleEndian is the transfer syntax of every generated file.
	ExplicitVRLittleEndian = "1.2.840.10008.1.2.1"

	// CTImageStorage is the SOP class of CTSeries.
	CTImageStorage = "1.2.840.10008.5.1.4.1.1.2"
	// MRImageStorage is the SOP class of MRSeries.
	MRImageStorage = "1.2.840.10008.5.1.4.1.1.4"
	// XAImageStorage is the SOP class of XACine and LargeMultiframe.
	XAImageStorage = "1.2.840.10008.5.1.4.1.1.12.1"
	// USMultiFrameImageStorage is the SOP class of USCine.
	USMultiFrameImageStorage = "1.2.840.10008.5.1.4.1.1.3.1"
	// TwelveLeadECGWaveformStorage is the SOP class of ECG12Lead.
	TwelveLeadECGWaveformStorage = "1.2.840.10008.5.1.4.1.1.9.1.1"
	// BasicTextSRStorage is the SOP class of BasicTextSR.
	BasicTextSRStorage = "1.2.840.10008.5.1.4.1.1.88.11"
)

const (
	utf8CharacterSet              = "ISO_IR 192"
	defaultStudyDescription       = "Synthetic study"
	defaultReferringPhysicianName = "Referrer^Synthetic"
)

// Patient identifies the (synthetic) patient of the generated objects.
type Patient struct {
	// ID is PatientID (0010,0020).
	ID string
	// Issuer is IssuerOfPatientID (0010,0021).
	Issuer string
	// Name is PatientName (0010,0010) in DICOM PN form, e.g. "Müller^Jürgen".
	// Non-ASCII names are written as UTF-8 with SpecificCharacterSet
	// ISO_IR 192.
	Name string
	// BirthDate is PatientBirthDate (0010,0030), YYYYMMDD.
	BirthDate string
	// Sex is PatientSex (0010,0040): M, F or O.
	Sex string
}

// DefaultPatient is used when Options.Patient.ID is empty.
var DefaultPatient = Patient{
	ID:        "LUMEN-TEST-0000",
	Issuer:    "LUMEN-TEST",
	Name:      "Synthetic^Default",
	BirthDate: "19700101",
	Sex:       "O",
}

// Options parameterises a generator call. The zero value is usable: every
// empty field gets a deterministic default. Study-level defaults do not
// depend on the generator, so calling several generators with the same
// Options puts their series into one consistent study.
type Options struct {
	// Seed drives derived UIDs and all pseudo-random pixel or sample noise.
	Seed uint64
	// Patient is the patient; if Patient.ID is empty, DefaultPatient is used.
	Patient Patient

	// StudyUID is StudyInstanceUID; "" derives it from Seed, the patient,
	// StudyID and AccessionNumber.
	StudyUID string
	// StudyID is StudyID (0020,0010); default "1".
	StudyID string
	// AccessionNumber is AccessionNumber (0008,0050); default derived from Seed.
	AccessionNumber string
	// StudyDate is StudyDate (0008,0020), YYYYMMDD; default "20240115".
	StudyDate string
	// StudyTime is StudyTime (0008,0030), HHMMSS; default "093000".
	StudyTime string
	// StudyDescription is StudyDescription (0008,1030); default "Synthetic study".
	StudyDescription string
	// ReferringPhysicianName is ReferringPhysicianName (0008,0090).
	ReferringPhysicianName string

	// SeriesUID is SeriesInstanceUID; "" derives it from the study UID, the
	// generator and SeriesNumber. Two calls of the same generator for the
	// same study need distinct SeriesNumbers (or explicit SeriesUIDs).
	SeriesUID string
	// SeriesNumber is SeriesNumber (0020,0011); 0 uses the generator's
	// default (CT 1, MR 2, XA 3, US 4, ECG 5, SR 6, large XA 7).
	SeriesNumber int
	// SeriesDescription is SeriesDescription (0008,103E); "" uses a
	// generator-specific default.
	SeriesDescription string
	// BodyPartExamined is BodyPartExamined (0018,0015); "" uses a
	// generator-specific default (none for ECG and SR).
	BodyPartExamined string

	// Contrast selects the MR weighting: "T1" (default) or "T2".
	Contrast string
	// Findings and Impression are the texts of the SR items; "" uses a
	// synthetic default.
	Findings, Impression string

	// Dir is the directory part of Object.Name; "" uses the lower-case
	// modality, e.g. "ct".
	Dir string
}

// Object is one generated DICOM PS3.10 file and what identifies it.
type Object struct {
	// Name is a suggested relative, slash-separated file name, e.g. "ct/ct-001.dcm".
	Name string
	// PatientID is the PatientID of the object.
	PatientID string
	// StudyUID is StudyInstanceUID.
	StudyUID string
	// SeriesUID is SeriesInstanceUID.
	SeriesUID string
	// SOPInstanceUID is SOPInstanceUID (equal to MediaStorageSOPInstanceUID).
	SOPInstanceUID string
	// SOPClassUID is SOPClassUID (equal to MediaStorageSOPClassUID).
	SOPClassUID string
	// Modality is Modality (0008,0060).
	Modality string
	// SeriesNumber is SeriesNumber (0020,0011).
	SeriesNumber int
	// InstanceNumber is InstanceNumber (0020,0013).
	InstanceNumber int
	// NumberOfFrames is the number of image frames (1 for single-frame
	// images, 0 for objects without pixel data such as ECG and SR).
	NumberOfFrames int
	// Data is the complete PS3.10 file.
	Data []byte
}

// generator kinds, used in derived UIDs and default series numbers.
const (
	kindCT = iota + 1
	kindMR
	kindXA
	kindUS
	kindECG
	kindSR
	kindLargeXA
)

// UID kinds (the component right after UIDRoot).
const (
	uidStudy    = 1
	uidSeries   = 2
	uidInstance = 3
	uidFrameRef = 4
)

// hashUID derives a UID from UIDRoot, kind and a hash of parts.
func hashUID(kind int, parts ...string) string {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return fmt.Sprintf("%s.%d.%d", UIDRoot, kind, h.Sum64())
}

// resolved holds Options after defaults are applied for one generator.
type resolved struct {
	Options
	kind int
}

// resolve applies defaults for a generator of the given kind.
func resolve(opt Options, kind int, modality, seriesDesc, bodyPart string) resolved {
	if opt.Patient.ID == "" {
		opt.Patient = DefaultPatient
	}
	if opt.StudyID == "" {
		opt.StudyID = "1"
	}
	if opt.AccessionNumber == "" {
		opt.AccessionNumber = fmt.Sprintf("ACC%06d", opt.Seed%1000000)
	}
	if opt.StudyDate == "" {
		opt.StudyDate = "20240115"
	}
	if opt.StudyTime == "" {
		opt.StudyTime = "093000"
	}
	if opt.StudyDescription == "" {
		opt.StudyDescription = defaultStudyDescription
	}
	if opt.ReferringPhysicianName == "" {
		opt.ReferringPhysicianName = defaultReferringPhysicianName
	}
	if opt.StudyUID == "" {
		opt.StudyUID = hashUID(uidStudy, strconv.FormatUint(opt.Seed, 10),
			opt.Patient.Issuer, opt.Patient.ID, opt.StudyID, opt.AccessionNumber)
	}
	if opt.SeriesNumber == 0 {
		opt.SeriesNumber = kind
	}
	if opt.SeriesUID == "" {
		opt.SeriesUID = hashUID(uidSeries, opt.StudyUID, strconv.Itoa(kind), strconv.Itoa(opt.SeriesNumber))
	}
	if opt.SeriesDescription == "" {
		opt.SeriesDescription = seriesDesc
	}
	if opt.BodyPartExamined == "" {
		opt.BodyPartExamined = bodyPart
	}
	if opt.Dir == "" {
		opt.Dir = strings.ToLower(modality)
	}
	return resolved{Options: opt, kind: kind}
}

// instanceUID derives the SOPInstanceUID of instance number n of the series.
func (r resolved) instanceUID(n int) string {
	return hashUID(uidInstance, r.SeriesUID) + "." + strconv.Itoa(n)
}

// frameOfReferenceUID derives the FrameOfReferenceUID of the series.
func (r resolved) frameOfReferenceUID() string {
	return hashUID(uidFrameRef, r.SeriesUID)
}

// builder accumulates elements, remembering the first error.
type builder struct {
	elems []*dicom.Element
	err   error
}

func (b *builder) fail(t tag.Tag, err error) {
	if b.err == nil {
		b.err = fmt.Errorf("gen: element %s: %w", t, err)
	}
}

// add appends an element whose VR comes from the data dictionary.
func (b *builder) add(t tag.Tag, data any) *dicom.Element {
	e, err := dicom.NewElement(t, data)
	if err != nil {
		b.fail(t, err)
		return nil
	}
	b.elems = append(b.elems, e)
	return e
}

// addVR appends an element with an explicit VR (for tags whose dictionary
// entry allows several VRs).
func (b *builder) addVR(t tag.Tag, vr string, data any) {
	if e := b.add(t, data); e != nil {
		e.RawValueRepresentation = vr
		e.ValueRepresentation = tag.GetVRKind(t, vr)
	}
}

// str appends a string-valued element (multiple values are joined with "\").
func (b *builder) str(t tag.Tag, values ...string) { b.add(t, values) }

// ints appends an integer-valued element (US, UL, SS, SL, AT).
func (b *builder) ints(t tag.Tag, values ...int) { b.add(t, values) }

// seq appends a sequence element with the given items (possibly none).
func (b *builder) seq(t tag.Tag, items ...[]*dicom.Element) {
	if items == nil {
		items = [][]*dicom.Element{}
	}
	b.add(t, items)
}

// item builds one sequence item with fill; errors propagate to b.
func (b *builder) item(fill func(*builder)) []*dicom.Element {
	c := &builder{}
	fill(c)
	if c.err != nil && b.err == nil {
		b.err = c.err
	}
	return c.sorted()
}

// code builds a code sequence item.
func (b *builder) code(value, scheme, meaning string) []*dicom.Element {
	return b.item(func(c *builder) {
		c.str(tag.CodeValue, value)
		c.str(tag.CodingSchemeDesignator, scheme)
		c.str(tag.CodeMeaning, meaning)
	})
}

// sorted returns the elements in ascending tag order, as a data set must be.
func (b *builder) sorted() []*dicom.Element {
	slices.SortStableFunc(b.elems, func(x, y *dicom.Element) int {
		if x.Tag.Group != y.Tag.Group {
			return int(x.Tag.Group) - int(y.Tag.Group)
		}
		return int(x.Tag.Element) - int(y.Tag.Element)
	})
	return b.elems
}

// common adds File Meta Information, Patient, General Study, General Series,
// General Equipment and SOP Common attributes.
func (b *builder) common(r resolved, sopClass, sopInstance, modality string, instanceNumber int) {
	// File Meta Information (group length is computed by the writer).
	b.add(tag.FileMetaInformationVersion, []byte{0x00, 0x01})
	b.str(tag.MediaStorageSOPClassUID, sopClass)
	b.str(tag.MediaStorageSOPInstanceUID, sopInstance)
	b.str(tag.TransferSyntaxUID, ExplicitVRLittleEndian)
	b.str(tag.ImplementationClassUID, ImplementationClassUID)
	b.str(tag.ImplementationVersionName, ImplementationVersionName)

	// SOP Common.
	b.str(tag.SOPClassUID, sopClass)
	b.str(tag.SOPInstanceUID, sopInstance)

	// Patient.
	b.str(tag.PatientName, r.Patient.Name)
	b.str(tag.PatientID, r.Patient.ID)
	b.str(tag.IssuerOfPatientID, r.Patient.Issuer)
	b.str(tag.PatientBirthDate, r.Patient.BirthDate)
	b.str(tag.PatientSex, r.Patient.Sex)

	// General Study.
	b.str(tag.StudyInstanceUID, r.StudyUID)
	b.str(tag.StudyDate, r.StudyDate)
	b.str(tag.StudyTime, r.StudyTime)
	b.str(tag.AccessionNumber, r.AccessionNumber)
	b.str(tag.StudyDescription, r.StudyDescription)
	b.str(tag.ReferringPhysicianName, r.ReferringPhysicianName)
	b.str(tag.StudyID, r.StudyID)

	// General Series.
	b.str(tag.SeriesInstanceUID, r.SeriesUID)
	b.str(tag.SeriesNumber, strconv.Itoa(r.SeriesNumber))
	b.str(tag.Modality, modality)
	b.str(tag.SeriesDescription, r.SeriesDescription)
	if r.BodyPartExamined != "" {
		b.str(tag.BodyPartExamined, r.BodyPartExamined)
	}

	// General Equipment.
	b.str(tag.Manufacturer, Manufacturer)

	// Instance-level attributes shared by all generators.
	b.str(tag.InstanceNumber, strconv.Itoa(instanceNumber))
	b.str(tag.ContentDate, r.StudyDate)
	b.str(tag.ContentTime, r.StudyTime)
}

// encode returns the data set as a PS3.10 file.
func (b *builder) encode() ([]byte, error) {
	ds, err := b.dataset()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := dicom.Write(&buf, ds); err != nil {
		return nil, fmt.Errorf("gen: write: %w", err)
	}
	return buf.Bytes(), nil
}

// dataset returns the finished data set in tag order, adding
// SpecificCharacterSet ISO_IR 192 when any string value is not plain ASCII.
func (b *builder) dataset() (dicom.Dataset, error) {
	if b.err != nil {
		return dicom.Dataset{}, b.err
	}
	if needsUTF8(b.elems) {
		b.str(tag.SpecificCharacterSet, utf8CharacterSet)
	}
	return dicom.Dataset{Elements: b.sorted()}, b.err
}

// needsUTF8 reports whether any string value, at any nesting level, has a
// byte outside ASCII.
func needsUTF8(elems []*dicom.Element) bool {
	for _, e := range elems {
		if e == nil || e.Value == nil {
			continue
		}
		switch v := e.Value.GetValue().(type) {
		case []string:
			for _, s := range v {
				for i := 0; i < len(s); i++ {
					if s[i] >= 0x80 {
						return true
					}
				}
			}
		case []*dicom.SequenceItemValue:
			for _, it := range v {
				if items, ok := it.GetValue().([]*dicom.Element); ok && needsUTF8(items) {
					return true
				}
			}
		}
	}
	return false
}

// formatDS formats v as a DICOM Decimal String (at most 16 characters).
func formatDS(v float64) string {
	if v == 0 {
		return "0"
	}
	s := strconv.FormatFloat(v, 'f', -1, 64)
	for prec := 10; len(s) > 16 && prec > 0; prec-- {
		s = strconv.FormatFloat(v, 'g', prec, 64)
	}
	return s
}

// fileName returns dir/prefix-NNN.dcm with at least three digits, more if
// total needs them.
func fileName(dir, prefix string, n, total int) string {
	width := max(3, len(strconv.Itoa(total)))
	return fmt.Sprintf("%s/%s-%0*d.dcm", dir, prefix, width, n)
}

// clamp limits v to [lo, hi] and rounds it to the nearest integer.
func clamp(v float64, lo, hi int) int {
	r := int(math.Round(v))
	return min(max(r, lo), hi)
}

// checkDims validates image dimensions.
func checkDims(what string, n, rows, cols int) error {
	if n < 1 {
		return fmt.Errorf("gen: %s: count must be at least 1, got %d", what, n)
	}
	if rows < 1 || cols < 1 || rows > 0xFFFF || cols > 0xFFFF {
		return fmt.Errorf("gen: %s: rows and cols must be in 1..65535, got %dx%d", what, rows, cols)
	}
	return nil
}
