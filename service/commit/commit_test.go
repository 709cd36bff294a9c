package commit_test

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/archive/fs"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/dimse/dimsetest"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/indextest"
	"github.com/lumenpacs/lumen/index/sqlindex"
	"github.com/lumenpacs/lumen/service/audit"
	"github.com/lumenpacs/lumen/service/commit"
	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/lumenpacs/lumen/testdata/gen"
)

var quiet = slog.New(slog.DiscardHandler)

// action encodes an N-ACTION's action information: the transaction and the
// referenced (SOP class, SOP instance) pairs.
func action(t *testing.T, txn string, refs ...[2]string) []byte {
	t.Helper()
	ds := &dcm.Dataset{}
	if txn != "" {
		ds.Set(dcm.NewString(dcm.TagTransactionUID, "UI", txn))
	}
	var items []*dcm.Dataset
	for _, r := range refs {
		it := &dcm.Dataset{}
		it.Set(dcm.NewString(dcm.TagReferencedSOPClassUID, "UI", r[0]))
		it.Set(dcm.NewString(dcm.TagReferencedSOPInstanceUID, "UI", r[1]))
		items = append(items, it)
	}
	if len(items) > 0 {
		ds.Set(dcm.NewSequence(dcm.TagReferencedSOPSequence, items...))
	}
	b, err := ds.Encode(dcm.ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// result is an N-EVENT-REPORT as decoded: its event type, the transaction, the
// retrieve AE, the committed (class|instance) and the failed ones with their reasons.
type result struct {
	event      uint16
	txn, ae    string
	committed  []string
	failed     map[string]uint16
	hasFailSeq bool
}

func decode(t *testing.T, e *dimse.EventReport) result {
	t.Helper()
	f, err := dcm.ParseDataset(bytes.NewReader(e.EventInformation), e.TransferSyntaxUID, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	ds := f.Dataset
	r := result{event: e.EventType, txn: ds.String(dcm.TagTransactionUID), ae: ds.String(dcm.TagRetrieveAETitle), failed: map[string]uint16{}}
	if s := ds.Get(dcm.TagReferencedSOPSequence); s != nil {
		for _, it := range s.Items {
			if it.Get(dcm.TagFailureReason) != nil {
				t.Errorf("a committed instance has a FailureReason")
			}
			r.committed = append(r.committed, it.String(dcm.TagReferencedSOPClassUID)+"|"+it.String(dcm.TagReferencedSOPInstanceUID))
		}
	}
	if s := ds.Get(dcm.TagFailedSOPSequence); s != nil {
		r.hasFailSeq = true
		for _, it := range s.Items {
			v, _ := it.Int(dcm.TagFailureReason)
			r.failed[it.String(dcm.TagReferencedSOPClassUID)+"|"+it.String(dcm.TagReferencedSOPInstanceUID)] = uint16(v)
		}
	}
	return r
}

// env is the commitment SCP on loopback over a real index and store holding a few
// ingested CT instances.
type env struct {
	idx   *sqlindex.DB
	store *fs.Store
	trail *audit.Trail
	addr  string
	objs  []gen.Object
}

func newEnv(t *testing.T, backend string) *env {
	t.Helper()
	st, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	idx := indextest.Open(t, backend)
	objs, err := gen.CTSeries(gen.Options{Seed: 11}, 4, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	p := &ingest.Pipeline{Store: st, Index: idx, Logger: quiet}
	for _, o := range objs {
		if _, err := p.IngestFile(context.Background(), bytes.NewReader(o.Data), int64(len(o.Data)), ingest.Source{Via: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	trail := audit.New(idx, nil, quiet)
	t.Cleanup(trail.Close)
	addr := "127.0.0.1:" + strconv.Itoa(dimsetest.Serve(t, &dimse.Server{AETitle: "LUMEN", Logger: quiet,
		CommitHandler: &commit.SCP{Index: idx, Store: st, AETitle: "LUMEN", Audit: trail, Log: quiet}}))
	return &env{idx: idx, store: st, trail: trail, addr: addr, objs: objs}
}

// dial opens an association to addr as MODALITY proposing storage commitment.
func dial(t *testing.T, addr string) *dimse.Client {
	t.Helper()
	c, err := dimse.Dial(context.Background(), addr, dimse.DialConfig{CallingAETitle: "MODALITY", CalledAETitle: "LUMEN", Timeout: 20 * time.Second,
		Contexts: []dimse.ProposedContext{{AbstractSyntax: dimse.StorageCommitmentSOPClass, TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Release() })
	return c
}

// commitOn sends the N-ACTION and waits for the report on the same association.
func commitOn(t *testing.T, c *dimse.Client, info []byte) result {
	t.Helper()
	if st, err := c.Commit(context.Background(), info); err != nil || st.Code != dimse.StatusSuccess {
		t.Fatalf("N-ACTION: %v 0x%04X %q", err, st.Code, st.ErrorComment)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := c.WaitEventReport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, e)
}

const mrClass = "1.2.840.10008.5.1.4.1.1.4"

func ref(o gen.Object) [2]string { return [2]string{o.SOPClassUID, o.SOPInstanceUID} }
func key(r [2]string) string     { return r[0] + "|" + r[1] }

// TestCommit: an instance is committed when the index has it under the requested SOP
// class and its object is in the store. The report (on the requestor's association)
// is event type 1 when all are, else 2 with a FailedSOPSequence giving each failure's
// reason: 0x0112 no such instance (never stored, or its object gone from the store),
// 0x0119 class/instance conflict.
func TestCommit(t *testing.T) {
	for _, be := range indextest.Backends {
		t.Run(be, func(t *testing.T) {
			e := newEnv(t, be)
			o := e.objs
			// The object of o[3] disappears from the store behind the index's back.
			in, err := e.idx.Instance(context.Background(), o[3].SOPInstanceUID)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.store.Delete(context.Background(), in.BlobKey); err != nil {
				t.Fatal(err)
			}
			unknown := [2]string{o[0].SOPClassUID, "1.2.3.4.404"}
			clash := [2]string{mrClass, o[2].SOPInstanceUID}
			c := dial(t, e.addr)
			for _, tc := range []struct {
				name      string
				refs      [][2]string
				event     uint16
				committed [][2]string
				failed    map[string]uint16
			}{
				{"all committed", [][2]string{ref(o[0]), ref(o[1]), ref(o[2])}, dimse.CommitmentSucceeded,
					[][2]string{ref(o[0]), ref(o[1]), ref(o[2])}, nil},
				{"unknown instance and SOP class clash", [][2]string{ref(o[0]), unknown, clash, ref(o[1])}, dimse.CommitmentFailuresExist,
					[][2]string{ref(o[0]), ref(o[1])}, map[string]uint16{key(unknown): 0x0112, key(clash): 0x0119}},
				{"object removed from the store", [][2]string{ref(o[2]), ref(o[3])}, dimse.CommitmentFailuresExist,
					[][2]string{ref(o[2])}, map[string]uint16{key(ref(o[3])): 0x0112}},
				{"nothing committed", [][2]string{unknown}, dimse.CommitmentFailuresExist,
					nil, map[string]uint16{key(unknown): 0x0112}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					txn := "1.2.3.99." + strconv.Itoa(int(time.Now().UnixNano()%1e9))
					r := commitOn(t, c, action(t, txn, tc.refs...))
					var want []string
					for _, c := range tc.committed {
						want = append(want, key(c))
					}
					if r.event != tc.event || r.txn != txn || r.ae != "LUMEN" || !slices.Equal(r.committed, want) {
						t.Errorf("event %d, transaction %s, AE %q, committed %v; want %d, %s, LUMEN, %v", r.event, r.txn, r.ae, r.committed, tc.event, txn, want)
					}
					if r.hasFailSeq != (len(tc.failed) > 0) || len(r.failed) != len(tc.failed) {
						t.Errorf("failed %v (sequence present: %v), want %v", r.failed, r.hasFailSeq, tc.failed)
					}
					for k, v := range tc.failed {
						if r.failed[k] != v {
							t.Errorf("failure reason of %s: 0x%04X, want 0x%04X", k, r.failed[k], v)
						}
					}
				})
			}
			// Each request is audited: how many were committed, and the outcome.
			list, err := e.trail.Search(context.Background(), index.AuditQuery{Actor: "ae:MODALITY", Action: "commit"})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range list {
				got = append(got, r.Detail+" "+r.Outcome)
			}
			want := []string{"N-ACTION 0 committed, 1 failed 0x0112", "N-ACTION 1 committed, 1 failed 0x0112", "N-ACTION 2 committed, 2 failed 0x0112", "N-ACTION 3 committed, 0 failed ok"}
			if !slices.Equal(got, want) {
				t.Errorf("audit records %q, want %q", got, want)
			}
		})
	}
}

// TestCommitRefusals: action information that does not parse, or lacks the
// transaction or the references, is refused (C000 with a comment) and no report
// follows; an index that cannot be read fails each instance with 0x0110 (processing
// failure), never "no such instance".
func TestCommitRefusals(t *testing.T) {
	for _, be := range indextest.Backends {
		t.Run(be, func(t *testing.T) {
			e := newEnv(t, be)
			c := dial(t, e.addr)
			for _, tc := range []struct {
				name    string
				info    []byte
				comment string
			}{
				{"does not parse", []byte{0x08, 0x00, 0x95, 0x11, 'U', 'I', 0x40, 0x00, '1', '.'}, "action information does not parse"},
				{"no transaction", action(t, "", ref(e.objs[0])), "TransactionUID or ReferencedSOPSequence missing"},
				{"invalid transaction UID", action(t, "not.a.uid.x", ref(e.objs[0])), "TransactionUID or ReferencedSOPSequence missing"},
				{"no references", action(t, "1.2.3.99.5"), "TransactionUID or ReferencedSOPSequence missing"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					st, err := c.Commit(context.Background(), tc.info)
					if err != nil || st.Code != dimse.StatusCannotUnderstand || st.ErrorComment != tc.comment {
						t.Fatalf("%v 0x%04X %q, want 0xC000 %q", err, st.Code, st.ErrorComment, tc.comment)
					}
				})
			}
			// No report follows a refusal: the next report on the association answers
			// the next request.
			if r := commitOn(t, c, action(t, "1.2.3.99.6", ref(e.objs[0]))); r.txn != "1.2.3.99.6" || r.event != dimse.CommitmentSucceeded {
				t.Fatalf("after the refusals: %+v", r)
			}

			// The index is unavailable: processing failure.
			broken := indextest.Open(t, be)
			broken.Close()
			addr := "127.0.0.1:" + strconv.Itoa(dimsetest.Serve(t, &dimse.Server{AETitle: "LUMEN", Logger: quiet, CommitHandler: &commit.SCP{Index: broken, Store: e.store, AETitle: "LUMEN", Log: quiet}}))
			r := commitOn(t, dial(t, addr), action(t, "1.2.3.99.7", ref(e.objs[0]), ref(e.objs[1])))
			if r.event != dimse.CommitmentFailuresExist || len(r.committed) != 0 || r.failed[key(ref(e.objs[0]))] != 0x0110 || r.failed[key(ref(e.objs[1]))] != 0x0110 {
				t.Errorf("index unavailable: %+v, want both failed with 0x0110", r)
			}
		})
	}
}
