package dcm

import (
	"strings"
	"testing"
)

// memberVRs are the VRs AppendJSONMember is checked with (and a few it refuses).
var memberVRs = []string{"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT", "US", "SQ", "OB", "FD"}

// checkMember compares AppendJSONMember with Dataset.JSON of the element built from the
// same values (as index.Answer builds it): whenever AppendJSONMember takes the values,
// its member is the one Dataset.JSON writes.
func checkMember(t *testing.T, tag Tag, vr string, values []string) bool {
	t.Helper()
	return checkMemberIn(t, tag, vr, values, false)
}

// checkMemberIn is checkMember of AppendJSONMemberUTF8 when utf8Set, in a data set
// whose Specific Character Set is ISO_IR 192 (as index.Answer builds one).
func checkMemberIn(t *testing.T, tag Tag, vr string, values []string, utf8Set bool) bool {
	t.Helper()
	prefix := []byte("x")
	appendMember, head := AppendJSONMember, ""
	if utf8Set {
		appendMember, head = AppendJSONMemberUTF8, `"00080005":{"vr":"CS","Value":["ISO_IR 192"]},`
	}
	out, ok := appendMember(prefix, tag, vr, values)
	if !ok {
		if string(out) != "x" {
			t.Fatalf("%s %q refused, but dst changed to %q", vr, values, out)
		}
		return false
	}
	var e *Element
	if IsTextVR(vr) {
		b := []byte(strings.Join(values, `\`))
		if len(b)%2 == 1 {
			b = append(b, ' ')
		}
		e = NewElement(tag, vr, b)
	} else {
		var err error
		if e, err = NewValue(tag, vr, values...); err != nil {
			t.Fatalf("%s %q taken, but NewValue refuses it: %v", vr, values, err)
		}
	}
	ds := &Dataset{Elements: []*Element{e}}
	if utf8Set {
		ds.Elements = []*Element{NewString(TagSpecificCharacterSet, "CS", "ISO_IR 192"), e}
	}
	js, _, err := ds.JSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := "{"+head+string(out[1:])+"}", string(js); got != want {
		t.Fatalf("%s %q:\n got  %s\n want %s", vr, values, got, want)
	}
	return true
}

func TestAppendJSONMember(t *testing.T) {
	for _, c := range []struct {
		vr     string
		values []string
		ok     bool
	}{
		{"PN", []string{"SMITH^ANNA"}, true},
		{"PN", []string{"O'Brien^Mary Ann", "DOE^JOHN"}, true},
		{"PN", []string{`Say "hi"^X`}, true},
		{"PN", []string{"SMITH^"}, true},
		{"PN", []string{"^^"}, false},
		{"PN", []string{"Yamada^Tarou=山田^太郎"}, false},
		{"PN", []string{"A=B"}, false},
		{"LO", []string{"CT Thorax"}, true},
		{"LO", []string{"Schädel"}, false},
		{"LO", []string{" lead"}, false},
		{"LO", []string{"trail "}, false},
		{"LO", []string{"a\\b"}, false},
		{"LO", []string{"tab\there"}, false},
		{"LO", []string{""}, true},
		{"LO", nil, true},
		{"LO", []string{"", "x"}, false},
		{"CS", []string{"CT", "MR", "SR"}, true},
		{"CS", []string{"C"}, true},
		{"UI", []string{"1.2.3"}, true},
		{"UI", []string{"1.2.34", "1.2.3"}, true},
		{"DA", []string{"20240131"}, true},
		{"TM", []string{"101500.5"}, true},
		{"SH", []string{"A0000001"}, true},
		{"IS", []string{"42"}, true},
		{"IS", []string{"+5", "007", "-3"}, true},
		{"IS", []string{"x1"}, true},
		{"DS", []string{"1.50", "1e3", "abc"}, true},
		{"US", []string{"0", "512", "65535"}, true},
		{"US", nil, true},
		{"US", []string{""}, false},
		{"US", []string{"65536"}, false},
		{"US", []string{"007"}, false},
		{"US", []string{"-1"}, false},
		{"UR", []string{"http://h/dicom-web/studies/1.2.3"}, true},
		{"UR", []string{"a", "b"}, false},
		{"LT", []string{"a", "b"}, false},
		{"ST", []string{"one line"}, true},
		{"SQ", nil, false},
		{"OB", []string{"x"}, false},
		{"FD", []string{"1.5"}, false},
		{"LO", []string{strings.Repeat("a", 1025)}, false},
	} {
		if got := checkMember(t, TagStudyDescription, c.vr, c.values); got != c.ok {
			t.Errorf("%s %q: taken %v, want %v", c.vr, c.values, got, c.ok)
		}
	}
	for _, tag := range []Tag{TagSpecificCharacterSet, NewTag(0x0008, 0x0000), NewTag(0x0002, 0x0010)} {
		if checkMember(t, tag, "CS", []string{"X"}) {
			t.Errorf("%s taken", tag)
		}
	}
}

// TestAppendJSONMemberUTF8 checks the members of values beyond ASCII in a UTF-8 data
// set, and that the other values are taken as AppendJSONMember takes them.
func TestAppendJSONMemberUTF8(t *testing.T) {
	for _, c := range []struct {
		vr     string
		values []string
		ok     bool
	}{
		{"PN", []string{"Müller^Jürgen"}, true},
		{"PN", []string{"山田^太郎"}, true},
		{"PN", []string{"Yamada^Tarou=山田^太郎"}, false},
		{"PN", []string{"^^"}, false},
		{"PN", []string{"SMITH^ANNA"}, true},
		{"LO", []string{"Schädel", "Thorax"}, true},
		{"LO", []string{"Schädel "}, false},
		{"LO", []string{"a\\bä"}, false},
		{"LO", []string{"\xffbad"}, false},
		{"LO", []string{"\u00a0nbsp\u2028sep"}, true},
		{"SH", []string{"Ä1"}, true},
		{"ST", []string{"Zeile ü"}, true},
		{"UC", []string{"Ü"}, true},
		{"UT", []string{"ß"}, true},
		{"CS", []string{"Ä"}, false},
		{"UI", []string{"1.2.3"}, true},
		{"US", []string{"512"}, true},
	} {
		if got := checkMemberIn(t, TagStudyDescription, c.vr, c.values, true); got != c.ok {
			t.Errorf("%s %q: taken %v, want %v", c.vr, c.values, got, c.ok)
		}
	}
}

func FuzzAppendJSONMember(f *testing.F) {
	f.Add(uint8(9), "SMITH^ANNA", "", uint8(1))
	f.Add(uint8(17), "512", "7", uint8(2))
	f.Add(uint8(4), "1.5", "-0", uint8(2))
	f.Add(uint8(6), "+12", "x", uint8(2))
	f.Add(uint8(2), "CT", "", uint8(2))
	f.Add(uint8(9), "Müller^Jürgen", "", uint8(1))
	f.Fuzz(func(t *testing.T, vri uint8, a, b string, n uint8) {
		vr := memberVRs[int(vri)%len(memberVRs)]
		values := []string{a, b}[:int(n)%3]
		checkMember(t, TagStudyDescription, vr, values)
		checkMemberIn(t, TagStudyDescription, vr, values, true)
	})
}
