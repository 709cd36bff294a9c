package identity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/hl7"
	"github.com/lumenpacs/lumen/hl7/mllp"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/indextest"
	"github.com/lumenpacs/lumen/index/sqlindex"
)

// msgSpec builds one ER7 message: MSH (ADT from HIS, version 2.5.1 unless set), then
// the segments given, CR-separated.
type msgSpec struct {
	typ, event, control, processing, version string
	segs                                     []string
}

func (s msgSpec) bytes() []byte {
	typ, ver, proc := s.typ, s.version, s.processing
	if typ == "" {
		typ = "ADT"
	}
	if ver == "" {
		ver = "2.5.1"
	}
	if proc == "" {
		proc = "P"
	}
	msh := fmt.Sprintf("MSH|^~\\&|ADT|HIS|LUMEN|RAD|20260101120000||%s^%s|%s|%s|%s", typ, s.event, s.control, proc, ver)
	return []byte(strings.Join(append([]string{msh, "EVN|" + s.event + "|20260101120000"}, s.segs...), "\r") + "\r")
}

func adt(event, control string, segs ...string) []byte {
	return msgSpec{event: event, control: control, segs: segs}.bytes()
}

// testADT returns an ADT over a fresh index of backend, with a fixed clock and
// numbered ACK control IDs, logging to the test.
func testADT(t *testing.T, backend string) (*ADT, *sqlindex.DB) {
	t.Helper()
	x := indextest.Open(t, backend)
	var mu sync.Mutex
	n := 0
	return &ADT{
		Index: x,
		Log:   slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Now:   func() time.Time { return time.Date(2026, 1, 1, 12, 0, 1, 0, time.UTC) },
		ControlID: func() string {
			mu.Lock()
			defer mu.Unlock()
			n++
			return fmt.Sprintf("ACK%d", n)
		},
	}, x
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// ackOf is what a test reads of an ACK.
type ackOf struct {
	code, control  string // MSA-1, MSA-2
	errCode, where string // ERR-3.1 and ERR-2 (v2.5+), or ERR-1.4.1 and ERR-1.1..3 before
	severity       string // ERR-4 when W (a warning)
}

func readAck(t *testing.T, b []byte) ackOf {
	t.Helper()
	m, err := hl7.Parse(b)
	if err != nil {
		t.Fatalf("ACK does not parse: %v\n%q", err, b)
	}
	if m.Type() != "ACK" {
		t.Fatalf("ACK type %q", m.Type())
	}
	a := ackOf{code: m.Get("MSA-1").String(), control: m.Get("MSA-2").String()}
	if m.Get("ERR-1").Present() && !m.Get("ERR-1").Empty() {
		a.errCode = m.Get("ERR-1.4.1").String()
		a.where = m.Get("ERR-1.1").String() + "^" + m.Get("ERR-1.2").String() + "^" + m.Get("ERR-1.3").String()
	} else if m.Segment("ERR") != nil {
		a.errCode = m.Get("ERR-3.1").String()
		a.where = m.Get("ERR-2").Raw()
		// ERR-4 is E for errors; only a warning (W) is kept for comparison.
		switch sev := m.Get("ERR-4").String(); sev {
		case "W":
			a.severity = sev
		case "E":
		default:
			t.Errorf("ERR-4 %q", sev)
		}
	}
	return a
}

func send(t *testing.T, h *ADT, msg []byte) ([]byte, ackOf) {
	t.Helper()
	b := h.HandleMessage(context.Background(), msg, mllp.ConnInfo{ID: 1})
	return b, readAck(t, b)
}

func patient(t *testing.T, x index.Index, id string) string {
	t.Helper()
	r, err := x.Find(context.Background(), index.Query{Level: index.PatientLevel, Filters: []index.Filter{{Tag: dcm.TagPatientID, Value: id}}})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range r.Patients {
		out = append(out, fmt.Sprintf("%s|%s|%s|%s|%s|%d", p.PatientID, p.IssuerOfPatientID, p.PatientName, p.PatientBirthDate, p.PatientSex, p.NumberOfPatientRelatedStudies))
	}
	return strings.Join(out, ",")
}

func events(t *testing.T, x index.Identity) []string {
	t.Helper()
	evs, err := x.PatientEvents(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		s := e.Kind + " " + e.Patient.ID + "|" + e.Patient.Issuer
		if e.Other.ID != "" {
			s += " " + e.Other.ID + "|" + e.Other.Issuer
		}
		if e.Source != "hl7" || e.Actor != "HIS|ADT" {
			t.Errorf("event %+v: source and actor", e)
		}
		out = append(out, s)
	}
	return out
}

// putStudy indexes one study of one instance under patient (id, issuer).
func putStudy(t *testing.T, x index.Index, id, issuer, uid string) {
	t.Helper()
	in := &index.Instance{}
	in.PatientID, in.IssuerOfPatientID, in.PatientName = id, issuer, "Temp^Patient"
	in.StudyInstanceUID, in.StudyDate, in.StudyID = uid, "20260101", "S"+uid
	in.SeriesInstanceUID, in.Modality = uid+".1", "CT"
	in.SOPInstanceUID, in.SOPClassUID = uid+".1.1", "1.2.840.10008.5.1.4.1.1.2"
	in.TransferSyntaxUID = dcm.ExplicitVRLittleEndian
	in.NumberOfFrames, in.Rows, in.Columns = 1, 64, 64
	in.BlobKey = "dicom/test/" + in.SOPInstanceUID
	in.Size = 1000
	in.Digest = strings.Repeat("ab", 32)
	in.Metadata = []byte(`{"00080018":{"vr":"UI","Value":["` + in.SOPInstanceUID + `"]}}`)
	if err := x.Put(context.Background(), in); err != nil {
		t.Fatal(err)
	}
}

func studiesOf(t *testing.T, x index.Index, id, issuer string) []string {
	t.Helper()
	r, err := x.Find(context.Background(), index.Query{Level: index.StudyLevel, Filters: []index.Filter{{Tag: dcm.TagPatientID, Value: id}, {Tag: dcm.TagIssuerOfPatientID, Value: issuer}}})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range r.Studies {
		out = append(out, s.StudyInstanceUID)
	}
	slices.Sort(out)
	return out
}

const (
	pidA = "PID|1||TEMP1^^^HOSP^MR||Smith^John^Q^Jr^Dr||19600101|M"
)

func TestADT(t *testing.T) {
	for _, backend := range indextest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Run("create and update", func(t *testing.T) { testCreateUpdate(t, backend) })
			t.Run("merge", func(t *testing.T) { testMerge(t, backend) })
			t.Run("change id", func(t *testing.T) { testChangeID(t, backend) })
			t.Run("refusals", func(t *testing.T) { testRefusals(t, backend) })
			t.Run("duplicate", func(t *testing.T) { testDuplicate(t, backend) })
			t.Run("issuer", func(t *testing.T) { testIssuer(t, backend) })
			t.Run("index down", func(t *testing.T) { testIndexDown(t, backend) })
			t.Run("mllp", func(t *testing.T) { testMLLP(t, backend) })
		})
	}
}

// testCreateUpdate: A01 creates (PN component order mapped), A08 updates the name, ""
// deletes the birth date, an empty field leaves it, an unknown sex code is a warning.
func testCreateUpdate(t *testing.T, backend string) {
	h, x := testADT(t, backend)
	var logged bytes.Buffer
	h.Log = slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelInfo}))
	defer func() {
		// Message type, event, control ID and outcome at Info; no patient data.
		for _, phi := range []string{"TEMP1", "Smith", "John", "1960", "1970"} {
			if strings.Contains(logged.String(), phi) {
				t.Errorf("%q logged at Info:\n%s", phi, logged.String())
			}
		}
		if !strings.Contains(logged.String(), "event=A08 control_id=C1 ack=AA") {
			t.Errorf("log:\n%s", logged.String())
		}
	}()
	steps := []struct {
		name, event, pid string
		want             string // patient TEMP1 after the step
		ack              ackOf
	}{
		{"A01 creates", "A01", pidA, "TEMP1|HOSP|Smith^John^Q^Dr^Jr|19600101|M|0", ackOf{code: "AA"}},
		{"A08 updates the name", "A08", "PID|1||TEMP1^^^HOSP^MR||Smith^Johnny^^^^PhD", "TEMP1|HOSP|Smith^Johnny^^^PhD|19600101|M|0", ackOf{code: "AA"}},
		{"empty PID-7 keeps the birth date", "A08", "PID|1||TEMP1^^^HOSP^MR||Smith^John||", "TEMP1|HOSP|Smith^John|19600101|M|0", ackOf{code: "AA"}},
		{`"" deletes the birth date`, "A31", `PID|1||TEMP1^^^HOSP^MR||Smith^John||""|F`, "TEMP1|HOSP|Smith^John||F|0", ackOf{code: "AA"}},
		{"A28 with a time of birth", "A28", "PID|1||TEMP1^^^HOSP^MR||Smith^John||197002031230+0100", "TEMP1|HOSP|Smith^John|19700203|F|0", ackOf{code: "AA"}},
		{"unknown sex code is a warning", "A04", "PID|1||TEMP1^^^HOSP^MR||Smith^John|||Q", "TEMP1|HOSP|Smith^John|19700203||0", ackOf{code: "AA", errCode: "103", where: "PID^1^8", severity: "W"}},
		{"A05 X is other", "A05", "PID|1||TEMP1^^^HOSP^MR||Smith^John|||X", "TEMP1|HOSP|Smith^John|19700203|O|0", ackOf{code: "AA"}},
		{"bad birth date", "A08", "PID|1||TEMP1^^^HOSP^MR||Smith^John||19701340", "TEMP1|HOSP|Smith^John|19700203|O|0", ackOf{code: "AE", errCode: "102", where: "PID^1^7"}},
		{"an ISO date is not an HL7 date", "A08", "PID|1||TEMP1^^^HOSP^MR||Smith^John||1970-01-01", "TEMP1|HOSP|Smith^John|19700203|O|0", ackOf{code: "AE", errCode: "102", where: "PID^1^7"}},
		{"a fraction before the seconds", "A08", "PID|1||TEMP1^^^HOSP^MR||Smith^John||19700101.5", "TEMP1|HOSP|Smith^John|19700203|O|0", ackOf{code: "AE", errCode: "102", where: "PID^1^7"}},
		{"missing PID-5", "A08", "PID|1||TEMP1^^^HOSP^MR||", "TEMP1|HOSP|Smith^John|19700203|O|0", ackOf{code: "AE", errCode: "101", where: "PID^1^5"}},
	}
	for i, s := range steps {
		ctrl := fmt.Sprintf("C%d", i)
		_, got := send(t, h, adt(s.event, ctrl, s.pid))
		s.ack.control = ctrl
		if got != s.ack {
			t.Fatalf("%s: ACK %+v, want %+v", s.name, got, s.ack)
		}
		if p := patient(t, x, "TEMP1"); p != s.want {
			t.Fatalf("%s: patient %s, want %s", s.name, p, s.want)
		}
	}
	want := []string{"create TEMP1|HOSP", "update TEMP1|HOSP", "update TEMP1|HOSP", "update TEMP1|HOSP", "update TEMP1|HOSP", "update TEMP1|HOSP", "update TEMP1|HOSP"}
	if got := events(t, x); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// testMerge: A40 of a patient with studies into another; the survivor has them all and a
// merge event is recorded; A34 and A36 read as A40; conflicts are AE naming the field.
func testMerge(t *testing.T, backend string) {
	h, x := testADT(t, backend)
	putStudy(t, x, "TEMP1", "HOSP", "5.1")
	putStudy(t, x, "TEMP1", "HOSP", "5.2")
	putStudy(t, x, "TEMP1", "HOSP", "5.3")
	putStudy(t, x, "REAL1", "HOSP", "5.4")
	_, a := send(t, h, adt("A40", "M1", "PID|1||REAL1^^^HOSP^MR||Doe^John", "MRG|TEMP1^^^HOSP^MR"))
	if a != (ackOf{code: "AA", control: "M1"}) {
		t.Fatalf("A40: %+v", a)
	}
	if got := studiesOf(t, x, "REAL1", "HOSP"); !slices.Equal(got, []string{"5.1", "5.2", "5.3", "5.4"}) {
		t.Fatalf("survivor's studies %v", got)
	}
	if got := studiesOf(t, x, "TEMP1", "HOSP"); len(got) != 0 {
		t.Fatalf("merged patient's studies %v", got)
	}
	if k, merged, err := x.ResolvePatient(context.Background(), index.PatientKey{ID: "TEMP1", Issuer: "HOSP"}); err != nil || !merged || k.ID != "REAL1" {
		t.Fatalf("resolve TEMP1: %v %v %v", k, merged, err)
	}
	if got := events(t, x); !slices.Equal(got, []string{"merge REAL1|HOSP TEMP1|HOSP"}) {
		t.Fatalf("events %v", got)
	}
	putStudy(t, x, "OTHER1", "HOSP", "5.5")
	putStudy(t, x, "TEMP2", "HOSP", "5.6")
	for _, c := range []struct {
		name string
		msg  []byte
		want ackOf
	}{
		{"A34 as A40", adt("A34", "M2", "PID|1||REAL1^^^HOSP^MR||Doe^John", "MRG|TEMP2^^^HOSP"), ackOf{code: "AA"}},
		{"replay of a merge", adt("A40", "M3", "PID|1||REAL1^^^HOSP^MR||Doe^John", "MRG|TEMP1^^^HOSP"), ackOf{code: "AA"}},
		{"unknown source", adt("A36", "M4", "PID|1||REAL1^^^HOSP^MR||Doe^John", "MRG|NOBODY^^^HOSP"), ackOf{code: "AA"}},
		{"source merged into another", adt("A40", "M5", "PID|1||OTHER1^^^HOSP^MR||Doe^John", "MRG|TEMP1^^^HOSP"), ackOf{code: "AE", errCode: "204", where: "MRG^1^1"}},
		{"target merged away", adt("A40", "M6", "PID|1||TEMP1^^^HOSP^MR||Doe^John", "MRG|OTHER1^^^HOSP"), ackOf{code: "AE", errCode: "204", where: "PID^1^3"}},
		{"into itself", adt("A40", "M7", "PID|1||OTHER1^^^HOSP^MR||Doe^John", "MRG|OTHER1^^^HOSP"), ackOf{code: "AE", errCode: "205", where: "MRG^1^1"}},
		{"missing MRG", adt("A40", "M8", "PID|1||OTHER1^^^HOSP^MR||Doe^John"), ackOf{code: "AE", errCode: "100", where: "MRG^1"}},
		{"missing MRG-1", adt("A40", "M9", "PID|1||OTHER1^^^HOSP^MR||Doe^John", `MRG|""`), ackOf{code: "AE", errCode: "101", where: "MRG^1^1"}},
		{"two PID/MRG pairs", adt("A40", "M10", "PID|1||OTHER1^^^HOSP^MR||Doe^John", "MRG|TEMP2^^^HOSP", "PID|2||OTHER1^^^HOSP^MR||Doe^John", "MRG|NOBODY^^^HOSP"), ackOf{code: "AE", errCode: "100", where: "PID^2"}},
	} {
		_, got := send(t, h, c.msg)
		m, _ := hl7.Parse(c.msg)
		c.want.control = m.ControlID()
		if got != c.want {
			t.Fatalf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
	if got := studiesOf(t, x, "REAL1", "HOSP"); !slices.Equal(got, []string{"5.1", "5.2", "5.3", "5.4", "5.6"}) {
		t.Fatalf("survivor's studies %v", got)
	}
	if got := studiesOf(t, x, "OTHER1", "HOSP"); !slices.Equal(got, []string{"5.5"}) {
		t.Fatalf("OTHER1's studies %v", got)
	}
	if got := events(t, x); !slices.Equal(got, []string{"merge REAL1|HOSP TEMP1|HOSP", "merge REAL1|HOSP TEMP2|HOSP"}) {
		t.Fatalf("events %v", got)
	}
}

// testChangeID: A47 moves a record to the new identifier; a new identifier in use is AE
// 205 at PID-3; a prior identifier merged away is AE 204 at MRG-1, and so is one changed
// already (the index keeps the retired key as an alias merged into the record: a second
// A47 from it contradicts the first and must not be acknowledged as done); an unknown
// one is nothing to do.
func testChangeID(t *testing.T, backend string) {
	h, x := testADT(t, backend)
	putStudy(t, x, "OLD1", "HOSP", "6.1")
	putStudy(t, x, "TAKEN", "HOSP", "6.2")
	putStudy(t, x, "GONE", "HOSP", "6.3")
	for _, c := range []struct {
		name string
		msg  []byte
		want ackOf
	}{
		{"A47", adt("A47", "X1", "PID|1||NEW1^^^HOSP^MR||Doe^John", "MRG|OLD1^^^HOSP^MR"), ackOf{code: "AA"}},
		{"new identifier in use", adt("A47", "X2", "PID|1||TAKEN^^^HOSP^MR||Doe^John", "MRG|NEW1^^^HOSP^MR"), ackOf{code: "AE", errCode: "205", where: "PID^1^3"}},
		{"merge GONE into TAKEN", adt("A40", "X0", "PID|1||TAKEN^^^HOSP^MR||Doe^John", "MRG|GONE^^^HOSP^MR"), ackOf{code: "AA"}},
		{"prior identifier merged away", adt("A47", "X3", "PID|1||NEW2^^^HOSP^MR||Doe^John", "MRG|GONE^^^HOSP^MR"), ackOf{code: "AE", errCode: "204", where: "MRG^1^1"}},
		{"renamed prior identifier", adt("A47", "X6", "PID|1||NEW2^^^HOSP^MR||Doe^John", "MRG|OLD1^^^HOSP^MR"), ackOf{code: "AE", errCode: "204", where: "MRG^1^1"}},
		{"same identifier", adt("A47", "X7", "PID|1||NEW1^^^HOSP^MR||Doe^John", "MRG|NEW1^^^HOSP^MR"), ackOf{code: "AE", errCode: "205", where: "PID^1^3"}},
		{"unknown prior identifier", adt("A47", "X4", "PID|1||NEW3^^^HOSP^MR||Doe^John", "MRG|NOBODY^^^HOSP^MR"), ackOf{code: "AA"}},
		{"missing MRG", adt("A47", "X5", "PID|1||NEW3^^^HOSP^MR||Doe^John"), ackOf{code: "AE", errCode: "100", where: "MRG^1"}},
	} {
		_, got := send(t, h, c.msg)
		m, _ := hl7.Parse(c.msg)
		c.want.control = m.ControlID()
		if got != c.want {
			t.Fatalf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
	if got := studiesOf(t, x, "NEW1", "HOSP"); !slices.Equal(got, []string{"6.1"}) {
		t.Fatalf("NEW1's studies %v", got)
	}
	if got := events(t, x); !slices.Equal(got, []string{"change-id NEW1|HOSP OLD1|HOSP", "merge TAKEN|HOSP GONE|HOSP"}) {
		t.Fatalf("events %v", got)
	}
}

// testRefusals: the header checks (AR 200, 201, 202, 203), structure and required
// fields (AE 100, 101), bytes that do not parse (AR) and too large frames; none
// changes anything.
func testRefusals(t *testing.T, backend string) {
	h, x := testADT(t, backend)
	for _, c := range []struct {
		name string
		msg  []byte
		want ackOf
	}{
		{"unknown event", adt("A02", "R1", pidA), ackOf{code: "AR", control: "R1", errCode: "201", where: "MSH^1^9^1^2"}},
		{"A35 is not handled", adt("A35", "R2", pidA, "MRG|X^^^HOSP"), ackOf{code: "AR", control: "R2", errCode: "201", where: "MSH^1^9^1^2"}},
		{"ORU", msgSpec{typ: "ORU", event: "R01", control: "R3", segs: []string{pidA}}.bytes(), ackOf{code: "AR", control: "R3", errCode: "200", where: "MSH^1^9^1^1"}},
		{"processing ID T", msgSpec{event: "A08", control: "R4", processing: "T", segs: []string{pidA}}.bytes(), ackOf{code: "AR", control: "R4", errCode: "202", where: "MSH^1^11"}},
		{"version 2.1", msgSpec{event: "A08", control: "R5", version: "2.1", segs: []string{pidA}}.bytes(), ackOf{code: "AR", control: "R5", errCode: "203", where: "MSH^1^12"}},
		{"missing PID", adt("A08", "R6"), ackOf{code: "AE", control: "R6", errCode: "100", where: "PID^1"}},
		{"missing PID-3", adt("A08", "R7", "PID|1|||Smith^John"), ackOf{code: "AE", control: "R7", errCode: "101", where: "PID^1^3"}},
		{`"" in PID-3`, adt("A08", "R8", `PID|1||""|Smith^John`), ackOf{code: "AE", control: "R8", errCode: "101", where: "PID^1^3"}},
		{"empty PID-3.1", adt("A01", "R9", "PID|1||^^^HOSP^MR||Smith^John"), ackOf{code: "AE", control: "R9", errCode: "101", where: "PID^1^3^1^1"}},
		{"PatientID too long", adt("A01", "R10", "PID|1||"+strings.Repeat("1", 65)+"^^^HOSP||Smith^John"), ackOf{code: "AE", control: "R10", errCode: "102", where: "PID^1^3^1^1"}},
		{"missing MSH-3", []byte("MSH|^~\\&||HIS|LUMEN|RAD|20260101||ADT^A08|R12|P|2.5.1\rPID|1||X^^^HOSP||A^B\r"), ackOf{code: "AR", control: "R12", errCode: "101", where: "MSH^1^3"}},
		{"missing MSH-7", []byte("MSH|^~\\&|ADT|HIS|LUMEN|RAD|||ADT^A08|R13|P|2.5.1\rPID|1||X^^^HOSP||A^B\r"), ackOf{code: "AR", control: "R13", errCode: "101", where: "MSH^1^7"}},
		{"garbage", []byte("this is not HL7\r"), ackOf{code: "AR", errCode: "100", where: "MSH^1"}},
		{"bad encoding characters", []byte("MSH|^~|ADT|HIS|LUMEN|RAD|20260101||ADT^A08|R11|P|2.5.1\rPID|1||X\r"), ackOf{code: "AR"}},
	} {
		_, got := send(t, h, c.msg)
		if c.name == "garbage" || c.name == "bad encoding characters" {
			// The location and code are the codec's; what matters is an AR with an ERR.
			if got.code != "AR" || got.errCode == "" {
				t.Fatalf("%s: %+v", c.name, got)
			}
			continue
		}
		if got != c.want {
			t.Fatalf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
	// The 2.1 ACK uses ERR-1 (before v2.5): readAck read it from there.
	b := h.HandleTooLarge(context.Background(), adt("A08", "BIG", pidA)[:60], 5<<20, mllp.ConnInfo{ID: 1})
	if got := readAck(t, b); got.code != "AR" || got.errCode != "207" || got.control != "BIG" {
		t.Fatalf("too large: %+v", got)
	}
	if got := patient(t, x, "TEMP1"); got != "" {
		t.Fatalf("a refused message changed the index: %s", got)
	}
	if got := events(t, x); len(got) != 0 {
		t.Fatalf("events %v", got)
	}
}

// testDuplicate: the same message twice gets byte-identical ACKs and is applied once,
// even when the second would now be refused or would change something.
func testDuplicate(t *testing.T, backend string) {
	h, x := testADT(t, backend)
	msg := adt("A01", "D1", pidA)
	first, a := send(t, h, msg)
	if a.code != "AA" {
		t.Fatalf("first: %+v", a)
	}
	second, _ := send(t, h, msg)
	if !bytes.Equal(first, second) {
		t.Fatalf("second ACK differs:\n%q\n%q", first, second)
	}
	// The same control ID with other content is still the message applied: same ACK.
	third, _ := send(t, h, adt("A08", "D1", "PID|1||TEMP1^^^HOSP^MR||Other^Name"))
	if !bytes.Equal(first, third) {
		t.Fatalf("third ACK differs:\n%q\n%q", first, third)
	}
	if got := events(t, x); !slices.Equal(got, []string{"create TEMP1|HOSP"}) {
		t.Fatalf("events %v", got)
	}
	if got := patient(t, x, "TEMP1"); got != "TEMP1|HOSP|Smith^John^Q^Dr^Jr|19600101|M|0" {
		t.Fatalf("patient %s", got)
	}
	// A merge replayed likewise.
	putStudy(t, x, "T2", "HOSP", "8.1")
	merge := adt("A40", "D2", "PID|1||TEMP1^^^HOSP^MR||Smith^John", "MRG|T2^^^HOSP")
	m1, _ := send(t, h, merge)
	m2, _ := send(t, h, merge)
	if !bytes.Equal(m1, m2) || readAck(t, m1).code != "AA" {
		t.Fatalf("merge ACKs:\n%q\n%q", m1, m2)
	}
	if got := events(t, x); !slices.Equal(got, []string{"create TEMP1|HOSP", "merge TEMP1|HOSP T2|HOSP"}) {
		t.Fatalf("events %v", got)
	}
}

// testIssuer: a configured issuer chooses the repetition of its assigning authority (by
// namespace or universal ID); none is AE 204. Without one, the MR repetition.
func testIssuer(t *testing.T, backend string) {
	h, x := testADT(t, backend)
	h.Issuer = "HOSP"
	pid := "PID|1||111^^^OTHER^PI~222^^^HOSP^MR~333^^^&1.2.3&ISO^PI||Doe^Jane"
	if _, a := send(t, h, adt("A01", "I1", pid)); a.code != "AA" {
		t.Fatalf("I1: %+v", a)
	}
	if got := patient(t, x, "222"); got != "222|HOSP|Doe^Jane|||0" {
		t.Fatalf("patient %q", got)
	}
	h.Issuer = "1.2.3"
	if _, a := send(t, h, adt("A01", "I2", pid)); a.code != "AA" {
		t.Fatalf("I2: %+v", a)
	}
	if got := patient(t, x, "333"); got != "333|1.2.3|Doe^Jane|||0" {
		t.Fatalf("patient %q", got)
	}
	h.Issuer = "NONE"
	if _, a := send(t, h, adt("A01", "I3", pid)); a != (ackOf{code: "AE", control: "I3", errCode: "204", where: "PID^1^3"}) {
		t.Fatalf("I3: %+v", a)
	}
	h.Issuer = ""
	if _, a := send(t, h, adt("A01", "I4", "PID|1||444^^^A^PI~555^^^B^MR||Doe^Jane")); a.code != "AA" {
		t.Fatalf("I4: %+v", a)
	}
	if got := patient(t, x, "555"); got != "555|B|Doe^Jane|||0" {
		t.Fatalf("patient %q", got)
	}
	if _, a := send(t, h, adt("A01", "I5", "PID|1||666^^^&2.16.1&ISO~777^^^C||Doe^Jane")); a.code != "AA" {
		t.Fatalf("I5: %+v", a)
	}
	if got := patient(t, x, "666"); got != "666|2.16.1|Doe^Jane|||0" {
		t.Fatalf("patient %q", got)
	}
}

// testIndexDown: an index failure is AR 207 and records nothing.
func testIndexDown(t *testing.T, backend string) {
	h, x := testADT(t, backend)
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	for _, msg := range [][]byte{adt("A01", "F1", pidA), adt("A40", "F2", pidA, "MRG|X^^^HOSP"), adt("A47", "F3", pidA, "MRG|X^^^HOSP")} {
		if _, a := send(t, h, msg); a.code != "AR" || a.errCode != "207" {
			t.Fatalf("index closed: %+v", a)
		}
	}
	// A cancelled context likewise (a fresh index).
	h2, x2 := testADT(t, backend)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if a := readAck(t, h2.HandleMessage(ctx, adt("A01", "F4", pidA), mllp.ConnInfo{})); a.code != "AR" || a.errCode != "207" {
		t.Fatalf("cancelled: %+v", a)
	}
	if _, ok, err := x2.Message(context.Background(), index.MessageID{Application: "ADT", Facility: "HIS", ControlID: "F4"}); err != nil || ok {
		t.Fatalf("a failed message was recorded: %v %v", ok, err)
	}
	// Resent once the index answers, it is applied.
	if _, a := send(t, h2, adt("A01", "F4", pidA)); a.code != "AA" {
		t.Fatalf("resend: %+v", a)
	}
}

// testMLLP runs messages through a real mllp.Server on loopback, with mllp.Dial.
func testMLLP(t *testing.T, backend string) {
	h, x := testADT(t, backend)
	s := &mllp.Server{Handler: h, MaxMessageBytes: 4096}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-done; !errors.Is(err, mllp.ErrServerClosed) {
			t.Error(err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mllp.Dial(ctx, ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sendAck := func(msg []byte) ([]byte, ackOf) {
		t.Helper()
		b, err := c.Send(ctx, msg)
		if err != nil {
			t.Fatal(err)
		}
		return b, readAck(t, b)
	}
	first, a := sendAck(adt("A01", "N1", pidA))
	if a != (ackOf{code: "AA", control: "N1"}) {
		t.Fatalf("A01: %+v", a)
	}
	if _, a := sendAck(adt("A08", "N2", "PID|1||TEMP1^^^HOSP^MR||Smith^John^Q^Jr^Dr||\"\"")); a.code != "AA" {
		t.Fatalf("A08: %+v", a)
	}
	if got := patient(t, x, "TEMP1"); got != "TEMP1|HOSP|Smith^John^Q^Dr^Jr||M|0" {
		t.Fatalf("patient %s", got)
	}
	if again, _ := sendAck(adt("A01", "N1", pidA)); !bytes.Equal(first, again) {
		t.Fatalf("resent A01: %q, first %q", again, first)
	}
	if _, a := sendAck(adt("A02", "N3", pidA)); a.code != "AR" || a.errCode != "201" {
		t.Fatalf("A02: %+v", a)
	}
	// A frame over the server's limit is answered AR and the connection goes on.
	big := adt("A08", "N4", "PID|1||TEMP1^^^HOSP^MR||Smith^John", "NTE|1||"+strings.Repeat("x", 5000))
	if _, a := sendAck(big); a.code != "AR" || a.errCode != "207" || a.control != "N4" {
		t.Fatalf("too large: %+v", a)
	}
	if _, a := sendAck(adt("A08", "N5", "PID|1||TEMP1^^^HOSP^MR||Smith^John")); a.code != "AA" {
		t.Fatalf("after too large: %+v", a)
	}
	if got := events(t, x); !slices.Equal(got, []string{"create TEMP1|HOSP", "update TEMP1|HOSP", "update TEMP1|HOSP"}) {
		t.Fatalf("events %v", got)
	}
}
