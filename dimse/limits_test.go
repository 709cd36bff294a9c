// Tests of the bounds an association keeps: shutdown with a stalled handler, long finds
// under the idle timeout with large identifiers, and a peer's tiny maximum PDU.

package dimse

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// stalled is a store handler whose storage hangs but honours ctx.
type stalled struct{ started chan struct{} }

func (s *stalled) HandleStore(ctx context.Context, req *StoreRequest, data io.Reader) Status {
	close(s.started)
	<-ctx.Done()
	return Status{Code: StatusOutOfResources}
}

// TestShutdownWithStalledHandler: Shutdown must end an association whose handler is
// stuck (its ctx is cancelled and its pipe closed) instead of hanging.
func TestShutdownWithStalledHandler(t *testing.T) {
	h := &stalled{started: make(chan struct{})}
	s := &Server{StoreHandler: h, Logger: testLogger(t)}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go s.Serve(ln)
	r := dialRaw(t, ln.Addr().String())
	r.associate()
	r.send(EncodePDU(&PDataTF{PDVs: []PDV{{ContextID: 3, Command: true, Last: true, Data: storeCommand(t, 0)}}}))
	r.send(EncodePDU(&PDataTF{PDVs: []PDV{{ContextID: 3, Data: make([]byte, 1000)}}}))
	<-h.started
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctx) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown hung on a stalled handler")
	}
}

type slowMatches struct{}

func (slowMatches) HandleFind(ctx context.Context, req *FindRequest, send func([]byte, bool) error) Status {
	for range 6 {
		select {
		case <-ctx.Done():
			return Status{Code: StatusCancel}
		case <-time.After(250 * time.Millisecond):
		}
		if err := send([]byte{0x08, 0x00, 0x52, 0x00, 'C', 'S', 6, 0, 'S', 'T', 'U', 'D', 'Y', ' '}, false); err != nil {
			return Status{Code: StatusCancel}
		}
	}
	return Status{Code: StatusSuccess}
}

// TestFindLimits: a long-running find is not cut by the idle timeout, and the client
// fragments an identifier larger than the peer's maximum PDU.
func TestFindLimits(t *testing.T) {
	addr := startServer(t, &Server{FindHandler: slowMatches{}, IdleTimeout: 500 * time.Millisecond, MaxPDULength: 4096})
	c, err := Dial(context.Background(), addr, DialConfig{CalledAETitle: "LUMEN", Contexts: []ProposedContext{{AbstractSyntax: StudyRootFind, TransferSyntaxes: []string{ExplicitVRLittleEndian}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	id := []byte{0x08, 0x00, 0x52, 0x00, 'C', 'S', 6, 0, 'S', 'T', 'U', 'D', 'Y', ' ', 0x10, 0x00, 0x10, 0x00, 'P', 'N'}
	id = binary.LittleEndian.AppendUint16(id, 6000)
	id = append(id, []byte(strings.Repeat("A", 6000))...)
	n := 0
	st, err := c.Find(context.Background(), StudyRootFind, id, func([]byte) bool { n++; return true })
	if err != nil || st.Code != StatusSuccess || n != 6 {
		t.Fatalf("find = %+v, %v, %d matches", st, err, n)
	}
}

// TestClientRefusesTinyPeerPDU: a peer announcing a 4-byte maximum PDU is refused
// instead of making the client loop or panic.
func TestClientRefusesTinyPeerPDU(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		p, _, err := ReadPDU(conn, 1<<20, nil)
		if err != nil {
			return
		}
		rq := p.(*AAssociate)
		ac := &AAssociate{AC: true, CalledAETitle: rq.CalledAETitle, CallingAETitle: rq.CallingAETitle, UserInformation: UserInformation{MaxPDULength: 4, ImplementationClassUID: "1.2.3"}}
		for _, pc := range rq.PresentationContexts {
			ac.PresentationContexts = append(ac.PresentationContexts, PresentationContext{ID: pc.ID, Result: ResultAcceptance, TransferSyntaxes: pc.TransferSyntaxes[:1]})
		}
		conn.Write(EncodePDU(ac))
		io.Copy(io.Discard, conn)
	}()
	_, err := Dial(context.Background(), ln.Addr().String(), DialConfig{Contexts: ctContexts(), Timeout: 3 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "maximum PDU length 4") {
		t.Fatalf("Dial = %v", err)
	}
}
