package send_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/archive/fs"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/dimse/dimsetest"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/indextest"
	"github.com/lumenpacs/lumen/index/sqlindex"
	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/lumenpacs/lumen/service/send"
	"github.com/lumenpacs/lumen/service/transcode"
	"github.com/lumenpacs/lumen/testdata/gen"
)

var quiet = slog.New(slog.DiscardHandler)

// forwardJobs counts the queued forward jobs.
func forwardJobs(t *testing.T, idx *sqlindex.DB) int {
	t.Helper()
	n, err := idx.JobCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n[index.JobForward]
}

// TestForwarder: instances ingested under forwarding rules get their forward jobs in
// the index's queue (once per destination, none back to the sender); the Forwarder
// sends each to its destination over a real association, byte for byte as stored, and
// completes the job. A job whose instance is gone, or whose destination is not a known
// peer, is dropped; one whose destination is down is retried, then given up after
// MaxAttempts. The queue ends empty.
func TestForwarder(t *testing.T) {
	objs, err := gen.CTSeries(gen.Options{Seed: 31}, 3, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	mr, err := gen.MRSeries(gen.Options{Seed: 31}, 1, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	for _, be := range indextest.Backends {
		t.Run(be, func(t *testing.T) {
			st, err := fs.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			idx := indextest.Open(t, be)
			dest := &dimsetest.Recorder{}
			destPort := dimsetest.Serve(t, &dimse.Server{AETitle: "DEST", StoreHandler: dest, Logger: quiet})
			down, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			downPort := down.Addr().(*net.TCPAddr).Port
			down.Close()
			peers := &send.Peers{List: []send.Peer{
				{AETitle: "DEST", Host: "127.0.0.1", Port: destPort},
				{AETitle: "DOWN", Host: "127.0.0.1", Port: downPort},
				{AETitle: "MODALITY", Host: "127.0.0.1", Port: destPort},
			}}

			// Ingest under the rules, as cmd/lumen wires them.
			jobs := send.ForwardJobs([]send.Rule{
				{Modality: "CT", Destination: "DEST"},
				{CallingAE: "MODALITY", Destination: "DEST"}, // DEST again: one job
				{Destination: "MODALITY"},                    // the sender: none
				{Modality: "MR", Destination: "DOWN"},
			})
			p := &ingest.Pipeline{Store: st, Index: idx, Logger: quiet,
				Jobs: func(in *index.Instance, src ingest.Source) []index.JobSpec { return jobs(in, src.CallingAE) }}
			stored := map[string][2]string{}
			for _, o := range append(slices.Clone(objs), mr...) {
				if _, err := p.IngestFile(context.Background(), bytes.NewReader(o.Data), int64(len(o.Data)), ingest.Source{CallingAE: "MODALITY", Via: "dimse"}); err != nil {
					t.Fatal(err)
				}
				r := bytes.NewReader(o.Data)
				ts, err := transcode.SkipMeta(r)
				if err != nil {
					t.Fatal(err)
				}
				stored[o.SOPInstanceUID] = [2]string{string(o.Data[len(o.Data)-r.Len():]), ts}
			}
			// Each CT to DEST; the MR to DEST (sent by MODALITY) and to DOWN.
			if n := forwardJobs(t, idx); n != len(objs)+2 {
				t.Fatalf("%d forward jobs queued, want %d (one per instance and destination, none to the sender)", n, len(objs)+2)
			}
			// A job whose instance was deleted since, and one to a peer Lumen does not
			// know.
			now := time.Now().Add(-time.Second)
			if err := idx.Enqueue(context.Background(), index.JobForward, index.ForwardKey("DEST", "1.2.3.404"), now); err != nil {
				t.Fatal(err)
			}
			if err := idx.Enqueue(context.Background(), index.JobForward, index.ForwardKey("NOWHERE", objs[0].SOPInstanceUID), now); err != nil {
				t.Fatal(err)
			}

			f := &send.Forwarder{Queue: idx, Index: idx, Peers: peers, Worker: "test", Log: quiet, Retry: time.Hour, MaxAttempts: 2,
				Sender: &send.Sender{Store: st, CallingAETitle: "LUMEN", Logger: quiet}}
			// run runs the forwarder until done reports true (or 20 s pass).
			run := func(done func() bool) {
				ctx, cancel := context.WithCancel(context.Background())
				stopped := make(chan struct{})
				go func() { defer close(stopped); f.Run(ctx) }()
				for deadline := time.Now().Add(20 * time.Second); !done() && time.Now().Before(deadline); {
					time.Sleep(50 * time.Millisecond)
				}
				cancel()
				select {
				case <-stopped:
				case <-time.After(10 * time.Second):
					t.Fatal("Run does not return once its context ends")
				}
			}
			// Everything is sent or dropped but the forward to DOWN, retried in an hour.
			run(func() bool { return len(dest.Received()) >= len(objs)+1 && forwardJobs(t, idx) <= 1 })
			if n := forwardJobs(t, idx); n != 1 {
				t.Fatalf("%d forward jobs left, want the one to DOWN, to be retried", n)
			}
			if j, err := idx.ClaimJob(context.Background(), index.JobForward, "test", time.Minute); err != nil || j != nil {
				t.Fatalf("the failed forward is due again at once: %+v %v", j, err)
			}
			// Due again: its second attempt fails too, and it is given up (MaxAttempts 2).
			if err := idx.Enqueue(context.Background(), index.JobForward, index.ForwardKey("DOWN", mr[0].SOPInstanceUID), now); err != nil {
				t.Fatal(err)
			}
			run(func() bool { return forwardJobs(t, idx) == 0 })
			if n := forwardJobs(t, idx); n != 0 {
				t.Fatalf("%d forward jobs left, want the forward to DOWN given up", n)
			}
			class := map[string]string{mr[0].SOPInstanceUID: mr[0].SOPClassUID}
			want := []string{mr[0].SOPInstanceUID}
			for _, o := range objs {
				want = append(want, o.SOPInstanceUID)
				class[o.SOPInstanceUID] = o.SOPClassUID
			}
			received := dest.Received()
			var got []string
			for _, a := range received {
				got = append(got, a.SOPInstanceUID)
			}
			arrived := slices.Clone(got)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("DEST received %v, want each instance once: %v", arrived, want)
			}
			for _, a := range received {
				s := stored[a.SOPInstanceUID]
				if a.CallingAETitle != "LUMEN" || a.SOPClassUID != class[a.SOPInstanceUID] || a.TransferSyntaxUID != s[1] || string(a.Data) != s[0] {
					t.Errorf("%s arrived from %q as %s in %s (%d bytes, identical: %v), want from LUMEN in %s (%d bytes)",
						a.SOPInstanceUID, a.CallingAETitle, a.SOPClassUID, a.TransferSyntaxUID, len(a.Data), string(a.Data) == s[0], s[1], len(s[0]))
				}
			}
		})
	}
}
