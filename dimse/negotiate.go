package dimse

import (
	"net"
	"slices"
	"strings"
)

// Well-known UIDs.
const (
	VerificationSOPClass = "1.2.840.10008.1.1"
	storagePrefix        = "1.2.840.10008.5.1.4.1.1."

	ImplicitVRLittleEndian = "1.2.840.10008.1.2"
	ExplicitVRLittleEndian = "1.2.840.10008.1.2.1"
	DeflatedExplicitVRLE   = "1.2.840.10008.1.2.1.99"
	ExplicitVRBigEndian    = "1.2.840.10008.1.2.2"
)

// DefaultTransferSyntaxes returns the transfer syntaxes accepted unless configured
// otherwise: the native ones and every compressed syntax of PS3.5 Annex A in common use
// (stored as received). The slice is a fresh copy each call.
func DefaultTransferSyntaxes() []string { return slices.Clone(defaultTransferSyntaxes) }

var defaultTransferSyntaxes = []string{
	ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLE, ExplicitVRBigEndian,
	"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
	"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
	"1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203", "1.2.840.10008.1.2.5",
	"1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101", "1.2.840.10008.1.2.4.102", "1.2.840.10008.1.2.4.103",
	"1.2.840.10008.1.2.4.104", "1.2.840.10008.1.2.4.105", "1.2.840.10008.1.2.4.106", "1.2.840.10008.1.2.4.107",
	"1.2.840.10008.1.2.4.108",
}

// native transfer syntaxes in order of preference when several are offered.
var nativePreference = []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLE, ExplicitVRBigEndian}

// Services a peer may be allowed to use.
const (
	ServiceEcho  = "echo"
	ServiceStore = "store"
	ServiceFind  = "find"
	ServiceMove  = "move"
	ServiceGet   = "get"
)

// Peer is a known remote application entity.
type Peer struct {
	AETitle string
	Host    string // host name or address, for outgoing associations (and checked when CheckHost)
	Port    int
	// Services lists what the peer may use ("echo", "store", "find", ...); empty: all.
	Services []string
}

// Policy is the association acceptance policy.
type Policy struct {
	// CheckCalledAE rejects associations whose called AE title is not the server's.
	CheckCalledAE bool
	// RejectUnknownCallingAE rejects calling AE titles not in Peers.
	RejectUnknownCallingAE bool
	// CheckHost also requires a known peer to connect from its configured host; a known
	// peer without a host is then refused (it could not be told from a spoofer).
	CheckHost bool
	// Peers are the known remote AEs.
	Peers []Peer
}

func (p *Policy) peer(ae string) *Peer {
	for i := range p.Peers {
		if p.Peers[i].AETitle == ae {
			return &p.Peers[i]
		}
	}
	return nil
}

func (p *Peer) allows(service string) bool {
	return p == nil || len(p.Services) == 0 || slices.Contains(p.Services, service)
}

// hostMatches reports whether the remote address belongs to the peer's host.
func hostMatches(host string, remote net.Addr) bool {
	ra, _, err := net.SplitHostPort(remote.String())
	if err != nil {
		return false
	}
	if host == ra {
		return true
	}
	addrs, err := net.LookupHost(host)
	if err != nil {
		return false
	}
	return slices.Contains(addrs, ra)
}

// serviceOf maps an abstract syntax to the service it belongs to, or "".
func (s *Server) serviceOf(abstract string) string {
	switch {
	case abstract == VerificationSOPClass:
		return ServiceEcho
	case strings.HasPrefix(abstract, storagePrefix) && s.StoreHandler != nil:
		return ServiceStore
	case (abstract == PatientRootFind || abstract == StudyRootFind) && s.FindHandler != nil:
		return ServiceFind
	case (abstract == PatientRootMove || abstract == StudyRootMove) && s.RetrieveHandler != nil:
		return ServiceMove
	case (abstract == PatientRootGet || abstract == StudyRootGet) && s.RetrieveHandler != nil:
		return ServiceGet
	case abstract == StorageCommitmentSOPClass && (s.CommitHandler != nil || s.EventReportHandler != nil):
		return ServiceCommit
	}
	return ""
}

// chooseTransferSyntax picks the transfer syntax to accept among those offered: for
// storage, a compressed syntax is kept as offered (stored as sent); otherwise the native
// syntax in the order Explicit VR LE, Implicit VR LE, Deflated, Explicit VR BE.
func (s *Server) chooseTransferSyntax(service string, offered []string) string {
	accepted := s.TransferSyntaxes
	if len(accepted) == 0 {
		accepted = defaultTransferSyntaxes
	}
	ok := func(ts string) bool { return slices.Contains(accepted, ts) }
	if service == ServiceStore {
		for _, ts := range offered {
			if ok(ts) && !slices.Contains(nativePreference, ts) {
				return ts
			}
		}
	}
	for _, ts := range nativePreference {
		if (service == ServiceFind || service == ServiceMove || service == ServiceGet || service == ServiceCommit) && ts != ExplicitVRLittleEndian && ts != ImplicitVRLittleEndian {
			continue // identifiers are written in little endian only
		}
		if slices.Contains(offered, ts) && ok(ts) {
			return ts
		}
	}
	return ""
}

// negotiate evaluates an A-ASSOCIATE-RQ. It returns the AC to send, or the RJ and a
// reason for the log; trusted tells whether the caller is a configured peer connecting
// from its configured host (entitled to the places reserved for peers).
func (s *Server) negotiate(rq *AAssociate, remote net.Addr) (_ *AAssociate, _ *AAssociateRJ, why string, trusted bool) {
	if rq.ProtocolVersion&1 == 0 {
		return nil, &AAssociateRJ{RJPermanent, RJSourceServiceProviderACSE, RJReasonProtocolVersionNotSupported}, "protocol version not supported", false
	}
	if rq.ApplicationContext != applicationContextName {
		return nil, &AAssociateRJ{RJPermanent, RJSourceServiceUser, RJReasonApplicationContextNotSupported}, "application context not supported: " + rq.ApplicationContext, false
	}
	if s.Policy.CheckCalledAE && rq.CalledAETitle != s.aeTitle() {
		return nil, &AAssociateRJ{RJPermanent, RJSourceServiceUser, RJReasonCalledAENotRecognized}, "called AE title " + rq.CalledAETitle + " is not " + s.aeTitle(), false
	}
	peer := s.Policy.peer(rq.CallingAETitle)
	if peer == nil && s.Policy.RejectUnknownCallingAE {
		return nil, &AAssociateRJ{RJPermanent, RJSourceServiceUser, RJReasonCallingAENotRecognized}, "calling AE title " + rq.CallingAETitle + " is not a known peer (add it to dimse.peers)", false
	}
	// Only check_host may cost a DNS query per association (as it always did).
	trusted = peer != nil && peer.Host != "" && s.fromHost(peer.Host, remote, s.Policy.CheckHost)
	if peer != nil && s.Policy.CheckHost {
		switch {
		case peer.Host == "":
			return nil, &AAssociateRJ{RJPermanent, RJSourceServiceUser, RJReasonCallingAENotRecognized}, "calling AE title " + rq.CallingAETitle + " has no host configured (dimse.peers host), which check_host requires", false
		case !trusted:
			return nil, &AAssociateRJ{RJPermanent, RJSourceServiceUser, RJReasonCallingAENotRecognized}, "calling AE title " + rq.CallingAETitle + " connected from " + remote.String() + ", not from its configured host " + peer.Host, false
		}
	}
	ac := &AAssociate{
		AC: true, ProtocolVersion: 1,
		CalledAETitle: rq.CalledAETitle, CallingAETitle: rq.CallingAETitle,
		ApplicationContext: applicationContextName,
	}
	// A storage SOP class proposed with the SCP role is for receiving C-GET
	// sub-operations: accepted when C-GET is served and the peer may use it.
	scpRole := map[string]bool{}
	for _, r := range rq.UserInformation.Roles {
		if r.SCP && strings.HasPrefix(r.SOPClassUID, storagePrefix) && s.RetrieveHandler != nil && peer.allows(ServiceGet) {
			scpRole[r.SOPClassUID] = true
		}
		if r.SCP && r.SOPClassUID == StorageCommitmentSOPClass && s.EventReportHandler != nil {
			scpRole[r.SOPClassUID] = true // the commitment SCP reporting on a new association
		}
	}
	for _, pc := range rq.PresentationContexts {
		res := PresentationContext{ID: pc.ID, TransferSyntaxes: []string{ImplicitVRLittleEndian}}
		svc := s.serviceOf(pc.AbstractSyntax)
		if svc == "" && scpRole[pc.AbstractSyntax] {
			svc = ServiceStore // sent by Lumen; the store handler is not needed
		}
		switch {
		case svc == "":
			res.Result = ResultAbstractSyntaxNotSupported
		case !peer.allows(svc) && !scpRole[pc.AbstractSyntax]:
			res.Result = ResultUserRejection
		default:
			if ts := s.chooseTransferSyntax(svc, pc.TransferSyntaxes); ts != "" {
				res.Result, res.TransferSyntaxes = ResultAcceptance, []string{ts}
			} else {
				res.Result = ResultTransferSyntaxesNotSupported
			}
		}
		ac.PresentationContexts = append(ac.PresentationContexts, res)
	}
	u := &ac.UserInformation
	u.MaxPDULength = s.maxPDU()
	u.ImplementationClassUID = s.implementationClassUID()
	u.ImplementationVersionName = s.implementationVersionName()
	if rq.UserInformation.HasAsyncOps {
		u.HasAsyncOps, u.AsyncOpsInvoked, u.AsyncOpsPerformed = true, 1, 1
	}
	proposed := map[string]bool{}
	for _, pc := range rq.PresentationContexts {
		proposed[pc.AbstractSyntax] = true
	}
	for _, r := range rq.UserInformation.Roles {
		// Answer once per proposed SOP class: the requestor may act as SCU, and as SCP
		// for the storage classes of C-GET.
		if !proposed[r.SOPClassUID] {
			continue
		}
		proposed[r.SOPClassUID] = false
		u.Roles = append(u.Roles, RoleSelection{SOPClassUID: r.SOPClassUID, SCU: r.SCU, SCP: scpRole[r.SOPClassUID]})
	}
	return ac, nil, "", trusted
}
