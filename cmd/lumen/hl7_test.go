package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/emr"
	"github.com/lumenpacs/lumen/hl7"
	"github.com/lumenpacs/lumen/hl7/mllp"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/sqlite"
	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// The ADT feed of these tests: the hospital's ADT application (HIS|ADT), assigning
// authority HOSP. Modalities send no issuer: ingest.default_issuer files their objects
// under HOSP, the authority of the feed.
const hl7Issuer = "HOSP"

// hl7Env is a Lumen serving HL7 (hl7.issuer and ingest.default_issuer HOSP), with its
// log kept at Info to check that no patient data reaches it.
type hl7Env struct {
	s    *lumenServer
	base string
	log  *syncBuffer
}

func startHL7Env(t testing.TB, mutate func(*Config)) *hl7Env {
	t.Helper()
	logs := &syncBuffer{}
	s := startLumenLogged(t, func(c *Config) {
		c.HL7.Addr = "127.0.0.1:0"
		c.HL7.Issuer = hl7Issuer
		c.Ingest.DefaultIssuer = hl7Issuer
		if mutate != nil {
			mutate(c)
		}
	}, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if s.addr.HL7 == "" {
		t.Fatal("no HL7 listener")
	}
	return &hl7Env{s: s, base: "http://" + s.addr.HTTP, log: logs}
}

// noPHI fails when the server's log (Info and above) names any of words.
func (e *hl7Env) noPHI(t *testing.T, words ...string) {
	t.Helper()
	logs := e.log.String()
	for _, w := range words {
		if strings.Contains(logs, w) {
			t.Errorf("the log names %q above Debug", w)
		}
	}
}

// adtMessage is an HL7 v2.5.1 ADT message from HIS|ADT: MSH, EVN, PID (PID-3
// id^^^HOSP^MR, PID-5 name, PID-7, PID-8) and the extra segments given.
func adtMessage(event, control, id, name string, extra ...string) string {
	segs := []string{
		`MSH|^~\&|ADT|HIS|LUMEN|RAD|20260101120000||ADT^` + event + "|" + control + "|P|2.5.1",
		"EVN|" + event + "|20260101120000",
		"PID|1||" + id + "^^^" + hl7Issuer + "^MR||" + name + "||19700101|F",
	}
	return strings.Join(append(segs, extra...), "\r") + "\r"
}

// hl7Ack is one acknowledgement as a client saw it.
type hl7Ack struct{ code, control, errCode, raw string }

func parseAck(t *testing.T, raw string) hl7Ack {
	t.Helper()
	m, err := hl7.Parse([]byte(raw))
	if err != nil {
		t.Fatalf("ACK does not parse: %v\n%q", err, raw)
	}
	a := hl7Ack{code: m.Get("MSA-1").String(), control: m.Get("MSA-2").String(), raw: raw}
	if a.errCode = m.Get("ERR-3.1").String(); a.errCode == "" {
		a.errCode = m.Get("ERR-1.4.1").String()
	}
	return a
}

// mllpSend sends messages with Debian's python3-hl7 mllp_send (one connection, each
// after the ACK of the one before) and returns the ACKs it printed; err is its exit.
func mllpSend(t *testing.T, addr string, msgs ...string) ([]hl7Ack, error) {
	t.Helper()
	bin := tools.MLLPSend(t)
	host, port, _ := net.SplitHostPort(addr)
	var file bytes.Buffer
	for _, m := range msgs {
		// --loose reads LF line ends, each message starting with MSH|^~\&|.
		file.WriteString(strings.ReplaceAll(m, "\r", "\n"))
	}
	path := filepath.Join(t.TempDir(), "adt.hl7")
	if err := os.WriteFile(path, file.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--port", port, "--loose", "--file", path, host)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		err = fmt.Errorf("%w: %s", err, stderr.String())
	}
	var acks []hl7Ack
	for _, m := range regexp.MustCompile(`\x0b([^\x1c]*)\x1c\r`).FindAllSubmatch(out, -1) {
		acks = append(acks, parseAck(t, string(m[1])))
	}
	return acks, err
}

// nodeSend sends messages with the npm package node-hl7-client (locked in
// testdata/hl7client) and returns the ACKs.
func nodeSend(t *testing.T, addr string, msgs ...string) []hl7Ack {
	t.Helper()
	dir := tools.NPM(t, "testdata/hl7client")
	host, port, _ := net.SplitHostPort(addr)
	b, _ := json.Marshal(msgs)
	path := filepath.Join(t.TempDir(), "msgs.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(dir, "send.cjs"), host, port, path)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node-hl7-client: %v\n%s\n%s", err, out, stderr.String())
	}
	var acks []hl7Ack
	for _, line := range lines(string(out)) {
		var a struct{ Code, Control, Raw string }
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("node-hl7-client printed %q: %v", line, err)
		}
		acks = append(acks, parseAck(t, a.Raw))
	}
	return acks
}

// wantAcks fails unless the ACKs acknowledge the messages in order with the codes.
func wantAcks(t *testing.T, acks []hl7Ack, want ...string) {
	t.Helper()
	var got []string
	for _, a := range acks {
		s := a.control + " " + a.code
		if a.errCode != "" {
			s += " " + a.errCode
		}
		got = append(got, s)
	}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("ACKs: %v, want %v", got, want)
	}
}

// storeStudies stores n one-instance CT studies of patient id (no issuer: the
// default issuer applies) with STOW-RS, and returns their Study Instance UIDs.
func (e *hl7Env) storeStudies(t *testing.T, id, name string, seed uint64, n int) []string {
	t.Helper()
	var uids []string
	for i := range n {
		objs, err := gen.CTSeries(gen.Options{Seed: seed + uint64(i), Patient: gen.Patient{ID: id, Name: name, BirthDate: "19700101", Sex: "F"},
			StudyDate: fmt.Sprintf("2025%02d01", i+1), StudyDescription: fmt.Sprintf("CT %d", i+1)}, 1, 16, 16)
		if err != nil {
			t.Fatal(err)
		}
		stowAll(t, e.base+"/dicom-web", objs)
		uids = append(uids, objs[0].StudyUID)
	}
	return uids
}

// qido returns the studies of QIDO-RS for a query (JSON, DICOM JSON model).
func (e *hl7Env) qido(t *testing.T, query string) []map[string]any {
	t.Helper()
	code, body := httpDo(t, http.MethodGet, e.base+"/dicom-web/studies?"+query, "", nil, "Accept", "application/dicom+json")
	if code == http.StatusNoContent {
		return nil
	}
	if code != http.StatusOK {
		t.Fatalf("QIDO %s: %d %s", query, code, body)
	}
	var out []map[string]any
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// qidoNames returns the PatientName (alphabetic) and PatientID of each study QIDO-RS
// answers for a query.
func (e *hl7Env) qidoNames(t *testing.T, query string) []string {
	t.Helper()
	var out []string
	for _, st := range e.qido(t, query) {
		out = append(out, jsonPN(st["00100010"])+" "+jsonString(st["00100020"]))
	}
	return out
}

func jsonString(attr any) string {
	m, _ := attr.(map[string]any)
	v, _ := m["Value"].([]any)
	if len(v) == 0 {
		return ""
	}
	s, _ := v[0].(string)
	return s
}

func jsonPN(attr any) string {
	m, _ := attr.(map[string]any)
	v, _ := m["Value"].([]any)
	if len(v) == 0 {
		return ""
	}
	pn, _ := v[0].(map[string]any)
	s, _ := pn["Alphabetic"].(string)
	return s
}

// findscuNames returns the PatientName of each study C-FIND (DCMTK findscu, Study Root)
// answers for PatientID id.
func (e *hl7Env) findscuNames(t *testing.T, id string) []string {
	t.Helper()
	h, p := splitAddr(e.s.addr.DIMSE)
	out := runDCMTK(t, "findscu", "-v", "-S", "-aet", "FINDER", "-aec", "LUMEN", "-k", "QueryRetrieveLevel=STUDY",
		"-k", "PatientID="+id, "-k", "PatientName", "-k", "StudyInstanceUID", h, p)
	var names []string
	for _, m := range regexp.MustCompile(`\(0010,0010\) PN \[([^\]]*)\]`).FindAllStringSubmatch(out, -1) {
		names = append(names, strings.TrimRight(m[1], " "))
	}
	return names
}

// chart returns the chart API's answer for a patient of HOSP (410 Gone, with where
// the studies went, for a record merged away).
func (e *hl7Env) chart(t *testing.T, id string) emr.Chart {
	t.Helper()
	code, body := httpDo(t, http.MethodGet, e.base+"/emr/v1/patients/"+url.PathEscape(id)+"/studies?issuer="+hl7Issuer, "", nil)
	if code != http.StatusOK && code != http.StatusGone {
		t.Fatalf("chart of %s: %d %s", id, code, body)
	}
	var c emr.Chart
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// widgetStudies returns the studies the chart widget (HTML) shows for a patient of
// HOSP, or the status when it is not 200.
func (e *hl7Env) widgetStudies(t *testing.T, id string) []string {
	t.Helper()
	code, body := httpDo(t, http.MethodGet, e.base+"/emr/v1/patients/"+url.PathEscape(id)+"/chart?issuer="+hl7Issuer, "", nil)
	if code != http.StatusOK {
		t.Fatalf("widget of %s: %d %s", id, code, body)
	}
	var uids []string
	for _, m := range regexp.MustCompile(`data-study="([0-9.]+)"`).FindAllStringSubmatch(body, -1) {
		uids = append(uids, m[1])
	}
	return uids
}

// fhirStudy returns the FHIR ImagingStudy of a study.
func (e *hl7Env) fhirStudy(t *testing.T, uid string) string {
	t.Helper()
	code, body := httpDo(t, http.MethodGet, e.base+"/fhir/ImagingStudy/"+uid, "", nil, "Accept", "application/fhir+json")
	if code != http.StatusOK {
		t.Fatalf("FHIR ImagingStudy/%s: %d %s", uid, code, body)
	}
	return body
}

// auditRows returns the audit records of an action, newest first.
func (e *hl7Env) auditRows(t *testing.T, action string) []index.AuditRecord {
	t.Helper()
	code, body := httpDo(t, http.MethodGet, e.base+"/api/v1/audit?action="+action, "", nil)
	if code != http.StatusOK {
		t.Fatalf("audit search: %d %s", code, body)
	}
	var out struct {
		Records []index.AuditRecord `json:"records"`
	}
	var rows []index.AuditRecord
	if err := json.Unmarshal([]byte(body), &out); err == nil && out.Records != nil {
		rows = out.Records
	} else if err := json.Unmarshal([]byte(body), &rows); err != nil {
		t.Fatalf("audit search answer: %v\n%s", err, body)
	}
	return rows
}

// TestHL7ADTUpdate: an A01 then an A08, sent by Debian's python3-hl7 mllp_send and by
// the npm node-hl7-client, change the patient's name in QIDO-RS, C-FIND (findscu), the
// chart API and FHIR, for studies the modality stored without an issuer
// (ingest.default_issuer); every message is audited, and no patient data is logged
// above Debug.
func TestHL7ADTUpdate(t *testing.T) {
	e := startHL7Env(t, nil)
	for _, c := range []struct {
		client string
		id     string
		ctl    string // control ID prefix
		send   func(t *testing.T, msgs ...string) []hl7Ack
	}{
		{"mllp_send", "HL7-P100", "MS", func(t *testing.T, msgs ...string) []hl7Ack {
			acks, err := mllpSend(t, e.s.addr.HL7, msgs...)
			if err != nil {
				t.Fatalf("mllp_send: %v", err)
			}
			return acks
		}},
		{"node-hl7-client", "HL7-P200", "NH", func(t *testing.T, msgs ...string) []hl7Ack { return nodeSend(t, e.s.addr.HL7, msgs...) }},
	} {
		t.Run(c.client, func(t *testing.T) {
			uids := e.storeStudies(t, c.id, "Before^Bea", 100, 2)
			if got := e.qidoNames(t, "PatientID="+c.id); len(got) != 2 || got[0] != "Before^Bea "+c.id {
				t.Fatalf("before: QIDO %v", got)
			}
			acks := c.send(t, adtMessage("A01", c.ctl+"-1", c.id, "Admitted^Ann"))
			wantAcks(t, acks, c.ctl+"-1 AA")
			if got := e.qidoNames(t, "PatientID="+c.id); len(got) != 2 || got[0] != "Admitted^Ann "+c.id || got[1] != got[0] {
				t.Fatalf("after A01: QIDO %v", got)
			}
			acks = c.send(t, adtMessage("A08", c.ctl+"-2", c.id, "Corrected^Cora^Q^^DR"))
			wantAcks(t, acks, c.ctl+"-2 AA")
			const want = "Corrected^Cora^Q^DR"
			if got := e.qidoNames(t, "PatientID="+c.id); len(got) != 2 || got[0] != want+" "+c.id || got[1] != got[0] {
				t.Fatalf("after A08: QIDO %v", got)
			}
			if got := e.qidoNames(t, "PatientID="+c.id+"&PatientName=Corrected*"); len(got) != 2 {
				t.Fatalf("QIDO by the new name: %v", got)
			}
			if got := e.qidoNames(t, "PatientID="+c.id+"&PatientName=Before*"); len(got) != 0 {
				t.Fatalf("QIDO by the old name: %v", got)
			}
			if got := e.findscuNames(t, c.id); len(got) != 2 || got[0] != want || got[1] != want {
				t.Fatalf("findscu: %v", got)
			}
			ch := e.chart(t, c.id)
			if ch.Total != 2 || ch.PatientName != want {
				t.Fatalf("chart: total %d, name %q", ch.Total, ch.PatientName)
			}
			if w := e.widgetStudies(t, c.id); len(w) != 2 {
				t.Fatalf("widget: %v", w)
			}
			for _, uid := range uids {
				body := e.fhirStudy(t, uid)
				if strings.Contains(body, "Before") || strings.Contains(body, "Admitted") {
					t.Fatalf("FHIR ImagingStudy/%s shows an old name: %s", uid, body)
				}
				var is struct {
					Subject struct {
						Display    string
						Identifier struct{ Value string }
					}
				}
				json.Unmarshal([]byte(body), &is)
				if is.Subject.Identifier.Value != c.id || !strings.Contains(is.Subject.Display, "Corrected") {
					t.Fatalf("FHIR subject: %+v", is.Subject)
				}
			}
		})
	}
	rows := e.auditRows(t, "patient-update")
	var got []string
	for _, r := range rows {
		got = append(got, strings.Join([]string{r.Actor, r.Via, r.Outcome, r.PatientID, r.IssuerOfPatientID, r.Detail}, " "))
	}
	want := []string{
		"hl7:HIS|ADT hl7 AA HL7-P200 HOSP ADT^A08 control NH-2",
		"hl7:HIS|ADT hl7 AA HL7-P200 HOSP ADT^A01 control NH-1",
		"hl7:HIS|ADT hl7 AA HL7-P100 HOSP ADT^A08 control MS-2",
		"hl7:HIS|ADT hl7 AA HL7-P100 HOSP ADT^A01 control MS-1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, r := range rows {
		if !strings.HasPrefix(r.Remote, "127.0.0.1:") {
			t.Fatalf("audit remote %q", r.Remote)
		}
	}
	e.noPHI(t, "HL7-P100", "HL7-P200", "Corrected", "Admitted", "Cora")
}

// TestHL7ADTMerge: an A40 merges a patient with three studies into another with one:
// the survivor's chart (API and widget) shows all four, the merged identifier's chart
// none; a study stored later with storescu under the merged identifier is filed under
// the survivor. Both keys are audited.
func TestHL7ADTMerge(t *testing.T) {
	e := startHL7Env(t, nil)
	survivor := e.storeStudies(t, "HL7-S1", "Real^Rita", 300, 1)
	merged := e.storeStudies(t, "HL7-T9", "Temp^Trauma", 310, 3)
	if c := e.chart(t, "HL7-T9"); c.Total != 3 {
		t.Fatalf("before: merged chart total %d", c.Total)
	}
	acks, err := mllpSend(t, e.s.addr.HL7, adtMessage("A40", "M-1", "HL7-S1", "Real^Rita", "MRG|HL7-T9^^^"+hl7Issuer+"^MR"))
	if err != nil {
		t.Fatal(err)
	}
	wantAcks(t, acks, "M-1 AA")

	all := append(append([]string{}, survivor...), merged...)
	sameSet := func(got, want []string) bool {
		if len(got) != len(want) {
			return false
		}
		seen := map[string]bool{}
		for _, g := range got {
			seen[g] = true
		}
		for _, w := range want {
			if !seen[w] {
				return false
			}
		}
		return true
	}
	check := func(when string, want []string) {
		t.Helper()
		c := e.chart(t, "HL7-S1")
		var got []string
		for _, s := range c.Studies {
			got = append(got, s.StudyInstanceUID)
		}
		if c.Total != len(want) || !sameSet(got, want) {
			t.Fatalf("%s: survivor's chart %v, want %v", when, got, want)
		}
		if w := e.widgetStudies(t, "HL7-S1"); !sameSet(w, want) {
			t.Fatalf("%s: survivor's widget %v, want %v", when, w, want)
		}
		if c := e.chart(t, "HL7-T9"); c.Total != 0 || len(c.Studies) != 0 || c.MergedInto == nil || c.MergedInto.PatientID != "HL7-S1" || c.Notice == "" {
			t.Fatalf("%s: merged identifier's chart: %+v", when, c)
		}
		code, body := httpDo(t, http.MethodGet, e.base+"/emr/v1/patients/HL7-T9/chart?issuer="+hl7Issuer, "", nil)
		if code != http.StatusGone || strings.Contains(body, "data-study=") || !strings.Contains(body, "merged") {
			t.Fatalf("%s: merged identifier's widget: %d %s", when, code, body)
		}
		if got := e.qidoNames(t, "PatientID=HL7-S1"); len(got) != len(want) {
			t.Fatalf("%s: QIDO of the survivor: %v", when, got)
		}
		if got := e.qidoNames(t, "PatientID=HL7-T9"); len(got) != 0 {
			t.Fatalf("%s: QIDO of the merged identifier: %v", when, got)
		}
	}
	check("after the merge", all)

	// A modality that still has the old identifier sends a new study.
	late, err := gen.CTSeries(gen.Options{Seed: 399, Patient: gen.Patient{ID: "HL7-T9", Name: "Temp^Trauma"}, StudyDescription: "CT late"}, 2, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := gen.WriteCorpus(dir, late); err != nil {
		t.Fatal(err)
	}
	h, p := splitAddr(e.s.addr.DIMSE)
	runDCMTK(t, "storescu", "-aet", "MODALITY", "-aec", "LUMEN", "+sd", "+r", h, p, dir)
	check("after a C-STORE under the merged identifier", append(all, late[0].StudyUID))
	for _, st := range e.qido(t, "StudyInstanceUID="+late[0].StudyUID) {
		if id := jsonString(st["00100020"]); id != "HL7-S1" {
			t.Fatalf("the late study answers PatientID %q", id)
		}
	}

	var got []string
	for _, r := range e.auditRows(t, "patient-merge") {
		got = append(got, r.Outcome+" "+r.PatientID+" "+r.Detail)
	}
	if len(got) != 2 || !sameSet(got, []string{"AA HL7-S1 ADT^A40 control M-1", "AA HL7-T9 ADT^A40 control M-1 (the record merged away)"}) {
		t.Fatalf("audit: %q", got)
	}
	e.noPHI(t, "HL7-S1", "HL7-T9", "Rita", "Trauma")
}

// sendRaw writes bytes on a new connection and returns what comes back until the
// server closes it or answers one frame.
func sendRaw(t *testing.T, addr string, raw []byte, closeWrite bool) []byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(raw); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		c.(*net.TCPConn).CloseWrite()
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil || bytes.Contains(out, []byte{0x1c, 0x0d}) {
			return out
		}
	}
}

func mllpFrame(msg string) []byte { return append(append([]byte{0x0b}, msg...), 0x1c, 0x0d) }

// TestHL7Malformed: bad headers, wrong encoding characters, unknown messages and
// events, missing segments and fields, a sender or host not in hl7.peers, and frames cut
// short get AE or AR with an ERR naming the problem (or, for a frame never ended, no
// ACK), and change nothing.
func TestHL7Malformed(t *testing.T) {
	e := startHL7Env(t, func(c *Config) {
		c.HL7.Peers = []HL7PeerConfig{{Facility: "HIS", Application: "ADT", Host: "127.0.0.1"}}
		c.HL7.ReadTimeout = time.Second // a sender stalling inside a frame is answered after it
	})
	uids := e.storeStudies(t, "HL7-M1", "Kept^Karl", 500, 1)
	const name = "Kept^Karl HL7-M1"
	rename := func(control string) string { return adtMessage("A08", control, "HL7-M1", "Changed^Chris") }
	msh := `MSH|^~\&|ADT|HIS|LUMEN|RAD|20260101120000||`
	cases := []struct {
		name, msg, want string
	}{
		{"no MSH", "PID|1||HL7-M1^^^HOSP^MR||Changed^Chris\r", "AR 100"},
		{"bad MSH segment name", strings.Replace(rename("B-2"), "MSH|", "MSX|", 1), "AR 100"},
		{"wrong encoding characters", strings.Replace(rename("B-3"), `^~\&`, `^~\#`, 1), "B-3 AR 102"},
		{"encoding characters cut short", strings.Replace(rename("B-4"), `MSH|^~\&|`, `MSH|^~|`, 1), "B-4 AR 102"},
		{"no message type", strings.Replace(rename("B-5"), "ADT^A08", "", 1), "B-5 AR 101"},
		{"not ADT", strings.Replace(rename("B-6"), "ADT^A08", "ORM^O01", 1), "B-6 AR 200"},
		{"unknown event", strings.Replace(rename("B-7"), "ADT^A08", "ADT^A99", 1), "B-7 AR 201"},
		{"account merge (A35)", strings.Replace(rename("B-8"), "ADT^A08", "ADT^A35", 1) + "MRG|HL7-M1^^^HOSP^MR\r", "B-8 AR 201"},
		{"processing ID", strings.Replace(rename("B-9"), "|B-9|P|", "|B-9|X|", 1), "B-9 AR 202"},
		{"version", strings.Replace(rename("B-10"), "|P|2.5.1", "|P|3.0", 1), "B-10 AR 203"},
		{"no PID", msh + "ADT^A08|B-11|P|2.5.1\rEVN|A08|20260101120000\r", "B-11 AE 100"},
		{"no patient name", adtMessage("A08", "B-12", "HL7-M1", ""), "B-12 AE 101"},
		{"not the configured issuer", strings.Replace(rename("B-13"), "^^^HOSP^MR", "^^^ELSEWHERE^MR", 1), "B-13 AE 204"},
		{"bad birth date", strings.Replace(rename("B-14"), "19700101", "19701301", 1), "B-14 AE 102"},
		{"A40 without MRG", adtMessage("A40", "B-15", "HL7-M1", "Changed^Chris"), "B-15 AE 100"},
		{"merge into itself", adtMessage("A40", "B-16", "HL7-M1", "Changed^Chris", "MRG|HL7-M1^^^HOSP^MR"), "B-16 AE 205"},
		{"sender not in hl7.peers", strings.Replace(rename("B-17"), "|ADT|HIS|", "|ADT|CLINIC|", 1), "B-17 AR 103"},
		{"application not in hl7.peers", strings.Replace(rename("B-18"), "|ADT|HIS|", "|LAB|HIS|", 1), "B-18 AR 103"},
	}
	var refused int
	for _, c := range cases {
		c := c
		t.Run(c.name, func(t *testing.T) {
			mc, err := mllp.Dial(context.Background(), e.s.addr.HL7, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer mc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			raw, err := mc.Send(ctx, []byte(c.msg))
			if err != nil {
				t.Fatal(err)
			}
			a := parseAck(t, string(raw))
			got := strings.TrimSpace(a.control + " " + a.code + " " + a.errCode)
			if got != c.want {
				t.Fatalf("ACK %q, want %q:\n%q", got, c.want, raw)
			}
			if !strings.Contains(a.raw, "\rERR|") {
				t.Fatalf("no ERR segment: %q", a.raw)
			}
			refused++
		})
	}

	// A sender that stalls inside a frame: AR with ERR (207, "send it again") from the
	// header read so far, then the connection closes.
	stalled := sendRaw(t, e.s.addr.HL7, append([]byte{0x0b}, rename("T-0")...), false)
	if !bytes.Contains(stalled, []byte("MSA|AR|T-0")) || !bytes.Contains(stalled, []byte("ERR|")) || !bytes.Contains(stalled, []byte("207")) {
		t.Fatalf("stalled frame: answered %q", stalled)
	}

	// Frames cut short by the sender: no ACK, and the connection is closed.
	for name, raw := range map[string][]byte{
		"frame never ended":        append([]byte{0x0b}, rename("T-1")...),
		"frame restarted":          append(append([]byte{0x0b}, rename("T-2")[:40]...), mllpFrame(rename("T-3"))[:30]...),
		"bytes before the start":   append([]byte("garbage"), mllpFrame(rename("T-4"))[:50]...),
		"end block without a body": {0x1c, 0x0d},
	} {
		if got := sendRaw(t, e.s.addr.HL7, raw, true); bytes.Contains(got, []byte("MSA|AA")) {
			t.Fatalf("%s: answered %q", name, got)
		}
	}

	// A host not in hl7.peers: the connection is closed before any message.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	if c, err := d.Dial("tcp", e.s.addr.HL7); err != nil {
		tools.Missing(t, "no second loopback address (127.0.0.2): "+err.Error())
	} else {
		c.Write(mllpFrame(rename("H-1")))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := c.Read(make([]byte, 64))
		c.Close()
		if b != 0 {
			t.Fatal("a connection from a host not in hl7.peers was answered")
		}
	}

	// Nothing changed: the name, and no patient-update row but refusals.
	if got := e.qidoNames(t, "PatientID=HL7-M1"); len(got) != 1 || got[0] != name {
		t.Fatalf("after the refusals: QIDO %v", got)
	}
	if ch := e.chart(t, "HL7-M1"); ch.PatientName != "Kept^Karl" || ch.Total != 1 || ch.Studies[0].StudyInstanceUID != uids[0] {
		t.Fatalf("after the refusals: chart %+v", ch)
	}
	for _, r := range e.auditRows(t, "patient-update") {
		if strings.HasPrefix(r.Outcome, "AA") {
			t.Fatalf("an update was applied: %+v", r)
		}
	}
	// One audit row per answered message (a merge refused names two keys), and one
	// for the refused connection.
	var rows int
	for _, action := range []string{"hl7", "patient-update", "patient-merge"} {
		for _, r := range e.auditRows(t, action) {
			if r.Via != "hl7" || r.Outcome == "" || strings.HasPrefix(r.Outcome, "AA") {
				t.Fatalf("audit row %+v", r)
			}
			rows++
		}
	}
	if want := refused + 2; rows != want { // B-16, a merge, names its two keys; the stalled frame T-0
		t.Errorf("%d audit rows of messages, want %d", rows, want)
	}
	if conn := e.auditRows(t, "hl7-connect"); len(conn) != 1 || conn[0].Outcome != "refused" || !strings.HasPrefix(conn[0].Remote, "127.0.0.2:") {
		t.Fatalf("audit of the refused connection: %+v", conn)
	}
	e.noPHI(t, "HL7-M1", "Changed", "Chris", "Karl")
}

// TestHL7CorrectedRetrieve: after an A08, WADO-RS metadata and an object retrieved
// with C-MOVE (movescu to storescp) and with C-GET (getscu), read with dcmdump, carry
// the corrected name (the retrieve-side correction of issue 16).
func TestHL7CorrectedRetrieve(t *testing.T) {
	destPort, destDir := storeSCP(t)
	e := startHL7Env(t, func(c *Config) {
		c.DIMSE.Peers = []PeerConfig{{AETitle: "DEST", Host: "127.0.0.1", Port: destPort}}
	})
	uids := e.storeStudies(t, "HL7-R1", "Before^Bea", 700, 1)
	acks, err := mllpSend(t, e.s.addr.HL7, adtMessage("A08", "R-1", "HL7-R1", "Corrected^Cora"))
	if err != nil {
		t.Fatal(err)
	}
	wantAcks(t, acks, "R-1 AA")

	code, body := httpDo(t, http.MethodGet, e.base+"/dicom-web/studies/"+uids[0]+"/metadata", "", nil, "Accept", "application/dicom+json")
	if code != http.StatusOK {
		t.Fatalf("WADO-RS metadata: %d %s", code, body)
	}
	var meta []map[string]any
	if err := json.Unmarshal([]byte(body), &meta); err != nil || len(meta) != 1 {
		t.Fatalf("WADO-RS metadata: %v %s", err, body)
	}
	if got := jsonPN(meta[0]["00100010"]); got != "Corrected^Cora" {
		t.Errorf("WADO-RS metadata PatientName %q, want Corrected^Cora", got)
	}

	h, p := splitAddr(e.s.addr.DIMSE)
	out := moveWith(t, "-S", "DEST", h, p, []string{"QueryRetrieveLevel=STUDY", "StudyInstanceUID=" + uids[0]})
	files, _ := filepath.Glob(filepath.Join(destDir, "*"))
	if len(files) != 1 {
		t.Fatalf("C-MOVE delivered %d files:\n%s", len(files), out)
	}
	dump := runDCMTK(t, "dcmdump", files[0])
	if !strings.Contains(dump, "(0010,0010) PN [Corrected^Cora]") {
		t.Errorf("the C-MOVE'd object's PatientName is not the corrected one:\n%s", grepLines(dump, "(0010,"))
	}

	// C-GET (getscu) takes the same corrected header.
	getDir := t.TempDir()
	cmd := exec.Command(dcmtkTool(t, "getscu"), "-S", "-aet", "GETTER", "-aec", "LUMEN", "-od", getDir, "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+uids[0], h, p)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	gout, _ := cmd.CombinedOutput()
	got, _ := filepath.Glob(filepath.Join(getDir, "*"))
	if len(got) != 1 {
		t.Fatalf("C-GET delivered %d files:\n%s", len(got), gout)
	}
	if dump := runDCMTK(t, "dcmdump", got[0]); !strings.Contains(dump, "(0010,0010) PN [Corrected^Cora]") {
		t.Errorf("the C-GET object's PatientName is not the corrected one:\n%s", grepLines(dump, "(0010,"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// BenchmarkHL7A08 sends ADT A08 messages over one MLLP connection to Lumen on the
// embedded backends (fs + SQLite), each after the ACK of the one before: messages/s end
// to end (parse, peer check, index transaction with the exactly-once record, ACK,
// audit).
func BenchmarkHL7A08(b *testing.B) {
	e := startHL7Env(b, nil)
	c, err := mllp.Dial(context.Background(), e.s.addr.HL7, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	names := []string{"Bench^Berta", "Bench^Bruno"}
	msgs := make([][]byte, b.N)
	for i := range msgs {
		msgs[i] = []byte(adtMessage("A08", fmt.Sprintf("BENCH-%d", i), fmt.Sprintf("HL7-B%d", i%100), names[i%2]))
	}
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := range msgs {
		ack, err := c.Send(ctx, msgs[i])
		if err != nil {
			b.Fatal(err)
		}
		if !bytes.Contains(ack, []byte("MSA|AA|")) {
			b.Fatalf("ACK %q", ack)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// buildCrashBinary builds lumen with the build tag lumen_crashhook (crashhook.go).
func buildCrashBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "lumen-crashhook")
	tags := strings.TrimSpace("lumen_crashhook " + buildTags()) // as TestMain builds lumenBin
	if out, err := exec.Command("go", "build", "-tags", tags, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building lumen with the crash hook: %v\n%s", err, out)
	}
	return bin
}

// startHL7Binary runs `lumen serve` (bin) on dataDir with HL7 on hl7Addr, the extra
// environment given, and waits until the HL7 port answers.
func startHL7Binary(t *testing.T, bin, dataDir, hl7Addr string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--data-dir", dataDir, "--http-addr", "127.0.0.1:0", "--dimse-addr", "127.0.0.1:0", "--hl7-addr", hl7Addr)
	cmd.Env = append(append(os.Environ(), "LUMEN_HL7_ISSUER="+hl7Issuer, "LUMEN_FSCK_ON_START=false"), env...)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for range 200 {
		if c, err := net.Dial("tcp", hl7Addr); err == nil {
			c.Close()
			return cmd
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatalf("lumen did not listen for HL7:\n%s", stderr.String())
	return nil
}

// TestHL7CrashBeforeACK kills Lumen with SIGKILL between an ADT message's receipt and
// its ACK (before the message is applied, and after it is committed), restarts it, and
// has mllp_send send the message again, twice: it is applied exactly once (one patient
// event) and both resends get the same AA (exactly-once by MSH-3, MSH-4, MSH-10).
func TestHL7CrashBeforeACK(t *testing.T) {
	tools.MLLPSend(t)
	bin := buildCrashBinary(t)
	for _, point := range []string{"received", "applied"} {
		t.Run(point, func(t *testing.T) {
			data := t.TempDir()
			addr := freeAddr(t)
			msg := adtMessage("A08", "CRASH-1", "HL7-C1", "Crash^Carl")
			lumen := startHL7Binary(t, bin, data, addr, "LUMEN_TEST_HL7_CRASH="+point+":CRASH-1")
			acks, _ := mllpSend(t, addr, msg)
			err := lumen.Wait()
			if len(acks) != 0 {
				t.Fatalf("acknowledged before the crash: %+v", acks)
			}
			if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("lumen was not killed at %s: %v", point, err)
			}
			// What the crash left: the message applied (and its ACK recorded) or not.
			events := func() []index.PatientEvent {
				t.Helper()
				x, err := sqlite.Open(context.Background(), filepath.Join(data, "index.db"))
				if err != nil {
					t.Fatal(err)
				}
				defer x.Close()
				evs, err := x.PatientEvents(context.Background(), 0, 100)
				if err != nil {
					t.Fatal(err)
				}
				return evs
			}
			if n, want := len(events()), map[string]int{"received": 0, "applied": 1}[point]; n != want {
				t.Fatalf("killed at %s: %d patient events, want %d", point, n, want)
			}

			lumen = startHL7Binary(t, lumenBin, data, addr)
			acks, err = mllpSend(t, addr, msg, msg)
			lumen.Process.Signal(syscall.SIGTERM)
			lumen.Wait()
			if err != nil {
				t.Fatal(err)
			}
			wantAcks(t, acks, "CRASH-1 AA", "CRASH-1 AA")
			if acks[0].raw != acks[1].raw {
				t.Fatalf("the resend's ACK is not the one recorded:\n%q\n%q", acks[0].raw, acks[1].raw)
			}

			var got []string
			for _, ev := range events() {
				got = append(got, ev.Kind+" "+ev.Patient.ID+" "+ev.Patient.Issuer)
			}
			if len(got) != 1 || got[0] != "create HL7-C1 HOSP" {
				t.Fatalf("patient events %q, want one create", got)
			}
			x, err := sqlite.Open(context.Background(), filepath.Join(data, "index.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer x.Close()
			res, err := x.Find(context.Background(), index.Query{Level: index.PatientLevel})
			if err != nil || len(res.Patients) != 1 || res.Patients[0].PatientName != "Crash^Carl" {
				t.Fatalf("patients: %+v %v", res, err)
			}
		})
	}
}

// TestHL7Config loads the hl7 and ingest keys, refuses bad ones, and checks that with
// authentication on the HL7 listener needs its peers' hosts, client certificates, or
// hl7.allow_unauthenticated.
func TestHL7Config(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "lumen.yaml")
	os.WriteFile(file, []byte(`
hl7:
  addr: "127.0.0.1:2575"
  issuer: HOSP
  processing_ids: [P, T]
  peers:
    - facility: HIS
      application: ADT
      host: 10.1.2.3
    - facility: LAB
      host: 10.1.0.0/16
  max_conns: 16
  idle_timeout: 1m
ingest:
  default_issuer: HOSP
`), 0o644)
	c, err := loadConfig(flagSet(t, "--config", file))
	if err != nil {
		t.Fatal(err)
	}
	if c.HL7.Addr != "127.0.0.1:2575" || c.HL7.Issuer != "HOSP" || len(c.HL7.ProcessingIDs) != 2 || len(c.HL7.Peers) != 2 ||
		c.HL7.Peers[1].Host != "10.1.0.0/16" || c.HL7.MaxConns != 16 || c.HL7.MaxConnsPerHost != 8 || c.HL7.IdleTimeout != time.Minute ||
		c.HL7.ReadTimeout != 30*time.Second || c.HL7.MaxMessageBytes != 1<<20 || c.Ingest.DefaultIssuer != "HOSP" {
		t.Fatalf("hl7: %+v, ingest %+v", c.HL7, c.Ingest)
	}
	if d, err := loadConfig(flagSet(t)); err != nil || d.HL7.Addr != "" || d.HL7.TLSAddr != "" || fmt.Sprint(d.HL7.ProcessingIDs) != "[P]" {
		t.Fatalf("defaults: HL7 must be off, processing IDs [P]: %+v %v", d.HL7, err)
	}
	for name, body := range map[string]string{
		"processing ID":        "hl7:\n  processing_ids: [X]\n",
		"empty peer":           "hl7:\n  peers:\n    - host: \"\"\n",
		"bad host":             "hl7:\n  peers:\n    - host: \"10.0.0.0/99\"\n",
		"tls without a cert":   "hl7:\n  tls_addr: \":2576\"\n",
		"unknown key":          "hl7:\n  isuer: HOSP\n",
		"negative message cap": "hl7:\n  max_message_bytes: -1\n",
	} {
		f := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
		os.WriteFile(f, []byte(body), 0o644)
		if _, err := loadConfig(flagSet(t, "--config", f)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}

	access := func(mutate func(*Config)) (string, error) {
		c, err := loadConfig(flagSet(t))
		if err != nil {
			t.Fatal(err)
		}
		c.Auth.Mode = "on"
		c.HL7.Addr = ":2575"
		mutate(c)
		return c.hl7Access()
	}
	if _, err := access(func(*Config) {}); err == nil {
		t.Error("auth on, no peers: accepted")
	}
	if _, err := access(func(c *Config) { c.HL7.Peers = []HL7PeerConfig{{Facility: "HIS"}} }); err == nil {
		t.Error("auth on, a peer without host: accepted")
	}
	if w, err := access(func(c *Config) { c.HL7.Peers = []HL7PeerConfig{{Facility: "HIS", Host: "10.1.2.3"}} }); err != nil || w != "" {
		t.Errorf("auth on, every peer with its host: %v %q", err, w)
	}
	if w, err := access(func(c *Config) { c.HL7.Addr, c.HL7.TLSAddr, c.HL7.TLSClientCA = "", ":2576", "ca.pem" }); err != nil || w != "" {
		t.Errorf("auth on, TLS only with client certificates: %v %q", err, w)
	}
	if w, err := access(func(c *Config) { c.HL7.AllowUnauthenticated = true }); err != nil || w == "" {
		t.Errorf("auth on, allow_unauthenticated: %v %q", err, w)
	}
	if w, err := access(func(c *Config) { c.Auth.Mode = "dev" }); err != nil || w == "" {
		t.Errorf("dev, no peers: %v %q (want a warning)", err, w)
	}
}
