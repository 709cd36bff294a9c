package dimse

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
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
	// MaxAssociations caps concurrent associations; more are rejected transiently
	// with "local limit exceeded" (default 64).
	MaxAssociations int
	// MaxAssociationsPerAE caps the concurrent associations of one calling AE title, so
	// that one peer cannot take every slot; more are rejected transiently with "local
	// limit exceeded" (0: only MaxAssociations applies).
	MaxAssociationsPerAE int
	// MaxPDULength is the maximum P-DATA-TF PDU length this side receives (default 256 KiB).
	MaxPDULength uint32
	// ARTIMTimeout guards association set-up and release (default 30 s).
	ARTIMTimeout time.Duration
	// IdleTimeout aborts an established association that sends nothing for this long
	// (default 5 minutes).
	IdleTimeout time.Duration
	// TransferSyntaxes are those accepted (default DefaultTransferSyntaxes).
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

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	assocs    map[*association]struct{}
	active    atomic.Int64
	perAE     map[string]int // associations counted per calling AE, under mu
	closing   atomic.Bool
	wg        sync.WaitGroup
}

// countPeer takes a place for an association of calling AE ae, or reports false when
// the AE has MaxAssociationsPerAE already.
func (s *Server) countPeer(ae string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perAE == nil {
		s.perAE = map[string]int{}
	}
	if s.MaxAssociationsPerAE > 0 && s.perAE[ae] >= s.MaxAssociationsPerAE {
		return false
	}
	s.perAE[ae]++
	return true
}

func (s *Server) uncountPeer(ae string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perAE[ae] <= 1 {
		delete(s.perAE, ae)
		return
	}
	s.perAE[ae]--
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
func (s *Server) Serve(ln net.Listener) error {
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
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			conn.Close()
			return ErrServerClosed
		}
		if len(s.assocs) >= 2*s.maxAssociations() {
			// Connections that have not (yet) negotiated count too: refuse the excess
			// before it costs memory.
			s.mu.Unlock()
			s.log().Warn("dimse: connection refused: too many open connections", "remote", conn.RemoteAddr().String(), "limit", 2*s.maxAssociations())
			conn.Close()
			continue
		}
		a := newAssociation(s, conn)
		if s.assocs == nil {
			s.assocs = map[*association]struct{}{}
		}
		s.assocs[a] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			a.serve()
			s.mu.Lock()
			delete(s.assocs, a)
			s.mu.Unlock()
		}()
	}
}

// Shutdown stops accepting associations, lets established ones finish until ctx ends,
// then aborts those left. It returns ctx's error if it had to abort.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
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
