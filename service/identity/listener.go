package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/lumenpacs/lumen/hl7"
	"github.com/lumenpacs/lumen/hl7/mllp"
	"github.com/lumenpacs/lumen/index"
)

// Listener is the mllp.Handler of an HL7 listener (docs/hl7.md §4): a sender not in the
// peer list gets AR 103, any other message goes to the ADT handler; every message is
// audited (who, which patient, the outcome), and a connection from a host the peer list
// does not name is refused (Allow).
type Listener struct {
	// ADT applies the messages.
	ADT *ADT
	// Peers is the peer list (NewPeers); nil admits everyone.
	Peers *Peers
	// Audit receives one record per message (two for a merge or a change of identifier)
	// and per refused connection (paced).
	Audit AuditRecorder
	// Observe, when set, is told each message's event, ACK code and handling time
	// (metrics).
	Observe func(event, ack string, d time.Duration)
	// Hook, when set (by crash tests only), is called with the control ID of each
	// message before it is applied ("received") and after, before its ACK is written
	// ("applied").
	Hook func(point, controlID string)
	// Log receives operational messages (no patient data above Debug); nil:
	// slog.Default().
	Log *slog.Logger

	refusals refusalPacer
}

// AuditRecorder is where a Listener records its audit records (service/audit.Trail).
type AuditRecorder interface {
	Record(ctx context.Context, r index.AuditRecord)
}

func (h *Listener) logger() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.Default()
}

// HandleMessage implements mllp.Handler.
func (h *Listener) HandleMessage(ctx context.Context, msg []byte, c mllp.ConnInfo) []byte {
	start := time.Now()
	m, perr := hl7.Parse(msg)
	var ack []byte
	switch {
	case perr == nil && recommendedDelimiters(m.Delimiters()) && m.Get("MSH-3.1").String() != "" &&
		!h.Peers.sender(m.Get("MSH-4.1").String(), m.Get("MSH-3.1").String(), c.RemoteAddr):
		// docs/hl7.md §4 row 4: after the header is checked (rows 2 and 3, which the ADT
		// handler answers), before the type is looked at.
		e := hl7.Errorf(hl7.Location{Segment: "MSH", Seq: 1, Field: 3}, hl7.CodeTableValue, "the sending application and facility are not allowed to send to this receiver from this host")
		ack = hl7.Ack(m, hl7.AR, []*hl7.Error{e}, h.ADT.controlID(), h.ADT.now()).Encode()
		h.logger().Info("hl7 message refused: sender not in hl7.peers", "conn", c.ID, "control_id", m.ControlID(), "ack", hl7.AR, "code", int(e.Code))
	default:
		if h.Hook != nil && perr == nil {
			h.Hook("received", m.ControlID())
		}
		ack = h.ADT.HandleMessage(ctx, msg, c)
		if h.Hook != nil && perr == nil {
			h.Hook("applied", m.ControlID())
		}
	}
	code, errCode := ackOutcome(ack)
	if h.Observe != nil {
		ev := ""
		if perr == nil && m.Type() == "ADT" {
			ev = m.Event()
		}
		h.Observe(ev, code, time.Since(start))
	}
	h.audit(ctx, m, c, code, errCode)
	return ack
}

// recommendedDelimiters reports whether a message has the delimiters IHE requires
// (the ADT handler refuses others, AR 102).
func recommendedDelimiters(d hl7.Delimiters) bool {
	enc := d.EncodingCharacters()
	return d.Field == '|' && (enc == `^~\&` || enc == `^~\&#`)
}

// HandleTooLarge implements mllp.TooLargeHandler: the ADT handler's AR 207, audited.
func (h *Listener) HandleTooLarge(ctx context.Context, head []byte, size int, c mllp.ConnInfo) []byte {
	ack := h.ADT.HandleTooLarge(ctx, head, size, c)
	code, errCode := ackOutcome(ack)
	if h.Observe != nil {
		h.Observe("", code, 0)
	}
	h.audit(ctx, nil, c, code, errCode)
	return ack
}

// HandleTruncated implements mllp.TruncatedHandler: the ADT handler's AR 207 for a frame
// the sender stalled in, audited.
func (h *Listener) HandleTruncated(ctx context.Context, head []byte, c mllp.ConnInfo) []byte {
	ack := h.ADT.HandleTruncated(ctx, head, c)
	code, errCode := ackOutcome(ack)
	if h.Observe != nil {
		h.Observe("", code, 0)
	}
	h.audit(ctx, nil, c, code, errCode)
	return ack
}

// ackOutcome reads the acknowledgement code (MSA-1) and the first error code (ERR-3.1
// from v2.5, ERR-1.4.1 before) of an ACK.
func ackOutcome(ack []byte) (code, errCode string) {
	a, err := hl7.Parse(ack)
	if err != nil {
		return "", ""
	}
	code = a.Get("MSA-1").String()
	if e := a.Get("ERR-3.1").String(); e != "" {
		return code, e
	}
	return code, a.Get("ERR-1.4.1").String()
}

// hl7Action names the audit action of a message, by its event.
func hl7Action(m *hl7.Message) string {
	if m == nil || m.Type() != "ADT" {
		return "hl7"
	}
	switch m.Event() {
	case "A01", "A04", "A05", "A08", "A28", "A31":
		return "patient-update"
	case "A40", "A34", "A36":
		return "patient-merge"
	case "A47":
		return "patient-change-id"
	}
	return "hl7"
}

// audit records one message: who sent it (facility and application, from which
// host), the patient it names (the survivor or new key; a merge or a change of
// identifier also records the other key, in a second row), and the outcome: the ACK
// code, with the error code of its ERR (AA 103 for an AA with a warning).
func (h *Listener) audit(ctx context.Context, m *hl7.Message, c mllp.ConnInfo, code, errCode string) {
	outcome := code
	if outcome == "" {
		outcome = "no ACK"
	}
	if errCode != "" && errCode != "0" {
		outcome += " " + errCode
	}
	r := index.AuditRecord{Actor: "hl7:?", Via: "hl7", Action: hl7Action(m), Outcome: outcome}
	if c.RemoteAddr != nil {
		r.Remote = c.RemoteAddr.String()
	}
	if m == nil {
		r.Detail = "message not readable"
		h.Audit.Record(ctx, r)
		return
	}
	r.Actor = "hl7:" + m.Get("MSH-4.1").String() + "|" + m.Get("MSH-3.1").String()
	r.Detail = m.Get("MSH-9.1").String() + "^" + m.Get("MSH-9.2").String() + " control " + m.ControlID()
	var target, source index.PatientKey
	if r.Action != "hl7" {
		target, source = h.ADT.Keys(m)
	}
	r.PatientID, r.IssuerOfPatientID = target.ID, target.Issuer
	h.Audit.Record(ctx, r)
	if source.ID != "" {
		r.PatientID, r.IssuerOfPatientID = source.ID, source.Issuer
		if r.Action == "patient-merge" {
			r.Detail += " (the record merged away)"
		} else {
			r.Detail += " (the prior identifier)"
		}
		h.Audit.Record(ctx, r)
	}
}

// Allow is the listener's host policy (mllp.Server.Allow): with a peer list whose every
// entry names a host, a connection from another host is closed at once (and audited, at
// most a few rows a second).
func (h *Listener) Allow(remote net.Addr) bool {
	if h.Peers.host(remote) {
		return true
	}
	if h.refusals.admit() {
		h.Audit.Record(context.Background(), index.AuditRecord{Actor: "anonymous", Via: "hl7", Action: "hl7-connect",
			Outcome: "refused", Remote: remote.String(), Detail: "host not in hl7.peers"})
	}
	return false
}

// refusalPacer lets through at most refusalAuditBurst audit rows of refused connections
// per second: a flood of connections must not become a flood of audit rows (the
// listener's log and counters still see each one).
type refusalPacer struct {
	mu     sync.Mutex
	second int64
	n      int
}

const refusalAuditBurst = 10

func (p *refusalPacer) admit() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now().Unix()
	if now != p.second {
		p.second, p.n = now, 0
	}
	p.n++
	return p.n <= refusalAuditBurst
}

// Peer is one entry of a listener's peer list: a sending facility (MSH-4.1) and
// application (MSH-3.1), and the host they send from (an IP address, a CIDR range or a
// host name); an empty field matches anything.
type Peer struct {
	Facility, Application, Host string
}

// Peers is the peer list of an HL7 listener.
type Peers struct {
	list    []Peer
	hosts   []*hostPattern // per entry, nil when the entry names no host
	anyHost bool           // no list, or an entry without host: every host may connect
}

// NewPeers checks and compiles a peer list (empty: every sender from every host).
func NewPeers(list []Peer) (*Peers, error) {
	p := &Peers{list: list, anyHost: len(list) == 0}
	for _, e := range list {
		if e.Host == "" {
			p.anyHost = true
			p.hosts = append(p.hosts, nil)
			continue
		}
		hp, err := parseHostPattern(e.Host)
		if err != nil {
			return nil, fmt.Errorf("host %q: %w", e.Host, err)
		}
		p.hosts = append(p.hosts, hp)
	}
	return p, nil
}

// host reports whether a connection from remote is served.
func (p *Peers) host(remote net.Addr) bool {
	if p == nil || p.anyHost {
		return true
	}
	for _, hp := range p.hosts {
		if hp.matches(remote) {
			return true
		}
	}
	return false
}

// sender reports whether facility and application may send from remote.
func (p *Peers) sender(facility, application string, remote net.Addr) bool {
	if p == nil || len(p.list) == 0 {
		return true
	}
	for i, e := range p.list {
		if (e.Facility == "" || e.Facility == facility) && (e.Application == "" || e.Application == application) &&
			(p.hosts[i] == nil || p.hosts[i].matches(remote)) {
			return true
		}
	}
	return false
}

// hostPattern is a peer's host: an IP address, a CIDR range, or a host name resolved
// when a connection comes (its addresses kept for a minute).
type hostPattern struct {
	ip   net.IP
	net  *net.IPNet
	name string

	mu       sync.Mutex
	resolved []net.IP
	at       time.Time
}

func parseHostPattern(s string) (*hostPattern, error) {
	if ip := net.ParseIP(s); ip != nil {
		return &hostPattern{ip: ip}, nil
	}
	if strings.Contains(s, "/") {
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			return nil, err
		}
		return &hostPattern{net: n}, nil
	}
	if strings.ContainsAny(s, " \t:/") {
		return nil, errors.New("not an IP address, a CIDR range or a host name")
	}
	return &hostPattern{name: s}, nil
}

func (h *hostPattern) matches(remote net.Addr) bool {
	ta, ok := remote.(*net.TCPAddr)
	if !ok {
		host, _, err := net.SplitHostPort(remote.String())
		if err != nil {
			return false
		}
		ta = &net.TCPAddr{IP: net.ParseIP(host)}
	}
	ip := ta.IP
	switch {
	case ip == nil:
		return false
	case h.ip != nil:
		return h.ip.Equal(ip)
	case h.net != nil:
		return h.net.Contains(ip)
	}
	for _, a := range h.addrs() {
		if a.Equal(ip) {
			return true
		}
	}
	return false
}

// addrs resolves the host name, at most once a minute.
func (h *hostPattern) addrs() []net.IP {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.resolved != nil && time.Since(h.at) < time.Minute {
		return h.resolved
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	list, err := net.DefaultResolver.LookupIPAddr(ctx, h.name)
	h.resolved, h.at = []net.IP{}, time.Now()
	if err == nil {
		for _, a := range list {
			h.resolved = append(h.resolved, a.IP)
		}
	}
	return h.resolved
}
