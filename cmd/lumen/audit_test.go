package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/httpkit/auth"
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

// TestAuditHostile: the audit trail under a hostile caller. A patient-scoped admin's
// search sees its patient's rows only; values a caller chooses are stored bounded, with
// the truncation recorded; X-Forwarded-For is believed only from a configured proxy;
// and refused unauthenticated requests from one address are limited (429, no rows)
// while everyone else is served.
func TestAuditHostile(t *testing.T) {
	tokens := []auth.StaticToken{
		{Name: "ops", SHA256: digest("admin-secret"), Roles: []string{"admin"}},
		{Name: "carla-admin", SHA256: digest("carla-admin"), Roles: []string{"admin"}, Patient: "LUMEN-C0001^^^LUMEN-TEST"},
		{Name: "gw", SHA256: digest("writer-secret"), Roles: []string{"read", "write"}},
	}
	s := startLumen(t, func(c *Config) {
		c.DIMSE.Addr = ""
		c.Auth = AuthConfig{Mode: "on", Tokens: tokens, FailureRateLimit: 0.5, FailureRateBurst: 5}
		c.HTTP.TrustedProxies = []string{"127.0.0.3"}
	})
	base := "http://" + s.addr.HTTP
	var own, foreign gen.Object
	for _, p := range []gen.Patient{chartPatient, twin} {
		objs, err := gen.ChartPatient(9, p, 2)
		if err != nil {
			t.Fatal(err)
		}
		stowAll(t, base+"/dicom-web", objs, "writer-secret")
		if p == chartPatient {
			own = objs[0]
		} else {
			foreign = objs[0]
		}
	}
	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	do := func(cl *http.Client, path, token string, header ...string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	search := func(token, query string) []index.AuditRecord {
		t.Helper()
		code, b := httpDo(t, http.MethodGet, base+"/api/v1/audit?"+query, token, nil)
		var list []index.AuditRecord
		if code != http.StatusOK || json.Unmarshal([]byte(b), &list) != nil {
			t.Fatalf("audit search %s: %d %.200s", query, code, b)
		}
		return list
	}
	// Reads of both patients' studies by a reader with a forged client address.
	spoof := from("127.0.0.2")
	for _, o := range []gen.Object{own, foreign} {
		if code := do(spoof, "/dicom-web/studies/"+o.StudyUID+"/metadata", "writer-secret", "X-Forwarded-For", "203.0.113.66"); code != http.StatusOK {
			t.Fatalf("metadata: %d", code)
		}
	}
	// The same through the trusted proxy.
	if code := do(from("127.0.0.3"), "/dicom-web/studies/"+own.StudyUID+"/metadata", "writer-secret", "X-Forwarded-For", "198.51.100.7"); code != http.StatusOK {
		t.Fatalf("metadata through the proxy: %d", code)
	}
	rows := search("admin-secret", "action=retrieve")
	remotes := map[string]bool{}
	for _, r := range rows {
		remotes[r.Remote] = true
	}
	if !remotes["127.0.0.2"] || !remotes["198.51.100.7"] || remotes["203.0.113.66"] || len(rows) != 3 {
		t.Errorf("audit remotes %v (%d rows): want the socket's 127.0.0.2 for the forged header and 198.51.100.7 through the trusted proxy", remotes, len(rows))
	}
	// A patient-scoped admin sees the rows of its patient only.
	for _, r := range search("carla-admin", "") {
		if r.StudyInstanceUID == foreign.StudyUID || r.PatientID != "" && r.IssuerOfPatientID != "LUMEN-TEST" {
			t.Errorf("a patient-scoped admin sees another patient's row: %+v", r)
		}
		if r.StudyInstanceUID == "" && r.PatientID == "" {
			t.Errorf("a patient-scoped admin sees a row naming no one: %+v", r)
		}
	}
	if n := len(search("carla-admin", "action=retrieve")); n != 2 {
		t.Errorf("a patient-scoped admin sees %d retrieve rows of its patient, want 2", n)
	}
	// Oversized values from an unauthenticated caller are stored bounded.
	long := "1.2." + strings.Repeat("9", 20000)
	if code := do(from("127.0.0.4"), "/dicom-web/studies/"+long+"/metadata?PatientID="+strings.Repeat("P", 5000), ""); code != http.StatusUnauthorized {
		t.Fatalf("unauthenticated: %d", code)
	}
	var big *index.AuditRecord
	for _, r := range search("admin-secret", "action=retrieve&limit=10") {
		if strings.HasPrefix(r.StudyInstanceUID, "1.2.999") {
			big = &r
			break
		}
	}
	if big == nil || len(big.StudyInstanceUID) > 64 || len(big.PatientID) > 64 || !strings.Contains(big.Detail, "truncated: study 20004 bytes, patient 5000 bytes") {
		t.Errorf("the oversized request's row: %+v", big)
	}
	// A flood of unauthenticated requests from one address: limited after the burst,
	// with no row per refused request; a signed-in client elsewhere is served meanwhile.
	before := len(search("admin-secret", "actor=anonymous&limit=1000"))
	flood := from("127.0.0.5")
	codes := map[int]int{}
	for i := 0; i < 40; i++ {
		codes[do(flood, "/dicom-web/studies", "")]++
	}
	if codes[http.StatusTooManyRequests] < 30 || codes[http.StatusUnauthorized] > 6 {
		t.Errorf("a flood of 40 unauthenticated requests: %v, want 429 after the burst of 5", codes)
	}
	if code := do(from("127.0.0.6"), "/dicom-web/studies", "writer-secret"); code != http.StatusOK {
		t.Errorf("a signed-in client during the flood: %d", code)
	}
	if code := do(from("127.0.0.7"), "/dicom-web/studies", ""); code != http.StatusUnauthorized {
		t.Errorf("another address's first unauthenticated request: %d, want 401", code)
	}
	if n := len(search("admin-secret", "actor=anonymous&limit=1000")) - before; n > 8 {
		t.Errorf("%d audit rows for a flood of 40 refused requests", n)
	}
}
