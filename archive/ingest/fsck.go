package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"

	"github.com/lumenpacs/lumen/archive"
	"github.com/lumenpacs/lumen/archive/dcm"
	"github.com/lumenpacs/lumen/index"
)

// CheckOptions configure Check.
type CheckOptions struct {
	// Prefixes to examine; default [BlobPrefix] (everything ingested). Temporary files
	// (see TempSweeper) are looked for under the same prefixes, or, by default, in the
	// whole store.
	Prefixes []string
	// Grace: blobs and temporary files modified more recently than this are skipped,
	// since an ingest may be about to index (or still be writing) them. Default 10
	// minutes.
	Grace time.Duration
	// Repair fixes what is found: orphan blobs are re-indexed when valid (or removed when
	// invalid, or when an identical copy is already indexed); index rows whose blob is
	// missing are removed; stale temporary files are removed.
	Repair bool
	// RemoveTemp removes stale temporary files even without Repair. They are what a put
	// cut short (by a crash or a kill) left behind and can never be committed, so removing
	// them loses nothing; the start-up check sets it.
	RemoveTemp bool
	// RemoveOrphans removes orphan blobs instead of re-indexing them (with Repair).
	RemoveOrphans bool
	// Deadline, when not zero, stops the check (with a partial report) at that time.
	Deadline time.Time
}

// Finding is one inconsistency.
type Finding struct {
	// Kind is "orphan-blob" (blob without index row), "dangling-row" (row without blob)
	// or "temp-file" (a temporary file of an interrupted put, older than the grace
	// period; see TempSweeper).
	Kind string
	// Key is the blob key; SOPInstanceUID is set for dangling rows.
	Key            string
	SOPInstanceUID string
	// Action is what repair did ("reindexed", "removed", "row-removed", "kept"), or "".
	Action string
	// Reason explains a failed or skipped repair.
	Reason string
	// Size is the length in bytes of a temporary file (Kind "temp-file").
	Size int64
}

// Report is the outcome of Check.
type Report struct {
	BlobsChecked int
	RowsChecked  int
	Findings     []Finding
	// Partial is true when the deadline stopped the check early.
	Partial bool
}

// Orphans counts orphan blobs in the report.
func (r *Report) Orphans() int { return r.count("orphan-blob") }

// Dangling counts dangling index rows in the report.
func (r *Report) Dangling() int { return r.count("dangling-row") }

// Temps counts stale temporary files in the report.
func (r *Report) Temps() int { return r.count("temp-file") }

func (r *Report) count(kind string) int {
	n := 0
	for _, f := range r.Findings {
		if f.Kind == kind {
			n++
		}
	}
	return n
}

// RecentPrefixes returns the blob prefixes of today and the days before (UTC), for a
// bounded start-up check: crashes leave orphans only among recent writes.
func RecentPrefixes(now time.Time, days int) []string {
	var out []string
	for d := days - 1; d >= 0; d-- {
		t := now.UTC().AddDate(0, 0, -d)
		out = append(out, fmt.Sprintf("%s%04d/%02d/%02d/", BlobPrefix, t.Year(), int(t.Month()), t.Day()))
	}
	return out
}

// TempSweeper is implemented by stores whose interrupted puts can leave temporary
// objects behind that List never shows (archive/fs: the .tmp-* file of a put cut short
// by a crash or a kill, up to an instance's size each). Check reports those older than
// its grace period and, with Repair or RemoveTemp, removes them.
type TempSweeper interface {
	// StaleTemps yields the temporary objects under prefix last modified before before,
	// each named (in ObjectInfo.Key) as RemoveTemp takes it.
	StaleTemps(ctx context.Context, prefix string, before time.Time) iter.Seq2[archive.ObjectInfo, error]
	// RemoveTemp removes one, unless it was modified since before (then it keeps it and
	// reports removed false). A missing one is archive.ErrNotFound.
	RemoveTemp(ctx context.Context, name string, before time.Time) (removed bool, err error)
}

// Check compares the store's blobs with the index's blob keys (a merge of two sorted
// listings, so it runs in constant memory) and reports, and optionally repairs,
// blobs without index rows and index rows without blobs. When the store is a
// TempSweeper it also reports, and with Repair or RemoveTemp removes, temporary files
// older than the grace period.
func (p *Pipeline) Check(ctx context.Context, opts CheckOptions) (*Report, error) {
	if opts.Grace == 0 {
		opts.Grace = 10 * time.Minute
	}
	tempPrefixes := opts.Prefixes
	if len(opts.Prefixes) == 0 {
		opts.Prefixes = []string{BlobPrefix}
		tempPrefixes = []string{""} // the whole store: thumbnails and the like too
	}
	rep := &Report{}
	cutoff := p.now().Add(-opts.Grace)
	for _, prefix := range opts.Prefixes {
		if err := p.checkPrefix(ctx, prefix, cutoff, opts, rep); err != nil {
			return rep, err
		}
		if rep.Partial {
			return rep, nil
		}
	}
	if ts, ok := p.Store.(TempSweeper); ok {
		for _, prefix := range tempPrefixes {
			if err := p.sweepTemps(ctx, ts, prefix, cutoff, opts, rep); err != nil {
				return rep, err
			}
			if rep.Partial {
				break
			}
		}
	}
	return rep, nil
}

// sweepTemps reports, and optionally removes, the temporary objects under prefix last
// modified before cutoff.
func (p *Pipeline) sweepTemps(ctx context.Context, ts TempSweeper, prefix string, cutoff time.Time, opts CheckOptions, rep *Report) error {
	for info, err := range ts.StaleTemps(ctx, prefix, cutoff) {
		if err != nil {
			return fmt.Errorf("ingest: check: list temporary files: %w", err)
		}
		if !opts.Deadline.IsZero() && p.now().After(opts.Deadline) {
			rep.Partial = true
			return nil
		}
		f := Finding{Kind: "temp-file", Key: info.Key, Size: info.Size}
		if opts.Repair || opts.RemoveTemp {
			switch removed, err := ts.RemoveTemp(ctx, info.Key, cutoff); {
			case err == nil && removed:
				f.Action, f.Reason = "removed", "temporary file of an interrupted write"
			case err == nil, errors.Is(err, archive.ErrNotFound):
				continue // written again, committed or cleaned up meanwhile
			default:
				f.Reason = err.Error()
			}
		}
		rep.Findings = append(rep.Findings, f)
	}
	return nil
}

func (p *Pipeline) checkPrefix(ctx context.Context, prefix string, cutoff time.Time, opts CheckOptions, rep *Report) error {
	nextBlob, stopBlob := iter.Pull2(p.Store.List(ctx, prefix))
	defer stopBlob()
	nextRow, stopRow := iter.Pull2(p.Index.BlobKeys(ctx, prefix))
	defer stopRow()

	blob, berr, bok := nextBlob()
	row, rerr, rok := nextRow()
	for bok || rok {
		if berr != nil {
			return fmt.Errorf("ingest: check: list store: %w", berr)
		}
		if rerr != nil {
			return fmt.Errorf("ingest: check: list index: %w", rerr)
		}
		if !opts.Deadline.IsZero() && p.now().After(opts.Deadline) {
			rep.Partial = true
			return nil
		}
		switch {
		case bok && rok && blob.Key == row:
			rep.BlobsChecked++
			rep.RowsChecked++
			blob, berr, bok = nextBlob()
			row, rerr, rok = nextRow()
		case bok && (!rok || blob.Key < row):
			rep.BlobsChecked++
			if blob.ModTime.Before(cutoff) {
				f := Finding{Kind: "orphan-blob", Key: blob.Key}
				if opts.Repair {
					p.repairOrphan(ctx, &f, opts.RemoveOrphans)
				}
				rep.Findings = append(rep.Findings, f)
			}
			blob, berr, bok = nextBlob()
		default:
			rep.RowsChecked++
			f := Finding{Kind: "dangling-row", Key: row}
			// The blob may have been written after the listing passed its key: confirm.
			if _, err := p.Store.Stat(ctx, row); err == nil {
				row, rerr, rok = nextRow()
				continue
			}
			if inst, err := p.Index.InstanceByBlobKey(ctx, row); err == nil {
				f.SOPInstanceUID = inst.SOPInstanceUID
				if opts.Repair {
					if _, err := p.Index.DeleteInstance(ctx, inst.SOPInstanceUID); err != nil {
						f.Reason = err.Error()
					} else {
						f.Action = "row-removed"
					}
				}
			}
			rep.Findings = append(rep.Findings, f)
			row, rerr, rok = nextRow()
		}
	}
	return nil
}

func (p *Pipeline) repairOrphan(ctx context.Context, f *Finding, remove bool) {
	del := func(reason string) {
		if err := p.Store.Delete(ctx, f.Key); err != nil && !errors.Is(err, archive.ErrNotFound) {
			f.Reason = err.Error()
			return
		}
		f.Action, f.Reason = "removed", reason
	}
	if remove {
		del("orphan removed on request")
		return
	}
	inst, err := p.readInstance(ctx, f.Key)
	if err != nil {
		if errors.Is(err, ErrInvalid) || errors.Is(err, ErrMismatch) {
			del("not a valid DICOM object: " + err.Error())
			return
		}
		f.Reason = err.Error()
		return
	}
	err = p.Index.Put(ctx, inst)
	switch {
	case err == nil:
		f.Action = "reindexed"
		f.SOPInstanceUID = inst.SOPInstanceUID
	case errors.Is(err, index.ErrExists):
		f.SOPInstanceUID = inst.SOPInstanceUID
		existing, lerr := p.Index.Instance(ctx, inst.SOPInstanceUID)
		if lerr == nil && existing.SHA256 == inst.SHA256 {
			del("an identical copy is indexed")
			return
		}
		f.Action, f.Reason = "kept", "a different object with the same SOP Instance UID is indexed; kept for review"
	default:
		f.Reason = err.Error()
	}
}

// readInstance parses a stored blob into an index record.
func (p *Pipeline) readInstance(ctx context.Context, key string) (*index.Instance, error) {
	rc, info, err := p.Store.Get(ctx, key)
	if err != nil {
		return nil, fail(ErrUnavailable, err, "could not read blob")
	}
	defer rc.Close()
	h := sha256.New()
	f, err := dcm.Parse(io.TeeReader(rc, h), &dcm.Options{Size: info.Size})
	if err != nil {
		return nil, fail(ErrInvalid, err, "blob does not parse")
	}
	if verr := validate(f, nil); verr != nil {
		return nil, verr
	}
	inst, err := buildInstance(f)
	if err != nil {
		return nil, fail(ErrInvalid, err, "could not build the index record")
	}
	inst.BlobKey = key
	inst.Size = info.Size
	inst.SHA256 = hex.EncodeToString(h.Sum(nil))
	inst.ReceivedAt = info.ModTime
	inst.SourceAE = f.Meta.String(dcm.TagSourceApplicationEntityTitle)
	return inst, nil
}
