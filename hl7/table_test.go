package hl7

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// sample is one message of testdata/ and what reading it must give (testdata/<name>.json).
type sample struct {
	Name  string `json:"-"`
	Bytes []byte `json:"-"`

	Canonical    bool              `json:"canonical"` // Encode(Parse(x)) == x
	Python       *bool             `json:"python"`    // cross-checked with python-hl7 (default true)
	Charset      string            `json:"charset"`
	Type         string            `json:"type"`
	Event        string            `json:"event"`
	Structure    string            `json:"structure"`
	ControlID    string            `json:"controlID"`
	Version      string            `json:"version"`
	ProcessingID string            `json:"processingID"`
	Segments     []string          `json:"segments"`
	Values       map[string]string `json:"values"` // path → Value.String()
	Reps         map[string]int    `json:"reps"`   // path → NumReps
	Null         []string          `json:"null"`   // paths holding ""
	Empty        []string          `json:"empty"`  // present and empty
	Absent       []string          `json:"absent"` // not reached
	Error        *struct {
		Segment   string `json:"segment"`
		Seq       int    `json:"seq"`
		Field     int    `json:"field"`
		Rep       int    `json:"rep"`
		Component int    `json:"component"`
		Sub       int    `json:"sub"`
		Code      int    `json:"code"`
		Text      string `json:"text"`
	} `json:"error"`
}

// samples reads testdata/*.hl7 with their expectations.
func samples(t testing.TB) []sample {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.hl7"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/*.hl7: %v", err)
	}
	sort.Strings(files)
	var out []sample
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		j, err := os.ReadFile(strings.TrimSuffix(f, ".hl7") + ".json")
		if err != nil {
			t.Fatalf("%s has no expectation: %v", f, err)
		}
		var s sample
		dec := json.NewDecoder(bytes.NewReader(j))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			t.Fatalf("%s.json: %v", f, err)
		}
		s.Name = strings.TrimSuffix(filepath.Base(f), ".hl7")
		s.Bytes = b
		out = append(out, s)
	}
	return out
}

func TestTable(t *testing.T) {
	for _, s := range samples(t) {
		t.Run(s.Name, func(t *testing.T) {
			m, err := Parse(s.Bytes)
			if s.Error != nil {
				want := &Error{Location: Location{Segment: s.Error.Segment, Seq: s.Error.Seq, Field: s.Error.Field, Rep: s.Error.Rep, Component: s.Error.Component, Sub: s.Error.Sub}, Code: Code(s.Error.Code), Text: s.Error.Text}
				var got *Error
				if !errors.As(err, &got) {
					t.Fatalf("Parse: %v (%T), want %v", err, err, want)
				}
				if m != nil {
					t.Errorf("Parse returned a message with an error")
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("Parse error\n got  %#v\n want %#v", got, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			for _, c := range []struct{ what, got, want string }{
				{"Charset", m.Charset(), s.Charset},
				{"Type", m.Type(), s.Type},
				{"Event", m.Event(), s.Event},
				{"Structure", m.Structure(), s.Structure},
				{"ControlID", m.ControlID(), s.ControlID},
				{"Version", m.Version(), s.Version},
				{"ProcessingID", m.ProcessingID(), s.ProcessingID},
			} {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
				}
			}
			var ids []string
			for _, seg := range m.Segments() {
				ids = append(ids, seg.ID())
			}
			if !reflect.DeepEqual(ids, s.Segments) {
				t.Errorf("segments %v, want %v", ids, s.Segments)
			}
			for path, want := range s.Values {
				if _, err := ParseLocation(path); err != nil {
					t.Fatal(err)
				}
				v := m.Get(path)
				if !v.Present() {
					t.Errorf("%s absent, want %q", path, want)
				}
				if got := v.String(); got != want {
					t.Errorf("%s = %q, want %q", path, got, want)
				}
			}
			for path, want := range s.Reps {
				if got := m.Get(path).NumReps(); got != want {
					t.Errorf("%s has %d repetitions, want %d", path, got, want)
				}
			}
			for _, path := range s.Null {
				if v := m.Get(path); !v.Null() || !v.Present() || v.Empty() || v.String() != "" {
					t.Errorf("%s = %q (present %v): want the null \"\"", path, v.Raw(), v.Present())
				}
			}
			for _, path := range s.Empty {
				if v := m.Get(path); !v.Present() || !v.Empty() || v.Null() {
					t.Errorf("%s = %q (present %v): want present and empty", path, v.Raw(), v.Present())
				}
			}
			for _, path := range s.Absent {
				if v := m.Get(path); v.Present() || !v.Empty() || v.Null() || v.String() != "" {
					t.Errorf("%s = %q (present %v): want absent", path, v.Raw(), v.Present())
				}
			}
			enc := m.Encode()
			if s.Canonical && !bytes.Equal(enc, s.Bytes) {
				t.Errorf("Encode(Parse(x)) != x\n got  %q\n want %q", enc, s.Bytes)
			}
			if !s.Canonical && bytes.Equal(enc, s.Bytes) {
				t.Errorf("the sample is canonical: mark it so")
			}
			m2, err := Parse(enc)
			if err != nil {
				t.Fatalf("Parse(Encode(m)): %v", err)
			}
			for path, want := range s.Values {
				if got := m2.Get(path).String(); got != want {
					t.Errorf("after Encode: %s = %q, want %q", path, got, want)
				}
			}
			if enc2 := m2.Encode(); !bytes.Equal(enc, enc2) {
				t.Errorf("Encode is not stable\n %q\n %q", enc, enc2)
			}
		})
	}
}
