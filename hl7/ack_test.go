package hl7

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readSample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".hl7"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t *testing.T, b []byte) *Message {
	t.Helper()
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// segs joins segments with CR, the way Encode ends each of them.
func segs(s ...string) string { return strings.Join(s, "\r") + "\r" }

var ackTime = time.Date(2024, 3, 12, 10, 15, 1, 0, time.FixedZone("", 3600))

func TestAck(t *testing.T) {
	for _, c := range []struct {
		name   string
		in     *Message
		code   string
		errs   []*Error
		ctl    string
		want   string
		parsed bool
	}{
		{
			name: "v2.3 accept",
			in:   mustParse(t, readSample(t, "adt_a01_v23")),
			code: AA, ctl: "ACK-1",
			want: segs(`MSH|^~\&|LUMEN|RADIOLOGY|REGADT|NORTHCLINIC|20240312101501+0100||ACK^A01|ACK-1|P|2.3`,
				`MSA|AA|A01-0001`),
		},
		{
			name: "v2.3 error: ERR-1 and MSA-3",
			in:   mustParse(t, readSample(t, "adt_a01_v23")),
			code: AE, ctl: "ACK-2",
			errs: []*Error{
				Errorf(Location{Segment: "PID", Seq: 1, Field: 7}, CodeDataType, "PID-7 is not a date"),
				Errorf(Location{Segment: "PV1", Seq: 1, Field: 3, Rep: 1, Component: 2}, CodeTableValue, "unknown room"),
			},
			want: segs(`MSH|^~\&|LUMEN|RADIOLOGY|REGADT|NORTHCLINIC|20240312101501+0100||ACK^A01|ACK-2|P|2.3`,
				`MSA|AE|A01-0001|PID-7 is not a date`,
				`ERR|PID^1^7^102&Data type error&HL70357~PV1^1^3^103&Table value not found&HL70357`),
		},
		{
			name: "v2.5.1 reject: one ERR per error, MSH-18 copied, texts escaped",
			in:   mustParse(t, readSample(t, "adt_a08_v251")),
			code: AR, ctl: "ACK-3",
			errs: []*Error{
				Errorf(Location{Segment: "PID", Seq: 1, Field: 3, Rep: 2, Component: 1}, CodeDataType, "identifier a|b^c is not valid für uns"),
				Errorf(Location{Segment: "MSH", Seq: 1, Field: 9, Component: 2}, CodeUnsupportedEvent, "event A99 is not handled"),
				nil,
				Errorf(Location{}, CodeInternal, ""),
			},
			want: segs(`MSH|^~\&|LUMEN|RADIOLOGY|REGADT|NORTHCLINIC|20240312101501+0100||ACK^A08^ACK|ACK-3|P|2.5.1||||||UNICODE UTF-8`,
				`MSA|AR|A08-0003`,
				`ERR||PID^1^3^2^1|102^Data type error^HL70357|E||||identifier a\F\b\S\c is not valid für uns`,
				`ERR||MSH^1^9^1^2|201^Unsupported event code^HL70357|E||||event A99 is not handled`,
				`ERR|||207^Application internal error^HL70357|E`),
		},
		{
			name: "v2.8 with truncation character",
			in:   mustParse(t, readSample(t, "adt_a28_v28_truncation")),
			code: AE, ctl: "ACK-4",
			errs: []*Error{Errorf(Location{Segment: "PID", Seq: 1}, CodeSegmentSequence, "room #4")},
			want: segs(`MSH|^~\&#|LUMEN|RADIOLOGY|REGADT|NORTHCLINIC|20240312101501+0100||ACK^A28^ACK|ACK-4|P|2.8||||||UNICODE UTF-8`,
				`MSA|AE|A28-0004`,
				`ERR||PID^1|100^Segment sequence error^HL70357|E||||room \P\4`),
		},
		{
			name: "nothing readable",
			in:   nil,
			code: AR, ctl: "ACK-5",
			errs: []*Error{Errorf(Location{Segment: "MSH", Seq: 1}, CodeSegmentSequence, "the message does not start with an MSH segment")},
			want: segs(`MSH|^~\&|||||20240312101501+0100||ACK^^ACK|ACK-5|P|2.5`,
				`MSA|AR`,
				`ERR||MSH^1|100^Segment sequence error^HL70357|E||||the message does not start with an MSH segment`),
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := Ack(c.in, c.code, c.errs, c.ctl, ackTime)
			got := string(a.Encode())
			if got != c.want {
				t.Fatalf("ACK\n got  %q\n want %q", got, c.want)
			}
			back, err := Parse(a.Encode())
			if err != nil {
				t.Fatalf("the ACK does not parse: %v", err)
			}
			if back.Type() != "ACK" || back.ControlID() != c.ctl || back.Get("MSA-1").String() != c.code {
				t.Errorf("ACK reads back as %s %s %s", back.Type(), back.ControlID(), back.Get("MSA-1"))
			}
			if c.in != nil && back.Get("MSA-2").String() != c.in.ControlID() {
				t.Errorf("MSA-2 %q, want %q", back.Get("MSA-2"), c.in.ControlID())
			}
		})
	}
}

// TestAckJapanese: an ACK to an ISO 2022 message is written in that set and declares it.
func TestAckJapanese(t *testing.T) {
	in := mustParse(t, readSample(t, "adt_a08_v25_iso_ir87"))
	a := Ack(in, AE, []*Error{Errorf(Location{Segment: "PID", Seq: 1, Field: 5}, CodeDataType, "氏名 is wrong")}, "ACK-JP", ackTime)
	b := a.Encode()
	if !strings.Contains(string(b), "\x1b$B") {
		t.Errorf("the ACK's kanji are not ISO 2022: %q", b)
	}
	back := mustParse(t, b)
	if got := back.Get("MSH-18").Raw(); got != "~ISO IR87" {
		t.Errorf("MSH-18 %q", got)
	}
	if got := back.Get("ERR-8").String(); got != "氏名 is wrong" {
		t.Errorf("ERR-8 %q", got)
	}
}

// TestAckBytes: an ACK for bytes that did not parse names what could be read.
func TestAckBytes(t *testing.T) {
	for _, c := range []struct {
		name string
		in   string
		want string
	}{
		{
			name: "bad encoding characters: fields escaped, no event",
			in:   "bad_encoding_chars_duplicate",
			want: segs(`MSH|^~\&|LUMEN|RADIOLOGY|REGADT|NORTHCLINIC|20240312101501+0100||ACK^^ACK|ACK-B|P|2.5.1`, `MSA|AR|BAD-2`),
		},
		{
			name: "MSH-18 not in the table: dropped",
			in:   "bad_charset_unknown",
			want: segs(`MSH|^~\&|LUMEN|RADIOLOGY|REGADT|NORTHCLINIC|20240312101501+0100||ACK^A08^ACK|ACK-B|P|2.5.1`, `MSA|AR|BAD-9`),
		},
		{
			name: "Latin-1 bytes undeclared",
			in:   "bad_latin1_undeclared",
			want: segs(`MSH|^~\&|LUMEN|RADIOLOGY|REGADT|NORTHCLINIC|20240312101501+0100||ACK^A08^ACK|ACK-B|P|2.5.1`, `MSA|AR|BAD-12`),
		},
		{
			name: "truncated before the control ID",
			in:   "bad_truncated_before_control_id",
			want: segs(`MSH|^~\&|LUMEN|RADIOLOGY|REGADT|NORTHCLINIC|20240312101501+0100||ACK^A0^ACK|ACK-B|P|2.5`, `MSA|AR`),
		},
		{
			name: "no MSH",
			in:   "bad_no_msh",
			want: segs(`MSH|^~\&|||||20240312101501+0100||ACK^^ACK|ACK-B|P|2.5`, `MSA|AR`),
		},
		{
			name: "parses: the ordinary ACK",
			in:   "adt_a47_v25_lf",
			want: segs(`MSH|^~\&|LUMEN|RADIOLOGY|REGADT|NORTHCLINIC|20240312101501+0100||ACK^A47^ACK|ACK-B|P|2.5`, `MSA|AR|A47-0007`),
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := AckBytes(readSample(t, c.in), AR, nil, "ACK-B", ackTime)
			if got := string(a.Encode()); got != c.want {
				t.Fatalf("ACK\n got  %q\n want %q", got, c.want)
			}
			mustParse(t, a.Encode())
		})
	}
}

func TestBefore(t *testing.T) {
	for _, c := range []struct {
		v, w string
		want bool
	}{
		{"2.3", "2.3.1", true}, {"2.3.1", "2.3.1", false}, {"2.4", "2.5", true}, {"2.5", "2.5", false},
		{"2.5.1", "2.5", false}, {"2.10", "2.5", false}, {"x", "2.5", false}, {"2.2", "2.3.1", true},
	} {
		if got := before(c.v, c.w); got != c.want {
			t.Errorf("before(%q, %q) = %v", c.v, c.w, got)
		}
	}
}

func TestAsError(t *testing.T) {
	if AsError(nil) != nil {
		t.Error("AsError(nil) is not nil")
	}
	_, err := Parse([]byte("hello"))
	if e := AsError(err); e.Code != CodeSegmentSequence {
		t.Errorf("AsError of a parse error: %v", e)
	}
	if e := AsError(os.ErrNotExist); e.Code != CodeInternal || strings.Contains(e.Text, "exist") {
		t.Errorf("AsError of another error: %+v", e)
	}
}
