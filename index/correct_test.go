package index

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
)

func header(charset string, extra ...*dcm.Element) *dcm.Dataset {
	var ds dcm.Dataset
	if charset != "" {
		ds.Set(dcm.NewString(dcm.TagSpecificCharacterSet, "CS", charset))
	}
	ds.Set(dcm.NewString(dcm.TagPatientName, "PN", "Doe^John"))
	ds.Set(dcm.NewString(dcm.TagPatientID, "LO", "P1"))
	ds.Set(dcm.NewString(dcm.TagPatientBirthDate, "DA", "19800101"))
	ds.Set(dcm.NewString(dcm.TagPatientSex, "CS", "M"))
	ds.Set(dcm.NewString(dcm.TagStudyInstanceUID, "UI", "1.2.3"))
	for _, e := range extra {
		ds.Set(e)
	}
	return &ds
}

func record(name string) *Instance {
	in := &Instance{}
	in.PatientName, in.PatientID, in.PatientBirthDate, in.PatientSex, in.StudyInstanceUID = name, "P1", "19800101", "M", "1.2.3"
	in.Corrected = true
	return in
}

func TestCorrections(t *testing.T) {
	// Not corrected, or agreeing: nothing to change (the object goes out as stored).
	in := record("Doe^John")
	if m, err := in.Corrections(header("")); err != nil || m != nil {
		t.Fatalf("agreeing header: %v %v", m, err)
	}
	in = record("Roe^Jane")
	in.Corrected = false
	if m, _ := in.Corrections(header("")); m != nil {
		t.Fatal("a record never corrected changed the header")
	}

	// A different name in the header's own character set.
	in = record("Müller^Jürgen")
	m, err := in.Corrections(header("ISO_IR 100"))
	if err != nil || len(m) != 1 || !bytes.Equal(m[dcm.TagPatientName].Value, []byte("M\xfcller^J\xfcrgen ")) {
		t.Fatalf("latin-1 correction: %v %q", err, m[dcm.TagPatientName].Value)
	}

	// A name outside an ASCII header's repertoire: the header becomes UTF-8.
	in = record("山田^太郎")
	in.IssuerOfPatientID = "HOSP"
	m, err = in.Corrections(header(""))
	if err != nil {
		t.Fatal(err)
	}
	if string(m[dcm.TagSpecificCharacterSet].Value) != "ISO_IR 192" || string(bytes.TrimRight(m[dcm.TagPatientName].Value, " ")) != "山田^太郎" || string(m[dcm.TagIssuerOfPatientID].Value) != "HOSP" {
		t.Fatalf("utf-8 switch: %v", m)
	}
	if _, ok := m[dcm.TagPatientID]; ok {
		t.Fatal("an agreeing attribute was rewritten")
	}

	// ... but not when other text of the header is not ASCII: it would read otherwise.
	_, err = in.Corrections(header("ISO_IR 100", dcm.NewString(dcm.TagStudyDescription, "LO", "R\xf6ntgen")))
	if !errors.Is(err, ErrUncorrectable) {
		t.Fatalf("latin-1 text elsewhere: %v", err)
	}

	// A series moved to another study takes that study's UID; a deleted birth date empties it.
	in = record("Doe^John")
	in.StudyInstanceUID, in.PatientBirthDate = "1.2.4", ""
	m, _ = in.Corrections(header(""))
	if len(m) != 2 || string(bytes.TrimRight(m[dcm.TagStudyInstanceUID].Value, "\x00")) != "1.2.4" || len(m[dcm.TagPatientBirthDate].Value) != 0 {
		t.Fatalf("moved series: %v", m)
	}
}

func TestCorrectMetadata(t *testing.T) {
	stored := header("ISO_IR 100", dcm.NewString(dcm.TagStudyDescription, "LO", "Chest"), dcm.NewString(0x00200010, "SH", "S1"))
	meta, _, err := stored.JSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	in := record("Müller^Jürgen")
	in.IssuerOfPatientID = "HOSP"
	out, err := in.CorrectMetadata(meta)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]struct {
		VR    string
		Value []json.RawMessage
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("corrected metadata is not JSON: %v\n%s", err, out)
	}
	want := map[string]string{"00100010": `{"Alphabetic":"Müller^Jürgen"}`, "00100021": `"HOSP"`, "00100020": `"P1"`, "00081030": `"Chest"`, "00200010": `"S1"`, "0020000D": `"1.2.3"`}
	for k, v := range want {
		if len(got[k].Value) != 1 || string(got[k].Value[0]) != v {
			t.Errorf("%s = %s, want %s", k, got[k].Value, v)
		}
	}
	// Members stay in tag order.
	var list []string
	if _, err := dcm.ScanJSONObject(out, func(m dcm.JSONMember) bool { list = append(list, string(m.Key)); return true }); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(list); i++ {
		if list[i-1] >= list[i] {
			t.Fatalf("members out of order: %s before %s", list[i-1], list[i])
		}
	}
	// Not corrected: the very bytes.
	in.Corrected = false
	if same, _ := in.CorrectMetadata(meta); !bytes.Equal(same, meta) {
		t.Fatal("uncorrected metadata changed")
	}
	if _, err := record("X").CorrectMetadata([]byte(`{"0010`)); err == nil {
		t.Fatal("broken metadata accepted")
	}
}

// BenchmarkCorrectMetadata corrects a CT-sized metadata object (the per-instance cost
// of WADO-RS metadata and QIDO includefield=all for a corrected patient record).
func BenchmarkCorrectMetadata(b *testing.B) {
	extra := []*dcm.Element{}
	for i := 0; i < 60; i++ {
		extra = append(extra, dcm.NewString(dcm.Tag(0x00080100+uint32(i)), "LO", "some value of a header element"))
		extra = append(extra, dcm.NewString(dcm.Tag(0x00180100+uint32(i)), "DS", "0.5"))
	}
	meta, _, _ := header("", extra...).JSON(nil)
	for _, spans := range []bool{false, true} {
		b.Run(map[bool]string{false: "scan", true: "spans"}[spans], func(b *testing.B) {
			in := record("Corrected^Name")
			if spans {
				in.MetadataSpans = MetadataSpans(meta)
			}
			var c MetadataCorrector
			b.SetBytes(int64(len(meta)))
			for b.Loop() {
				if _, err := c.Correct(in, meta); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestMetadataSpans: with the spans the index keeps, a correction reads only the
// members it replaces and answers what the scan answers.
func TestMetadataSpans(t *testing.T) {
	stored := header("ISO_IR 100", dcm.NewString(dcm.TagStudyDescription, "LO", "Chest"), dcm.NewString(0x00100032, "TM", "1200"),
		dcm.NewString(0x00180050, "DS", "1.5"), dcm.NewString(0x00200010, "SH", "S1"))
	meta, _, _ := stored.JSON(nil)
	spans := MetadataSpans(meta)
	if spans == "" {
		t.Fatal("no spans")
	}
	for _, name := range []string{"Müller^Jürgen", "Doe^John"} {
		in := record(name)
		in.IssuerOfPatientID, in.StudyInstanceUID = "HOSP", "1.2.99"
		scanned, err := in.CorrectMetadata(meta)
		if err != nil {
			t.Fatal(err)
		}
		in.MetadataSpans = spans
		fast, err := in.CorrectMetadata(meta)
		if err != nil || !bytes.Equal(fast, scanned) {
			t.Fatalf("with spans:\n%s\nscanned:\n%s", fast, scanned)
		}
		if !json.Valid(fast) {
			t.Fatal("not JSON")
		}
	}
	// No patient members, or no study UID: no spans (a correction scans).
	var bare dcm.Dataset
	bare.Set(dcm.NewString(dcm.TagStudyInstanceUID, "UI", "1.2.3"))
	js, _, _ := bare.JSON(nil)
	if MetadataSpans(js) != "" || MetadataSpans([]byte("{")) != "" {
		t.Fatal("spans for an object without the members")
	}
	// Spans that do not fit the object are ignored.
	in := record("X^Y")
	in.MetadataSpans = "1,2,3,999999"
	if out, err := in.CorrectMetadata(meta); err != nil || !json.Valid(out) {
		t.Fatalf("bad spans: %v", err)
	}
}
