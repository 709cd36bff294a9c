package dicomweb_test

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// latin1SR builds a Basic Text SR in ISO_IR 100 whose content items inherit the
// character set, but one that has its own (ISO_IR 144, Cyrillic).
func latin1SR(t *testing.T) gen.Object {
	t.Helper()
	o := gen.Object{StudyUID: "1.2.826.0.1.3680043.10.1234.97.1", SeriesUID: "1.2.826.0.1.3680043.10.1234.97.2", SOPInstanceUID: "1.2.826.0.1.3680043.10.1234.97.3", SOPClassUID: "1.2.840.10008.5.1.4.1.1.88.11"}
	code := func(meaning string) *dcm.Dataset {
		it := &dcm.Dataset{}
		it.Set(dcm.NewString(dcm.NewTag(0x0008, 0x0100), "SH", "1"))
		it.Set(dcm.NewString(dcm.NewTag(0x0008, 0x0102), "SH", "99TEST"))
		it.Set(dcm.NewElement(dcm.NewTag(0x0008, 0x0104), "LO", pad(meaning)))
		return it
	}
	item := func(vt string, name string, tag dcm.Tag, vr, value string, own ...string) *dcm.Dataset {
		it := &dcm.Dataset{}
		if len(own) > 0 {
			it.Set(dcm.NewString(dcm.TagSpecificCharacterSet, "CS", own...))
		}
		it.Set(dcm.NewString(dcm.NewTag(0x0040, 0xA010), "CS", "CONTAINS"))
		it.Set(dcm.NewString(dcm.NewTag(0x0040, 0xA040), "CS", vt))
		it.Set(dcm.NewSequence(dcm.NewTag(0x0040, 0xA043), code(name)))
		it.Set(dcm.NewElement(tag, vr, pad(value)))
		return it
	}
	ds := &dcm.Dataset{}
	for _, el := range []*dcm.Element{
		dcm.NewString(dcm.TagSpecificCharacterSet, "CS", "ISO_IR 100"),
		dcm.NewString(dcm.TagSOPClassUID, "UI", o.SOPClassUID), dcm.NewString(dcm.TagSOPInstanceUID, "UI", o.SOPInstanceUID),
		dcm.NewString(dcm.TagStudyInstanceUID, "UI", o.StudyUID), dcm.NewString(dcm.TagSeriesInstanceUID, "UI", o.SeriesUID),
		dcm.NewString(dcm.TagModality, "CS", "SR"), dcm.NewElement(dcm.TagPatientName, "PN", pad("M\xfcller^J\xfcrgen")),
		dcm.NewElement(dcm.TagSeriesDescription, "LO", pad("Befund \xa7 3")),
		dcm.NewString(dcm.NewTag(0x0040, 0xA040), "CS", "CONTAINER"),
		dcm.NewSequence(dcm.NewTag(0x0040, 0xA043), code("Radiologischer Befund f\xfcr \xa7 21")),
		dcm.NewSequence(dcm.NewTag(0x0040, 0xA730),
			item("TEXT", "Gr\xf6\xdfe", dcm.NewTag(0x0040, 0xA160), "UT", "Herd 12 \xb5m, \xa7 12 Abs. 1"),
			item("PNAME", "Arzt", dcm.NewTag(0x0040, 0xA123), "PN", "Sch\xe4fer^Anna"),
			item("TEXT", "\xbb\xee\xda", dcm.NewTag(0x0040, 0xA160), "UT", "\xbb\xee\xda\xd5\xdc\xd1\xe3\xe0\xd3", "ISO_IR 144")),
	} {
		ds.Set(el)
	}
	body, err := ds.Encode(dcm.ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	o.Data = append(dcm.EncodeMeta(dcm.Meta{MediaStorageSOPClassUID: o.SOPClassUID, MediaStorageSOPInstanceUID: o.SOPInstanceUID, TransferSyntaxUID: dcm.ExplicitVRLittleEndian, ImplementationClassUID: "1.2.3.4"}), body...)
	return o
}

func pad(s string) []byte {
	if len(s)%2 == 1 {
		s += " "
	}
	return []byte(s)
}

// TestSRCharacterSet: the HTML of a report in ISO_IR 100 (the page says UTF-8) shows
// its text decoded, in the items that inherit the report's character set and in one
// with its own.
func TestSRCharacterSet(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	sr := latin1SR(t)
	if code, resp := e.stow(t, "/studies", sr.Data); code != http.StatusOK {
		t.Fatalf("STOW: %d %v", code, resp)
	}
	resp := e.do(t, http.MethodGet, instanceURL(e, sr)+"/rendered", nil)
	page := string(readAll(t, resp))
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("rendered: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !utf8.ValidString(page) || strings.ContainsRune(page, utf8.RuneError) {
		t.Errorf("the page is not clean UTF-8:\n%q", page)
	}
	for _, want := range []string{"Radiologischer Befund für § 21", "Befund § 3", "Größe", "Herd 12 µm, § 12 Abs. 1", "Schäfer Anna", "Люк", "Люкембург"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q:\n%s", want, page)
		}
	}
}

// TestStoreCharacterSets: objects in the character sets the old decoder could not read
// (ISO_IR 166 made it panic: the object was refused) are stored, and QIDO-RS answers
// their names decoded.
func TestStoreCharacterSets(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	for i, c := range []struct {
		scs  []string
		raw  string
		want string
	}{
		{[]string{"ISO_IR 166"}, "\xc0\xd2\xc9\xd2", "ภาษา"},
		{[]string{"ISO 2022 IR 166"}, "\xc0\xd2\xc9\xd2", "ภาษา"},
		{[]string{"ISO_IR 203"}, "\xa4uro", "€uro"},
		{[]string{"", "ISO 2022 IR 58"}, "Zhang^XiaoDong=\x1b$)A\xd5\xc5^\x1b$)A\xd0\xa1\xb6\xab=", "Zhang^XiaoDong=张^小东"},
	} {
		uid := "1.2.826.0.1.3680043.10.1234.95." + string(rune('1'+i))
		ds := &dcm.Dataset{}
		for _, el := range []*dcm.Element{
			dcm.NewString(dcm.TagSpecificCharacterSet, "CS", c.scs...),
			dcm.NewString(dcm.TagSOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.7"), dcm.NewString(dcm.TagSOPInstanceUID, "UI", uid+".1.1"),
			dcm.NewString(dcm.TagStudyInstanceUID, "UI", uid), dcm.NewString(dcm.TagSeriesInstanceUID, "UI", uid+".1"),
			dcm.NewString(dcm.TagPatientID, "LO", "CS"+string(rune('1'+i))),
			dcm.NewElement(dcm.TagPatientName, "PN", pad(c.raw)),
		} {
			ds.Set(el)
		}
		body, err := ds.Encode(dcm.ExplicitVRLittleEndian)
		if err != nil {
			t.Fatal(err)
		}
		data := append(dcm.EncodeMeta(dcm.Meta{MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.7", MediaStorageSOPInstanceUID: uid + ".1.1", TransferSyntaxUID: dcm.ExplicitVRLittleEndian, ImplementationClassUID: "1.2.3.4"}), body...)
		if code, resp := e.stow(t, "/studies", data); code != http.StatusOK {
			t.Errorf("%q: STOW %d %v", c.scs, code, resp)
			continue
		}
		res, _ := e.getJSON(t, e.base+"/studies?PatientID=CS"+string(rune('1'+i)))
		if len(res) != 1 {
			t.Errorf("%q: %d studies", c.scs, len(res))
			continue
		}
		el, _ := res[0]["00100010"].(map[string]any)
		vals, _ := el["Value"].([]any)
		pn, _ := vals[0].(map[string]any)
		var groups []string
		for _, g := range []string{"Alphabetic", "Ideographic", "Phonetic"} {
			s, _ := pn[g].(string)
			groups = append(groups, s)
		}
		if got := strings.TrimRight(strings.Join(groups, "="), "="); got != c.want {
			t.Errorf("%q: PatientName %q, want %q", c.scs, got, c.want)
		}
	}
}
