package main

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// reportCatcher is a storage commitment SCU's listener for results sent on a new
// association.
type reportCatcher chan *dimse.EventReport

func (r reportCatcher) HandleEventReport(_ context.Context, e *dimse.EventReport) dimse.Status {
	r <- e
	return dimse.Status{Code: dimse.StatusSuccess}
}

// commitResult decodes an N-EVENT-REPORT's event information: the transaction, the
// committed UIDs and the failed UIDs with their reasons.
func commitResult(t *testing.T, e *dimse.EventReport) (string, []string, map[string]uint16) {
	t.Helper()
	f, err := dcm.ParseDataset(bytes.NewReader(e.EventInformation), e.TransferSyntaxUID, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ok []string
	failed := map[string]uint16{}
	if s := f.Dataset.Get(dcm.TagReferencedSOPSequence); s != nil {
		for _, it := range s.Items {
			ok = append(ok, it.String(dcm.TagReferencedSOPInstanceUID))
		}
	}
	if s := f.Dataset.Get(dcm.TagFailedSOPSequence); s != nil {
		for _, it := range s.Items {
			r, _ := it.Int(dcm.TagFailureReason)
			failed[it.String(dcm.TagReferencedSOPInstanceUID)] = uint16(r)
		}
	}
	return f.Dataset.String(dcm.TagTransactionUID), ok, failed
}

// TestStorageCommitment requests commitment for stored and unknown instances with
// Lumen's own SCU: the N-ACTION is answered, and the N-EVENT-REPORT lists each instance
// correctly, on the same association when it stays open, else on a new association to
// the requestor's configured address.
func TestStorageCommitment(t *testing.T) {
	catcher := make(reportCatcher, 4)
	modality := &dimse.Server{AETitle: "MODALITY", EventReportHandler: catcher}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go modality.Serve(ln)
	t.Cleanup(func() { modality.Shutdown(context.Background()) })
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	port, _ := strconv.Atoi(p)
	s := startLumen(t, func(c *Config) {
		c.DIMSE.Peers = []PeerConfig{{AETitle: "MODALITY", Host: "127.0.0.1", Port: port}}
	})
	corpus, err := gen.Corpus(35)
	if err != nil {
		t.Fatal(err)
	}
	stowAll(t, "http://"+s.addr.HTTP+"/dicom-web", corpus[:3])
	action := func(txn string, refs [][2]string) []byte {
		ds := &dcm.Dataset{}
		ds.Set(dcm.NewString(dcm.TagTransactionUID, "UI", txn))
		var items []*dcm.Dataset
		for _, r := range refs {
			it := &dcm.Dataset{}
			it.Set(dcm.NewString(dcm.TagReferencedSOPClassUID, "UI", r[0]))
			it.Set(dcm.NewString(dcm.TagReferencedSOPInstanceUID, "UI", r[1]))
			items = append(items, it)
		}
		ds.Set(dcm.NewSequence(dcm.TagReferencedSOPSequence, items...))
		b, err := ds.Encode(dcm.ExplicitVRLittleEndian)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	refs := [][2]string{
		{corpus[0].SOPClassUID, corpus[0].SOPInstanceUID},
		{corpus[1].SOPClassUID, corpus[1].SOPInstanceUID},
		{corpus[2].SOPClassUID, "1.2.3.4.404"},                  // never stored
		{"1.2.840.10008.5.1.4.1.1.4", corpus[2].SOPInstanceUID}, // stored, under another class
		{corpus[3].SOPClassUID, corpus[3].SOPInstanceUID},       // not stored (only 3 were)
	}
	check := func(how string, e *dimse.EventReport, txn string) {
		t.Helper()
		gotTxn, ok, failed := commitResult(t, e)
		if e.EventType != dimse.CommitmentFailuresExist || gotTxn != txn || len(ok) != 2 || ok[0] != corpus[0].SOPInstanceUID || ok[1] != corpus[1].SOPInstanceUID ||
			len(failed) != 3 || failed["1.2.3.4.404"] != 0x0112 || failed[corpus[2].SOPInstanceUID] != 0x0119 || failed[corpus[3].SOPInstanceUID] != 0x0112 {
			t.Fatalf("%s: event %d, transaction %s, committed %v, failed %v", how, e.EventType, gotTxn, ok, failed)
		}
	}
	dial := func() *dimse.Client {
		c, err := dimse.Dial(context.Background(), s.addr.DIMSE, dimse.DialConfig{CallingAETitle: "MODALITY", CalledAETitle: "LUMEN",
			Contexts: []dimse.ProposedContext{{AbstractSyntax: dimse.StorageCommitmentSOPClass, TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}}}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// The association stays open: the report comes on it.
	c := dial()
	if st, err := c.Commit(context.Background(), action("1.2.3.99.1", refs)); err != nil || st.Code != dimse.StatusSuccess {
		t.Fatalf("N-ACTION: %v %+v", err, st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := c.WaitEventReport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check("same association", e, "1.2.3.99.1")
	c.Release()

	// All stored: event type 1.
	c = dial()
	if st, err := c.Commit(context.Background(), action("1.2.3.99.2", refs[:2])); err != nil || st.Code != dimse.StatusSuccess {
		t.Fatalf("N-ACTION: %v %+v", err, st)
	}
	if e, err = c.WaitEventReport(ctx); err != nil || e.EventType != dimse.CommitmentSucceeded {
		t.Fatalf("all committed: %v %+v", err, e)
	}
	c.Release()

	// The requestor releases at once: the report comes on a new association to its
	// configured address.
	c = dial()
	if st, err := c.Commit(context.Background(), action("1.2.3.99.3", refs)); err != nil || st.Code != dimse.StatusSuccess {
		t.Fatalf("N-ACTION: %v %+v", err, st)
	}
	c.Release()
	select {
	case e := <-catcher:
		check("new association", e, "1.2.3.99.3")
		if e.Association.CallingAETitle != "LUMEN" {
			t.Fatalf("the report came from %q", e.Association.CallingAETitle)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no report on a new association")
	}

	// A malformed request is refused with a status, and the association goes on.
	c = dial()
	defer c.Release()
	if st, err := c.Commit(context.Background(), []byte{1, 2, 3}); err != nil || st.Code == dimse.StatusSuccess {
		t.Fatalf("malformed N-ACTION: %v %+v", err, st)
	}
}
