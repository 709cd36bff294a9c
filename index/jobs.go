package index

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Defaults of a JobKind.
const (
	// DefaultJobPoll is how long a worker waits when no job of a kind is due.
	DefaultJobPoll = time.Second
	// DefaultJobLease is how long a claimed job stays with its worker before another
	// may claim it.
	DefaultJobLease = 5 * time.Minute
	// settleTimeout bounds completing or retrying one job, which is done even after
	// the worker's context has ended.
	settleTimeout = 10 * time.Second
)

// Outcome is what became of a claimed job: done, which removes it from the queue (a job
// given up is done too), or retried after a delay, which counts the attempt.
type Outcome struct {
	// Retry releases the job to run again once After has passed; otherwise the job is
	// completed.
	Retry bool
	After time.Duration
}

// Done is the outcome of a job that succeeded or was given up.
var Done = Outcome{}

// RetryAfter is the outcome of a job to run again after d.
func RetryAfter(d time.Duration) Outcome { return Outcome{Retry: true, After: d} }

// JobKind is one kind of job that a Worker runs, and how: each kind keeps its own
// batching, timing, retry policy and log lines.
type JobKind struct {
	// Kind is the kind of job claimed, e.g. JobThumbnails.
	Kind string
	// Batch is how many due jobs are claimed before Do is called (default 1).
	Batch int
	// Poll is the wait when no job is due (default DefaultJobPoll); QueueWait the wait
	// when the queue fails before any job was claimed (default Poll).
	Poll, QueueWait time.Duration
	// Lease is how long each claimed job is held (default DefaultJobLease).
	Lease time.Duration
	// Do does the claimed jobs (at least one, at most Batch, in claim order). It calls
	// settle once for each job, as soon as that job's outcome is known; settle completes
	// or retries it in the queue before returning. A job Do leaves unsettled is claimed
	// again when its lease ends. ctx is the worker's: it ends when the worker stops.
	Do func(ctx context.Context, jobs []*Job, settle func(*Job, Outcome))
	// OnError is told when the queue fails: claiming (j is nil; not told once the
	// worker's context has ended) or settling j. Without it, the worker's Log gets a
	// warning.
	OnError func(j *Job, err error)
}

// Worker runs the jobs of the kinds registered with Handle from a Queue, each kind in
// its own goroutine so that a slow kind never delays another. Any number of workers
// (replicas) may share one queue: a claimed job is leased to one at a time.
type Worker struct {
	Queue Queue
	// Name identifies this worker in the queue's leases.
	Name string
	// Log gets the queue failures of kinds without OnError (nil: discarded).
	Log *slog.Logger

	kinds []JobKind
}

// Handle registers a kind of job. Call it before Run.
func (w *Worker) Handle(k JobKind) {
	w.kinds = append(w.kinds, k)
}

// Run claims and does jobs of every registered kind until ctx ends, then returns once
// every kind's current batch is done and settled.
func (w *Worker) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, k := range w.kinds {
		wg.Go(func() { w.run(ctx, k) })
	}
	wg.Wait()
}

// run is the loop of one kind.
func (w *Worker) run(ctx context.Context, k JobKind) {
	batch := max(k.Batch, 1)
	poll := k.Poll
	if poll <= 0 {
		poll = DefaultJobPoll
	}
	queueWait := k.QueueWait
	if queueWait <= 0 {
		queueWait = poll
	}
	lease := k.Lease
	if lease <= 0 {
		lease = DefaultJobLease
	}
	failed := k.OnError
	if failed == nil {
		failed = w.logError(k.Kind)
	}
	settle := func(j *Job, o Outcome) {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
		defer cancel()
		var err error
		if o.Retry {
			err = w.Queue.RetryJob(sctx, j, o.After)
		} else {
			err = w.Queue.CompleteJob(sctx, j)
		}
		if err != nil {
			failed(j, err)
		}
	}
	for ctx.Err() == nil {
		var jobs []*Job
		var claimErr error
		for len(jobs) < batch {
			j, err := w.Queue.ClaimJob(ctx, k.Kind, w.Name, lease)
			if err != nil {
				if ctx.Err() == nil {
					failed(nil, err)
				}
				claimErr = err
				break
			}
			if j == nil {
				break
			}
			jobs = append(jobs, j)
		}
		switch {
		case len(jobs) > 0:
			k.Do(ctx, jobs, settle)
		case claimErr != nil:
			sleep(ctx, queueWait)
		default:
			sleep(ctx, poll)
		}
	}
}

// logError is the OnError of kinds without one.
func (w *Worker) logError(kind string) func(*Job, error) {
	return func(j *Job, err error) {
		if w.Log == nil {
			return
		}
		if j == nil {
			w.Log.Warn("jobs: queue unavailable", "kind", kind, "err", err)
		} else {
			w.Log.Warn("jobs: job not settled", "kind", kind, "job", j.ID, "err", err)
		}
	}
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
