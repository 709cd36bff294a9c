package dimse

import (
	"context"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// fixedCommit answers every storage commitment request with one report.
type fixedCommit struct{}

func (fixedCommit) HandleCommit(context.Context, *CommitRequest) (Status, uint16, []byte) {
	return Status{Code: StatusSuccess}, CommitmentSucceeded, []byte{}
}

// countReports counts the reports that arrive on new associations.
type countReports struct{ n atomic.Int32 }

func (c *countReports) HandleEventReport(context.Context, *EventReport) Status {
	c.n.Add(1)
	return Status{Code: StatusSuccess}
}

// TestCommitReportAnsweredThenReleased: a requestor that answers the N-EVENT-REPORT on
// its association and releases at once has had its report; it must not get it a
// second time on a new association (the response and the release arrive together).
func TestCommitReportAnsweredThenReleased(t *testing.T) {
	caught := &countReports{}
	peer := &Server{AETitle: "MODALITY", EventReportHandler: caught}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go peer.Serve(ln)
	t.Cleanup(func() { peer.Shutdown(context.Background()) })
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	port, _ := strconv.Atoi(p)
	// The report's sender is slow to look for the response: by then the requestor has
	// answered and released.
	addr := startServer(t, &Server{CommitHandler: fixedCommit{}, reportSent: func() { time.Sleep(20 * time.Millisecond) },
		Policy: Policy{Peers: []Peer{{AETitle: "MODALITY", Host: "127.0.0.1", Port: port}}}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 0; i < 20; i++ {
		c, err := Dial(ctx, addr, DialConfig{CallingAETitle: "MODALITY", CalledAETitle: "LUMEN",
			Contexts: []ProposedContext{{AbstractSyntax: StorageCommitmentSOPClass, TransferSyntaxes: []string{ExplicitVRLittleEndian}}}})
		if err != nil {
			t.Fatal(err)
		}
		if st, err := c.Commit(ctx, []byte{}); err != nil || st.Code != StatusSuccess {
			t.Fatalf("N-ACTION: %v %+v", err, st)
		}
		if _, err := c.WaitEventReport(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Release(); err != nil {
			t.Fatal(err)
		}
	}
	// A second delivery would be dialled at once (its first attempt has no delay).
	time.Sleep(500 * time.Millisecond)
	if n := caught.n.Load(); n != 0 {
		t.Fatalf("%d reports delivered twice, again on a new association", n)
	}
}
