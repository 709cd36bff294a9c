package index

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
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
	if !in.Corrected || len(meta) == 0 {
		return meta, nil
	}
	var ds dcm.Dataset
	ds.Set(dcm.NewString(dcm.TagSpecificCharacterSet, "CS", "ISO_IR 192"))
	for _, v := range in.recordValues() {
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
	return spliceMembers(meta, repl)
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
// texts keyed by tag) in the JSON object meta.
func spliceMembers(meta []byte, repl map[string][]byte) ([]byte, error) {
	last := ""
	for k := range repl {
		last = max(last, k)
	}
	list, err := scanMembers(meta, last)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(repl))
	for k := range repl {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]byte, 0, len(meta)+256)
	pos := 1 // after '{'
	out = append(out, '{')
	first := true
	emit := func(b []byte) {
		if !first {
			out = append(out, ',')
		}
		first = false
		out = append(out, b...)
	}
	i := 0
	for _, m := range list {
		for i < len(keys) && keys[i] < m.key {
			emit(repl[keys[i]])
			i++
		}
		if i < len(keys) && keys[i] == m.key {
			emit(repl[keys[i]])
			i++
		} else {
			emit(meta[m.start:m.end])
		}
		pos = m.end
	}
	for ; i < len(keys); i++ {
		emit(repl[keys[i]])
	}
	// The rest of the object, after the last member read.
	return append(out, bytes.TrimLeft(meta[pos:], " \t\r\n")...), nil
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
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, nil
		}
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
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				j, err := skipString(b, i)
				if err != nil {
					return 0, err
				}
				i = j - 1
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
