package index

import (
	"bytes"
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
		var have string
		if dcm.IsTextVR(v.vr) {
			have = ds.TextIn(cs, v.tag)
		} else {
			have = ds.String(v.tag)
		}
		if strings.TrimSpace(have) != strings.TrimSpace(v.value) {
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

// utf8Corrections sets every differing record value in UTF-8 and the Specific Character
// Set to ISO_IR 192 (the rest of the header being ASCII, it reads the same).
func utf8Corrections(in *Instance, ds *dcm.Dataset) map[dcm.Tag]*dcm.Element {
	out := map[dcm.Tag]*dcm.Element{dcm.TagSpecificCharacterSet: dcm.NewString(dcm.TagSpecificCharacterSet, "CS", "ISO_IR 192")}
	cs := ds.CharacterSet()
	for _, v := range in.recordValues() {
		have := ds.String(v.tag)
		if dcm.IsTextVR(v.vr) {
			have = ds.TextIn(cs, v.tag)
		}
		if strings.TrimSpace(have) != strings.TrimSpace(v.value) || !dcm.IsASCII(have) {
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
		repl, err := jsonMembers(js, "")
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
	list, err := scanMembers(meta, studyKey)
	if err != nil {
		return ""
	}
	p0, p1, s := -1, -1, -1
	for i, m := range list {
		if m.key >= "00100010" && m.key <= "00100040" {
			if p0 < 0 {
				p0 = i
			}
			p1 = i
		}
		if m.key == studyKey {
			s = i
		}
	}
	if p0 < 0 || s < 0 || p1 >= s {
		return ""
	}
	return fmt.Sprintf("%d,%d,%d,%d", list[p0].start, list[p1].end, list[s].start, list[s].end)
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

// jsonMember is one top-level member of a JSON object: its key and where the member
// (key to end of value) lies.
type jsonMember struct {
	key        string
	start, end int
}

// jsonMembers returns the top-level members of the JSON object b, keyed, with their
// text "key":value; it stops after the key stop when stop is not "".
func jsonMembers(b []byte, stop string) (map[string][]byte, error) {
	list, err := scanMembers(b, stop)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(list))
	for _, m := range list {
		out[m.key] = b[m.start:m.end]
	}
	return out, nil
}

// spliceMembers replaces or inserts, in tag order, the members of repl ("key":value
// texts keyed by tag, keys sorted) in the JSON object meta, in one pass that stops
// reading members once the last key of repl is passed (the rest is copied).
func spliceMembers(meta []byte, repl map[string][]byte, keys []string) ([]byte, error) {
	bad := errors.New("index: metadata is not a JSON object")
	i := skipSpace(meta, 0)
	if i >= len(meta) || meta[i] != '{' {
		return nil, bad
	}
	i++
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
	for {
		i = skipSpace(meta, i)
		if i < len(meta) && meta[i] == '}' {
			break
		}
		if i >= len(meta) || meta[i] != '"' {
			return nil, bad
		}
		start := i
		j, err := skipString(meta, i)
		if err != nil {
			return nil, bad
		}
		key := meta[i+1 : j-1]
		i = skipSpace(meta, j)
		if i >= len(meta) || meta[i] != ':' {
			return nil, bad
		}
		if i, err = skipValue(meta, skipSpace(meta, i+1)); err != nil {
			return nil, bad
		}
		for k < len(keys) && keys[k] < string(key) {
			emit(repl[keys[k]])
			k++
		}
		if k < len(keys) && keys[k] == string(key) {
			emit(repl[keys[k]])
			k++
		} else {
			emit(meta[start:i])
		}
		i = skipSpace(meta, i)
		switch {
		case i < len(meta) && meta[i] == ',':
			i++
			if k == len(keys) {
				// Every correction is in: the other members follow as they are.
				rest := bytes.TrimRight(meta[i:], " \t\r\n")
				if len(rest) == 0 || rest[len(rest)-1] != '}' {
					return nil, bad
				}
				out = append(out, ',')
				return append(out, rest...), nil
			}
		case i < len(meta) && meta[i] == '}':
		default:
			return nil, bad
		}
	}
	for ; k < len(keys); k++ {
		emit(repl[keys[k]])
	}
	return append(out, '}'), nil
}

// scanMembers lists the top-level members of the JSON object b in order, up to and
// including the first key at or after stop (all of them when stop is "").
func scanMembers(b []byte, stop string) ([]jsonMember, error) {
	bad := errors.New("index: metadata is not a JSON object")
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, bad
	}
	i++
	var out []jsonMember
	for {
		i = skipSpace(b, i)
		if i < len(b) && b[i] == '}' {
			return out, nil
		}
		if i >= len(b) || b[i] != '"' {
			return nil, bad
		}
		start := i
		j, err := skipString(b, i)
		if err != nil {
			return nil, bad
		}
		key := string(b[i+1 : j-1])
		i = skipSpace(b, j)
		if i >= len(b) || b[i] != ':' {
			return nil, bad
		}
		if i, err = skipValue(b, skipSpace(b, i+1)); err != nil {
			return nil, bad
		}
		out = append(out, jsonMember{key: key, start: start, end: i})
		if stop != "" && key >= stop {
			return out, nil
		}
		i = skipSpace(b, i)
		if i < len(b) && b[i] == ',' {
			i++
			continue
		}
		if i < len(b) && b[i] == '}' {
			return out, nil
		}
		return nil, bad
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the JSON string starting at b[i] == '"'.
func skipString(b []byte, i int) (int, error) {
	for i++; i < len(b); {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			break
		}
		e := bytes.IndexByte(b[i:i+q], '\\')
		if e < 0 {
			return i + q + 1, nil
		}
		i += e + 2 // past the escape and the character it escapes
	}
	return 0, errors.New("unterminated string")
}

// skipValue returns the index after the JSON value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errors.New("no value")
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		// One tight pass: the state is the nesting depth and whether in a string.
		depth, inString := 0, false
		for ; i < len(b); i++ {
			c := b[i]
			if inString {
				if c == '\\' {
					i++
				} else if c == '"' {
					inString = false
				}
				continue
			}
			switch c {
			case '"':
				inString = true
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
		}
		return 0, errors.New("unterminated value")
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return i, nil
		}
	}
	return i, nil
}
