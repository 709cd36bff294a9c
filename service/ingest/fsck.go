package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"time"

	"github.com/lumenpacs/lumen/archive"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
)

// CheckOptions configure Check.
type CheckOptions struct {
	// Prefixes to examine; default [BlobPrefix, QuarantinePrefix] (everything ingested,
	// served or quarantined). A blob is no orphan when an instance, a quarantine record
	// or a rejection (IHE IOCM) names it, whatever its prefix. Temporary files
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
	// Kind is "orphan-blob" (blob without index row), "dangling-row" (an instance or
	// quarantine record without its blob) or "temp-file" (a temporary file of an
	// interrupted put, older than the grace period; see TempSweeper).
	Kind string
	// Key is the blob key; SOPInstanceUID is set for dangling rows.
	Key            string
	SOPInstanceUID string
	// Action is what repair did ("reindexed", "quarantined", "removed", "row-removed",
	// "kept"), or "".
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

// String is the finding as one line: kind, key, SOP Instance UID, action and reason.
func (f Finding) String() string {
	line := f.Kind + " " + f.Key
	if f.SOPInstanceUID != "" {
		line += " sop=" + f.SOPInstanceUID
	}
	if f.Action != "" {
		line += " -> " + f.Action
	}
	if f.Reason != "" {
		line += " (" + f.Reason + ")"
	}
	return line
}

// Unresolved reports a finding that repair did not settle (none was tried, or the
// object was kept).
func (f Finding) Unresolved() bool { return f.Action == "" || f.Action == "kept" }

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

// RecentPrefixes returns the blob prefixes of today and the days before (UTC), served
// and quarantined, for a bounded start-up check: crashes leave orphans only among recent
// writes.
func RecentPrefixes(now time.Time, days int) []string {
	var out []string
	for _, prefix := range []string{BlobPrefix, QuarantinePrefix} {
		for d := days - 1; d >= 0; d-- {
			t := now.UTC().AddDate(0, 0, -d)
			out = append(out, fmt.Sprintf("%s%04d/%02d/%02d/", prefix, t.Year(), int(t.Month()), t.Day()))
		}
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
		opts.Prefixes = []string{BlobPrefix, QuarantinePrefix}
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
	nextRow, stopRow := iter.Pull2(mergeKeys(mergeKeys(p.Index.BlobKeys(ctx, prefix), p.Index.QuarantineBlobKeys(ctx, prefix)), p.rejectedBlobKeys(ctx, prefix)))
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
			bctx := index.Unscoped(ctx)
			if inst, err := p.Index.InstanceByBlobKey(bctx, row); err == nil {
				f.SOPInstanceUID = inst.SOPInstanceUID
				if opts.Repair {
					if _, err := p.Index.DeleteInstance(ctx, inst.SOPInstanceUID); err != nil {
						f.Reason = err.Error()
					} else {
						f.Action = "row-removed"
					}
				}
			} else if r := p.rejectionByBlobKey(bctx, row); r != nil {
				// Not repaired: the rejection says what happened; purging it ends it.
				f.SOPInstanceUID = r.SOPInstanceUID
				f.Reason = fmt.Sprintf("stored object of an instance rejected by note %s (purge it)", r.NoteUID)
			} else if list, err := p.Index.Quarantined(bctx, index.QuarantineQuery{BlobKey: row}); err == nil && len(list) == 1 {
				f.SOPInstanceUID = list[0].SOPInstanceUID
				f.Reason = fmt.Sprintf("quarantined copy %d", list[0].ID)
				if opts.Repair {
					if _, err := p.Index.DeleteQuarantined(ctx, list[0].ID); err != nil {
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
		bctx := index.Unscoped(ctx)
		existing, lerr := p.Index.Instance(bctx, inst.SOPInstanceUID)
		if lerr != nil {
			f.Reason = lerr.Error()
			return
		}
		if p.sameContent(ctx, existing, inst) {
			del("an identical copy is indexed")
			return
		}
		list, lerr := p.Index.Quarantined(bctx, index.QuarantineQuery{SOPInstanceUID: inst.SOPInstanceUID})
		if lerr != nil {
			f.Reason = lerr.Error()
			return
		}
		for _, q := range list {
			if p.digestOf(ctx, q.ContentDigest, q.BlobKey) == inst.ContentDigest {
				del(fmt.Sprintf("an identical copy is quarantined (%d)", q.ID))
				return
			}
		}
		// Different content under an indexed SOP Instance UID: kept aside, in place.
		rec := &index.QuarantineRecord{
			ReceivedAt: inst.ReceivedAt, SOPInstanceUID: inst.SOPInstanceUID, SOPClassUID: inst.SOPClassUID,
			StudyInstanceUID: inst.StudyInstanceUID, SeriesInstanceUID: inst.SeriesInstanceUID,
			PatientID: inst.PatientID, IssuerOfPatientID: inst.IssuerOfPatientID, TransferSyntaxUID: inst.TransferSyntaxUID,
			SourceAE: inst.SourceAE, Via: "fsck", Reason: "found by lumen fsck without an index record; SOP Instance UID stored with different content",
			BlobKey: inst.BlobKey, Size: inst.Size, Digest: inst.Digest, ContentDigest: inst.ContentDigest,
		}
		if err := p.Index.Quarantine(ctx, rec); err != nil {
			f.Action, f.Reason = "kept", "a different object with the same SOP Instance UID is indexed, and it could not be quarantined: "+err.Error()
			return
		}
		f.Action, f.Reason = "quarantined", fmt.Sprintf("a different object with the same SOP Instance UID is indexed; quarantined (%d)", rec.ID)
	default:
		f.Reason = err.Error()
	}
}

// mergeKeys merges two sorted key sequences into one sorted sequence.
func mergeKeys(a, b iter.Seq2[string, error]) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		nextA, stopA := iter.Pull2(a)
		defer stopA()
		nextB, stopB := iter.Pull2(b)
		defer stopB()
		ka, ea, okA := nextA()
		kb, eb, okB := nextB()
		for okA || okB {
			switch {
			case okA && ea != nil:
				yield("", ea)
				return
			case okB && eb != nil:
				yield("", eb)
				return
			case okA && (!okB || ka <= kb):
				if !yield(ka, nil) {
					return
				}
				ka, ea, okA = nextA()
			default:
				if !yield(kb, nil) {
					return
				}
				kb, eb, okB = nextB()
			}
		}
	}
}

// readInstance parses a stored blob into an index record.
func (p *Pipeline) readInstance(ctx context.Context, key string) (*index.Instance, error) {
	rc, info, err := p.Store.Get(ctx, key)
	if err != nil {
		return nil, fail(ErrUnavailable, err, "could not read blob")
	}
	defer rc.Close()
	h := newObjectHash()
	digest := dcm.NewContentDigest()
	f, err := dcm.Parse(io.TeeReader(rc, h), &dcm.Options{Size: info.Size, Digest: digest})
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
	inst.IssuerOfPatientID = p.issuer(inst.IssuerOfPatientID)
	inst.Size = info.Size
	inst.Digest = objectDigest(h)
	inst.ContentDigest = digest.Sum()
	inst.ReceivedAt = info.ModTime
	inst.SourceAE = f.Meta.String(dcm.TagSourceApplicationEntityTitle)
	return inst, nil
}

// StartupCheck runs a bounded consistency check of the blobs stored in the last days
// (blobs newer than grace skipped, the check stopped after timeout) and logs its
// findings at Warn and its result: the check `lumen serve` runs at start.
func (p *Pipeline) StartupCheck(ctx context.Context, days int, grace time.Duration, repair bool, timeout time.Duration, log *slog.Logger) {
	opts := CheckOptions{
		Prefixes: RecentPrefixes(time.Now(), days),
		Grace:    grace,
		Repair:   repair,
		Deadline: time.Now().Add(timeout),
		// Temporary files of interrupted puts older than the grace period can never be
		// committed: always removed (up to 4 GiB each).
		RemoveTemp: true,
	}
	rep, err := p.Check(ctx, opts)
	if err != nil {
		log.Warn("start-up check failed", "err", err)
		return
	}
	attrs := []any{"blobs", rep.BlobsChecked, "rows", rep.RowsChecked, "orphan_blobs", rep.Orphans(), "dangling_rows", rep.Dangling(), "temp_files", rep.Temps(), "partial", rep.Partial, "days", days}
	if len(rep.Findings) > 0 {
		for _, f := range rep.Findings {
			log.Warn("start-up check finding", "kind", f.Kind, "key", f.Key, "action", f.Action, "reason", f.Reason)
		}
		log.Warn("start-up check found inconsistencies; run lumen fsck --repair", attrs...)
		return
	}
	log.Info("start-up check clean", attrs...)
}
