package dcm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// bomb returns a data set with the usual identifying attributes, n private elements at
// the top level and a (public) sequence whose item holds nested more private elements:
// a small object whose DICOM JSON would be large.
func bomb(n, nested int) *Dataset {
	ds := &Dataset{}
	ds.Set(NewString(TagSOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.7"))
	ds.Set(NewString(TagSOPInstanceUID, "UI", "1.2.3.4.5"))
	ds.Set(NewString(TagPatientID, "LO", "BOMB"))
	ds.Set(NewString(TagStudyInstanceUID, "UI", "1.2.3"))
	ds.Set(NewString(TagSeriesInstanceUID, "UI", "1.2.3.4"))
	ds.Set(NewUS(TagRows, 8))
	ds.Set(NewUS(TagColumns, 8))
	ds.Set(NewUS(TagBitsAllocated, 16))
	item := &Dataset{}
	item.Set(NewString(NewTag(0x0008, 0x1150), "UI", "1.2.840.10008.5.1.4.1.1.7"))
	for i := range nested {
		item.Elements = append(item.Elements, NewString(NewTag(0x0011, uint16(0x1000+i)), "LO", fmt.Sprintf("n%d", i)))
	}
	ds.Set(NewSequence(NewTag(0x0008, 0x1140), item)) // ReferencedImageSequence
	ds.Set(NewString(NewTag(0x0009, 0x0010), "LO", "BOMB CREATOR"))
	for i := range n {
		ds.Elements = append(ds.Elements, NewString(NewTag(0x0009, uint16(0x1000+i)), "LO", fmt.Sprintf("v%d", i)))
	}
	return ds
}

// walk calls fn for every attribute key of a DICOM JSON object, at any depth.
func walk(t *testing.T, obj map[string]json.RawMessage, fn func(key string, depth int), depth int) {
	t.Helper()
	for k, raw := range obj {
		fn(k, depth)
		var attr struct {
			VR    string            `json:"vr"`
			Value []json.RawMessage `json:"Value"`
		}
		if err := json.Unmarshal(raw, &attr); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if attr.VR != "SQ" {
			continue
		}
		for _, it := range attr.Value {
			var item map[string]json.RawMessage
			if err := json.Unmarshal(it, &item); err != nil {
				t.Fatal(err)
			}
			walk(t, item, fn, depth+1)
		}
	}
}

func privateKeys(t *testing.T, js []byte) (top, nested int, obj map[string]json.RawMessage) {
	t.Helper()
	if err := json.Unmarshal(js, &obj); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	walk(t, obj, func(k string, depth int) {
		var g uint16
		fmt.Sscanf(k[:4], "%04X", &g)
		if g%2 == 1 {
			if depth == 0 {
				top++
			} else {
				nested++
			}
		}
	}, 0)
	return top, nested, obj
}

// TestJSONBoundsPrivateElements checks that the DICOM JSON of a data set with tens of
// thousands of private elements keeps at most the default number of them, and every
// public attribute.
func TestJSONBoundsPrivateElements(t *testing.T) {
	ds := bomb(20000, 5000)
	js, _, err := ds.JSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	top, nested, obj := privateKeys(t, js)
	if top+nested > 10000 {
		t.Fatalf("%d private elements (%d nested) in %d bytes of JSON, want at most 10000", top+nested, nested, len(js))
	}
	for _, k := range []string{"00080016", "00080018", "00100020", "0020000D", "0020000E", "00280010", "00280011", "00280100", "00081140"} {
		if _, ok := obj[k]; !ok {
			t.Errorf("public attribute %s left out", k)
		}
	}
}

// TestJSONBoundsTotalBytes checks that the DICOM JSON of a data set stays within the
// default size bound, leaving out the largest attributes outside the data dictionary
// first, and keeps the attributes of the dictionary.
func TestJSONBoundsTotalBytes(t *testing.T) {
	ds := bomb(0, 0)
	big := strings.Repeat("x", 60<<10)
	for i := range 300 { // 300 x 60 KiB: about 18 MiB of JSON
		ds.Elements = append(ds.Elements, NewString(NewTag(0x0CCC, uint16(0x1000+i)), "LT", big))
	}
	js, _, err := ds.JSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(js) > 16<<20 {
		t.Fatalf("%d bytes of JSON, want at most %d", len(js), 16<<20)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(js, &obj); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	for _, k := range []string{"00080016", "00080018", "00100020", "0020000D", "00280100", "00081140"} {
		if _, ok := obj[k]; !ok {
			t.Errorf("public attribute %s left out", k)
		}
	}
	if !bytes.Contains(js, []byte(`"0CCC1000"`)) {
		t.Errorf("every large attribute was left out; only enough to fit should be")
	}
}

// TestJSONBoundsOptions checks each bound with small settings, the report of what was
// left out, and that what is kept is written exactly as without bounds.
func TestJSONBoundsOptions(t *testing.T) {
	unbounded := &JSONOptions{MaxValueLength: -1, MaxPrivateElements: -1, MaxBytes: -1}
	same := func(t *testing.T, ds *Dataset, bounded []byte, differ ...string) map[string]json.RawMessage {
		t.Helper()
		full, _, err := ds.JSON(unbounded)
		if err != nil {
			t.Fatal(err)
		}
		var a, b map[string]json.RawMessage
		if err := json.Unmarshal(bounded, &a); err != nil {
			t.Fatalf("bounded JSON: %v", err)
		}
		if err := json.Unmarshal(full, &b); err != nil {
			t.Fatal(err)
		}
		for k, v := range a {
			if !slices.Contains(differ, k) && k != "00081140" && k != "00081250" && !bytes.Equal(v, b[k]) {
				t.Errorf("%s: %s, unbounded %s", k, v, b[k])
			}
		}
		return a
	}

	t.Run("private elements", func(t *testing.T) {
		ds := bomb(50, 20)
		var om JSONOmissions
		js, _, err := ds.JSON(&JSONOptions{MaxPrivateElements: 10, Omitted: &om})
		if err != nil {
			t.Fatal(err)
		}
		top, nested, _ := privateKeys(t, js)
		// In data set order the 20 nested ones (in (0008,1140)) come first.
		if top != 0 || nested != 10 || om.PrivateElements != 61 || om.LongValues != 0 || len(om.Elements) != 0 {
			t.Fatalf("%d top-level and %d nested private elements kept, report %+v", top, nested, om)
		}
		if s := om.String(); !strings.Contains(s, "61 private elements past the first 10") {
			t.Fatalf("report %q", s)
		}
		same(t, ds, js)
		if js, _, _ := ds.JSON(unbounded); func() int { a, b, _ := privateKeys(t, js); return a + b }() != 71 {
			t.Fatal("a negative bound is no bound")
		}
	})

	t.Run("long values", func(t *testing.T) {
		ds := bomb(0, 0)
		lt := NewString(NewTag(0x0020, 0x4000), "LT", strings.Repeat("long text ", 20)) // ImageComments, 200 bytes
		lt.Offset = 1234
		ds.Set(lt)
		ds.Set(NewString(NewTag(0x0008, 0x0008), "CS", slices.Repeat([]string{"DERIVED"}, 40)...)) // ImageType, 319 bytes
		ds.Set(NewString(NewTag(0x0008, 0x0060), "CS", "OT"))
		var om JSONOmissions
		js, bulk, err := ds.JSON(&JSONOptions{MaxValueLength: 100, Omitted: &om})
		if err != nil {
			t.Fatal(err)
		}
		obj := same(t, ds, js, "00204000")
		if string(obj["00204000"]) != `{"vr":"LT","BulkDataURI":"bulkdata/00204000"}` {
			t.Fatalf("long LT: %s", obj["00204000"])
		}
		if len(bulk) != 1 || bulk[0] != (BulkRef{Path: "00204000", Range: Range{Offset: 1234, Length: 200}, VR: "LT"}) {
			t.Fatalf("bulk refs %+v", bulk)
		}
		if _, ok := obj["00080008"]; ok || om.LongValues != 1 || obj["00080060"] == nil {
			t.Fatalf("long CS kept, or report %+v", om)
		}
	})

	t.Run("total bytes", func(t *testing.T) {
		ds := bomb(0, 0)
		kb := strings.Repeat("k", 1000)
		for i := range 3 {
			ds.Set(NewString(NewTag(0x0029, uint16(0x1010+i)), "LT", kb))
		}
		for i := range 5 {
			ds.Set(NewString(NewTag(0x0CCC, uint16(0x1000+i)), "LT", kb))
		}
		ds.Set(NewString(NewTag(0x0020, 0x4000), "LT", kb)) // ImageComments: in the dictionary
		full, _, _ := ds.JSON(nil)
		for _, c := range []struct {
			max  int
			want []Tag // left out
		}{
			{len(full), nil},
			{len(full) - 1, []Tag{NewTag(0x0029, 0x1012)}},
			{2500, []Tag{NewTag(0x0009, 0x0010), NewTag(0x0029, 0x1010), NewTag(0x0029, 0x1011), NewTag(0x0029, 0x1012), NewTag(0x0CCC, 0x1000), NewTag(0x0CCC, 0x1001), NewTag(0x0CCC, 0x1002), NewTag(0x0CCC, 0x1003), NewTag(0x0CCC, 0x1004)}},
			{600, []Tag{NewTag(0x0009, 0x0010), NewTag(0x0020, 0x4000), NewTag(0x0029, 0x1010), NewTag(0x0029, 0x1011), NewTag(0x0029, 0x1012), NewTag(0x0CCC, 0x1000), NewTag(0x0CCC, 0x1001), NewTag(0x0CCC, 0x1002), NewTag(0x0CCC, 0x1003), NewTag(0x0CCC, 0x1004)}},
		} {
			var om JSONOmissions
			js, _, err := ds.JSON(&JSONOptions{MaxBytes: c.max, Omitted: &om})
			if err != nil {
				t.Fatal(err)
			}
			if len(js) > c.max || fmt.Sprint(om.Elements) != fmt.Sprint(c.want) {
				t.Fatalf("max %d: %d bytes, left out %v, want %v", c.max, len(js), om.Elements, c.want)
			}
			obj := same(t, ds, js)
			if _, ok := obj["00080018"]; !ok {
				t.Fatalf("max %d: SOPInstanceUID left out", c.max)
			}
			if c.want != nil && !strings.Contains(om.String(), "to keep within "+fmt.Sprint(c.max)+" bytes") {
				t.Fatalf("report %q", om.String())
			}
			if c.want == nil && !om.Empty() {
				t.Fatalf("max %d: report %+v", c.max, om)
			}
		}
	})

	t.Run("private count survives dropped elements", func(t *testing.T) {
		// Two sequences with 5 private elements each; the first is also large, so the
		// size bound drops it. The private bound (7) keeps the first 7 in data set
		// order, so the second sequence keeps 2, with or without the first; the private
		// creator (0009,0010) of bomb comes after them.
		ds := bomb(0, 0)
		for _, tag := range []Tag{NewTag(0x0008, 0x1140), NewTag(0x0008, 0x1250)} {
			item := &Dataset{}
			if tag == NewTag(0x0008, 0x1140) {
				item.Set(NewString(NewTag(0x0020, 0x4000), "LT", strings.Repeat("x", 4000)))
			}
			for i := range 5 {
				item.Elements = append(item.Elements, NewString(NewTag(0x0011, uint16(0x1000+i)), "LO", "p"))
			}
			ds.Set(NewSequence(tag, item))
		}
		var om JSONOmissions
		js, _, err := ds.JSON(&JSONOptions{MaxPrivateElements: 7, MaxBytes: 2000, Omitted: &om})
		if err != nil {
			t.Fatal(err)
		}
		_, nested, obj := privateKeys(t, js)
		if _, ok := obj["00081140"]; ok || nested != 2 || om.PrivateElements != 4 || fmt.Sprint(om.Elements) != fmt.Sprint([]Tag{NewTag(0x0008, 0x1140)}) {
			t.Fatalf("%d nested private elements kept (want 2), report %+v: %s", nested, om, js)
		}
	})
}
