package dcm

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
	"testing/iotest"
)

// spliceFixture encodes a small object in ts: a group length in group 0010 (which an
// edit of that group must drop), a name, an ID, a sex, a sequence and native pixel data.
func spliceFixture(t *testing.T, ts string) []byte {
	t.Helper()
	var ds Dataset
	ds.Set(NewString(TagSOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.7"))
	ds.Set(NewString(TagSOPInstanceUID, "UI", "1.2.3.4"))
	ds.Set(NewElement(0x00100000, "UL", binary.LittleEndian.AppendUint32(nil, 30)))
	ds.Set(NewString(TagPatientName, "PN", "Wrong^Name"))
	ds.Set(NewString(TagPatientID, "LO", "TEMP-1"))
	ds.Set(NewString(TagPatientSex, "CS", "O"))
	ds.Set(NewSequence(0x00081115, &Dataset{Elements: []*Element{NewString(0x00081155, "UI", "1.2.3.9")}}))
	ds.Set(NewString(TagStudyInstanceUID, "UI", "1.2.3"))
	pix := make([]byte, 64)
	for i := range pix {
		pix[i] = byte(i * 3)
	}
	ds.Set(NewElement(TagPixelData, "OW", pix))
	body, err := ds.Encode(ts)
	if err != nil {
		t.Fatal(err)
	}
	return append(EncodeMeta(Meta{MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.7", MediaStorageSOPInstanceUID: "1.2.3.4", TransferSyntaxUID: ts, ImplementationClassUID: "1.2.3"}), body...)
}

func TestHeaderEdits(t *testing.T) {
	for _, ts := range []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian} {
		t.Run(ts, func(t *testing.T) {
			stored := spliceFixture(t, ts)
			f, err := Parse(bytes.NewReader(stored), nil)
			if err != nil {
				t.Fatal(err)
			}
			repl := map[Tag]*Element{
				TagPatientName:       NewString(TagPatientName, "PN", "Right^Name^Middle"), // longer, odd: padded
				TagIssuerOfPatientID: NewString(TagIssuerOfPatientID, "LO", "HOSP"),        // inserted
				TagPatientBirthDate:  NewString(TagPatientBirthDate, "DA", "19700101"),     // inserted before Sex, at one offset with...
				TagPatientSex:        NewString(TagPatientSex, "CS", "F"),                  // ...this replacement
				TagStudyInstanceUID:  NewString(TagStudyInstanceUID, "UI", "1.2.3.77"),
				TagPatientID:         nil, // removed
			}
			edits, err := HeaderEdits(f, repl)
			if err != nil {
				t.Fatal(err)
			}
			// Read in tiny pieces too: the edits must not depend on read sizes.
			for _, r := range []io.Reader{EditedReader(bytes.NewReader(stored), 0, edits), iotest.OneByteReader(EditedReader(bytes.NewReader(stored), 0, edits))} {
				out, err := io.ReadAll(r)
				if err != nil {
					t.Fatal(err)
				}
				if int64(len(out)) != int64(len(stored))+EditsDelta(edits) {
					t.Fatalf("edited length %d, want %d", len(out), int64(len(stored))+EditsDelta(edits))
				}
				g, err := Parse(bytes.NewReader(out), nil)
				if err != nil {
					t.Fatalf("edited object does not parse: %v", err)
				}
				if g.TransferSyntax != ts {
					t.Fatalf("transfer syntax %s", g.TransferSyntax)
				}
				for tag, want := range map[Tag]string{TagPatientName: "Right^Name^Middle", TagIssuerOfPatientID: "HOSP", TagPatientBirthDate: "19700101", TagPatientSex: "F", TagStudyInstanceUID: "1.2.3.77", TagSOPInstanceUID: "1.2.3.4"} {
					if got := g.Dataset.String(tag); got != want {
						t.Errorf("%s = %q, want %q", tag, got, want)
					}
				}
				if g.Dataset.Get(TagPatientID) != nil || g.Dataset.Get(0x00100000) != nil {
					t.Error("removed element or stale group length still present")
				}
				if sq := g.Dataset.Get(0x00081115); sq == nil || len(sq.Items) != 1 || sq.Items[0].String(0x00081155) != "1.2.3.9" {
					t.Error("sequence not kept")
				}
				// Pixel data: the same bytes, at the edited offset.
				pd, opd := g.Dataset.Get(TagPixelData), f.Dataset.Get(TagPixelData)
				if !bytes.Equal(out[pd.Offset:pd.Offset+int64(pd.Length)], stored[opd.Offset:opd.Offset+int64(opd.Length)]) {
					t.Error("pixel data changed")
				}
			}
		})
	}
}

func TestHeaderEditsAtEnd(t *testing.T) {
	// No element after the inserted tag: it goes at the end of the data set; a parse of
	// a prefix (up to the pixel data) inserts before the pixel data.
	var ds Dataset
	ds.Set(NewString(TagSOPInstanceUID, "UI", "1.2.3.4"))
	body, _ := ds.Encode(ExplicitVRLittleEndian)
	stored := append(EncodeMeta(Meta{TransferSyntaxUID: ExplicitVRLittleEndian, ImplementationClassUID: "1.2"}), body...)
	f, err := Parse(bytes.NewReader(stored), nil)
	if err != nil {
		t.Fatal(err)
	}
	edits, err := HeaderEdits(f, map[Tag]*Element{TagPatientName: NewString(TagPatientName, "PN", "A^B")})
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(EditedReader(bytes.NewReader(stored), 0, edits))
	if err != nil {
		t.Fatal(err)
	}
	g, err := Parse(bytes.NewReader(out), nil)
	if err != nil || g.Dataset.String(TagPatientName) != "A^B" {
		t.Fatalf("%v %q", err, g.Dataset.String(TagPatientName))
	}

	full := spliceFixture(t, ExplicitVRLittleEndian)
	whole, _ := Parse(bytes.NewReader(full), nil)
	headerEnd := whole.Dataset.Get(TagPixelData).Offset - 12 // explicit OW: a 12-byte header
	prefix, err := Parse(bytes.NewReader(full[:headerEnd]), nil)
	if err != nil {
		t.Fatal(err)
	}
	edits, err = HeaderEdits(prefix, map[Tag]*Element{0x00280010: NewString(0x00280010, "CS", "X")}) // a CS, after every element of the prefix
	if err != nil {
		t.Fatal(err)
	}
	if len(edits) != 1 || edits[0].Offset != headerEnd {
		t.Fatalf("edits %+v, want one insertion at %d", edits, headerEnd)
	}
}

func TestHeaderEditsRefusals(t *testing.T) {
	stored := spliceFixture(t, ExplicitVRLittleEndian)
	f, _ := Parse(bytes.NewReader(stored), nil)
	if _, err := HeaderEdits(f, map[Tag]*Element{0x00081115: NewString(0x00081115, "UI", "1")}); err == nil {
		t.Error("a sequence (undefined length) was replaced")
	}
	if _, err := HeaderEdits(f, map[Tag]*Element{TagPatientName: NewUS(TagPatientName, 1)}); err == nil {
		t.Error("a non-string value was accepted")
	}
	d := *f
	d.Deflated = true
	if _, err := HeaderEdits(&d, map[Tag]*Element{TagPatientName: NewString(TagPatientName, "PN", "X")}); err == nil {
		t.Error("a deflated data set was edited in place")
	}
	// A stream shorter than the edits expect is an error, not a silent short object.
	edits, _ := HeaderEdits(f, map[Tag]*Element{TagPatientName: NewString(TagPatientName, "PN", "X")})
	if _, err := io.ReadAll(EditedReader(bytes.NewReader(stored[:edits[0].Offset-1]), 0, edits)); err == nil {
		t.Error("truncated stream read without error")
	}
}
