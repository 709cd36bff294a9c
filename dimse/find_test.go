package dimse

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// endless answers every C-FIND with matches until the request is cancelled.
type endless struct{ sent atomic.Int64 }

func (e *endless) HandleFind(ctx context.Context, req *FindRequest, send func([]byte, bool) error) Status {
	for i := 0; i < 1_000_000; i++ {
		id := []byte(fmt.Sprintf("\x08\x00\x18\x00UI\x0a\x001.2.%06d", i%1000000))[:18]
		if err := send(id, false); err != nil {
			return Status{Code: StatusCancel}
		}
		e.sent.Add(1)
	}
	return Status{Code: StatusSuccess}
}

func TestFindCancel(t *testing.T) {
	h := &endless{}
	addr := startServer(t, &Server{FindHandler: h})
	c, err := Dial(context.Background(), addr, DialConfig{CalledAETitle: "LUMEN", Contexts: []ProposedContext{{AbstractSyntax: StudyRootFind, TransferSyntaxes: []string{ExplicitVRLittleEndian}}, {AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	n := 0
	st, err := c.Find(context.Background(), StudyRootFind, []byte{0x08, 0x00, 0x52, 0x00, 'C', 'S', 6, 0, 'I', 'M', 'A', 'G', 'E', ' '}, func([]byte) bool { n++; return n < 10 })
	if err != nil || st.Code != StatusCancel {
		t.Fatalf("find = %+v, %v after %d matches", st, err, n)
	}
	if h.sent.Load() >= 1_000_000 {
		t.Fatal("handler was not stopped by C-CANCEL")
	}
	// The association is still usable.
	if st, err := c.Echo(context.Background()); err != nil || st.Code != StatusSuccess {
		t.Fatalf("echo after cancel: %+v %v", st, err)
	}
}
