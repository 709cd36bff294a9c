package index_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
)

// TestAnswerCharacterSets checks the character set rule of Answer: ASCII text as is
// with no Specific Character Set, else the caller's character set when it holds every
// text value, else UTF-8; values of other VRs as dcm.NewValue writes them.
func TestAnswerCharacterSets(t *testing.T) {
	rec := func(name, description, modality string) *index.Instance {
		in := &index.Instance{SOPInstanceUID: "1.2.3", Rows: 512}
		in.PatientName, in.StudyDescription, in.Modality = name, description, modality
		in.PatientID, in.StudyInstanceUID = "P1", "1.2"
		return in
	}
	latin1, _ := dcm.ParseCharacterSet([]string{"ISO_IR 100"}).Encode("Müller^Jürgen", "PN")
	jis := dcm.ParseCharacterSet([]string{"", "ISO 2022 IR 87"})
	yamada, err := jis.Encode("山田^太郎", "PN")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		rec     *index.Instance
		cs      []string // the caller's Specific Character Set; nil: no cs (UTF-8)
		wantPN  []byte   // PatientName's value, padded
		wantSCS string   // "": no Specific Character Set
	}{
		{"ascii, utf-8 answer", rec("Smith^John", "CT", "CT"), nil, []byte("Smith^John"), ""},
		{"ascii, padded", rec("Doe^Jo", "CT", "CT"), []string{"ISO_IR 100"}, []byte("Doe^Jo"), ""},
		{"ascii, odd length padded", rec("Doe^Joe", "CT", "CT"), []string{"ISO_IR 100"}, []byte("Doe^Joe "), ""},
		{"non-ascii, utf-8 answer", rec("Müller^Jürgen", "CT", "CT"), nil, []byte("Müller^Jürgen "), "ISO_IR 192"},
		{"non-ascii in the request's set", rec("Müller^Jürgen", "CT", "CT"), []string{"ISO_IR 100"}, append(latin1, ' '), "ISO_IR 100"},
		{"non-ascii, default repertoire asked: utf-8", rec("Müller^Jürgen", "CT", "CT"), []string{}, []byte("Müller^Jürgen "), "ISO_IR 192"},
		{"one value the set cannot hold: all utf-8", rec("Müller^Jürgen", "MR Schädel 山", "MR"), []string{"ISO_IR 100"}, []byte("Müller^Jürgen "), "ISO_IR 192"},
		{"code extensions", rec("山田^太郎", "CT", "CT"), []string{"", "ISO 2022 IR 87"}, yamada, `\ISO 2022 IR 87`},
		{"a non-text value decides nothing", rec("Smith^John", "CT", "C\xc9"), []string{"ISO_IR 100"}, []byte("Smith^John"), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var cs *dcm.CharacterSet
			if c.cs != nil {
				cs = dcm.ParseCharacterSet(c.cs)
			}
			tags := []dcm.Tag{dcm.TagModality, dcm.TagStudyDescription, dcm.TagRows, dcm.TagPatientName, dcm.NewTag(0x0008, 0x0080), dcm.TagSOPInstanceUID}
			ds, missing, err := index.Answer(c.rec, tags, cs)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(missing, []dcm.Tag{dcm.NewTag(0x0008, 0x0080)}) {
				t.Fatalf("missing %v", missing)
			}
			if len(c.wantPN)%2 == 1 {
				c.wantPN = append(c.wantPN, ' ')
			}
			if e := ds.Get(dcm.TagPatientName); e == nil || e.VR != "PN" || !bytes.Equal(e.Value, c.wantPN) {
				t.Fatalf("PatientName %v, want % x", e, c.wantPN)
			}
			if e := ds.Get(dcm.TagSpecificCharacterSet); (e == nil) != (c.wantSCS == "") || e != nil && string(bytes.TrimRight(e.Value, " ")) != c.wantSCS {
				t.Fatalf("SpecificCharacterSet %v, want %q", e, c.wantSCS)
			}
			if got := ds.Texts(dcm.TagPatientName); len(got) != 1 || got[0] != c.rec.PatientName {
				t.Fatalf("PatientName reads %q", got)
			}
			if got := ds.Texts(dcm.TagStudyDescription); len(got) != 1 || got[0] != c.rec.StudyDescription {
				t.Fatalf("StudyDescription reads %q", got)
			}
			if e := ds.Get(dcm.TagRows); e == nil || e.VR != "US" || !bytes.Equal(e.Value, []byte{0, 2}) {
				t.Fatalf("Rows %v", e)
			}
			if got := ds.String(dcm.TagModality); got != c.rec.Modality {
				t.Fatalf("Modality %q", got)
			}
			if got := ds.String(dcm.TagSOPInstanceUID); got != "1.2.3" {
				t.Fatalf("SOPInstanceUID %q", got)
			}
			if !slices.IsSortedFunc(ds.Elements, func(a, b *dcm.Element) int { return int(a.Tag) - int(b.Tag) }) {
				t.Fatal("elements out of order")
			}
		})
	}
}

// TestAnswerRefusesBadValue checks that a value dcm.NewValue refuses is an error.
func TestAnswerRefusesBadValue(t *testing.T) {
	if _, _, err := index.Answer(badRecord{}, []dcm.Tag{dcm.TagRows}, nil); err == nil {
		t.Fatal("no error")
	}
}

type badRecord struct{}

func (badRecord) Attribute(dcm.Tag) (string, []string, bool) { return "US", []string{"x"}, true }
