package audit_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/xml"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/indextest"
	"github.com/lumenpacs/lumen/service/audit"
)

// The DICOM audit message of PS3.15 A.5.1, as an audit record repository reads it
// (written here from the standard, not from the package's types).
type code struct {
	Code    string `xml:"csd-code,attr"`
	System  string `xml:"codeSystemName,attr"`
	Meaning string `xml:"originalText,attr"`
}

type participant struct {
	UserID    string `xml:"UserID,attr"`
	Requestor bool   `xml:"UserIsRequestor,attr"`
	Access    string `xml:"NetworkAccessPointID,attr"`
	AccessTyp string `xml:"NetworkAccessPointTypeCode,attr"`
}

type object struct {
	ID     string `xml:"ParticipantObjectID,attr"`
	Type   string `xml:"ParticipantObjectTypeCode,attr"`
	Role   string `xml:"ParticipantObjectTypeCodeRole,attr"`
	IDType code   `xml:"ParticipantObjectIDTypeCode"`
	Detail string `xml:"ParticipantObjectDetail"`
}

type auditMessage struct {
	XMLName xml.Name `xml:"AuditMessage"`
	Event   struct {
		Action   string `xml:"EventActionCode,attr"`
		DateTime string `xml:"EventDateTime,attr"`
		Outcome  string `xml:"EventOutcomeIndicator,attr"`
		ID       code   `xml:"EventID"`
	} `xml:"EventIdentification"`
	Participants []participant `xml:"ActiveParticipant"`
	Source       struct {
		ID string `xml:"AuditSourceID,attr"`
	} `xml:"AuditSourceIdentification"`
	Objects []object `xml:"ParticipantObjectIdentification"`
}

// rfc5424 is the header Lumen writes: PRI 85 (authpriv.notice), version 1, timestamp,
// host name, app name, process ID, MSGID IHE+RFC-3881, no structured data, then the
// message.
var rfc5424 = regexp.MustCompile(`^<85>1 (\S+) (\S+) lumen (\d+) IHE\+RFC-3881 - (<AuditMessage.*)$`)

// parseSyslog checks a syslog message's header against the record and returns its
// audit message.
func parseSyslog(t *testing.T, msg string, r index.AuditRecord) auditMessage {
	t.Helper()
	m := rfc5424.FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("not an RFC 5424 message as expected: %q", msg)
	}
	host, _ := os.Hostname()
	if m[1] != r.At.UTC().Format(time.RFC3339Nano) || m[2] != host || m[3] != strconv.Itoa(os.Getpid()) {
		t.Errorf("header %q %q %q, want %s %s %d", m[1], m[2], m[3], r.At.UTC().Format(time.RFC3339Nano), host, os.Getpid())
	}
	var a auditMessage
	if err := xml.Unmarshal([]byte(m[4]), &a); err != nil {
		t.Fatalf("the audit message is not XML: %v\n%s", err, m[4])
	}
	return a
}

// want is what a record's audit message must say.
type want struct {
	event     code
	action    string
	outcome   string
	requestor participant
	objects   []object
}

func checkMessage(t *testing.T, a auditMessage, r index.AuditRecord, w want) {
	t.Helper()
	if a.Event.ID != w.event || a.Event.Action != w.action || a.Event.Outcome != w.outcome || a.Event.DateTime != r.At.UTC().Format(time.RFC3339Nano) {
		t.Errorf("event %+v, want %+v action %s outcome %s", a.Event, w.event, w.action, w.outcome)
	}
	if len(a.Participants) != 2 || a.Participants[0] != w.requestor || a.Participants[1] != (participant{UserID: "LUMEN"}) {
		t.Errorf("participants %+v, want %+v and the archive LUMEN", a.Participants, w.requestor)
	}
	if a.Source.ID != "LUMEN" {
		t.Errorf("AuditSourceID %q", a.Source.ID)
	}
	if len(a.Objects) != len(w.objects) {
		t.Fatalf("participant objects %+v, want %+v", a.Objects, w.objects)
	}
	for i := range w.objects {
		if a.Objects[i] != w.objects[i] {
			t.Errorf("participant object %d: %+v, want %+v", i, a.Objects[i], w.objects[i])
		}
	}
}

var (
	transferred = code{"110104", "DCM", "DICOM Instances Transferred"}
	queried     = code{"110112", "DCM", "Query"}
	accessed    = code{"110103", "DCM", "DICOM Instances Accessed"}
	authn       = code{"110114", "DCM", "User Authentication"}
	record      = code{"110110", "DCM", "Patient Record"}
)

func studyObject(uid, detail string) object {
	return object{ID: uid, Type: "2", Role: "3", IDType: code{"110180", "DCM", "Study Instance UID"}, Detail: detail}
}

func patientObject(id string) object {
	return object{ID: id, Type: "1", Role: "1", IDType: code{"2", "RFC-3881", "Patient Number"}}
}

// syslogCases are records and the audit messages they become (PS3.15 A.5.3).
var syslogCases = []struct {
	name string
	r    index.AuditRecord
	w    want
}{
	{"C-STORE", index.AuditRecord{Actor: "ae:MODALITY", Via: "dimse", Action: "store", Outcome: "ok", StudyInstanceUID: "1.2.3", PatientID: "P1", IssuerOfPatientID: "HOSP", Remote: "127.0.0.1:4000", Detail: "C-STORE"},
		want{transferred, "C", "0", participant{UserID: "ae:MODALITY", Requestor: true, Access: "127.0.0.1", AccessTyp: "2"}, []object{studyObject("1.2.3", "C-STORE"), patientObject("P1^^^HOSP")}}},
	{"refused C-FIND", index.AuditRecord{Actor: "ae:WS", Via: "dimse", Action: "query", Outcome: "0xA900", Remote: "10.1.2.3", Detail: "C-FIND"},
		want{queried, "E", "4", participant{UserID: "ae:WS", Requestor: true, Access: "10.1.2.3", AccessTyp: "2"}, nil}},
	{"C-MOVE", index.AuditRecord{Actor: "ae:WS", Via: "dimse", Action: "retrieve", Outcome: "ok", StudyInstanceUID: "1.2.4", Detail: "C-MOVE to DEST"},
		want{transferred, "R", "0", participant{UserID: "ae:WS", Requestor: true}, []object{studyObject("1.2.4", "C-MOVE to DEST")}}},
	{"storage commitment", index.AuditRecord{Actor: "ae:MODALITY", Via: "dimse", Action: "commit", Outcome: "0x0112", Detail: "N-ACTION 1 committed, 1 failed"},
		want{transferred, "R", "4", participant{UserID: "ae:MODALITY", Requestor: true}, nil}},
	{"delete", index.AuditRecord{Actor: "dr-who", Via: "http", Action: "delete", Outcome: "ok", PatientID: "P2", Remote: "[::1]:5000"},
		want{accessed, "D", "0", participant{UserID: "dr-who", Requestor: true, Access: "::1", AccessTyp: "2"}, []object{patientObject("P2")}}},
	{"link use", index.AuditRecord{Actor: "link:abc", Via: "link", Action: "link-use", Outcome: "403"},
		want{authn, "E", "4", participant{UserID: "link:abc", Requestor: true}, nil}},
	{"patient merge", index.AuditRecord{Actor: "admin-1", Via: "http", Action: "patient-merge", Outcome: "ok", PatientID: "P3", Detail: `/api/v1/patients/merge merged="P4" reason="same person"`},
		want{record, "U", "0", participant{UserID: "admin-1", Requestor: true}, []object{patientObject("P3")}}},
	{"another action", index.AuditRecord{Actor: "dr-who", Via: "http", Action: "thumbnail", Outcome: "ok"},
		want{accessed, "R", "0", participant{UserID: "dr-who", Requestor: true}, nil}},
}

// TestSyslogUDP: each record becomes one RFC 5424 datagram (RFC 5426) to the audit
// record repository holding a PS3.15 audit message, while the trail still writes it
// to the index; a trail without an audit table still exports.
func TestSyslogUDP(t *testing.T) {
	for _, be := range []string{"sqlite", "postgres", "no audit table"} {
		t.Run(be, func(t *testing.T) {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			s, err := audit.NewSyslog("udp://"+pc.LocalAddr().String(), "LUMEN", nil, quiet)
			if err != nil {
				t.Fatal(err)
			}
			var idx index.Index
			if be == "no audit table" {
				idx = noAuditTable{indextest.Open(t, "sqlite")}
			} else {
				idx = indextest.Open(t, be)
			}
			x := audit.New(idx, s, quiet)
			t.Cleanup(x.Close)
			buf := make([]byte, 64<<10)
			for _, tc := range syslogCases {
				t.Run(tc.name, func(t *testing.T) {
					r := tc.r
					r.At = time.Now().Add(-time.Minute).Round(time.Microsecond)
					x.Record(context.Background(), r)
					pc.SetReadDeadline(time.Now().Add(10 * time.Second))
					n, _, err := pc.ReadFrom(buf)
					if err != nil {
						t.Fatalf("no datagram: %v", err)
					}
					checkMessage(t, parseSyslog(t, string(buf[:n]), r), r, tc.w)
				})
			}
			if be == "no audit table" {
				return
			}
			if list := search(t, x, index.AuditQuery{}); len(list) != len(syslogCases) {
				t.Errorf("%d records in the index, want %d", len(list), len(syslogCases))
			}
		})
	}
}

// selfSigned returns a server certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "arr.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// TestSyslogTLS: over TLS (RFC 5425) the messages are octet-counted ("LEN SP MSG")
// on one connection, verified with the configuration given for the host.
func TestSyslogTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	frames := make(chan string, 8)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		for {
			l, err := br.ReadString(' ')
			if err != nil {
				return
			}
			n, err := strconv.Atoi(strings.TrimSuffix(l, " "))
			if err != nil {
				frames <- "bad frame length " + l
				return
			}
			b := make([]byte, n)
			if _, err := io.ReadFull(br, b); err != nil {
				return
			}
			frames <- string(b)
		}
	}()
	var asked []string
	s, err := audit.NewSyslog("tls://"+ln.Addr().String(), "LUMEN", func(host string) *tls.Config {
		asked = append(asked, host)
		return &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}
	}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if len(asked) != 1 || asked[0] != "127.0.0.1" {
		t.Errorf("TLS configuration asked for %v, want [127.0.0.1]", asked)
	}
	x := audit.New(indextest.Open(t, "sqlite"), s, quiet)
	t.Cleanup(x.Close)
	for _, tc := range syslogCases[:3] {
		r := tc.r
		r.At = time.Now().Round(time.Microsecond)
		x.Record(context.Background(), r)
		select {
		case msg := <-frames:
			checkMessage(t, parseSyslog(t, msg, r), r, tc.w)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no message over TLS", tc.name)
		}
	}
}

// TestNewSyslogTargets: only udp://host:port and tls://host:port are repositories.
func TestNewSyslogTargets(t *testing.T) {
	for _, tc := range []struct {
		target string
		ok     bool
	}{
		{"udp://127.0.0.1:514", true},
		{"tls://arr.example:6514", true},
		{"tcp://127.0.0.1:514", false},
		{"udp:127.0.0.1:514", false},
		{"127.0.0.1:514", false},
		{"", false},
		{"udp://", false},
	} {
		_, err := audit.NewSyslog(tc.target, "LUMEN", nil, quiet)
		if (err == nil) != tc.ok {
			t.Errorf("NewSyslog(%q): %v, want ok=%v", tc.target, err, tc.ok)
		}
	}
}

// TestSyslogClose: Close sends what was queued, returns, and later records are dropped
// without a panic; against an unreachable repository it returns after its wait.
func TestSyslogClose(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s, err := audit.NewSyslog("udp://"+pc.LocalAddr().String(), "LUMEN", nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	x := audit.New(nil, s, slog.New(slog.DiscardHandler))
	x.Record(context.Background(), index.AuditRecord{Actor: "ae:CT", Via: "dimse", Action: "store", Outcome: "ok"})
	x.Close()
	s.Close(5 * time.Second)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64<<10)
	if n, _, err := pc.ReadFrom(buf); err != nil || !strings.Contains(string(buf[:n]), "AuditMessage") {
		t.Fatalf("queued message before Close: %q, %v", buf[:n], err)
	}
	x.Record(context.Background(), index.AuditRecord{Actor: "ae:CT", Action: "store"}) // after Close: dropped, no panic
	s.Close(time.Second)                                                               // twice: no panic

	down, err := audit.NewSyslog("tls://127.0.0.1:1", "LUMEN", nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	y := audit.New(nil, down, slog.New(slog.DiscardHandler))
	for i := 0; i < 100; i++ {
		y.Record(context.Background(), index.AuditRecord{Actor: "ae:CT", Action: "store"})
	}
	start := time.Now()
	down.Close(200 * time.Millisecond)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close against an unreachable repository took %v", d)
	}
}
