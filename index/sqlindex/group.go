package sqlindex

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/lumenpacs/lumen/index"
)

// Group commit. Put queues its instance; the caller that finds no commit running leads:
// it takes the queue (up to MaxBatch instances), indexes them in one transaction and
// commits once (one WAL fsync in SQLite, one commit in PostgreSQL), answers every Put
// of the batch, and goes on with the next batch until its own instance's is done; then
// it hands the lead to the first Put still waiting, and returns. A lone Put leads at
// once and commits alone, as a Put always did: batches form only from Puts that arrive
// while a commit is running, so batching adds no waiting.
//
// Each Put returns only once the transaction holding its row has committed (or failed:
// then with the error a Put of its own would return). An instance's failure does not
// fail the others: an answer decided before anything of it was written (its SOP
// Instance UID is indexed or rejected already) is its own; any other failure rolls the
// batch back and every instance of it is indexed again in a transaction of its own.
// When the commit itself fails, its outcome is unknown to every instance of the batch,
// exactly as for a lone Put's commit (ingest settles it by reading the index back). A Put
// whose context has ended when its batch is taken is answered with the context's error;
// a batch's transaction is cancelled only once the contexts of all its Puts have ended.

// DefaultMaxBatch bounds the instances of one group commit.
const DefaultMaxBatch = 64

// putRequest is a Put waiting for its batch.
type putRequest struct {
	ctx  context.Context
	inst *index.Instance
	err  error
	// wake receives false once err is the answer, or true when this Put is to lead
	// the commits (its instance not indexed yet).
	wake chan bool
}

func (x *DB) maxBatch() int {
	if x.MaxBatch > 0 {
		return x.MaxBatch
	}
	return DefaultMaxBatch
}

// Put implements index.Index. Concurrent Puts share transactions (group commit, above).
func (x *DB) Put(ctx context.Context, inst *index.Instance) error {
	r := &putRequest{ctx: ctx, inst: inst, wake: make(chan bool, 1)}
	x.gmu.Lock()
	if x.closed {
		x.gmu.Unlock()
		return fmt.Errorf("index: put %s: the index is closed", inst.SOPInstanceUID)
	}
	x.queue = append(x.queue, r)
	lead := !x.leading
	x.leading = true
	x.gmu.Unlock()
	if !lead && !<-r.wake {
		return r.err
	}
	x.lead(r)
	return r.err
}

// lead commits batches from the queue until own's is done, then passes the lead on.
func (x *DB) lead(own *putRequest) {
	for done := false; !done; {
		x.gmu.Lock()
		n := min(len(x.queue), x.maxBatch())
		batch := slices.Clone(x.queue[:n])
		x.queue = slices.Delete(x.queue, 0, n)
		x.gmu.Unlock()
		done = slices.Contains(batch, own)
		x.commitBatch(batch)
	}
	x.gmu.Lock()
	if len(x.queue) == 0 {
		x.leading = false
		x.gcond.Broadcast()
		x.gmu.Unlock()
		return
	}
	next := x.queue[0]
	x.gmu.Unlock()
	next.wake <- true
}

// commitBatch indexes a batch and answers each of its Puts.
func (x *DB) commitBatch(batch []*putRequest) {
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = fmt.Errorf("index: put %s: %w", r.inst.SOPInstanceUID, err)
			continue
		}
		live = append(live, r)
	}
	switch len(live) {
	case 0:
	case 1:
		r := live[0]
		r.err = x.putOne(r.ctx, r.inst)
	default:
		x.putBatch(live)
	}
	for _, r := range batch {
		r.wake <- false
	}
}

// errRedo marks a batch rolled back so that its instances are indexed one by one.
type errRedo struct{ err error }

func (e *errRedo) Error() string { return e.err.Error() }

// putBatch indexes several instances in one transaction (see Put).
func (x *DB) putBatch(live []*putRequest) {
	// One order for every batch (study, series, instance), so that two batches
	// (replicas sharing PostgreSQL) take their row locks in the same order.
	slices.SortFunc(live, func(a, b *putRequest) int {
		return cmp.Or(cmp.Compare(a.inst.StudyInstanceUID, b.inst.StudyInstanceUID),
			cmp.Compare(a.inst.SeriesInstanceUID, b.inst.SeriesInstanceUID),
			cmp.Compare(a.inst.SOPInstanceUID, b.inst.SOPInstanceUID))
	})
	// The batch belongs to all of its callers: it is cancelled only once every one of
	// them has given up (one leaving does not cancel the others).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var left atomic.Int64
	left.Store(int64(len(live)))
	for _, r := range live {
		stop := context.AfterFunc(r.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
	}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var committing bool
		committing, err = x.batchTx(ctx, live)
		switch {
		case err == nil:
			for _, r := range live {
				if r.err != nil {
					r.err = x.putError(r.ctx, r.inst, r.err)
				}
			}
			return
		case committing && (x.d.IsRetryable == nil || !x.d.IsRetryable(err)):
			// The commit failed: whether it happened is unknown, for each instance.
			for _, r := range live {
				if r.err == nil {
					r.err = fmt.Errorf("index: put %s: %w", r.inst.SOPInstanceUID, err)
				} else {
					r.err = x.putError(r.ctx, r.inst, r.err)
				}
			}
			return
		case x.d.IsRetryable != nil && x.d.IsRetryable(err):
			time.Sleep(time.Duration(attempt+1) * 20 * time.Millisecond)
			continue
		}
		break
	}
	// Rolled back (an instance failed after writing, or the transaction could not
	// start or kept failing): each instance on its own, as if it had come alone.
	for _, r := range live {
		r.err = x.putOne(r.ctx, r.inst)
	}
}

// batchTx runs one transaction over live. committing reports an error of the commit
// itself (outcome unknown) rather than of the work before it (rolled back).
func (x *DB) batchTx(ctx context.Context, live []*putRequest) (committing bool, err error) {
	if x.d.SerializeWrites {
		x.wmu.Lock()
		defer x.wmu.Unlock()
	}
	tx, err := x.writer().BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	for _, r := range live {
		r.err = x.putTx(ctx, tx, r.inst)
		if r.err == nil || errors.Is(r.err, index.ErrExists) || errors.Is(r.err, index.ErrRejected) {
			continue // ErrExists and ErrRejected are answered before anything is written
		}
		tx.Rollback()
		return false, &errRedo{r.err}
	}
	if x.BeforeCommit != nil {
		x.BeforeCommit(len(live))
	}
	if err := tx.Commit(); err != nil {
		return true, err
	}
	x.committed()
	return false, nil
}

// closeGroup refuses further Puts and waits for the commits in progress.
func (x *DB) closeGroup() {
	x.gmu.Lock()
	x.closed = true
	for x.leading {
		x.gcond.Wait()
	}
	x.gmu.Unlock()
}
