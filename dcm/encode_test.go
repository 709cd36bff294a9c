package dcm

import (
	"bytes"
	"testing"
)

func TestEncodeRoundTrip(t *testing.T) {
	ds := &Dataset{}
	ds.Set(NewString(TagPatientName, "PN", "Müller^Jürgen"))
	ds.Set(NewString(TagSpecificCharacterSet, "CS", "ISO_IR 192"))
	ds.Set(NewString(TagStudyInstanceUID, "UI", "1.2.3"))
	ds.Set(NewUS(TagRows, 512))
	ds.Set(NewString(TagModalitiesInStudy, "CS", "CT", "MR"))
	item := &Dataset{}
	item.Set(NewString(NewTag(0x0008, 0x0100), "SH", "121071"))
	ds.Set(NewSequence(NewTag(0x0040, 0xA043), item))
	ds.Set(NewString(TagAccessionNumber, "SH"))
	for _, ts := range []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian} {
		b, err := ds.Encode(ts)
		if err != nil {
			t.Fatal(err)
		}
		f, err := ParseDataset(bytes.NewReader(b), ts, 0, nil)
		if err != nil {
			t.Fatalf("%s: %v", ts, err)
		}
		want, _, _ := ds.JSON(nil)
		got, _, _ := f.Dataset.JSON(nil)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s:\n%s\n%s", ts, got, want)
		}
	}
	if _, err := ds.Encode(ExplicitVRBigEndian); err == nil {
		t.Fatal("big endian encoding accepted")
	}
}
