package dimse

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown.
var ErrServerClosed = errors.New("dimse: Server closed")

// Defaults of the zero Server.
const (
	DefaultAETitle                   = "LUMEN"
	DefaultAddr                      = ":11112"
	DefaultMaxAssociations           = 64
	DefaultMaxPDULength              = 256 << 10
	DefaultARTIMTimeout              = 30 * time.Second
	DefaultAssociateRequestTimeout   = 5 * time.Second
	DefaultMaxPendingPerAddress      = 8
	DefaultIdleTimeout               = 5 * time.Minute
	DefaultImplementationClassUID    = "1.2.826.0.1.3680043.10.1234.1"
	DefaultImplementationVersionName = "LUMEN_1"
)

// AssociationInfo describes an established association to handlers.
type AssociationInfo struct {
	CallingAETitle string
	CalledAETitle  string
	RemoteAddr     net.Addr
	// ImplementationClassUID and ImplementationVersionName of the peer.
	ImplementationClassUID    string
	ImplementationVersionName string
}

// StoreRequest is a C-STORE-RQ as handlers see it.
type StoreRequest struct {
	Association             *AssociationInfo
	MessageID               uint16
	Priority                uint16
	SOPClassUID             string
	SOPInstanceUID          string
	TransferSyntaxUID       string
	MoveOriginatorAETitle   string
	MoveOriginatorMessageID uint16
}

// StoreHandler receives C-STORE data sets. HandleStore reads the data set (encoded in
// req.TransferSyntaxUID, without meta information) from data, which delivers it PDV by
// PDV as it arrives, and returns the status to send once the object is durable. If it
// returns before reading everything, the rest is discarded. ctx ends when the
// association is aborted.
type StoreHandler interface {
	HandleStore(ctx context.Context, req *StoreRequest, data io.Reader) Status
}

// FindRequest is a C-FIND-RQ as handlers see it.
type FindRequest struct {
	Association *AssociationInfo
	MessageID   uint16
	Priority    uint16
	// SOPClassUID is the information model (Patient Root or Study Root FIND).
	SOPClassUID string
	// TransferSyntaxUID encodes Identifier and the identifiers the handler sends.
	TransferSyntaxUID string
	// Identifier is the query data set (bounded to 1 MiB).
	Identifier []byte
}

// FindHandler answers C-FIND. It calls send for each match, with the match's identifier
// encoded in req.TransferSyntaxUID and whether optional keys were not supported
// (status 0xFF01 instead of 0xFF00); send fails once the request is cancelled (C-CANCEL)
// or the association ends, and the handler then returns promptly. The returned status is
// the final response (Success, or a failure such as 0xA900 or 0xC000); after a C-CANCEL
// the server answers Cancel (0xFE00) whatever the handler returns.
type FindHandler interface {
	HandleFind(ctx context.Context, req *FindRequest, send func(identifier []byte, optionalKeysUnsupported bool) error) Status
}

// Query/Retrieve information models for C-FIND.
const (
	PatientRootFind = "1.2.840.10008.5.1.4.1.2.1.1"
	StudyRootFind   = "1.2.840.10008.5.1.4.1.2.2.1"
)

// Server is a DICOM upper layer acceptor. Its zero value serves C-ECHO on DefaultAddr as
// DefaultAETitle; set StoreHandler to accept storage. Configure before Serve.
type Server struct {
	// Addr is the TCP address for ListenAndServe (default ":11112").
	Addr string
	// AETitle is this application entity's title (default "LUMEN").
	AETitle string
	// Policy decides which associations are accepted.
	Policy Policy
	// StoreHandler handles C-STORE; nil means storage SOP classes are not supported.
	StoreHandler StoreHandler
	// FindHandler handles C-FIND; nil means the FIND information models are not supported.
	FindHandler FindHandler
	// RetrieveHandler handles C-MOVE and C-GET; nil means the MOVE and GET information
	// models are not supported.
	RetrieveHandler RetrieveHandler
	// CommitHandler handles storage commitment requests (N-ACTION); nil means the
	// Storage Commitment Push Model is not supported as SCP.
	CommitHandler CommitHandler
	// EventReportHandler receives storage commitment results sent to this AE on new
	// associations (N-EVENT-REPORT); nil refuses them.
	EventReportHandler EventReportHandler
	// reportSent, when set (by tests), runs after an N-EVENT-REPORT is written on the
	// requestor's association, before its response is awaited.
	reportSent func()
	// MaxAssociations caps concurrent associations; more are rejected transiently
	// with "local limit exceeded" (default 64). ReservedForPeers of them are kept for
	// configured peers calling from their configured host. Transport connections that
	// come from addresses other than the configured peers' hosts are capped at twice
	// MaxAssociations (negotiated or not); the excess is closed at once.
	MaxAssociations int
	// ReservedForPeers is how many of the MaxAssociations places only a configured peer
	// (Policy.Peers) connecting from its configured host (Peer.Host) may take: unknown
	// AE titles, and known ones calling from another address or from a peer without a
	// host, share MaxAssociations - ReservedForPeers. Default (0): max(4,
	// MaxAssociations/8) but at most half of MaxAssociations, and none when no peer
	// has a host; a negative value reserves nothing.
	ReservedForPeers int
	// MaxAssociationsPerAE caps the concurrent associations of one calling AE title
	// from one source address, so that one peer cannot take every slot, and someone
	// calling with a known AE title from another address cannot take that peer's; more
	// are rejected transiently with "local limit exceeded" (0: only MaxAssociations
	// applies).
	MaxAssociationsPerAE int
	// MaxPendingPerAddress is the share of one source address in the transport
	// connections that hold no established association (awaiting or refused
	// A-ASSOCIATE-RQ, or released and not yet closed). When MaxAssociations or more such
	// connections are open in all, a new connection from an address that has its share
	// already is closed at once (default 8); while fewer are open, an address may
	// exceed its share (a client opening many associations at once). A configured
	// peer's address always gets its share, whatever strangers hold.
	MaxPendingPerAddress int
	// MaxPDULength is the maximum P-DATA-TF PDU length this side receives (default 256 KiB).
	MaxPDULength uint32
	// AssociateRequestTimeout is how long a new connection may take to deliver its
	// whole A-ASSOCIATE-RQ (TLS handshake included); a connection silent or slower
	// than that is closed (default 5 s, or ARTIMTimeout when that is shorter).
	AssociateRequestTimeout time.Duration
	// ARTIMTimeout guards association release and the closing of a rejected or aborted
	// association (default 30 s).
	ARTIMTimeout time.Duration
	// IdleTimeout aborts an established association that sends nothing for this long
	// (default 5 minutes).
	IdleTimeout time.Duration
	// TransferSyntaxes are those accepted (default DefaultTransferSyntaxes()).
	TransferSyntaxes []string
	// ImplementationClassUID and ImplementationVersionName identify Lumen.
	ImplementationClassUID    string
	ImplementationVersionName string
	// Logger receives association events (no patient data above Debug).
	Logger *slog.Logger
	// Observe, when set, is told of every operation answered: its name ("C-STORE",
	// "C-FIND", "C-MOVE", "C-GET", "C-ECHO", "N-ACTION"...), how long it took from its
	// request to its final response, and the final status (metrics).
	Observe func(operation string, d time.Duration, status uint16)

	mu           sync.Mutex
	listeners    map[net.Listener]struct{}
	assocs       map[*association]struct{}
	active       atomic.Int64      // established associations; changed under mu
	perAE        map[aeAddress]int // associations per calling AE and source address, under mu
	unassoc      map[string]int    // connections without an association per source address, under mu
	unassocTotal int               // their sum, under mu
	strangers    int               // connections from addresses that are no peer's host, under mu
	refusals     *rate.Limiter     // paces the log of refused connections, under mu
	refused      int               // connections refused since the last such log line, under mu
	peerAddrs    peerAddresses
	closing      atomic.Bool
	done         chan struct{} // closed by Shutdown (background work stops), under mu
	wg           sync.WaitGroup
}

// aeAddress is a calling AE title at a source address.
type aeAddress struct{ ae, addr string }

// refusalLogEvery paces the log lines about refused connections, so that a flood of
// connections does not flood the log (each line counts those refused since the last).
const refusalLogEvery = 5 * time.Second

// admitConnection takes a place for a new transport connection from addr (a configured
// peer's host when fromPeer), or returns why not and the limit that applies. Under mu.
//
// Every address is entitled to MaxPendingPerAddress connections without an
// association. It may have more while the server is calm (fewer than MaxAssociations
// such connections in all), so that a client opening many associations at once is not
// refused; once the server is busy, an address beyond its share is refused. Strangers
// (addresses that are no configured peer's host) share twice MaxAssociations
// connections in all, whatever their state; configured peers' addresses are not
// counted there, so strangers cannot take what a peer needs to connect.
func (s *Server) admitConnection(a *association, addr string, fromPeer bool) (string, int) {
	if n := s.pendingShare(fromPeer); s.unassoc[addr] >= n && s.unassocTotal >= s.maxAssociations() {
		return "too many connections without an association from this address", n
	}
	if n := 2 * s.maxAssociations(); !fromPeer && s.strangers >= n {
		return "too many open connections", n
	}
	a.addr, a.stranger = addr, !fromPeer
	s.holdAddress(a)
	if a.stranger {
		s.strangers++
	}
	return "", 0
}

// pendingShare is how many connections without an association an address may hold
// while the server is busy: MaxPendingPerAddress, or for a configured peer's host as many
// as its associations may be (MaxAssociationsPerAE, else MaxAssociations), since a
// modality or router opens several at once.
func (s *Server) pendingShare(peerHost bool) int {
	n := s.maxPendingPerAddress()
	if peerHost {
		if s.MaxAssociationsPerAE > 0 {
			return max(n, s.MaxAssociationsPerAE)
		}
		return max(n, s.maxAssociations())
	}
	return n
}

// holdAddress counts the connection among those of its address without an
// association. Under mu.
func (s *Server) holdAddress(a *association) {
	if a.addrHeld {
		return
	}
	a.addrHeld = true
	if s.unassoc == nil {
		s.unassoc = map[string]int{}
	}
	s.unassoc[a.addr]++
	s.unassocTotal++
}

// releaseAddress stops counting the connection among those of its address without an
// association. Under mu.
func (s *Server) releaseAddress(a *association) {
	if !a.addrHeld {
		return
	}
	a.addrHeld = false
	s.unassocTotal--
	if s.unassoc[a.addr] <= 1 {
		delete(s.unassoc, a.addr)
		return
	}
	s.unassoc[a.addr]--
}

// forget drops a closed connection from the server's accounting.
func (s *Server) forget(a *association) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.assocs, a)
	s.releaseAddress(a)
	if a.stranger {
		a.stranger = false
		s.strangers--
	}
}

// logRefusal logs a refused connection, at most once per refusalLogEvery (with the
// number refused meanwhile).
func (s *Server) logRefusal(remote net.Addr, why string, limit int) {
	s.mu.Lock()
	if s.refusals == nil {
		s.refusals = rate.NewLimiter(rate.Every(refusalLogEvery), 1)
	}
	s.refused++
	n, ok := s.refused, s.refusals.Allow()
	if ok {
		s.refused = 0
	}
	s.mu.Unlock()
	if ok {
		s.log().Warn("dimse: connection refused: "+why, "remote", remote.String(), "limit", limit, "refused_since_last_report", n)
	}
}

// admit takes a place for the association a (calling AE ae, which is a configured peer
// calling from its configured host when trusted), or returns why not and the limit.
func (s *Server) admit(a *association, ae string, trusted bool) (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := s.maxAssociations()
	if !trusted {
		limit -= s.reserved()
	}
	if int(s.active.Load()) >= limit {
		if !trusted {
			return "local limit exceeded (the rest is reserved for configured peers)", limit
		}
		return "local limit exceeded", limit
	}
	key := aeAddress{ae, a.addr}
	if s.MaxAssociationsPerAE > 0 && s.perAE[key] >= s.MaxAssociationsPerAE {
		return "too many associations from this AE at this address", s.MaxAssociationsPerAE
	}
	if s.perAE == nil {
		s.perAE = map[aeAddress]int{}
	}
	s.perAE[key]++
	s.active.Add(1)
	a.counted, a.peerKey = true, key
	s.releaseAddress(a)
	return "", 0
}

// unadmit gives back the association's place; the connection, until closed, counts
// again among those of its address without an association.
func (s *Server) unadmit(a *association) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active.Add(-1)
	if s.perAE[a.peerKey] <= 1 {
		delete(s.perAE, a.peerKey)
	} else {
		s.perAE[a.peerKey]--
	}
	s.holdAddress(a)
}

// reserved is how many association places only trusted peers may take.
func (s *Server) reserved() int {
	n := s.maxAssociations()
	switch {
	case s.ReservedForPeers < 0:
		return 0
	case s.ReservedForPeers > 0:
		return min(s.ReservedForPeers, n)
	}
	for _, p := range s.Policy.Peers {
		if p.Host != "" {
			return min(max(4, n/8), n/2)
		}
	}
	return 0 // nobody could use a reserve
}

// peerAddressRefresh is how often the configured peers' host names are resolved again.
const peerAddressRefresh = time.Minute

// peerAddresses holds the addresses of the configured peers' hosts.
type peerAddresses struct {
	once  sync.Once
	table atomic.Pointer[peerAddressTable]
}

// peerAddressTable maps each configured peer host (as configured) to its addresses
// (see addressOf); all is their union. A host name not yet resolved is absent.
type peerAddressTable struct {
	byHost map[string]map[string]bool
	all    map[string]bool
}

func (t *peerAddressTable) add(host, addr string) {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return
	}
	addr = ip.Unmap().WithZone("").String()
	if t.byHost[host] == nil {
		t.byHost[host] = map[string]bool{}
	}
	t.byHost[host][addr] = true
	t.all[addr] = true
}

// isPeerAddress reports whether addr (see addressOf) is a configured peer's host.
func (s *Server) isPeerAddress(addr string) bool {
	s.startPeerAddresses()
	return s.peerAddrs.table.Load().all[addr]
}

// fromHost reports whether remote is one of host's addresses. It uses the addresses
// resolved in the background, so that an association request costs no DNS query. A
// host name not resolved yet (or whose resolution keeps failing) is looked up now when
// lookup is set (hostMatches), and does not match otherwise.
func (s *Server) fromHost(host string, remote net.Addr, lookup bool) bool {
	s.startPeerAddresses()
	if addrs, ok := s.peerAddrs.table.Load().byHost[host]; ok {
		return addrs[addressOf(remote)]
	}
	return lookup && hostMatches(host, remote)
}

// startPeerAddresses collects the addresses of the peers' hosts: literal addresses at
// once, host names resolved in the background now and every peerAddressRefresh until
// Shutdown (the accept loop never waits for DNS; a failed lookup keeps the addresses
// found before).
func (s *Server) startPeerAddresses() {
	s.peerAddrs.once.Do(func() {
		literal := &peerAddressTable{byHost: map[string]map[string]bool{}, all: map[string]bool{}}
		var names []string
		for _, p := range s.Policy.Peers {
			if p.Host == "" {
				continue
			}
			if _, err := netip.ParseAddr(p.Host); err == nil {
				literal.add(p.Host, p.Host)
			} else if !slices.Contains(names, p.Host) {
				names = append(names, p.Host)
			}
		}
		s.peerAddrs.table.Store(literal)
		if len(names) == 0 {
			return
		}
		done := s.doneChan()
		go func() {
			resolved := map[string][]string{}
			for {
				for _, name := range names {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					addrs, err := net.DefaultResolver.LookupHost(ctx, name)
					cancel()
					if err != nil {
						s.log().Warn("dimse: cannot resolve a peer's host", "host", name, "err", err)
						continue
					}
					resolved[name] = addrs
				}
				t := &peerAddressTable{byHost: map[string]map[string]bool{}, all: map[string]bool{}}
				for host, addrs := range literal.byHost {
					for a := range addrs {
						t.add(host, a)
					}
				}
				for name, addrs := range resolved {
					for _, a := range addrs {
						t.add(name, a)
					}
				}
				s.peerAddrs.table.Store(t)
				select {
				case <-done:
					return
				case <-time.After(peerAddressRefresh):
				}
			}
		}()
	})
}

// doneChan returns the channel Shutdown closes.
func (s *Server) doneChan() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		s.done = make(chan struct{})
	}
	return s.done
}

// addressOf returns the source IP address of a connection (IPv4-mapped addresses as
// IPv4), the unit of MaxPendingPerAddress and MaxAssociationsPerAE.
func addressOf(remote net.Addr) string {
	if ta, ok := remote.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap().String()
		}
	}
	host, _, err := net.SplitHostPort(remote.String())
	if err != nil {
		return remote.String()
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap().WithZone("").String()
	}
	return host
}

func (s *Server) aeTitle() string {
	if s.AETitle == "" {
		return DefaultAETitle
	}
	return s.AETitle
}

func (s *Server) maxPDU() uint32 {
	if s.MaxPDULength == 0 {
		return DefaultMaxPDULength
	}
	return s.MaxPDULength
}

func (s *Server) artim() time.Duration {
	if s.ARTIMTimeout <= 0 {
		return DefaultARTIMTimeout
	}
	return s.ARTIMTimeout
}

func (s *Server) associateRequestTimeout() time.Duration {
	if s.AssociateRequestTimeout <= 0 {
		return min(DefaultAssociateRequestTimeout, s.artim())
	}
	return s.AssociateRequestTimeout
}

func (s *Server) maxPendingPerAddress() int {
	if s.MaxPendingPerAddress <= 0 {
		return DefaultMaxPendingPerAddress
	}
	return s.MaxPendingPerAddress
}

func (s *Server) idle() time.Duration {
	if s.IdleTimeout <= 0 {
		return DefaultIdleTimeout
	}
	return s.IdleTimeout
}

func (s *Server) maxAssociations() int {
	if s.MaxAssociations <= 0 {
		return DefaultMaxAssociations
	}
	return s.MaxAssociations
}

func (s *Server) implementationClassUID() string {
	if s.ImplementationClassUID == "" {
		return DefaultImplementationClassUID
	}
	return s.ImplementationClassUID
}

func (s *Server) implementationVersionName() string {
	if s.ImplementationVersionName == "" {
		return DefaultImplementationVersionName
	}
	return s.ImplementationVersionName
}

func (s *Server) log() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

// ListenAndServe listens on s.Addr and serves.
func (s *Server) ListenAndServe() error {
	if s.closing.Load() {
		return ErrServerClosed
	}
	addr := s.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln, each served by its own goroutine, until Shutdown.
// A connection beyond its address's share (MaxPendingPerAddress) while the server is
// busy, or beyond twice MaxAssociations from addresses that are no configured peer's
// host, is closed at once.
func (s *Server) Serve(ln net.Listener) error {
	s.startPeerAddresses()
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Temporary failures (timeouts, EMFILE, ENFILE, ENOBUFS...): back off and go
			// on serving, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log().Warn("dimse: accept failed; retrying", "err", err, "delay", delay.String())
			time.Sleep(delay)
			continue
		}
		delay = 0
		addr := addressOf(conn.RemoteAddr())
		fromPeer := s.isPeerAddress(addr)
		a := newAssociation(s, conn)
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			conn.Close()
			return ErrServerClosed
		}
		// Connections that have not (yet) negotiated count too: refuse the excess before
		// it costs memory, each address within its share, and strangers all together
		// within what leaves the configured peers room.
		if why, limit := s.admitConnection(a, addr, fromPeer); why != "" {
			s.mu.Unlock()
			conn.Close()
			a.cancel()
			s.logRefusal(conn.RemoteAddr(), why, limit)
			continue
		}
		if s.assocs == nil {
			s.assocs = map[*association]struct{}{}
		}
		s.assocs[a] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			a.serve()
			s.forget(a)
		}()
	}
}

// Shutdown stops accepting associations, lets established ones finish until ctx ends,
// then aborts those left. It returns ctx's error if it had to abort.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing.Swap(true) {
		if s.done == nil {
			s.done = make(chan struct{})
		}
		close(s.done)
	}
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for a := range s.assocs {
		a.abortLocal()
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}

// ActiveAssociations returns the number of associations being served.
func (s *Server) ActiveAssociations() int { return int(s.active.Load()) }
