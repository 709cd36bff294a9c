package send

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/lumenpacs/lumen/index"
)

// Rule forwards newly stored instances that match to a known peer. Empty match fields
// match anything.
type Rule struct {
	CallingAE   string // the sender's AE title (DIMSE); "" for any source
	Modality    string // the series' Modality
	Destination string
}

// ForwardJobs returns the ingest hook that queues a JobForward for each rule an instance
// matches, in the transaction that indexes it: once per destination, and never back to
// the sender (callingAE). It is nil without rules.
func ForwardJobs(rules []Rule) func(in *index.Instance, callingAE string) []index.JobSpec {
	if len(rules) == 0 {
		return nil
	}
	return func(in *index.Instance, callingAE string) []index.JobSpec {
		var jobs []index.JobSpec
		seen := map[string]bool{}
		for _, r := range rules {
			if r.CallingAE != "" && !strings.EqualFold(r.CallingAE, callingAE) || r.Modality != "" && !strings.EqualFold(r.Modality, in.Modality) {
				continue
			}
			if seen[r.Destination] || strings.EqualFold(r.Destination, callingAE) {
				continue // once per destination, and never back to the sender
			}
			seen[r.Destination] = true
			jobs = append(jobs, index.JobSpec{Kind: index.JobForward, Key: index.ForwardKey(r.Destination, in.SOPInstanceUID)})
		}
		return jobs
	}
}

// Forwarder runs forward jobs from the index's queue: claimed in batches, sent one
// association per destination, retried with backoff, given up after MaxAttempts.
type Forwarder struct {
	Queue index.Queue
	Index interface {
		Instance(ctx context.Context, sopInstanceUID string) (*index.Instance, error)
	}
	Sender *Sender
	Peers  *Peers
	// Retry is the delay before the first retry of a failed forward (default 30 s); it
	// doubles with each attempt, up to an hour.
	Retry time.Duration
	// MaxAttempts is how many times a forward is tried before it is given up and logged
	// (default 10).
	MaxAttempts int
	// Worker names this process in the queue's leases.
	Worker string
	Log    *slog.Logger
}

// Run claims and sends forward jobs until ctx ends: Jobs run by an index.Worker of its
// own.
func (f *Forwarder) Run(ctx context.Context) {
	w := &index.Worker{Queue: f.Queue, Name: f.Worker, Log: f.Log}
	w.Handle(f.Jobs())
	w.Run(ctx)
}

// Jobs is the kind of job (index.JobForward) that sends instances to peers: up to 100
// claimed at once (the queue is polled every second when none is due or it fails),
// sent one association per destination, retried after Retry doubled with each attempt
// up to an hour, given up after MaxAttempts.
func (f *Forwarder) Jobs() index.JobKind {
	return index.JobKind{
		Kind:      index.JobForward,
		Batch:     100,
		Poll:      time.Second,
		QueueWait: time.Second,
		Lease:     5 * time.Minute,
		Do:        f.runBatch,
		OnError: func(j *index.Job, err error) {
			// A forward not settled is not logged: it runs again when its lease ends.
			if j == nil {
				f.Log.Warn("forward: queue unavailable", "err", err)
			}
		},
	}
}

func (f *Forwarder) runBatch(ctx context.Context, batch []*index.Job, settle func(*index.Job, index.Outcome)) {
	// Group by destination, in claim order.
	byDest := map[string][]*index.Job{}
	var order []string
	for _, j := range batch {
		dest, _, _ := index.ParseForwardKey(j.Key)
		if _, ok := byDest[dest]; !ok {
			order = append(order, dest)
		}
		byDest[dest] = append(byDest[dest], j)
	}
	for _, dest := range order {
		jobs := byDest[dest]
		dst, ok := f.Peers.Destination(dest)
		if !ok {
			f.Log.Warn("forward: destination is not a known peer with host and port: forwards dropped", "destination", dest, "jobs", len(jobs))
			for _, j := range jobs {
				settle(j, index.Done)
			}
			continue
		}
		var list []index.Instance
		var listJobs []*index.Job
		for _, j := range jobs {
			_, uid, _ := index.ParseForwardKey(j.Key)
			in, err := f.Index.Instance(ctx, uid)
			switch {
			case errors.Is(err, index.ErrNotFound):
				settle(j, index.Done) // deleted since: nothing to forward
			case err != nil:
				settle(j, f.retry(j, err.Error()))
			default:
				list = append(list, *in)
				listJobs = append(listJobs, j)
			}
		}
		done := 0
		err := f.Sender.Send(ctx, dst, list, Options{}, func(r Result) error {
			j := listJobs[done]
			done++
			if r.Failed() {
				reason := r.Status.ErrorComment
				if r.Err != nil {
					reason = r.Err.Error()
				}
				settle(j, f.retry(j, reason))
				return nil
			}
			settle(j, index.Done)
			return nil
		})
		if err != nil {
			for _, j := range listJobs[done:] {
				settle(j, f.retry(j, err.Error()))
			}
		}
		if done > 0 {
			f.Log.Info("forward: sent", "destination", dest, "instances", done)
		}
	}
}

// retry is the outcome of a failed forward: run again later, or given up (done) after
// MaxAttempts.
func (f *Forwarder) retry(j *index.Job, reason string) index.Outcome {
	max := f.MaxAttempts
	if max <= 0 {
		max = 10
	}
	if j.Attempts+1 >= max {
		f.Log.Warn("forward: given up", "job", j.Key, "attempts", j.Attempts+1, "reason", reason)
		return index.Done
	}
	d := f.Retry
	if d <= 0 {
		d = 30 * time.Second
	}
	for i := 0; i < j.Attempts && d < time.Hour; i++ {
		d *= 2
	}
	f.Log.Info("forward: will retry", "job", j.Key, "attempt", j.Attempts+1, "after", min(d, time.Hour).String(), "reason", reason)
	return index.RetryAfter(min(d, time.Hour))
}
