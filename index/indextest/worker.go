package indextest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/index"
)

// testWorker checks index.Worker on the backend's queue: jobs are claimed in batches
// and completed, retried after their delay with the attempt counted, given up, settled
// after the worker's context ends; the loop goes on when the queue fails; cancelling
// stops it promptly; and a slow kind does not hold up another.
func testWorker(t *testing.T, x index.Index) {
	q, ok := x.(index.Queue)
	if !ok {
		t.Fatal("the index does not implement index.Queue")
	}
	enqueue := func(t *testing.T, kind string, keys ...string) {
		t.Helper()
		for _, k := range keys {
			if err := q.Enqueue(ctx(t), kind, k, time.Now().Add(-time.Second)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// empty checks that no job of kind is left to claim.
	empty := func(t *testing.T, kind string) {
		t.Helper()
		if j, err := q.ClaimJob(ctx(t), kind, "check", time.Minute); err != nil || j != nil {
			t.Fatalf("left in the queue: %+v %v", j, err)
		}
	}

	t.Run("Complete", func(t *testing.T) {
		const kind = "worker-complete"
		enqueue(t, kind, "a", "b", "c", "d", "e")
		var mu sync.Mutex
		var keys []string
		var sizes []int
		w := &index.Worker{Queue: q, Name: "w1"}
		w.Handle(index.JobKind{Kind: kind, Batch: 2, Poll: 5 * time.Millisecond,
			Do: func(ctx context.Context, jobs []*index.Job, settle func(*index.Job, index.Outcome)) {
				mu.Lock()
				sizes = append(sizes, len(jobs))
				for _, j := range jobs {
					keys = append(keys, j.Key)
				}
				mu.Unlock()
				for _, j := range jobs {
					settle(j, index.Done)
				}
			}})
		stop := runWorker(t, w)
		eventually(t, "five jobs done", func() bool { mu.Lock(); defer mu.Unlock(); return len(keys) == 5 })
		stop()
		slices.Sort(keys)
		if !slices.Equal(keys, []string{"a", "b", "c", "d", "e"}) {
			t.Fatalf("jobs done: %v", keys)
		}
		if slices.Max(sizes) != 2 {
			t.Fatalf("batch sizes %v, want at most 2 and one of 2", sizes)
		}
		empty(t, kind)
	})

	t.Run("RetryAfterDelay", func(t *testing.T) {
		const kind = "worker-retry"
		enqueue(t, kind, "r")
		const delay = 300 * time.Millisecond
		var mu sync.Mutex
		var attempts []int
		var at []time.Time
		w := &index.Worker{Queue: q, Name: "w1"}
		w.Handle(index.JobKind{Kind: kind, Poll: 5 * time.Millisecond,
			Do: func(ctx context.Context, jobs []*index.Job, settle func(*index.Job, index.Outcome)) {
				j := jobs[0]
				mu.Lock()
				attempts = append(attempts, j.Attempts)
				at = append(at, time.Now())
				mu.Unlock()
				if j.Attempts == 0 {
					settle(j, index.RetryAfter(delay))
				} else {
					settle(j, index.Done)
				}
			}})
		stop := runWorker(t, w)
		eventually(t, "the job retried", func() bool { mu.Lock(); defer mu.Unlock(); return len(attempts) == 2 })
		stop()
		if !slices.Equal(attempts, []int{0, 1}) {
			t.Fatalf("attempts %v, want [0 1]", attempts)
		}
		// The queue keeps milliseconds.
		if gap := at[1].Sub(at[0]); gap < delay-time.Millisecond {
			t.Fatalf("retried after %v, want %v", gap, delay)
		}
		empty(t, kind)
	})

	t.Run("GiveUp", func(t *testing.T) {
		const kind = "worker-give-up"
		enqueue(t, kind, "g")
		var mu sync.Mutex
		var attempts []int
		w := &index.Worker{Queue: q, Name: "w1"}
		w.Handle(index.JobKind{Kind: kind, Poll: 5 * time.Millisecond,
			Do: func(ctx context.Context, jobs []*index.Job, settle func(*index.Job, index.Outcome)) {
				j := jobs[0]
				mu.Lock()
				attempts = append(attempts, j.Attempts)
				mu.Unlock()
				// Always fails; given up on the third attempt.
				if j.Attempts+1 >= 3 {
					settle(j, index.Done)
				} else {
					settle(j, index.RetryAfter(0))
				}
			}})
		stop := runWorker(t, w)
		eventually(t, "three attempts", func() bool { mu.Lock(); defer mu.Unlock(); return len(attempts) == 3 })
		time.Sleep(50 * time.Millisecond) // room for a fourth, which must not come
		stop()
		if !slices.Equal(attempts, []int{0, 1, 2}) {
			t.Fatalf("attempts %v, want [0 1 2]", attempts)
		}
		empty(t, kind)
	})

	t.Run("QueueFails", func(t *testing.T) {
		const kind = "worker-queue-fails"
		enqueue(t, kind, "f")
		fq := &flakyQueue{Queue: q, claimFails: 3, completeFails: 1}
		var mu sync.Mutex
		var runs, claimErrs, settleErrs int
		var firstRun time.Time
		const queueWait = 20 * time.Millisecond
		start := time.Now()
		w := &index.Worker{Queue: fq, Name: "w1"}
		w.Handle(index.JobKind{Kind: kind, Poll: 5 * time.Millisecond, QueueWait: queueWait, Lease: 200 * time.Millisecond,
			Do: func(ctx context.Context, jobs []*index.Job, settle func(*index.Job, index.Outcome)) {
				mu.Lock()
				if runs++; runs == 1 {
					firstRun = time.Now()
				}
				mu.Unlock()
				settle(jobs[0], index.Done)
			},
			OnError: func(j *index.Job, err error) {
				mu.Lock()
				defer mu.Unlock()
				if j == nil {
					claimErrs++
				} else if j.Key == "f" {
					settleErrs++
				}
			}})
		stop := runWorker(t, w)
		// The first completion fails: the job stays leased, and runs again when the
		// lease ends.
		eventually(t, "the job run again after its settle failed", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return runs == 2
		})
		stop()
		if claimErrs != 3 || settleErrs != 1 {
			t.Fatalf("%d claim errors, %d settle errors told; want 3 and 1", claimErrs, settleErrs)
		}
		if d := firstRun.Sub(start); d < 3*queueWait {
			t.Fatalf("first run %v after start, want at least three waits of %v", d, queueWait)
		}
		empty(t, kind)

		// Without OnError, the worker's log gets the failure.
		var buf syncBuffer
		fq = &flakyQueue{Queue: q, claimFails: 1}
		w = &index.Worker{Queue: fq, Name: "w2", Log: slog.New(slog.NewTextHandler(&buf, nil))}
		w.Handle(index.JobKind{Kind: kind, Poll: 5 * time.Millisecond,
			Do: func(ctx context.Context, jobs []*index.Job, settle func(*index.Job, index.Outcome)) {}})
		stop = runWorker(t, w)
		eventually(t, "the failure logged", func() bool { return strings.Contains(buf.String(), "jobs: queue unavailable") })
		stop()
		if s := buf.String(); !strings.Contains(s, "level=WARN") || !strings.Contains(s, "kind="+kind) {
			t.Fatalf("log: %s", s)
		}
	})

	t.Run("CancelStops", func(t *testing.T) {
		const kind = "worker-cancel"
		// Idle with a long poll: cancelling wakes it.
		w := &index.Worker{Queue: q, Name: "w1"}
		w.Handle(index.JobKind{Kind: kind, Poll: time.Hour,
			Do: func(ctx context.Context, jobs []*index.Job, settle func(*index.Job, index.Outcome)) {}})
		stop := runWorker(t, w)
		time.Sleep(50 * time.Millisecond)
		stop()

		// Busy: the job sees its context end and is still settled.
		enqueue(t, kind, "c")
		started := make(chan struct{})
		w = &index.Worker{Queue: q, Name: "w2"}
		w.Handle(index.JobKind{Kind: kind, Poll: time.Hour,
			Do: func(ctx context.Context, jobs []*index.Job, settle func(*index.Job, index.Outcome)) {
				close(started)
				<-ctx.Done()
				settle(jobs[0], index.RetryAfter(0))
			}})
		stop = runWorker(t, w)
		select {
		case <-started:
		case <-time.After(20 * time.Second):
			t.Fatal("the job was not claimed")
		}
		stop()
		j, err := q.ClaimJob(ctx(t), kind, "check", time.Minute)
		if err != nil || j == nil || j.Attempts != 1 {
			t.Fatalf("the job cancelled mid-run was not retried: %+v %v", j, err)
		}
		if err := q.CompleteJob(ctx(t), j); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("KindsApart", func(t *testing.T) {
		const slow, fast = "worker-slow", "worker-fast"
		enqueue(t, slow, "s")
		enqueue(t, fast, "1", "2", "3")
		release, slowStarted := make(chan struct{}), make(chan struct{})
		var mu sync.Mutex
		var done []string
		w := &index.Worker{Queue: q, Name: "w1"}
		w.Handle(index.JobKind{Kind: slow, Poll: 5 * time.Millisecond,
			Do: func(ctx context.Context, jobs []*index.Job, settle func(*index.Job, index.Outcome)) {
				close(slowStarted)
				<-release
				settle(jobs[0], index.Done)
			}})
		w.Handle(index.JobKind{Kind: fast, Poll: 5 * time.Millisecond,
			Do: func(ctx context.Context, jobs []*index.Job, settle func(*index.Job, index.Outcome)) {
				mu.Lock()
				done = append(done, jobs[0].Key)
				mu.Unlock()
				settle(jobs[0], index.Done)
			}})
		stop := runWorker(t, w)
		select {
		case <-slowStarted:
		case <-time.After(20 * time.Second):
			t.Fatal("the slow job was not claimed")
		}
		eventually(t, "the fast kind done while the slow one works", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(done) == 3
		})
		close(release)
		stop()
		empty(t, slow)
		empty(t, fast)
	})
}

// runWorker runs w until the returned stop is called; stop fails the test unless Run
// returns within a second.
func runWorker(t *testing.T, w *index.Worker) (stop func()) {
	t.Helper()
	c, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	go func() { defer close(ended); w.Run(c) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-ended:
			case <-time.After(time.Second):
				t.Error("the worker did not stop within a second of its context ending")
				<-ended
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually waits up to 20 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// flakyQueue fails the first claimFails claims and completeFails completions.
type flakyQueue struct {
	index.Queue
	mu                        sync.Mutex
	claimFails, completeFails int
}

func (q *flakyQueue) fail(n *int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if *n > 0 {
		*n--
		return true
	}
	return false
}

func (q *flakyQueue) ClaimJob(ctx context.Context, kind, worker string, lease time.Duration) (*index.Job, error) {
	if q.fail(&q.claimFails) {
		return nil, errors.New("queue down")
	}
	return q.Queue.ClaimJob(ctx, kind, worker, lease)
}

func (q *flakyQueue) CompleteJob(ctx context.Context, j *index.Job) error {
	if q.fail(&q.completeFails) {
		return fmt.Errorf("queue down completing job %d", j.ID)
	}
	return q.Queue.CompleteJob(ctx, j)
}

// syncBuffer is a bytes.Buffer safe for a logger and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
