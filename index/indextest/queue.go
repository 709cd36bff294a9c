package indextest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/index"
)

// testQueue checks the work queue: indexing an instance arms its study's thumbnail job,
// a job is leased to one worker at a time, re-arming while claimed survives completion,
// retries count attempts, expired leases free the job, and concurrent workers each get
// different jobs.
func testQueue(t *testing.T, x index.Index) {
	q, ok := x.(index.Queue)
	if !ok {
		t.Fatal("the index does not implement index.Queue")
	}
	const kind = index.JobThumbnails
	past := func() time.Time { return time.Now().Add(-time.Second) }
	in := Inst(s1, "1.3.1", "CT", ip(1), "1.4.11", ctClass, ip(1))
	in.BitsAllocated = 16 // 64 × 64 × 16 bits: not a tiny image (index.ThumbnailAhead)
	in.Jobs = []index.JobSpec{{Kind: index.JobForward, Key: index.ForwardKey("DEST", "1.4.11")}}
	if err := x.Put(ctx(t), in); err != nil {
		t.Fatal(err)
	}
	// Jobs given with the instance are queued with it, due at once.
	if j, err := q.ClaimJob(ctx(t), index.JobForward, "w0", time.Minute); err != nil || j == nil || j.Key != "DEST|1.4.11" {
		t.Fatalf("the forward job queued with the instance: %+v %v", j, err)
	} else if err := q.CompleteJob(ctx(t), j); err != nil {
		t.Fatal(err)
	}
	// Armed, but not due before the quiet period.
	if j, err := q.ClaimJob(ctx(t), kind, "w1", time.Minute); err != nil || j != nil {
		t.Fatalf("claimed a job before its quiet period: %+v %v", j, err)
	}
	if err := q.Enqueue(ctx(t), kind, s1.uid, past()); err != nil {
		t.Fatal(err)
	}
	j, err := q.ClaimJob(ctx(t), kind, "w1", time.Minute)
	if err != nil || j == nil || j.Key != s1.uid || j.Kind != kind {
		t.Fatalf("claim: %+v %v", j, err)
	}
	if j2, err := q.ClaimJob(ctx(t), kind, "w2", time.Minute); err != nil || j2 != nil {
		t.Fatalf("a leased job was claimed again: %+v %v", j2, err)
	}
	// Re-armed while claimed: completing releases it instead of deleting it.
	if err := q.Enqueue(ctx(t), kind, s1.uid, past().Add(time.Millisecond*500)); err != nil {
		t.Fatal(err)
	}
	if err := q.CompleteJob(ctx(t), j); err != nil {
		t.Fatal(err)
	}
	j, err = q.ClaimJob(ctx(t), kind, "w2", time.Minute)
	if err != nil || j == nil {
		t.Fatalf("the re-armed job is gone: %v", err)
	}
	// Retry counts the attempt; complete removes the job.
	if err := q.RetryJob(ctx(t), j, 0); err != nil {
		t.Fatal(err)
	}
	j, err = q.ClaimJob(ctx(t), kind, "w3", time.Millisecond)
	if err != nil || j == nil || j.Attempts != 1 {
		t.Fatalf("after retry: %+v %v", j, err)
	}
	// An expired lease frees the job.
	time.Sleep(20 * time.Millisecond)
	j, err = q.ClaimJob(ctx(t), kind, "w4", time.Minute)
	if err != nil || j == nil {
		t.Fatalf("expired lease not reclaimed: %v", err)
	}
	if err := q.CompleteJob(ctx(t), j); err != nil {
		t.Fatal(err)
	}
	if j, err := q.ClaimJob(ctx(t), kind, "w5", time.Minute); err != nil || j != nil {
		t.Fatalf("a completed job was claimed: %+v %v", j, err)
	}
	// Eight workers, twenty due jobs: each claimed exactly once.
	for i := 0; i < 20; i++ {
		if err := q.Enqueue(ctx(t), "test", fmt.Sprint(i), past()); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			for {
				j, err := q.ClaimJob(ctx(t), "test", fmt.Sprint("w", w), time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if j == nil {
					return
				}
				mu.Lock()
				seen[j.Key]++
				mu.Unlock()
				if err := q.CompleteJob(ctx(t), j); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != 20 {
		t.Fatalf("%d distinct jobs done, want 20", len(seen))
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("job %s done %d times", k, n)
		}
	}
}
