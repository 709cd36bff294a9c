package sqlindex_test

import (
	"context"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/indextest"
)

// TestThumbnailJobArmed: indexing an image arms its study's thumbnail job, except a
// tiny image (index.ThumbnailAhead), whose thumbnail is rendered on request; an
// instance without pixel data arms it too.
func TestThumbnailJobArmed(t *testing.T) {
	for _, backend := range indextest.Backends {
		t.Run(backend, func(t *testing.T) {
			x := indextest.Open(t, backend)
			x.QuietPeriod = time.Millisecond
			ctx := context.Background()
			image := func(study, sop string, rows, cols, frames, bits int) *index.Instance {
				in := inst(study, study+".1", sop)
				in.Rows, in.Columns, in.NumberOfFrames, in.BitsAllocated = rows, cols, frames, bits
				return in
			}
			for _, c := range []struct {
				in    *index.Instance
				armed bool
			}{
				{image("1.2.1", "1.2.1.1.1", 40, 40, 1, 16), false},
				{image("1.2.2", "1.2.2.1.1", 64, 64, 1, 16), true},
				{image("1.2.3", "1.2.3.1.1", 64, 64, 1, 8), false},
				{image("1.2.4", "1.2.4.1.1", 64, 64, 12, 8), true},
				{image("1.2.5", "1.2.5.1.1", 0, 0, 0, 0), true}, // no pixel data
			} {
				if err := x.Put(ctx, c.in); err != nil {
					t.Fatal(err)
				}
				time.Sleep(5 * time.Millisecond) // the quiet period
				j, err := x.ClaimJob(ctx, index.JobThumbnails, "test", time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				if got := j != nil; got != c.armed {
					t.Errorf("%dx%d, %d frames, %d bits: job armed %v, want %v", c.in.Rows, c.in.Columns, c.in.NumberOfFrames, c.in.BitsAllocated, got, c.armed)
				}
				if j != nil {
					if j.Key != c.in.StudyInstanceUID {
						t.Errorf("job for %s, want %s", j.Key, c.in.StudyInstanceUID)
					}
					if err := x.CompleteJob(ctx, j); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
}
