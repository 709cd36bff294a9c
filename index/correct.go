package index

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/lumenpacs/lumen/dcm"
)

// ErrUncorrectable is returned (wrapped) by Corrections when the record's values cannot
// be written into a stored object's header: a corrected name outside the object's
// character set while other text of the object is not ASCII (switching the object to
// UTF-8 would change how that text reads). The object is then not served: never with
// the superseded demographics.
var ErrUncorrectable = errors.New("index: the correction cannot be written into the object")

// recordValue is one attribute the index record sets on the objects filed under it.
type recordValue struct {
	tag   dcm.Tag
	vr    string
	value string
}

// recordValues are the Patient module attributes of the record (and the Study Instance
// UID, which a series moved to another study takes), as served.
func (in *Instance) recordValues() [6]recordValue {
	return [6]recordValue{
		{dcm.TagPatientName, "PN", in.PatientName},
		{dcm.TagPatientID, "LO", in.PatientID},
		{dcm.TagIssuerOfPatientID, "LO", in.IssuerOfPatientID},
		{dcm.TagPatientBirthDate, "DA", in.PatientBirthDate},
		{dcm.TagPatientSex, "CS", in.PatientSex},
		{dcm.TagStudyInstanceUID, "UI", in.StudyInstanceUID},
	}
}

// Corrections returns the top-level elements that make the header ds of the stored
// object of in (parsed from its stored bytes) agree with the index record: the Patient
// Name, ID, Issuer of Patient ID, Birth Date and Sex of its patient record and its
// study's Study Instance UID, each only where the header differs, encoded in the
// header's character set. When the record holds a name that character set cannot
// represent and the rest of the header's text is ASCII, the Specific Character Set
// becomes ISO_IR 192 (UTF-8) with it; otherwise ErrUncorrectable. A nil map (the usual
// answer, and always for a record not Corrected) means the object goes out as stored.
func (in *Instance) Corrections(ds *dcm.Dataset) (map[dcm.Tag]*dcm.Element, error) {
	if !in.Corrected || ds == nil {
		return nil, nil
	}
	cs := ds.CharacterSet()
	var diff []recordValue
	for _, v := range in.recordValues() {
		if strings.TrimSpace(headerValue(ds, cs, v)) != strings.TrimSpace(v.value) {
			diff = append(diff, v)
		}
	}
	if len(diff) == 0 {
		return nil, nil
	}
	out := make(map[dcm.Tag]*dcm.Element, len(diff)+1)
	for _, v := range diff {
		b, err := cs.Encode(v.value, v.vr)
		if errors.Is(err, dcm.ErrUnencodable) {
			if !asciiText(ds, map[dcm.Tag]bool{dcm.TagPatientName: true, dcm.TagPatientID: true, dcm.TagIssuerOfPatientID: true}) {
				return nil, fmt.Errorf("%w: %w", ErrUncorrectable, err)
			}
			return utf8Corrections(in, ds), nil
		}
		if err != nil {
			return nil, err
		}
		out[v.tag] = dcm.NewString(v.tag, v.vr, string(b))
	}
	return out, nil
}

// headerValue is the header's value of the attribute of v, as UTF-8 text.
func headerValue(ds *dcm.Dataset, cs *dcm.CharacterSet, v recordValue) string {
	if dcm.IsTextVR(v.vr) {
		return ds.TextIn(cs, v.tag)
	}
	return ds.String(v.tag)
}

// utf8Corrections sets every differing record value in UTF-8 and the Specific Character
// Set to ISO_IR 192 (the rest of the header being ASCII, it reads the same).
func utf8Corrections(in *Instance, ds *dcm.Dataset) map[dcm.Tag]*dcm.Element {
	out := map[dcm.Tag]*dcm.Element{dcm.TagSpecificCharacterSet: dcm.NewString(dcm.TagSpecificCharacterSet, "CS", "ISO_IR 192")}
	cs := ds.CharacterSet()
	for _, v := range in.recordValues() {
		if have := headerValue(ds, cs, v); strings.TrimSpace(have) != strings.TrimSpace(v.value) || !dcm.IsASCII(have) {
			out[v.tag] = dcm.NewString(v.tag, v.vr, v.value)
		}
	}
	return out
}

// asciiText reports whether every text value of d (nested items included, the tags of
// skip at the top level left out) is ASCII without escape sequences; a text value not
// kept in memory counts as not ASCII.
func asciiText(d *dcm.Dataset, skip map[dcm.Tag]bool) bool {
	for _, e := range d.Elements {
		if skip[e.Tag] {
			continue
		}
		for _, it := range e.Items {
			if !asciiText(it, nil) {
				return false
			}
		}
		if !dcm.IsTextVR(e.VR) {
			continue
		}
		if e.Bulk {
			return false
		}
		for _, c := range e.Value {
			if c >= 0x80 || c == 0x1B {
				return false
			}
		}
	}
	return true
}

// CorrectMetadata returns the DICOM JSON object meta (of an instance filed under in's
// records) with the members of the corrected attributes replaced by the record's values
// (see Corrections); meta itself when in is not Corrected. It relies on the members
// being in tag order, as dcm.Dataset.JSON writes them, and reads meta only up to the
// Study Instance UID.
func (in *Instance) CorrectMetadata(meta []byte) ([]byte, error) {
	var c MetadataCorrector
	return c.Correct(in, meta)
}

// MetadataCorrector corrects the metadata of many instances (Instance.CorrectMetadata),
// encoding the members of each patient record and study once. The zero value is ready;
// it is not safe for concurrent use.
type MetadataCorrector struct {
	key  [6]recordValue
	repl map[string][]byte
	keys []string // of repl, sorted
}

// Correct is Instance.CorrectMetadata. With the record's MetadataSpans it reads only
// the members it replaces; without, it scans the object up to (0020,000D).
func (c *MetadataCorrector) Correct(in *Instance, meta []byte) ([]byte, error) {
	if !in.Corrected || len(meta) == 0 {
		return meta, nil
	}
	vals := in.recordValues()
	if c.repl == nil || vals != c.key {
		var ds dcm.Dataset
		ds.Set(dcm.NewString(dcm.TagSpecificCharacterSet, "CS", "ISO_IR 192"))
		for _, v := range vals {
			ds.Set(dcm.NewString(v.tag, v.vr, v.value))
		}
		js, _, err := ds.JSON(nil)
		if err != nil {
			return nil, err
		}
		repl, err := jsonMembers(js)
		if err != nil {
			return nil, err
		}
		delete(repl, "00080005")
		c.key, c.repl, c.keys = vals, repl, slices.Sorted(maps.Keys(repl))
	}
	if ps, pe, ss, se, ok := parseSpans(in.MetadataSpans, len(meta)); ok {
		// The patient members, spliced as a small object of their own, then the study UID.
		sub := make([]byte, 0, pe-ps+2)
		sub = append(append(append(sub, '{'), meta[ps:pe]...), '}')
		fixed, err := spliceMembers(sub, c.repl, c.keys[:len(c.keys)-1]) // all but 0020000D
		if err != nil {
			return nil, err
		}
		fixed = fixed[1 : len(fixed)-1]
		study := c.repl[studyKey]
		out := make([]byte, 0, len(meta)-(pe-ps)-(se-ss)+len(fixed)+len(study))
		out = append(out, meta[:ps]...)
		out = append(out, fixed...)
		out = append(out, meta[pe:ss]...)
		out = append(out, study...)
		return append(out, meta[se:]...), nil
	}
	return spliceMembers(meta, c.repl, c.keys)
}

// studyKey is the member key of StudyInstanceUID, the last key a correction replaces.
const studyKey = "0020000D"

// MetadataSpans says where the members a correction replaces lie in a DICOM JSON
// object written in tag order (dcm.Dataset.JSON): "ps,pe,ss,se", the byte ranges of the
// members from (0010,0010) to (0010,0040) and of (0020,000D); "" when either is absent
// or meta is not such an object (then a correction scans it).
func MetadataSpans(meta []byte) string {
	p0, p1, ss, se := -1, -1, -1, -1
	_, err := dcm.ScanJSONObject(meta, func(m dcm.JSONMember) bool {
		if k := string(m.Key); k >= "00100010" && k <= "00100040" {
			if p0 < 0 {
				p0 = m.Start
			}
			p1 = m.End
		} else if k == studyKey {
			ss, se = m.Start, m.End
		}
		return string(m.Key) < studyKey
	})
	if err != nil || p0 < 0 || ss < 0 || p1 >= ss {
		return ""
	}
	return fmt.Sprintf("%d,%d,%d,%d", p0, p1, ss, se)
}

// parseSpans reads MetadataSpans for an object of n bytes.
func parseSpans(s string, n int) (ps, pe, ss, se int, ok bool) {
	if s == "" {
		return 0, 0, 0, 0, false
	}
	var v [4]int
	for i := range v {
		f, rest, _ := strings.Cut(s, ",")
		x, err := strconv.Atoi(f)
		if err != nil {
			return 0, 0, 0, 0, false
		}
		v[i], s = x, rest
	}
	ps, pe, ss, se = v[0], v[1], v[2], v[3]
	return ps, pe, ss, se, s == "" && 0 < ps && ps < pe && pe < ss && ss < se && se < n
}

// jsonMembers returns the members of the JSON object b, keyed, with their text
// "key":value.
func jsonMembers(b []byte) (map[string][]byte, error) {
	out := map[string][]byte{}
	_, err := dcm.ScanJSONObject(b, func(m dcm.JSONMember) bool {
		out[string(m.Key)] = b[m.Start:m.End]
		return true
	})
	return out, err
}

// spliceMembers replaces or inserts, in tag order, the members of repl ("key":value
// texts keyed by tag, keys sorted) in the JSON object meta, in one pass that stops
// reading members once the last key of repl is placed (the rest is copied).
func spliceMembers(meta []byte, repl map[string][]byte, keys []string) ([]byte, error) {
	out := make([]byte, 0, len(meta)+256)
	out = append(out, '{')
	first := true
	emit := func(b []byte) {
		if !first {
			out = append(out, ',')
		}
		first = false
		out = append(out, b...)
	}
	k := 0
	rest, err := dcm.ScanJSONObject(meta, func(m dcm.JSONMember) bool {
		for k < len(keys) && keys[k] < string(m.Key) {
			emit(repl[keys[k]])
			k++
		}
		if k < len(keys) && keys[k] == string(m.Key) {
			emit(repl[keys[k]])
			k++
		} else {
			emit(meta[m.Start:m.End])
		}
		return k < len(keys)
	})
	if err != nil {
		return nil, errors.New("index: metadata is not a JSON object")
	}
	if rest < len(meta) {
		// Every correction is in: the other members follow as they are.
		return append(out, meta[rest:]...), nil
	}
	for ; k < len(keys); k++ {
		emit(repl[keys[k]])
	}
	return append(out, '}'), nil
}
