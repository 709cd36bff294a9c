package dcm

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	dtag "github.com/suyashkumar/dicom/pkg/tag"
)

// Tag is a data element tag, group in the high 16 bits and element in the low 16.
type Tag uint32

// NewTag builds a tag from its group and element numbers.
func NewTag(group, element uint16) Tag { return Tag(uint32(group)<<16 | uint32(element)) }

// Group returns the tag's group number.
func (t Tag) Group() uint16 { return uint16(t >> 16) }

// Element returns the tag's element number.
func (t Tag) Element() uint16 { return uint16(t) }

// String formats the tag as (gggg,eeee).
func (t Tag) String() string { return fmt.Sprintf("(%04X,%04X)", t.Group(), t.Element()) }

// Hex formats the tag as the eight upper-case hex digits used by DICOM JSON.
func (t Tag) Hex() string {
	var b [8]byte
	return string(appendHex(b[:0], t))
}

// IsPrivate reports whether the tag belongs to an odd (private) group.
func (t Tag) IsPrivate() bool { return t.Group()%2 == 1 }

// Keyword returns the data dictionary keyword of the tag, or "" when unknown.
func (t Tag) Keyword() string {
	info, err := dtag.Find(dtag.Tag{Group: t.Group(), Element: t.Element()})
	if err != nil {
		return ""
	}
	return info.Keyword
}

// ParseTag accepts a keyword ("PatientID") or eight hex digits ("00100020"), with or
// without parentheses and comma ("(0010,0020)").
func ParseTag(s string) (Tag, error) {
	h := s
	if strings.ContainsAny(s, "(),") {
		h = tagPunctuation.Replace(s)
	}
	if len(h) == 8 {
		if v, err := strconv.ParseUint(h, 16, 32); err == nil {
			return Tag(v), nil
		}
	}
	if t, ok := keywordTags.Load(s); ok {
		return t.(Tag), nil
	}
	info, err := dtag.FindByKeyword(s)
	if err != nil {
		return 0, fmt.Errorf("dcm: unknown attribute %q", s)
	}
	t := NewTag(info.Tag.Group, info.Tag.Element)
	keywordTags.Store(s, t)
	return t, nil
}

// tagPunctuation strips the parentheses and comma of "(gggg,eeee)".
var tagPunctuation = strings.NewReplacer("(", "", ")", "", ",", "")

// keywordTags holds the tags ParseTag found by keyword (string -> Tag): the
// dictionary's look-up by keyword walks the whole dictionary, tens of microseconds,
// for every keyword of every QIDO-RS query. Only what the dictionary holds is kept, so
// the map is bounded by it.
var keywordTags sync.Map

// DictVR returns the VR the data dictionary gives for t, used for implicit VR data sets.
// Unknown and private tags are UN; repeating groups and group lengths are handled. For
// attributes that are US or SS depending on PixelRepresentation it returns "xs".
func DictVR(t Tag) string {
	switch {
	case t.Element() == 0x0000:
		return "UL"
	case t.Group() >= 0x6000 && t.Group() <= 0x60FF && t.Group()%2 == 0:
		// Overlay repeating group (60xx).
		return DictVR(NewTag(0x6000, t.Element()))
	case t.Group() >= 0x5000 && t.Group() <= 0x50FF && t.Group()%2 == 0:
		return DictVR(NewTag(0x5000, t.Element()))
	case t.IsPrivate() && t.Element() >= 0x0010 && t.Element() <= 0x00FF:
		return "LO" // private creator
	}
	info, err := dtag.Find(dtag.Tag{Group: t.Group(), Element: t.Element()})
	if err != nil || len(info.VRs) == 0 {
		if t == TagPixelData {
			return "OW"
		}
		return "UN"
	}
	vr := info.VRs[0]
	if len(info.VRs) > 1 {
		vr = strings.Join(info.VRs, " or ")
	}
	switch vr {
	case "OB or OW", "OW or OB":
		return "OW"
	case "US or SS", "SS or US":
		return "xs" // resolved by the reader from PixelRepresentation
	case "US or SS or OW", "US or OW":
		return "US"
	}
	if strings.Contains(vr, "OW") {
		return "OW"
	}
	if len(vr) != 2 {
		return vr[:2]
	}
	return vr
}

// Tags Lumen reads while ingesting and indexing.
const (
	TagFileMetaInformationGroupLength Tag = 0x00020000
	TagFileMetaInformationVersion     Tag = 0x00020001
	TagMediaStorageSOPClassUID        Tag = 0x00020002
	TagMediaStorageSOPInstanceUID     Tag = 0x00020003
	TagTransferSyntaxUID              Tag = 0x00020010
	TagImplementationClassUID         Tag = 0x00020012
	TagImplementationVersionName      Tag = 0x00020013
	TagSourceApplicationEntityTitle   Tag = 0x00020016

	TagSpecificCharacterSet           Tag = 0x00080005
	TagImageType                      Tag = 0x00080008
	TagSOPClassUID                    Tag = 0x00080016
	TagSOPInstanceUID                 Tag = 0x00080018
	TagStudyDate                      Tag = 0x00080020
	TagSeriesDate                     Tag = 0x00080021
	TagContentDate                    Tag = 0x00080023
	TagStudyTime                      Tag = 0x00080030
	TagSeriesTime                     Tag = 0x00080031
	TagContentTime                    Tag = 0x00080033
	TagAccessionNumber                Tag = 0x00080050
	TagQueryRetrieveLevel             Tag = 0x00080052
	TagRetrieveAETitle                Tag = 0x00080054
	TagInstanceAvailability           Tag = 0x00080056
	TagModality                       Tag = 0x00080060
	TagModalitiesInStudy              Tag = 0x00080061
	TagSOPClassesInStudy              Tag = 0x00080062
	TagInstitutionName                Tag = 0x00080080
	TagReferringPhysicianName         Tag = 0x00080090
	TagStationName                    Tag = 0x00081010
	TagReferencedSOPClassUID          Tag = 0x00081150
	TagReferencedSOPInstanceUID       Tag = 0x00081155
	TagTransactionUID                 Tag = 0x00081195
	TagFailureReason                  Tag = 0x00081197
	TagFailedSOPSequence              Tag = 0x00081198
	TagReferencedSOPSequence          Tag = 0x00081199
	TagStudyDescription               Tag = 0x00081030
	TagSeriesDescription              Tag = 0x0008103E
	TagIssuerOfAccessionNumber        Tag = 0x00080051
	TagRetrieveURL                    Tag = 0x00081190
	TagTimezoneOffsetFromUTC          Tag = 0x00080201
	TagPatientName                    Tag = 0x00100010
	TagPatientID                      Tag = 0x00100020
	TagIssuerOfPatientID              Tag = 0x00100021
	TagPatientBirthDate               Tag = 0x00100030
	TagPatientSex                     Tag = 0x00100040
	TagBodyPartExamined               Tag = 0x00180015
	TagFrameTime                      Tag = 0x00181063
	TagStudyInstanceUID               Tag = 0x0020000D
	TagSeriesInstanceUID              Tag = 0x0020000E
	TagStudyID                        Tag = 0x00200010
	TagSeriesNumber                   Tag = 0x00200011
	TagInstanceNumber                 Tag = 0x00200013
	TagNumberOfPatientRelatedStudies  Tag = 0x00201200
	TagNumberOfStudyRelatedSeries     Tag = 0x00201206
	TagNumberOfStudyRelatedInstances  Tag = 0x00201208
	TagNumberOfSeriesRelatedInstances Tag = 0x00201209
	TagSamplesPerPixel                Tag = 0x00280002
	TagPhotometricInterpretation      Tag = 0x00280004
	TagPlanarConfiguration            Tag = 0x00280006
	TagNumberOfFrames                 Tag = 0x00280008
	TagRows                           Tag = 0x00280010
	TagColumns                        Tag = 0x00280011
	TagBitsAllocated                  Tag = 0x00280100
	TagBitsStored                     Tag = 0x00280101
	TagHighBit                        Tag = 0x00280102
	TagPixelRepresentation            Tag = 0x00280103
	TagExtendedOffsetTable            Tag = 0x7FE00001
	TagExtendedOffsetTableLengths     Tag = 0x7FE00002
	TagFloatPixelData                 Tag = 0x7FE00008
	TagDoubleFloatPixelData           Tag = 0x7FE00009
	TagPixelData                      Tag = 0x7FE00010
	TagItem                           Tag = 0xFFFEE000
	TagItemDelimitationItem           Tag = 0xFFFEE00D
	TagSequenceDelimitationItem       Tag = 0xFFFEE0DD
)

// UndefinedLength is the value length 0xFFFFFFFF.
const UndefinedLength uint32 = 0xFFFFFFFF

// ValidUID reports whether s is a well-formed UID (PS3.5 §9.1): at most 64 characters,
// dot-separated components of digits. Components with leading zeros, common in the
// wild, are accepted.
func ValidUID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	prevDot := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if prevDot {
				return false
			}
			prevDot = true
		case c >= '0' && c <= '9':
			prevDot = false
		default:
			return false
		}
	}
	return !prevDot
}
