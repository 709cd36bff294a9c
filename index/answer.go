package index

import (
	"cmp"
	"slices"
	"strings"

	"github.com/lumenpacs/lumen/dcm"
)

// Record is one record of a query's answer, at any level: a *Patient, *Study, *Series
// or *Instance. Attribute returns the attributes it holds, those of its level and of the
// levels above it (see attrs.go).
type Record interface {
	Attribute(t dcm.Tag) (vr string, values []string, ok bool)
}

// Records returns the records of the result at level, in the order Find returned them:
// pointers into the result's slice of that level (a caller may use a type switch for
// what is not an attribute, such as an instance's Metadata). It returns nil for a level
// that is none of the four.
func (r *Result) Records(level Level) []Record {
	var out []Record
	switch level {
	case PatientLevel:
		out = make([]Record, len(r.Patients))
		for i := range r.Patients {
			out[i] = &r.Patients[i]
		}
	case StudyLevel:
		out = make([]Record, len(r.Studies))
		for i := range r.Studies {
			out[i] = &r.Studies[i]
		}
	case SeriesLevel:
		out = make([]Record, len(r.Series))
		for i := range r.Series {
			out[i] = &r.Series[i]
		}
	case ImageLevel:
		out = make([]Record, len(r.Instances))
		for i := range r.Instances {
			out[i] = &r.Instances[i]
		}
	}
	return out
}

// Answer builds the data set that answers a query with one record: the return keys of a
// C-FIND response (PS3.4 C.4.1.2.3) or the attributes of a QIDO-RS result (PS3.18
// 10.6.3.3). It holds an element for each of tags that rec holds, with rec's values, and
// lists in missing, in the order of tags, those rec does not hold: the caller answers
// them as its service says (C-FIND: empty; QIDO-RS: from the stored metadata).
//
// Text values (the VRs Specific Character Set governs, dcm.IsTextVR) are written in the
// default repertoire when they all are ASCII; else in cs when cs can represent them all;
// else in UTF-8. In the last two cases the data set has a Specific Character Set saying
// which (PS3.4 C.4.1.1.3.2 lets an SCP answer in a character set other than the
// request's). A nil cs answers in UTF-8: "ISO_IR 192" whenever a text value is not
// ASCII, as DICOM JSON results do (PS3.18 F.2). Values of the other VRs are written as
// dcm.NewValue writes them. The error is that of a value dcm.NewValue refuses.
func Answer(rec Record, tags []dcm.Tag, cs *dcm.CharacterSet) (ds *dcm.Dataset, missing []dcm.Tag, err error) {
	type text struct {
		tag       dcm.Tag
		vr, value string // value: UTF-8, values joined by backslashes
	}
	var texts []text
	els := make([]*dcm.Element, 0, len(tags)+1)
	ascii := true
	for _, t := range tags {
		vr, vals, ok := rec.Attribute(t)
		if !ok {
			missing = append(missing, t)
			continue
		}
		if dcm.IsTextVR(vr) {
			v := strings.Join(vals, `\`)
			ascii = ascii && dcm.IsASCII(v)
			texts = append(texts, text{t, vr, v})
			continue
		}
		e, err := dcm.NewValue(t, vr, vals...)
		if err != nil {
			return nil, nil, err
		}
		els = append(els, e)
	}
	set := func(t text, b []byte) {
		if len(b)%2 == 1 {
			b = append(b, ' ')
		}
		els = append(els, dcm.NewElement(t.tag, t.vr, b))
	}
	switch {
	case ascii:
		for _, t := range texts {
			set(t, []byte(t.value))
		}
		return &dcm.Dataset{Elements: byTag(els)}, missing, nil
	case cs != nil:
		encoded := make([][]byte, len(texts))
		for i, t := range texts {
			if encoded[i], err = cs.Encode(t.value, t.vr); err != nil {
				break
			}
		}
		if err == nil {
			for i, t := range texts {
				set(t, encoded[i])
			}
			if terms := cs.Terms(); terms != nil {
				els = append(els, dcm.NewString(dcm.TagSpecificCharacterSet, "CS", terms...))
			}
			return &dcm.Dataset{Elements: byTag(els)}, missing, nil
		}
		err = nil // cs cannot hold them: UTF-8
	}
	for _, t := range texts {
		set(t, []byte(strings.ToValidUTF8(t.value, "\uFFFD")))
	}
	els = append(els, dcm.NewString(dcm.TagSpecificCharacterSet, "CS", "ISO_IR 192"))
	return &dcm.Dataset{Elements: byTag(els)}, missing, nil
}

// byTag puts elements in ascending tag order, the last of the same tag kept, as
// dcm.Dataset.Set leaves them one after the other.
func byTag(els []*dcm.Element) []*dcm.Element {
	slices.SortStableFunc(els, func(a, b *dcm.Element) int { return cmp.Compare(a.Tag, b.Tag) })
	out := els[:0]
	for _, e := range els {
		if n := len(out); n > 0 && out[n-1].Tag == e.Tag {
			out[n-1] = e
			continue
		}
		out = append(out, e)
	}
	return out
}
