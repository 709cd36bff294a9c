package dimse

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// raw is a hand-driven requestor for protocol violations.
type raw struct {
	t    *testing.T
	conn net.Conn
}

func dialRaw(t *testing.T, addr string) *raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &raw{t, c}
}

func (r *raw) send(b []byte) {
	r.t.Helper()
	if _, err := r.conn.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

func (r *raw) read() (PDU, error) {
	r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	p, _, err := ReadPDU(r.conn, 1<<20, nil)
	return p, err
}

// associate sends an A-ASSOCIATE-RQ for verification and CT storage and expects an AC.
func (r *raw) associate() {
	r.t.Helper()
	rq := &AAssociate{ProtocolVersion: 1, CalledAETitle: "LUMEN", CallingAETitle: "RAW",
		PresentationContexts: []PresentationContext{
			{ID: 1, AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
			{ID: 3, AbstractSyntax: "1.2.840.10008.5.1.4.1.1.2", TransferSyntaxes: []string{ExplicitVRLittleEndian}},
		},
		UserInformation: UserInformation{MaxPDULength: 16384, ImplementationClassUID: "1.2.3"}}
	r.send(EncodePDU(rq))
	p, err := r.read()
	if err != nil {
		r.t.Fatal(err)
	}
	if ac, ok := p.(*AAssociate); !ok || !ac.AC {
		r.t.Fatalf("got %T, want A-ASSOCIATE-AC", p)
	}
}

// expectAbort reads until an A-ABORT (returned) or the connection closes.
func (r *raw) expectAbort() *AAbort {
	r.t.Helper()
	for {
		p, err := r.read()
		if err != nil {
			r.t.Fatalf("no A-ABORT before the connection ended: %v", err)
		}
		if ab, ok := p.(*AAbort); ok {
			return ab
		}
	}
}

// expectClosed waits for the server to close the connection.
func (r *raw) expectClosed(within time.Duration) {
	r.t.Helper()
	r.conn.SetReadDeadline(time.Now().Add(within))
	_, err := io.Copy(io.Discard, r.conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		r.t.Fatalf("connection still open after %v", within)
	}
}

// stillServing checks that a fresh association still gets a C-ECHO answered.
func stillServing(t *testing.T, addr string) {
	t.Helper()
	c, err := Dial(context.Background(), addr, DialConfig{CalledAETitle: "LUMEN", Contexts: ctContexts()})
	if err != nil {
		t.Fatalf("listener no longer serving: %v", err)
	}
	if st, err := c.Echo(context.Background()); err != nil || st.Code != StatusSuccess {
		t.Fatalf("echo after bad input: %+v %v", st, err)
	}
	c.Release()
}

func storeCommand(t *testing.T, drop uint16) []byte {
	c := &Command{CommandField: CStoreRQ, MessageID: 7, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.1.2", AffectedSOPInstanceUID: "1.2.3.4.5", CommandDataSetType: DataSetPresent}
	b := c.Encode()
	if drop == 0 {
		return b
	}
	// Remove element (0000,drop) and fix the group length.
	out := append([]byte(nil), b[:12]...)
	for p := 12; p < len(b); {
		n := int(binary.LittleEndian.Uint32(b[p+4:]))
		if binary.LittleEndian.Uint16(b[p+2:]) != drop {
			out = append(out, b[p:p+8+n]...)
		}
		p += 8 + n
	}
	binary.LittleEndian.PutUint32(out[8:], uint32(len(out)-12))
	return out
}

func TestBadInput(t *testing.T) {
	rec := &recorder{}
	s := &Server{StoreHandler: rec, ARTIMTimeout: 300 * time.Millisecond, IdleTimeout: 400 * time.Millisecond}
	addr := startServer(t, s)

	t.Run("garbage instead of a PDU", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.send([]byte("GET / HTTP/1.1\r\nHost: lumen\r\n\r\n"))
		ab := r.expectAbort()
		if ab.Reason != AbortReasonUnrecognizedPDU && ab.Reason != AbortReasonNotSpecified {
			t.Fatalf("abort reason %d", ab.Reason)
		}
		r.expectClosed(5 * time.Second)
		stillServing(t, addr)
	})
	t.Run("oversized PDU length", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.associate()
		r.send([]byte{TypePDataTF, 0, 0xFF, 0xFF, 0xFF, 0xF0})
		ab := r.expectAbort()
		if ab.Source != AbortSourceServiceProvider || ab.Reason != AbortReasonInvalidParamValue {
			t.Fatalf("abort = %+v, want provider/invalid parameter value", ab)
		}
		stillServing(t, addr)
	})
	t.Run("oversized association request", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.send([]byte{TypeAAssociateRQ, 0, 0x7F, 0xFF, 0xFF, 0xFF})
		r.expectAbort()
		stillServing(t, addr)
	})
	t.Run("PDV for an unknown presentation context", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.associate()
		r.send(EncodePDU(&PDataTF{PDVs: []PDV{{ContextID: 99, Command: true, Last: true, Data: storeCommand(t, 0)}}}))
		ab := r.expectAbort()
		if ab.Source != AbortSourceServiceProvider || ab.Reason != AbortReasonInvalidParamValue {
			t.Fatalf("abort = %+v", ab)
		}
		stillServing(t, addr)
	})
	t.Run("command set missing required elements", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.associate()
		r.send(EncodePDU(&PDataTF{PDVs: []PDV{{ContextID: 3, Command: true, Last: true, Data: storeCommand(t, tagAffectedSOPInstanceUID)}}}))
		r.send(EncodePDU(&PDataTF{PDVs: []PDV{{ContextID: 3, Last: true, Data: []byte{0x08, 0x00, 0x18, 0x00, 'U', 'I', 2, 0, '1', 0}}}}))
		p, err := r.read()
		if err != nil {
			t.Fatal(err)
		}
		pd, ok := p.(*PDataTF)
		if !ok {
			t.Fatalf("got %T", p)
		}
		rsp, err := DecodeCommand(pd.PDVs[0].Data)
		if err != nil || rsp.CommandField != CStoreRSP || rsp.Status != StatusCannotUnderstand || !strings.Contains(rsp.ErrorComment, "AffectedSOPInstanceUID") || rsp.MessageIDBeingRespondedTo != 7 {
			t.Fatalf("response = %+v, %v", rsp, err)
		}
		// The association goes on.
		r.send(EncodePDU(&PDataTF{PDVs: []PDV{{ContextID: 1, Command: true, Last: true, Data: (&Command{CommandField: CEchoRQ, MessageID: 8, AffectedSOPClassUID: VerificationSOPClass}).Encode()}}}))
		if p, err = r.read(); err != nil {
			t.Fatal(err)
		}
		if rsp, _ := DecodeCommand(p.(*PDataTF).PDVs[0].Data); rsp.CommandField != CEchoRSP || rsp.Status != StatusSuccess {
			t.Fatalf("echo response = %+v", rsp)
		}
	})
	t.Run("undecodable command set", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.associate()
		r.send(EncodePDU(&PDataTF{PDVs: []PDV{{ContextID: 1, Command: true, Last: true, Data: []byte{0, 0, 0, 0, 0xFF, 0xFF, 0, 0}}}}))
		r.expectAbort()
		stillServing(t, addr)
	})
	t.Run("silent peer before association", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.expectClosed(5 * time.Second) // ARTIM 300 ms
	})
	t.Run("silent peer after association", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.associate()
		r.expectAbort() // idle timeout 400 ms
		r.expectClosed(5 * time.Second)
	})
	t.Run("peer drops the connection mid-PDU", func(t *testing.T) {
		before := rec.count()
		r := dialRaw(t, addr)
		r.associate()
		r.send(EncodePDU(&PDataTF{PDVs: []PDV{{ContextID: 3, Command: true, Last: true, Data: storeCommand(t, 0)}}}))
		part := EncodePDU(&PDataTF{PDVs: []PDV{{ContextID: 3, Last: true, Data: bytes.Repeat([]byte{1}, 4000)}}})
		r.send(part[:2000])
		r.conn.Close()
		time.Sleep(200 * time.Millisecond)
		if rec.count() != before {
			t.Fatal("a half-received data set reached the handler as complete")
		}
		stillServing(t, addr)
	})
	t.Run("data set PDV without a command", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.associate()
		r.send(EncodePDU(&PDataTF{PDVs: []PDV{{ContextID: 3, Last: true, Data: []byte{1, 2}}}}))
		r.expectAbort()
		stillServing(t, addr)
	})
}

// panicky panics on every store.
type panicky struct{}

func (panicky) HandleStore(ctx context.Context, req *StoreRequest, data io.Reader) Status {
	panic("handler bug")
}

func TestHandlerPanicAbortsOnlyThatAssociation(t *testing.T) {
	addr := startServer(t, &Server{StoreHandler: panicky{}})
	c, err := Dial(context.Background(), addr, DialConfig{CalledAETitle: "LUMEN", Contexts: ctContexts()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Store(context.Background(), "1.2.840.10008.5.1.4.1.1.2", "1.2.3", ExplicitVRLittleEndian, bytes.NewReader([]byte{8, 0, 0x18, 0, 'U', 'I', 2, 0, '1', 0}))
	var ab *AbortedError
	if err == nil {
		// The response may arrive before the abort: the next operation must fail.
		_, err = c.Echo(context.Background())
	}
	if !errors.As(err, &ab) {
		t.Fatalf("after a handler panic: %v, want the association aborted", err)
	}
	stillServing(t, addr)
}

func TestAssociationLimit(t *testing.T) {
	addr := startServer(t, &Server{MaxAssociations: 1})
	first, err := Dial(context.Background(), addr, DialConfig{CalledAETitle: "LUMEN", Contexts: ctContexts()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Dial(context.Background(), addr, DialConfig{CalledAETitle: "LUMEN", Contexts: ctContexts()})
	var rj *RejectedError
	if !errors.As(err, &rj) || rj.Result != RJTransient || rj.Source != RJSourceServiceProviderPresentation || rj.Reason != RJReasonLocalLimitExceeded {
		t.Fatalf("second association = %v, want transient local-limit-exceeded rejection", err)
	}
	out, err := runTool(t, "echoscu", "-aec", "LUMEN", strings.Split(addr, ":")[0], strings.Split(addr, ":")[1])
	if err == nil || !strings.Contains(out, "Local Limit Exceeded") {
		t.Fatalf("echoscu over the limit: %v\n%s", err, out)
	}
	first.Release()
	stillServing(t, addr)
}

// TestAssociationLimitPerAE: one calling AE cannot take more than MaxAssociationsPerAE
// places; other AEs still get theirs, and a released place is free again.
func TestAssociationLimitPerAE(t *testing.T) {
	addr := startServer(t, &Server{MaxAssociations: 10, MaxAssociationsPerAE: 2})
	dial := func(ae string) (*Client, error) {
		return Dial(context.Background(), addr, DialConfig{CallingAETitle: ae, CalledAETitle: "LUMEN", Contexts: ctContexts()})
	}
	a1, err := dial("GREEDY")
	if err != nil {
		t.Fatal(err)
	}
	a2, err := dial("GREEDY")
	if err != nil {
		t.Fatal(err)
	}
	_, err = dial("GREEDY")
	var rj *RejectedError
	if !errors.As(err, &rj) || rj.Result != RJTransient || rj.Reason != RJReasonLocalLimitExceeded {
		t.Fatalf("third association of one AE = %v, want transient local-limit-exceeded rejection", err)
	}
	other, err := dial("POLITE")
	if err != nil {
		t.Fatalf("another AE: %v", err)
	}
	other.Release()
	a1.Release()
	a3, err := dial("GREEDY")
	if err != nil {
		t.Fatalf("after a release: %v", err)
	}
	a2.Release()
	a3.Release()
}
