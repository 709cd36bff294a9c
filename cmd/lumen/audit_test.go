package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/archive/dcm"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// TestAudit checks that each audited action writes exactly one record with the right
// fields: C-STORE, C-FIND, C-MOVE and storage commitment over DIMSE; STOW-RS, QIDO-RS,
// WADO-RS, DELETE, link minting and link use over HTTP; and that the admin API finds
// them by actor, action, study and patient.
func TestAudit(t *testing.T) {
	destPort, _ := storeSCP(t)
	// An audit record repository: syslog over UDP.
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	var msgMu sync.Mutex
	var messages []string
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, _, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			msgMu.Lock()
			messages = append(messages, string(buf[:n]))
			msgMu.Unlock()
		}
	}()
	var logs syncBuffer
	defer func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	}()
	s := startLumenLogged(t, func(c *Config) {
		c.DICOMweb.AllowDelete = true
		c.DIMSE.Peers = []PeerConfig{{AETitle: "DEST", Host: "127.0.0.1", Port: destPort}}
		c.EMR.LinkKeys = []string{linkKey("k1", 1)}
		c.EMR.MintTokenSHA256 = []string{digest(mintSecret)}
		c.Audit.Syslog = "udp://" + udp.LocalAddr().String()
	}, slog.New(slog.NewJSONHandler(&logs, nil)))
	base := "http://" + s.addr.HTTP
	corpus, err := gen.Corpus(45)
	if err != nil {
		t.Fatal(err)
	}
	ct := corpus[0] // patient 1's CT study
	var mr gen.Object
	for _, o := range corpus {
		if o.Modality == "MR" {
			mr = o
			break
		}
	}
	search := func(q string) []index.AuditRecord {
		t.Helper()
		code, b := httpDo(t, http.MethodGet, base+"/api/v1/audit?"+q, "", nil)
		if code != http.StatusOK {
			t.Fatalf("audit search %s: %d %s", q, code, b)
		}
		var out []index.AuditRecord
		if err := json.Unmarshal([]byte(b), &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	one := func(q string) index.AuditRecord {
		t.Helper()
		list := search(q)
		if len(list) != 1 {
			t.Fatalf("audit %s: %d records, want 1: %+v", q, len(list), list)
		}
		return list[0]
	}

	// DIMSE: one C-STORE (storescu as MODALITY), a C-FIND, a C-MOVE, a commitment.
	file := filepath.Join(t.TempDir(), "mr.dcm")
	os.WriteFile(file, mr.Data, 0o644)
	host, port, _ := net.SplitHostPort(s.addr.DIMSE)
	runDCMTK(t, "storescu", "-aet", "MODALITY", "-aec", "LUMEN", host, port, file)
	r := one("action=store&actor=ae:MODALITY")
	if r.Via != "dimse" || r.Outcome != "ok" || r.StudyInstanceUID != mr.StudyUID || r.Detail != "C-STORE" || !strings.HasPrefix(r.Remote, "127.0.0.1:") {
		t.Errorf("C-STORE record: %+v", r)
	}
	runDCMTK(t, "findscu", "-S", "-aet", "VIEWER", "-aec", "LUMEN", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+mr.StudyUID, host, port)
	if r := one("action=query&actor=ae:VIEWER"); r.StudyInstanceUID != mr.StudyUID || r.Detail != "C-FIND" || r.Outcome != "ok" {
		t.Errorf("C-FIND record: %+v", r)
	}
	moveWith(t, "-S", "DEST", host, port, []string{"QueryRetrieveLevel=IMAGE", "StudyInstanceUID=" + mr.StudyUID, "SeriesInstanceUID=" + mr.SeriesUID, "SOPInstanceUID=" + mr.SOPInstanceUID})
	if r := one("action=retrieve&actor=ae:MOVER"); r.StudyInstanceUID != mr.StudyUID || r.Detail != "C-MOVE to DEST" || r.Outcome != "ok" {
		t.Errorf("C-MOVE record: %+v", r)
	}
	moveWith(t, "-S", "NOWHERE", host, port, []string{"QueryRetrieveLevel=STUDY", "StudyInstanceUID=" + mr.StudyUID})
	if list := search("action=retrieve&actor=ae:MOVER"); len(list) != 2 || list[0].Outcome != "0xA801" {
		t.Errorf("failed C-MOVE record: %+v", list)
	}
	c, err := dimse.Dial(context.Background(), s.addr.DIMSE, dimse.DialConfig{CallingAETitle: "MODALITY", CalledAETitle: "LUMEN",
		Contexts: []dimse.ProposedContext{{AbstractSyntax: dimse.StorageCommitmentSOPClass, TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}}}})
	if err != nil {
		t.Fatal(err)
	}
	ds := &dcm.Dataset{}
	ds.Set(dcm.NewString(dcm.TagTransactionUID, "UI", "1.2.3.77"))
	item := &dcm.Dataset{}
	item.Set(dcm.NewString(dcm.TagReferencedSOPClassUID, "UI", mr.SOPClassUID))
	item.Set(dcm.NewString(dcm.TagReferencedSOPInstanceUID, "UI", mr.SOPInstanceUID))
	ds.Set(dcm.NewSequence(dcm.TagReferencedSOPSequence, item))
	info, _ := ds.Encode(dcm.ExplicitVRLittleEndian)
	if st, err := c.Commit(context.Background(), info); err != nil || st.Code != dimse.StatusSuccess {
		t.Fatalf("commit: %v %+v", err, st)
	}
	c.Release()
	if r := one("action=commit"); r.Actor != "ae:MODALITY" || r.Outcome != "ok" || r.Detail != "N-ACTION 1 committed, 0 failed" {
		t.Errorf("commitment record: %+v", r)
	}

	// HTTP (authentication off: the actor is anonymous).
	stowAll(t, base+"/dicom-web", []gen.Object{ct})
	r = one("action=store&actor=anonymous")
	if r.Via != "http" || r.Outcome != "ok" || r.Detail != "/dicom-web/studies" || r.StudyInstanceUID != ct.StudyUID {
		t.Errorf("STOW record: %+v", r)
	}
	httpDo(t, http.MethodGet, base+"/dicom-web/studies?PatientID="+ct.PatientID, "", nil)
	if r := one("action=query&actor=anonymous"); r.PatientID != ct.PatientID || r.Detail != "/dicom-web/studies" {
		t.Errorf("QIDO record: %+v", r)
	}
	httpDo(t, http.MethodGet, base+"/dicom-web/studies/"+ct.StudyUID+"/metadata", "", nil)
	httpDo(t, http.MethodGet, base+"/dicom-web/studies/1.2.3.404/metadata", "", nil)
	if list := search("action=retrieve&actor=anonymous"); len(list) != 2 || list[0].Outcome != "404" || list[1].StudyInstanceUID != ct.StudyUID || list[1].Outcome != "ok" {
		t.Errorf("WADO records: %+v", list)
	}
	code, link := (&emrEnv{base: base}).mint(t, mintSecret, map[string]any{"scope": "study", "studyInstanceUID": ct.StudyUID})
	if code != http.StatusCreated {
		t.Fatal(code)
	}
	if r := one("action=link-mint"); r.Outcome != "ok" {
		t.Errorf("link-mint record: %+v", r)
	}
	httpDo(t, http.MethodGet, link.ThumbnailURL, "", nil)
	if r := one("actor=link:" + link.TokenID); r.Via != "link" || r.Action != "retrieve" || r.StudyInstanceUID != ct.StudyUID || r.Outcome != "ok" {
		t.Errorf("link use record: %+v", r)
	}
	httpDo(t, http.MethodDelete, base+"/dicom-web/studies/"+ct.StudyUID, "", nil)
	if r := one("action=delete"); r.StudyInstanceUID != ct.StudyUID || r.Outcome != "ok" {
		t.Errorf("DELETE record: %+v", r)
	}
	// Nothing else was recorded: health checks and metrics are not audited.
	httpDo(t, http.MethodGet, base+"/healthz", "", nil)
	if list := search("study=" + ct.StudyUID); len(list) != 4 { // STOW, metadata, link use, DELETE
		t.Errorf("records of the CT study: %d, want 4: %+v", len(list), list)
	}
	if code, _ := httpDo(t, http.MethodGet, base+"/api/v1/audit?from=yesterday", "", nil); code != http.StatusBadRequest {
		t.Errorf("bad from: %d", code)
	}

	// The same records went to the syslog repository as DICOM audit messages (RFC 5424).
	want := map[string][]string{
		"C-STORE":   {`<85>1 `, ` IHE+RFC-3881 - <AuditMessage>`, `EventActionCode="C"`, `csd-code="110104"`, `UserID="ae:MODALITY"`, `ParticipantObjectID="` + mr.StudyUID + `"`},
		"DELETE":    {`EventActionCode="D"`, `csd-code="110103"`, `UserID="anonymous"`, `ParticipantObjectID="` + ct.StudyUID + `"`},
		"C-MOVE":    {`EventActionCode="R"`, `UserID="ae:MOVER"`, `EventOutcomeIndicator="4"`},
		"QIDO":      {`csd-code="110112"`, `ParticipantObjectID="` + ct.PatientID + `"`},
		"link use":  {`UserID="link:` + link.TokenID + `"`},
		"link mint": {`csd-code="110114"`},
	}
	deadline := time.Now().Add(5 * time.Second)
	for name, parts := range want {
		found := false
		for !found && time.Now().Before(deadline) {
			msgMu.Lock()
			for _, m := range messages {
				ok := true
				for _, p := range parts {
					ok = ok && strings.Contains(m, p)
				}
				found = found || ok
			}
			msgMu.Unlock()
			if !found {
				time.Sleep(50 * time.Millisecond)
			}
		}
		if !found {
			t.Errorf("no syslog audit message for %s (%v)", name, parts)
		}
	}
}
