package audit

import (
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lumenpacs/lumen/index"
)

// atnaCode is a coded value of a DICOM audit message (PS3.15 A.5).
type atnaCode struct {
	Code    string `xml:"csd-code,attr"`
	System  string `xml:"codeSystemName,attr"`
	Meaning string `xml:"originalText,attr"`
}

// auditMessage is the DICOM audit message of PS3.15 A.5.1 (the elements Lumen fills).
type auditMessage struct {
	XMLName xml.Name `xml:"AuditMessage"`
	Event   struct {
		Action   string   `xml:"EventActionCode,attr"`
		DateTime string   `xml:"EventDateTime,attr"`
		Outcome  int      `xml:"EventOutcomeIndicator,attr"`
		ID       atnaCode `xml:"EventID"`
	} `xml:"EventIdentification"`
	Participants []atnaParticipant `xml:"ActiveParticipant"`
	Source       struct {
		ID string `xml:"AuditSourceID,attr"`
	} `xml:"AuditSourceIdentification"`
	Objects []atnaObject `xml:"ParticipantObjectIdentification"`
}

type atnaParticipant struct {
	UserID    string `xml:"UserID,attr"`
	Requestor bool   `xml:"UserIsRequestor,attr"`
	Access    string `xml:"NetworkAccessPointID,attr,omitempty"`
	AccessTyp string `xml:"NetworkAccessPointTypeCode,attr,omitempty"`
}

type atnaObject struct {
	ID     string   `xml:"ParticipantObjectID,attr"`
	Type   int      `xml:"ParticipantObjectTypeCode,attr"`
	Role   int      `xml:"ParticipantObjectTypeCodeRole,attr"`
	IDType atnaCode `xml:"ParticipantObjectIDTypeCode"`
	Detail string   `xml:"ParticipantObjectDetail,omitempty"`
}

// atnaEvent maps an action to its audit event (PS3.15 A.5.3) and action code.
func atnaEvent(action string) (atnaCode, string) {
	switch action {
	case "store":
		return atnaCode{"110104", "DCM", "DICOM Instances Transferred"}, "C"
	case "retrieve", "send", "commit":
		return atnaCode{"110104", "DCM", "DICOM Instances Transferred"}, "R"
	case "query", "audit-search":
		return atnaCode{"110112", "DCM", "Query"}, "E"
	case "delete":
		return atnaCode{"110103", "DCM", "DICOM Instances Accessed"}, "D"
	case "link-mint", "link-use":
		return atnaCode{"110114", "DCM", "User Authentication"}, "E"
	case "patient-update", "patient-merge", "patient-change-id", "patient-unmerge", "study-move", "series-move":
		return atnaCode{"110110", "DCM", "Patient Record"}, "U" // PS3.15 A.5.3.9
	case "patient-events":
		return atnaCode{"110110", "DCM", "Patient Record"}, "R"
	case "hl7":
		return atnaCode{"110110", "DCM", "Patient Record"}, "E"
	case "hl7-connect":
		return atnaCode{"110114", "DCM", "User Authentication"}, "E"
	}
	return atnaCode{"110103", "DCM", "DICOM Instances Accessed"}, "R"
}

// atnaXML renders a record as a DICOM audit message.
func atnaXML(r index.AuditRecord, source string) ([]byte, error) {
	var m auditMessage
	m.Event.ID, m.Event.Action = atnaEvent(r.Action)
	m.Event.DateTime = r.At.UTC().Format(time.RFC3339Nano)
	if r.Outcome != "ok" && r.Outcome != "AA" && !strings.HasPrefix(r.Outcome, "AA ") { // an HL7 AA, with or without a warning, is a success
		m.Event.Outcome = 4 // minor failure: the request was refused or failed
	}
	p := atnaParticipant{UserID: r.Actor, Requestor: true}
	if r.Remote != "" {
		host, _, err := net.SplitHostPort(r.Remote)
		if err != nil {
			host = r.Remote
		}
		p.Access, p.AccessTyp = host, "2" // an IP address
	}
	m.Participants = append(m.Participants, p, atnaParticipant{UserID: source})
	m.Source.ID = source
	if r.StudyInstanceUID != "" {
		m.Objects = append(m.Objects, atnaObject{ID: r.StudyInstanceUID, Type: 2, Role: 3, IDType: atnaCode{"110180", "DCM", "Study Instance UID"}, Detail: r.Detail})
	}
	if r.PatientID != "" {
		id := r.PatientID
		if r.IssuerOfPatientID != "" {
			id += "^^^" + r.IssuerOfPatientID
		}
		m.Objects = append(m.Objects, atnaObject{ID: id, Type: 1, Role: 1, IDType: atnaCode{"2", "RFC-3881", "Patient Number"}})
	}
	return xml.Marshal(m)
}

// Syslog sends audit messages to an audit record repository: RFC 5424 messages
// over UDP (RFC 5426) or TLS (RFC 5425, octet-counted framing), from a bounded queue so
// that a slow repository never holds up the archive (messages beyond the queue are
// dropped and counted in the log).
type Syslog struct {
	network, addr string
	tls           *tls.Config
	source, host  string
	queue         chan []byte
	log           *slog.Logger
	done          chan struct{} // closed when run has returned
	mu            sync.RWMutex  // closed is set under the write lock; enqueue holds the read lock
	closed        bool
}

// NewSyslog starts a sender to target, udp://host:port or tls://host:port; source is
// the AuditSourceID (Lumen's AE title) and tlsConfig gives the TLS configuration for a
// host name.
func NewSyslog(target, source string, tlsConfig func(string) *tls.Config, log *slog.Logger) (*Syslog, error) {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" || (u.Scheme != "udp" && u.Scheme != "tls") {
		return nil, fmt.Errorf("audit.syslog %q: want udp://host:port or tls://host:port", target)
	}
	host, _ := os.Hostname()
	s := &Syslog{network: u.Scheme, addr: u.Host, source: source, host: host, queue: make(chan []byte, 1024), log: log, done: make(chan struct{})}
	if u.Scheme == "tls" {
		h, _, _ := net.SplitHostPort(u.Host)
		if tlsConfig != nil {
			s.tls = tlsConfig(h)
		} else {
			s.tls = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: h}
		}
	}
	go s.run()
	return s, nil
}

// enqueue formats and queues a record.
func (s *Syslog) enqueue(r index.AuditRecord) {
	body, err := atnaXML(r, s.source)
	if err != nil {
		return
	}
	// <85>: facility authpriv (10), severity notice (5). MSGID as IHE ATNA profiles it.
	msg := fmt.Appendf(nil, "<85>1 %s %s lumen %d IHE+RFC-3881 - ", r.At.UTC().Format(time.RFC3339Nano), s.host, os.Getpid())
	msg = append(msg, body...)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return
	}
	select {
	case s.queue <- msg:
	default:
		s.log.Warn("audit: syslog queue full, message dropped")
	}
}

// Close stops the sender: what is queued is still sent, for at most wait (the
// repository may be unreachable); messages after Close are dropped.
func (s *Syslog) Close(wait time.Duration) {
	if s == nil {
		return
	}
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.queue)
	}
	s.mu.Unlock()
	select {
	case <-s.done:
	case <-time.After(wait):
		s.log.Warn("audit: syslog messages not sent before shutdown", "queued", len(s.queue))
	}
}

func (s *Syslog) run() {
	defer close(s.done)
	var conn net.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for msg := range s.queue {
		for attempt := 0; attempt < 2; attempt++ {
			if conn == nil {
				var err error
				if s.tls != nil {
					conn, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.addr, s.tls)
				} else {
					conn, err = net.DialTimeout("udp", s.addr, 5*time.Second)
				}
				if err != nil {
					s.log.Warn("audit: syslog repository unreachable", "addr", s.addr, "err", err)
					conn = nil
					break
				}
			}
			out := msg
			if s.tls != nil {
				out = append([]byte(strconv.Itoa(len(msg))+" "), msg...) // RFC 5425 octet counting
			}
			conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := conn.Write(out); err != nil {
				conn.Close()
				conn = nil
				continue
			}
			break
		}
	}
}
