package ingest_test

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/archive/fs"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/dimse/dimsetest"
	"github.com/lumenpacs/lumen/index/indextest"
	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// TestNoAckBeforeCommit: a C-STORE is answered only once the index transaction holding
// its record has committed, whichever batch it shares (group commit). Every index
// commit is held in turn while four associations store at once: when a commit is held
// and every blob is already durable in the store, no more responses have arrived than
// instances committed before it; each response comes once the commit of its instance is
// let go, and all are successes.
func TestNoAckBeforeCommit(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	const assocs = 4
	ct, err := gen.CTSeries(gen.Options{Seed: 23}, assocs, 16, 16)
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
			entered, release := make(chan int, 2*assocs), make(chan struct{})
			idx.BeforeCommit = func(n int) {
				entered <- n
				<-release
			}
			let := func() { release <- struct{}{} }
			var once sync.Once
			open := func() { once.Do(func() { close(release) }) } // no commit held any more
			p := &ingest.Pipeline{Store: st, Index: idx, Logger: quiet}
			port := dimsetest.Serve(t, &dimse.Server{AETitle: "LUMEN", Logger: quiet, StoreHandler: &ingest.StoreSCP{Pipeline: p, Log: quiet}})
			t.Cleanup(open) // before the server's shutdown, which waits for the handlers
			ts, _ := dataset(t, ct[0].Data)
			type result struct {
				code uint16
				err  error
			}
			results := make(chan result, assocs)
			for i := range assocs {
				c, err := dimse.Dial(context.Background(), "127.0.0.1:"+strconv.Itoa(port), dimse.DialConfig{
					CallingAETitle: "MODALITY", CalledAETitle: "LUMEN", Timeout: 20 * time.Second,
					Contexts: []dimse.ProposedContext{{AbstractSyntax: ct[i].SOPClassUID, TransferSyntaxes: []string{ts}}}})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Release()
				_, ds := dataset(t, ct[i].Data)
				go func() {
					status, err := c.Store(context.Background(), ct[i].SOPClassUID, ct[i].SOPInstanceUID, ts, bytes.NewReader(ds))
					results <- result{status.Code, err}
				}()
			}
			defer open() // on failure, before the associations' release
			committed, answered, batches := 0, 0, 0
			answer := func(r result) {
				if r.err != nil || r.code != dimse.StatusSuccess {
					t.Fatalf("C-STORE: 0x%04X, %v", r.code, r.err)
				}
				if answered++; answered > committed {
					t.Fatalf("%d C-STOREs answered while %d instances were committed", answered, committed)
				}
			}
			for committed < assocs {
				var n int // a commit of n instances is held
				for n == 0 {
					select {
					case n = <-entered:
					case r := <-results:
						answer(r)
					case <-time.After(time.Minute):
						t.Fatalf("no commit after %d instances committed, %d answered", committed, answered)
					}
				}
				batches++
				// Every blob durable (renamed into place): an answer not waiting for the
				// index would be on its way now.
				for deadline := time.Now().Add(20 * time.Second); len(blobKeys(t, st)) < assocs; time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("%d blobs stored", len(blobKeys(t, st)))
					}
				}
				for wait := time.After(100 * time.Millisecond); ; {
					select {
					case r := <-results:
						answer(r)
						continue
					case <-wait:
					}
					break
				}
				committed += n
				let()
			}
			for answered < assocs {
				answer(<-results)
			}
			if c, err := idx.Counts(context.Background()); err != nil || c.Instances != assocs {
				t.Fatalf("counts %+v, %v", c, err)
			}
			t.Logf("%d instances in %d commits", assocs, batches)
		})
	}
}

func blobKeys(t *testing.T, st *fs.Store) []string {
	t.Helper()
	var keys []string
	for info, err := range st.List(context.Background(), ingest.BlobPrefix) {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, info.Key)
	}
	return keys
}
