package index

import (
	"context"
	"strings"
	"time"
)

// Job is one unit of background work held in the index, so that any replica can do
// it and a restart loses nothing.
type Job struct {
	ID        int64
	Kind      string // e.g. JobThumbnails
	Key       string // e.g. a StudyInstanceUID
	NotBefore time.Time
	Attempts  int
}

// JobThumbnails is queued (keyed by StudyInstanceUID) whenever an instance is indexed
// that ThumbnailAhead admits; each such instance pushes it back by the index's quiet
// period, so it runs once a study has stopped arriving.
const JobThumbnails = "thumbnails"

// TinyPixelBytes bounds the pixel data of a tiny image (see ThumbnailAhead): 8 KiB, a
// 64 × 64 frame of 16-bit samples.
const TinyPixelBytes = 8 << 10

// ThumbnailAhead reports whether indexing in arms its study's JobThumbnails. An image
// whose pixel data (Rows × Columns × frames × bytes per sample) is under
// TinyPixelBytes does not: rendering its thumbnail on the first request costs about what
// reading a cached one does, while rendering it ahead costs a queued job (two more write
// transactions), two index reads and a durable write to the store per study, more than
// ingesting the instance. Instances without pixel data (waveforms, documents) arm it as
// images do.
func ThumbnailAhead(in *Instance) bool {
	if in.NumberOfFrames <= 0 || in.Rows <= 0 || in.Columns <= 0 {
		return true
	}
	sample := max(1, (in.BitsAllocated+7)/8)
	return int64(in.Rows)*int64(in.Columns)*int64(in.NumberOfFrames)*int64(sample) >= TinyPixelBytes
}

// JobForward sends one instance to a peer; its key is ForwardKey(destination, SOP
// Instance UID). Queued with the instance (Instance.Jobs) by forwarding rules.
const JobForward = "forward"

// JobSpec is a job to queue: its kind and key.
type JobSpec struct {
	Kind, Key string
}

// ForwardKey is the key of a JobForward job.
func ForwardKey(destination, sopInstanceUID string) string { return destination + "|" + sopInstanceUID }

// ParseForwardKey splits a JobForward key.
func ParseForwardKey(key string) (destination, sopInstanceUID string, ok bool) {
	return strings.Cut(key, "|")
}

// Queue is the work queue kept in the index.
type Queue interface {
	// Enqueue adds a job or, when (kind, key) is queued already, moves it to notBefore.
	Enqueue(ctx context.Context, kind, key string, notBefore time.Time) error
	// ClaimJob leases the oldest due job of kind to worker for lease, or returns nil
	// when none is due. A lease that expires makes the job claimable again.
	ClaimJob(ctx context.Context, kind, worker string, lease time.Duration) (*Job, error)
	// CompleteJob removes a claimed job, unless it was re-queued while claimed (then it
	// is released to run again).
	CompleteJob(ctx context.Context, j *Job) error
	// RetryJob releases a claimed job to run again after a delay, counting the attempt.
	RetryJob(ctx context.Context, j *Job, after time.Duration) error
}
