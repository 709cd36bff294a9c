package dimse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// dialFrom opens a TCP connection to addr from the loopback address local (127.0.0.x).
func dialFrom(t *testing.T, local, addr string) (net.Conn, error) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// associateFrom requests a verification association from local as callingAE. It returns
// the open connection when accepted, or the rejection.
func associateFrom(t *testing.T, local, addr, callingAE string) (net.Conn, *AAssociateRJ) {
	t.Helper()
	c, err := dialFrom(t, local, addr)
	if err != nil {
		t.Fatal(err)
	}
	rq := &AAssociate{ProtocolVersion: 1, CalledAETitle: "LUMEN", CallingAETitle: callingAE, ApplicationContext: applicationContextName,
		PresentationContexts: []PresentationContext{{ID: 1, AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}},
		UserInformation:      UserInformation{MaxPDULength: 16384, ImplementationClassUID: "1.2.3"}}
	if _, err := c.Write(EncodePDU(rq)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	p, _, err := ReadPDU(c, 1<<20, nil)
	if err != nil {
		t.Fatalf("association from %s as %s: %v", local, callingAE, err)
	}
	c.SetReadDeadline(time.Time{})
	switch p := p.(type) {
	case *AAssociate:
		if p.AC {
			return c, nil
		}
	case *AAssociateRJ:
		c.Close()
		return nil, p
	}
	t.Fatalf("association from %s as %s: got %T", local, callingAE, p)
	return nil, nil
}

// connections returns how many transport connections s is serving.
func connections(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.assocs)
}

// waitFor polls cond until it holds (or fails the test after 10 s).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// closedSoon reports whether the server closed c within d (it never sent anything).
func closedSoon(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// echoscuFromPeer runs DCMTK echoscu from 127.0.0.1 as CT1 and fails the test when the
// verification does not succeed.
func echoscuFromPeer(t *testing.T, addr string) {
	t.Helper()
	h, p := hostPort(addr)
	out, err := runTool(t, "echoscu", "-to", "10", "-ta", "10", "-td", "10", "-aet", "CT1", "-aec", "LUMEN", h, p)
	if err != nil {
		t.Fatalf("echoscu from the configured peer during the attack: %v\n%s", err, out)
	}
}

// TestSilentConnectionsDoNotLockOutPeers: many TCP connections from other addresses
// that never send a byte fill what strangers may hold, but the configured peer
// (CT1 at 127.0.0.1) still gets its association at once.
func TestSilentConnectionsDoNotLockOutPeers(t *testing.T) {
	dcmtk(t, "echoscu")
	var logs syncBuffer
	s := &Server{AETitle: "LUMEN", MaxAssociations: 8, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Policy: Policy{
		CheckCalledAE: true, RejectUnknownCallingAE: true, CheckHost: true,
		Peers: []Peer{{AETitle: "CT1", Host: "127.0.0.1", Services: []string{ServiceEcho}}},
	}}
	addr := startServer(t, s)
	// 20 attacker addresses, 4 silent connections each: more than the server keeps open
	// for strangers (2 x MaxAssociations).
	for i := 2; i < 22; i++ {
		for range 4 {
			if _, err := dialFrom(t, fmt.Sprintf("127.0.0.%d", i), addr); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "the silent connections to fill the server", func() bool { return connections(s) >= 2*8 })
	echoscuFromPeer(t, addr)
	// 64 connections were refused: the log says so in a line or two, not 64.
	if n := strings.Count(logs.String(), "connection refused"); n > 3 {
		t.Errorf("%d log lines about refused connections", n)
	}
}

// TestSpoofedAEDoesNotLockOutPeer: associations held idle by someone calling as a known
// AE title from another address neither take the real peer's per-AE places nor every
// association slot: DCMTK echoscu from the peer's configured host still succeeds.
func TestSpoofedAEDoesNotLockOutPeer(t *testing.T) {
	dcmtk(t, "echoscu")
	for _, perAE := range []int{2, 0} {
		t.Run(fmt.Sprintf("MaxAssociationsPerAE=%d", perAE), func(t *testing.T) {
			s := &Server{AETitle: "LUMEN", MaxAssociations: 8, MaxAssociationsPerAE: perAE, Policy: Policy{
				CheckCalledAE: true, RejectUnknownCallingAE: true,
				Peers: []Peer{
					{AETitle: "CT1", Host: "127.0.0.1", Services: []string{ServiceEcho}},
					{AETitle: "MR1", Host: "127.0.0.200", Services: []string{ServiceEcho}},
				},
			}}
			addr := startServer(t, s)
			held := 0
			for i := 2; i < 10; i++ {
				for _, ae := range []string{"CT1", "MR1", "CT1", "MR1", "CT1"} {
					if c, _ := associateFrom(t, fmt.Sprintf("127.0.0.%d", i), addr, ae); c != nil {
						held++ // kept open and idle until the test ends
					}
				}
			}
			t.Logf("the spoofer holds %d idle associations", held)
			echoscuFromPeer(t, addr)
			if held > 8-4 {
				t.Errorf("strangers hold %d associations, want at most MaxAssociations - reserve = 4", held)
			}
		})
	}
}

// TestPendingConnectionsPerAddress: one address gets a share of the connections
// awaiting association; once the server is busy (MaxAssociations such connections),
// its new connections beyond the share are closed at once, while another address still
// gets its share and is served.
func TestPendingConnectionsPerAddress(t *testing.T) {
	s := &Server{MaxAssociations: 8, MaxPendingPerAddress: 2}
	addr := startServer(t, s)
	for range 8 { // more than the share: the server is calm until there are 8
		if _, err := dialFrom(t, "127.0.0.2", addr); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the connections to be accepted", func() bool { return connections(s) >= 8 })
	c, err := dialFrom(t, "127.0.0.2", addr)
	if err != nil {
		t.Fatal(err)
	}
	if !closedSoon(c, 3*time.Second) {
		t.Fatal("a ninth silent connection from one address is still open while the server is busy")
	}
	if c, rj := associateFrom(t, "127.0.0.3", addr, "OTHER"); c == nil {
		t.Fatalf("another address refused: %+v", rj)
	}
}

// TestManyAssociationsAtOnceFromOneAddress: a client that opens many associations at
// the same moment from one address (more than MaxPendingPerAddress) is not refused while
// the server has room.
func TestManyAssociationsAtOnceFromOneAddress(t *testing.T) {
	addr := startServer(t, &Server{})
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := Dial(context.Background(), addr, DialConfig{CallingAETitle: "BURST", CalledAETitle: "LUMEN", Contexts: ctContexts()})
			if err != nil {
				errs <- err
				return
			}
			c.Release()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestSilentConnectionClosedEarly: a connection that sends no A-ASSOCIATE-RQ is closed
// after the short AssociateRequestTimeout, not after the release ARTIM.
func TestSilentConnectionClosedEarly(t *testing.T) {
	addr := startServer(t, &Server{ARTIMTimeout: 30 * time.Second, AssociateRequestTimeout: 200 * time.Millisecond})
	c, err := dialFrom(t, "127.0.0.2", addr)
	if err != nil {
		t.Fatal(err)
	}
	if !closedSoon(c, 5*time.Second) {
		t.Fatal("a silent connection is still open after 5 s (AssociateRequestTimeout 200 ms)")
	}
	// A connection that trickles its request byte by byte is cut at the same deadline.
	c, err = dialFrom(t, "127.0.0.2", addr)
	if err != nil {
		t.Fatal(err)
	}
	rq := EncodePDU(&AAssociate{ProtocolVersion: 1, CalledAETitle: "LUMEN", CallingAETitle: "SLOW", ApplicationContext: applicationContextName,
		PresentationContexts: []PresentationContext{{ID: 1, AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}}})
	start := time.Now()
	for _, b := range rq[:len(rq)-1] {
		if _, err := c.Write([]byte{b}); err != nil || time.Since(start) > 5*time.Second {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !closedSoon(c, time.Second) {
		t.Fatal("a trickled A-ASSOCIATE-RQ kept the connection open")
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestCheckHostRefusesPeerWithoutHost: with CheckHost on, a known AE title whose peer
// entry has no host cannot be verified, so it is refused (it could call from anywhere).
func TestCheckHostRefusesPeerWithoutHost(t *testing.T) {
	var logs syncBuffer
	s := &Server{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Policy: Policy{CheckHost: true, Peers: []Peer{{AETitle: "NOHOST"}, {AETitle: "CT1", Host: "127.0.0.1"}}}}
	addr := startServer(t, s)
	_, err := Dial(context.Background(), addr, DialConfig{CallingAETitle: "NOHOST", CalledAETitle: "LUMEN", Contexts: ctContexts()})
	var rj *RejectedError
	if !errors.As(err, &rj) || rj.Result != RJPermanent || rj.Source != RJSourceServiceUser || rj.Reason != RJReasonCallingAENotRecognized {
		t.Fatalf("peer without a host under check_host = %v, want permanent calling-AE-not-recognized rejection", err)
	}
	if !strings.Contains(logs.String(), "no host configured") {
		t.Errorf("the rejection's log does not say why:\n%s", logs.String())
	}
	c, err := Dial(context.Background(), addr, DialConfig{CallingAETitle: "CT1", CalledAETitle: "LUMEN", Contexts: ctContexts()})
	if err != nil {
		t.Fatalf("peer from its configured host: %v", err)
	}
	c.Release()
}

// TestPeerHostNamesResolved: a peer configured by host name counts as a configured
// peer's address (and is recognised as calling from its host) once the name is
// resolved in the background, without a DNS query per connection.
func TestPeerHostNamesResolved(t *testing.T) {
	s := &Server{Policy: Policy{Peers: []Peer{{AETitle: "CT1", Host: "localhost"}, {AETitle: "CT2", Host: "127.0.0.7"}}}}
	startServer(t, s)
	waitFor(t, "localhost to be resolved", func() bool { return s.isPeerAddress("127.0.0.1") })
	from := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 4000} }
	switch {
	case !s.fromHost("localhost", from("127.0.0.1"), false):
		t.Error("127.0.0.1 is not recognised as localhost")
	case s.fromHost("localhost", from("127.0.0.2"), false):
		t.Error("127.0.0.2 is taken for localhost")
	case !s.isPeerAddress("127.0.0.7") || !s.fromHost("127.0.0.7", from("::ffff:127.0.0.7"), false):
		t.Error("a literal peer address (IPv4-mapped) is not recognised")
	case s.isPeerAddress("127.0.0.2"):
		t.Error("a stranger's address counts as a peer's")
	}
}

// TestPeerBurstDuringFlood: while strangers keep the listener busy with silent
// connections, a configured peer opening many associations at the same moment from its
// host (more than MaxPendingPerAddress, as a modality or router with parallel
// associations does) is not refused: its address's share is its association limit.
func TestPeerBurstDuringFlood(t *testing.T) {
	s := &Server{AETitle: "LUMEN", MaxAssociations: 24, MaxPendingPerAddress: 2, MaxAssociationsPerAE: 16, Policy: Policy{
		RejectUnknownCallingAE: true, Peers: []Peer{{AETitle: "ROUTER", Host: "127.0.0.1"}}}}
	addr := startServer(t, s)
	for i := 2; i < 12; i++ {
		for range 4 {
			if _, err := dialFrom(t, fmt.Sprintf("127.0.0.%d", i), addr); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "the silent connections to make the server busy", func() bool { return connections(s) >= 24 })
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := Dial(context.Background(), addr, DialConfig{CallingAETitle: "ROUTER", CalledAETitle: "LUMEN", Contexts: ctContexts(),
				LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}})
			if err != nil {
				errs <- err
				return
			}
			c.Release()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("the peer's burst during the flood: %v", err)
	}
}
