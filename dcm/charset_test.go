package dcm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lumenpacs/lumen/testdata/tools"
)

// textVRs are the VRs whose values the Specific Character Set decodes.
var textVRs = map[string]bool{"PN": true, "SH": true, "LO": true, "ST": true, "LT": true, "UC": true, "UT": true}

// jsonTexts returns the values of a DICOM JSON element as strings: person names as
// their component groups joined by "=" (trailing empty groups left out, a name made of
// delimiters only is empty), null as "", and no trailing empty values.
func jsonTexts(el map[string]any) []string {
	vals, _ := el["Value"].([]any)
	var out []string
	for _, v := range vals {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case map[string]any:
			var groups []string
			for _, g := range []string{"Alphabetic", "Ideographic", "Phonetic"} {
				s, _ := v[g].(string)
				groups = append(groups, s)
			}
			s := strings.TrimRight(strings.Join(groups, "="), "=")
			if strings.Trim(s, "^= ") == "" {
				s = ""
			}
			out = append(out, s)
		default:
			out = append(out, "")
		}
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// compareTexts checks that every text element of want (pydicom's DICOM JSON), at every
// depth, has the same values in got.
func compareTexts(t *testing.T, path string, got, want map[string]any) int {
	t.Helper()
	n := 0
	for k, w := range want {
		wel, _ := w.(map[string]any)
		vr, _ := wel["vr"].(string)
		gel, _ := got[k].(map[string]any)
		switch {
		case vr == "SQ":
			witems, _ := wel["Value"].([]any)
			gitems, _ := gel["Value"].([]any)
			if len(gitems) != len(witems) {
				t.Errorf("%s%s: %d items, pydicom %d", path, k, len(gitems), len(witems))
				continue
			}
			for i := range witems {
				gi, _ := gitems[i].(map[string]any)
				wi, _ := witems[i].(map[string]any)
				n += compareTexts(t, fmt.Sprintf("%s%s/%d/", path, k, i), gi, wi)
			}
		case textVRs[vr]:
			if gvr, _ := gel["vr"].(string); gvr == "UN" {
				continue // a private element whose VR pydicom knows from its private dictionary
			}
			g, w := jsonTexts(gel), jsonTexts(wel)
			if fmt.Sprintf("%q", g) != fmt.Sprintf("%q", w) {
				t.Errorf("%s%s %s: %q, pydicom %q", path, k, vr, g, w)
			}
			n++
		}
	}
	return n
}

// TestCharsetPydicomFiles decodes pydicom's character set test files (every character
// set of PS3.5 §6.1 that pydicom ships a file for: ISO 2022 IR 13/87, 149, GB18030, UTF-8
// and the single-byte sets) and expects what pydicom decodes, in the DICOM JSON model
// (person name component groups, sequences with their own Specific Character Set) and
// from Dataset.Text.
func TestCharsetPydicomFiles(t *testing.T) {
	files := tools.PydicomCharsetFiles(t)
	want := tools.PydicomJSON(t, files...)
	for i, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			fl, err := Parse(bytes.NewReader(b), nil)
			if err != nil {
				t.Fatal(err)
			}
			js, _, err := fl.Dataset.JSON(nil)
			if err != nil {
				t.Fatal(err)
			}
			if !utf8.Valid(js) {
				t.Fatalf("JSON is not UTF-8: %q", js)
			}
			var got map[string]any
			if err := json.Unmarshal(js, &got); err != nil {
				t.Fatal(err)
			}
			if n := compareTexts(t, "", got, want[i]); n == 0 {
				t.Fatal("no text element compared")
			}
			for _, tag := range []Tag{TagPatientName, TagPatientID, TagStudyDescription, NewTag(0x0010, 0x21B0)} {
				w := ""
				if el, ok := want[i][tag.Hex()].(map[string]any); ok {
					if v := jsonTexts(el); len(v) > 0 {
						w = v[0]
					}
				}
				if g := fl.Dataset.Text(tag); g != w {
					t.Errorf("Text(%s) = %q, pydicom %q", tag, g, w)
				}
			}
		})
	}
}

// charsetCase is a value encoded in a character set, written into a test object.
type charsetCase struct {
	name string
	scs  []string
	vr   string
	raw  string
	// want, when set, is the decoded value where pydicom 2.3.1 is wrong: it keeps the
	// escape sequences of ISO 2022 IR 58 and does not know ISO_IR 203.
	want string
}

// charsetCases cover what pydicom's files do not: the other sets of PS3.5 §6.1 (JIS X
// 0212, GB 2312, GBK, the other single-byte sets), switching between single-byte sets
// with code extensions, and the resets at delimiters and control characters.
var charsetCases = []charsetCase{
	{"IR13 katakana", []string{"ISO_IR 13"}, "PN", "\xd4\xcf\xc0\xde^\xc0\xdb\xb3", ""},
	{"IR13+87 text", []string{"ISO 2022 IR 13", "ISO 2022 IR 87"}, "LO", "\xd4\xcf\xc0\xde \x1b$B;3ED\x1b(J abc", ""},
	{"IR159", []string{"", "ISO 2022 IR 87", "ISO 2022 IR 159"}, "PN", "Yamada^Tarou=\x1b$(D0!\x1b(B^\x1b$B;3ED\x1b(B", ""},
	{"IR58 Annex K", []string{"", "ISO 2022 IR 58"}, "PN", "Zhang^XiaoDong=\x1b$)A\xd5\xc5^\x1b$)A\xd0\xa1\xb6\xab=", "Zhang^XiaoDong=张^小东"}, // PS3.5 K.2
	{"IR149 lines", []string{"", "ISO 2022 IR 149"}, "LT", "\x1b$)C\xb1\xe8\xc8\xf1\xc1\xdf\r\nabc", ""},
	{"IR149 multi-valued", []string{"", "ISO 2022 IR 149"}, "LO", "\x1b$)C\xb1\xe8\\\x1b$)C\xc8\xf1\\x", ""},
	{"IR87 multi-valued", []string{"", "ISO 2022 IR 87"}, "SH", "\x1b$B;3ED\x1b(B\\\x1b$BB@O:\x1b(B", ""},
	{"GBK", []string{"GBK"}, "LO", "\x81\x40 \xd5\xc5", ""},
	{"GB18030 4-byte", []string{"GB18030"}, "LO", "\x95\x32\x82\x36 \xa2\xe3", ""},
	{"Latin-2", []string{"ISO_IR 101"}, "PN", "\xa3\xf3d\xbc^Ewa", ""},
	{"Latin-3", []string{"ISO_IR 109"}, "LO", "\xa1al", ""},
	{"Latin-4", []string{"ISO_IR 110"}, "LO", "\xc0r\xe0", ""},
	{"Latin-5", []string{"ISO_IR 148"}, "LO", "A\xf0\xfdr", ""},
	{"Thai", []string{"ISO_IR 166"}, "LO", "\xc0\xd2\xc9\xd2\xe4\xb7\xc2", ""},
	{"Latin-9", []string{"ISO_IR 203"}, "LO", "\xa4uro", "€uro"},
	{"Latin-1 and Greek", []string{"ISO 2022 IR 100", "ISO 2022 IR 126"}, "LO", "Caf\xe9 \x1b-F\xc1\xe8\xde\xed\xe1\x1b-A \xe9", ""},
	{"Greek with extensions", []string{"ISO 2022 IR 126"}, "PN", "\xc1\xe8\xde\xed\xe1^\xc1", ""},
	{"Cyrillic", []string{"ISO_IR 144"}, "LO", "\xbb\xee\xda", ""},
	{"UTF-8", []string{"ISO_IR 192"}, "PN", "Wang^XiaoDong=\xe7\x8e\x8b^\xe5\xb0\x8f\xe6\x9d\xb1", ""},
}

// caseFile writes a test object holding the cases' values (all in one character set)
// as LO, PN... elements of consecutive private-free tags.
func caseFile(t *testing.T, dir string, i int, c charsetCase) string {
	t.Helper()
	ds := &Dataset{}
	ds.Set(NewString(TagSOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.7"))
	ds.Set(NewString(TagSOPInstanceUID, "UI", fmt.Sprintf("1.2.3.4.%d", i+1)))
	ds.Set(NewString(TagSpecificCharacterSet, "CS", c.scs...))
	tag := map[string]Tag{"PN": TagPatientName, "LO": TagStudyDescription, "SH": TagAccessionNumber, "LT": NewTag(0x0010, 0x21B0)}[c.vr]
	v := []byte(c.raw)
	if len(v)%2 == 1 {
		v = append(v, ' ')
	}
	ds.Set(NewElement(tag, c.vr, v))
	body, err := ds.Encode(ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, fmt.Sprintf("case%02d.dcm", i))
	meta := EncodeMeta(Meta{MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.7", MediaStorageSOPInstanceUID: fmt.Sprintf("1.2.3.4.%d", i+1), TransferSyntaxUID: ExplicitVRLittleEndian, ImplementationClassUID: "1.2.3.4"})
	if err := os.WriteFile(p, append(meta, body...), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCharsetCases decodes values in every other character set of PS3.5 §6.1 and
// expects what pydicom decodes.
func TestCharsetCases(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for i, c := range charsetCases {
		files = append(files, caseFile(t, dir, i, c))
	}
	want := tools.PydicomJSON(t, files...)
	for i, c := range charsetCases {
		t.Run(c.name, func(t *testing.T) {
			b, err := os.ReadFile(files[i])
			if err != nil {
				t.Fatal(err)
			}
			fl, err := Parse(bytes.NewReader(b), nil)
			if err != nil {
				t.Fatal(err)
			}
			js, _, err := fl.Dataset.JSON(nil)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(js, &got); err != nil {
				t.Fatal(err)
			}
			if c.want != "" {
				tag := map[string]string{"PN": "00100010", "LO": "00081030"}[c.vr]
				el, _ := got[tag].(map[string]any)
				if g := strings.Join(jsonTexts(el), `\`); g != c.want {
					t.Fatalf("%q, want %q", g, c.want)
				}
				return
			}
			if n := compareTexts(t, "", got, want[i]); n != 1 {
				t.Fatalf("%d text elements compared", n)
			}
		})
	}
}

// TestCharsetBackslashInGB18030: a GBK/GB18030 character whose second byte is 05/12
// ("乗" is 81 5C) is a character, not a value delimiter: values are decoded before they
// are split.
func TestCharsetBackslashInGB18030(t *testing.T) {
	for _, scs := range []string{"GB18030", "GBK"} {
		ds := &Dataset{}
		ds.Set(NewString(TagSpecificCharacterSet, "CS", scs))
		ds.Set(NewElement(TagStudyDescription, "LO", []byte("\x81\x5c\\ab")))
		ds.Set(NewElement(TagPatientName, "PN", []byte("Wang=\x81\x5c^\xd5\xc5\\Li ")))
		js, _, err := ds.JSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(js), `"00081030":{"vr":"LO","Value":["乗","ab"]}`) {
			t.Errorf("%s LO: %s", scs, js)
		}
		if !strings.Contains(string(js), `"00100010":{"vr":"PN","Value":[{"Alphabetic":"Wang","Ideographic":"乗^张"},{"Alphabetic":"Li"}]}`) {
			t.Errorf("%s PN: %s", scs, js)
		}
	}
}

// TestCharsetDefaultRepertoire: without Specific Character Set, text that is valid
// UTF-8 is kept (a common mistake of senders), anything else is read as ISO 8859-1, as
// pydicom does; an unknown defined term is treated the same way.
func TestCharsetDefaultRepertoire(t *testing.T) {
	for _, c := range []struct {
		scs  []string
		raw  string
		want string
	}{
		{nil, "M\xc3\xbcller", "Müller"},
		{nil, "M\xfcller", "Müller"},
		{[]string{"ISO_IR 999"}, "M\xfcller", "Müller"},
		{[]string{"ISO_IR 192"}, "M\xfcller", "M\ufffdller"},
		{[]string{"ISO_IR 100"}, "M\xc3\xbcller", "MÃ¼ller"},
		{[]string{"ISO-IR 100"}, "M\xfcller", "Müller"}, // a misspelt defined term
	} {
		ds := &Dataset{}
		if c.scs != nil {
			ds.Set(NewString(TagSpecificCharacterSet, "CS", c.scs...))
		}
		ds.Set(NewElement(TagPatientName, "PN", []byte(c.raw)))
		if got := ds.Text(TagPatientName); got != c.want {
			t.Errorf("%q %q: %q, want %q", c.scs, c.raw, got, c.want)
		}
	}
}
