package dimse

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
	"time"
)

// storeCall is what a store handler saw.
type storeCall struct {
	data []byte
	err  error
}

// scripted reads up to limit bytes of each data set (0: all of it), reports what it saw
// on calls and answers status.
type scripted struct {
	mu     sync.Mutex
	limit  int
	status Status
	calls  chan storeCall
}

func (s *scripted) set(limit int, status Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit, s.status = limit, status
}

func (s *scripted) HandleStore(ctx context.Context, req *StoreRequest, data io.Reader) Status {
	s.mu.Lock()
	limit, status := s.limit, s.status
	s.mu.Unlock()
	var b []byte
	var err error
	if limit > 0 {
		b = make([]byte, limit)
		var n int
		n, err = io.ReadFull(data, b)
		b = b[:n]
	} else {
		b, err = io.ReadAll(data)
	}
	s.calls <- storeCall{b, err}
	return status
}

func (r *raw) expectResponse(field, status uint16) *Command {
	r.t.Helper()
	p, err := r.read()
	if err != nil {
		r.t.Fatal(err)
	}
	pd, ok := p.(*PDataTF)
	if !ok || len(pd.PDVs) == 0 || !pd.PDVs[0].Command {
		r.t.Fatalf("got %T %+v, want a command", p, p)
	}
	rsp, err := DecodeCommand(pd.PDVs[0].Data)
	if err != nil || rsp.CommandField != field || rsp.Status != status {
		r.t.Fatalf("response %+v (%v), want 0x%04X status 0x%04X", rsp, err, field, status)
	}
	return rsp
}

// expectNothing checks that the server sends nothing for a while.
func (r *raw) expectNothing(d time.Duration) {
	r.t.Helper()
	r.conn.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	if n, err := r.conn.Read(b[:]); n > 0 || err == nil {
		r.t.Fatal("the server answered before the data set ended")
	}
}

func echoPDV(id uint16) PDV {
	return PDV{ContextID: 1, Command: true, Last: true, Data: (&Command{CommandField: CEchoRQ, MessageID: id, AffectedSOPClassUID: VerificationSOPClass}).Encode()}
}

// TestStoreDataSetStream: the store handler reads the data set PDV by PDV from the PDUs
// as they come, whatever their cut: fragments in the command's PDU, in PDUs of their
// own, and the next command after the last fragment in the same PDU; a handler that
// returns early is answered once the rest of the data set has come (and been
// discarded); a PDU or PDV that breaks the data set off fails the handler's read, and
// the association then does what the protocol says (abort, release).
func TestStoreDataSetStream(t *testing.T) {
	h := &scripted{status: Status{Code: StatusSuccess}, calls: make(chan storeCall, 10)}
	s := &Server{StoreHandler: h, ARTIMTimeout: 2 * time.Second, IdleTimeout: 5 * time.Second}
	addr := startServer(t, s)
	cmd := PDV{ContextID: 3, Command: true, Last: true, Data: storeCommand(t, 0)}
	frag := func(data string, last bool) PDV { return PDV{ContextID: 3, Last: last, Data: []byte(data)} }
	call := func() storeCall {
		t.Helper()
		select {
		case c := <-h.calls:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("the handler was not called")
		}
		return storeCall{}
	}

	t.Run("fragments however cut", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.associate()
		r.send(EncodePDU(&PDataTF{PDVs: []PDV{cmd, frag("ab", false)}}))
		r.send(EncodePDU(&PDataTF{PDVs: []PDV{frag("cd", false), frag("ef", false)}}))
		r.send(EncodePDU(&PDataTF{PDVs: []PDV{frag("gh", true), echoPDV(8)}}))
		if c := call(); string(c.data) != "abcdefgh" || c.err != nil {
			t.Fatalf("handler read %q, %v", c.data, c.err)
		}
		r.expectResponse(CStoreRSP, StatusSuccess)
		r.expectResponse(CEchoRSP, StatusSuccess)
		// The whole request in one PDU.
		r.send(EncodePDU(&PDataTF{PDVs: []PDV{cmd, frag("xyz", true)}}))
		if c := call(); string(c.data) != "xyz" || c.err != nil {
			t.Fatalf("handler read %q, %v", c.data, c.err)
		}
		r.expectResponse(CStoreRSP, StatusSuccess)
	})

	t.Run("handler returns early", func(t *testing.T) {
		h.set(3, Status{Code: StatusCannotUnderstand, ErrorComment: "not DICOM"})
		defer h.set(0, Status{Code: StatusSuccess})
		r := dialRaw(t, addr)
		r.associate()
		r.send(EncodePDU(&PDataTF{PDVs: []PDV{cmd, frag("abcd", false)}}))
		if c := call(); string(c.data) != "abc" || c.err != nil {
			t.Fatalf("handler read %q, %v", c.data, c.err)
		}
		r.send(EncodePDU(&PDataTF{PDVs: []PDV{frag("more", false)}}))
		r.expectNothing(200 * time.Millisecond)
		r.send(EncodePDU(&PDataTF{PDVs: []PDV{frag("end", true), echoPDV(9)}}))
		if rsp := r.expectResponse(CStoreRSP, StatusCannotUnderstand); rsp.ErrorComment != "not DICOM" {
			t.Fatalf("comment %q", rsp.ErrorComment)
		}
		r.expectResponse(CEchoRSP, StatusSuccess)
	})

	for _, tc := range []struct {
		name   string
		then   []byte
		reason byte // of the server's A-ABORT; 0: none expected
	}{
		{"command PDV within the data set", EncodePDU(&PDataTF{PDVs: []PDV{echoPDV(10)}}), AbortReasonUnexpectedParam},
		{"PDV of another context within the data set", EncodePDU(&PDataTF{PDVs: []PDV{{ContextID: 1, Last: true, Data: []byte("x")}}}), AbortReasonUnexpectedParam},
		{"PDV of an unknown context within the data set", EncodePDU(&PDataTF{PDVs: []PDV{{ContextID: 5, Last: true, Data: []byte("x")}}}), AbortReasonInvalidParamValue},
		{"invalid PDU within the data set", []byte{TypePDataTF, 0, 0, 0, 0, 3, 0, 0, 0}, AbortReasonInvalidParamValue},
		{"A-ABORT within the data set", EncodePDU(&AAbort{Source: AbortSourceServiceUser}), 0},
		{"A-RELEASE-RQ within the data set", EncodePDU(&AReleaseRQ{}), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, addr)
			r.associate()
			r.send(EncodePDU(&PDataTF{PDVs: []PDV{cmd, frag("ab", false)}}))
			r.send(tc.then)
			c := call()
			if c.err == nil {
				t.Fatalf("handler read %q, %v; want a failed read", c.data, c.err)
			}
			switch {
			case tc.reason != 0:
				if ab := r.expectAbort(); ab.Source != AbortSourceServiceProvider || ab.Reason != tc.reason {
					t.Fatalf("abort %+v, want reason %d", ab, tc.reason)
				}
			case bytes.Equal(tc.then, EncodePDU(&AReleaseRQ{})):
				p, err := r.read()
				if _, ok := p.(*AReleaseRP); !ok {
					t.Fatalf("got %T %v, want A-RELEASE-RP", p, err)
				}
			default:
				r.expectClosed(5 * time.Second)
			}
			stillServing(t, addr)
		})
	}
}
