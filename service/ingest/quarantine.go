package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lumenpacs/lumen/archive"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
)

// QuarantinePrefix is the store prefix of copies received into quarantine: different
// content under a SOP Instance UID already stored (duplicate policy Quarantine). Keys
// never change once written, so after a promotion the served copy may live under this
// prefix and a quarantined one under BlobPrefix: the index says which is which, and
// Check (fsck) counts a blob referenced by either as no orphan, whatever its prefix.
const QuarantinePrefix = "quarantine/"

// NewQuarantineKey returns a fresh key under QuarantinePrefix, laid out as NewBlobKey's.
func NewQuarantineKey(t time.Time) string {
	return QuarantinePrefix + strings.TrimPrefix(NewBlobKey(t), BlobPrefix)
}

// sameContent reports whether a new object holds the same data set as the stored
// instance: the same bytes, or the same content digest (dcm.ContentDigest). Digests are
// computed when first needed (see digestOf): the stored instance's from its stored copy,
// then recorded; the new object's from its blob, still in the store at this point. When
// a copy cannot be read the answer is "different": the new object is then kept aside
// (Quarantine), never dropped.
func (p *Pipeline) sameContent(ctx context.Context, existing, inst *index.Instance) bool {
	if existing.Digest == inst.Digest && existing.Size == inst.Size {
		return true
	}
	nd := p.instanceDigest(ctx, inst)
	if nd == "" {
		return false
	}
	d := existing.ContentDigest
	if !strings.HasPrefix(d, dcm.ContentDigestPrefix) {
		if d = p.digestOf(ctx, "", existing.BlobKey); d == "" {
			return false
		}
		if err := p.Index.SetContentDigest(index.Unscoped(ctx), existing.SOPInstanceUID, existing.BlobKey, d); err != nil {
			p.log().Warn("ingest: could not record a content digest", "key", existing.BlobKey, "err", err)
		}
	}
	return d == nd
}

// instanceDigest returns the content digest of a new object, computing it from its blob
// (and keeping it in inst) if it has none yet; "" when the blob cannot be read.
func (p *Pipeline) instanceDigest(ctx context.Context, inst *index.Instance) string {
	inst.ContentDigest = p.digestOf(ctx, inst.ContentDigest, inst.BlobKey)
	return inst.ContentDigest
}

// digestOf returns the content digest of a stored copy: recorded, when it is a digest,
// or else computed from the copy under key. Ingest does not compute the digest of what
// it stores (it hashes the bytes once, for the object digest of the stored object): a digest
// is needed only when a SOP Instance UID arrives again with other bytes, and it is
// computed then, from the stored bytes, which are the received bytes. It returns ""
// when the copy cannot be read (logged): callers then treat the contents as different,
// the safe direction (the new object is kept, never dropped).
func (p *Pipeline) digestOf(ctx context.Context, recorded, key string) string {
	if strings.HasPrefix(recorded, dcm.ContentDigestPrefix) {
		return recorded
	}
	if key == "" {
		return ""
	}
	d, err := p.digestBlob(ctx, key)
	if err != nil {
		p.log().Warn("ingest: cannot compute the content digest of a stored copy; treating the new object as different", "key", key, "err", err)
		return ""
	}
	return d
}

// digestBlob computes the content digest of a stored object, streaming.
func (p *Pipeline) digestBlob(ctx context.Context, key string) (string, error) {
	rc, info, err := p.Store.Get(ctx, key)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	d := dcm.NewContentDigest()
	if _, err := dcm.Parse(rc, &dcm.Options{Size: info.Size, Digest: d}); err != nil {
		return "", err
	}
	return d.Sum(), nil
}

// copyBlob copies a stored object to another key, streaming.
func (p *Pipeline) copyBlob(ctx context.Context, from, to string) error {
	rc, info, err := p.Store.Get(ctx, from)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = p.Store.Put(ctx, to, rc, info.Size)
	return err
}

// quarantine keeps inst (just stored under inst.BlobKey, refused by the index because
// its SOP Instance UID is stored with other content) aside: the bytes move under
// QuarantinePrefix and a quarantine record names them. The same content already
// quarantined under that UID (a re-sent second version) is not kept twice. Only once
// the copy and its record are durable is the object acknowledged.
func (p *Pipeline) quarantine(ctx context.Context, inst *index.Instance, src Source, res *Result) (*Result, error) {
	removeBlob := func() { p.cleanup(ctx, inst.BlobKey) }
	bctx := index.Unscoped(ctx)
	res.ContentDigest = p.instanceDigest(ctx, inst)
	if list, err := p.Index.Quarantined(bctx, index.QuarantineQuery{SOPInstanceUID: inst.SOPInstanceUID}); err == nil {
		for _, q := range list {
			if q.Digest == inst.Digest && q.Size == inst.Size || inst.ContentDigest != "" && p.digestOf(ctx, q.ContentDigest, q.BlobKey) == inst.ContentDigest {
				removeBlob()
				res.Outcome, res.QuarantineID, res.BlobKey, res.Size, res.Digest = Quarantined, q.ID, q.BlobKey, q.Size, q.Digest
				res.Warnings = append(res.Warnings, quarantineWarning(q.ID))
				return res, nil
			}
		}
	}
	qkey := NewQuarantineKey(inst.ReceivedAt)
	if err := p.copyBlob(ctx, inst.BlobKey, qkey); err != nil {
		p.cleanup(ctx, qkey)
		removeBlob()
		return nil, fail(ErrUnavailable, err, "could not keep the object in quarantine")
	}
	rec := &index.QuarantineRecord{
		ReceivedAt:     inst.ReceivedAt,
		SOPInstanceUID: inst.SOPInstanceUID, SOPClassUID: inst.SOPClassUID, StudyInstanceUID: inst.StudyInstanceUID, SeriesInstanceUID: inst.SeriesInstanceUID,
		PatientID: inst.PatientID, IssuerOfPatientID: inst.IssuerOfPatientID, TransferSyntaxUID: inst.TransferSyntaxUID,
		SourceAE: src.CallingAE, Via: src.Via, Account: src.Account, Remote: src.Remote,
		Reason:  "SOP Instance UID already stored with different content; the copy received first is served",
		BlobKey: qkey, Size: inst.Size, Digest: inst.Digest, ContentDigest: inst.ContentDigest,
	}
	if err := p.Index.Quarantine(ctx, rec); err != nil {
		// The outcome may be unknown: remove the copy only once the index says it holds
		// no record of it (otherwise fsck finds an orphan at worst).
		lctx, cancel := context.WithTimeout(index.Unscoped(context.WithoutCancel(ctx)), cleanupTimeout)
		list, lerr := p.Index.Quarantined(lctx, index.QuarantineQuery{BlobKey: qkey})
		cancel()
		switch {
		case lerr == nil && len(list) == 1:
			rec.ID = list[0].ID
		case lerr == nil:
			p.cleanup(ctx, qkey)
			removeBlob()
			return nil, fail(ErrUnavailable, err, "the index did not accept the quarantine record")
		default:
			p.log().Warn("ingest: quarantine record outcome unknown; copy kept for lumen fsck", "key", qkey, "err", lerr)
			removeBlob()
			return nil, fail(ErrUnavailable, err, "the index did not accept the quarantine record")
		}
	}
	removeBlob() // the quarantine copy holds the same bytes
	p.log().Warn("ingest: different content under a stored SOP Instance UID; the first copy stays served, this one is quarantined",
		"via", src.Via, "calling_ae", src.CallingAE, "account", src.Account, "sop_instance_uid", inst.SOPInstanceUID, "quarantine_id", rec.ID, "key", qkey)
	res.Outcome, res.QuarantineID, res.BlobKey = Quarantined, rec.ID, qkey
	res.Warnings = append(res.Warnings, quarantineWarning(rec.ID))
	return res, nil
}

func quarantineWarning(id int64) string {
	return fmt.Sprintf("the SOP Instance UID is stored with other content: the copy received first is still the one served; this object is kept in quarantine as record %d (GET /api/v1/quarantine/%d)", id, id)
}

// Quarantined lists quarantine records (newest first) within the scopes of ctx.
func (p *Pipeline) Quarantined(ctx context.Context, q index.QuarantineQuery) ([]index.QuarantineRecord, error) {
	list, err := p.Index.Quarantined(ctx, q)
	if err != nil {
		return nil, fail(ErrUnavailable, err, "could not list the quarantine")
	}
	return list, nil
}

// QuarantinedByID returns one quarantine record within the scopes of ctx.
func (p *Pipeline) QuarantinedByID(ctx context.Context, id int64) (*index.QuarantineRecord, error) {
	rec, err := p.Index.QuarantinedByID(ctx, id)
	switch {
	case errors.Is(err, index.ErrNotFound):
		return nil, fail(ErrNotFound, nil, "no quarantined copy %d", id)
	case err != nil:
		return nil, fail(ErrUnavailable, err, "could not read the quarantine")
	}
	return rec, nil
}

// OpenQuarantined opens the stored bytes of a quarantined copy (the caller closes them).
func (p *Pipeline) OpenQuarantined(ctx context.Context, id int64) (io.ReadCloser, *index.QuarantineRecord, archive.ObjectInfo, error) {
	rec, err := p.QuarantinedByID(ctx, id)
	if err != nil {
		return nil, nil, archive.ObjectInfo{}, err
	}
	rc, info, err := p.Store.Get(ctx, rec.BlobKey)
	switch {
	case errors.Is(err, archive.ErrNotFound):
		return nil, nil, info, fail(ErrNotFound, err, "quarantined copy %d has lost its blob (run lumen fsck)", id)
	case err != nil:
		return nil, nil, info, fail(ErrUnavailable, err, "could not read the quarantined copy")
	}
	return rc, rec, info, nil
}

// PromoteResult describes a promotion.
type PromoteResult struct {
	// Promoted is the quarantine record that became the served copy (now removed);
	// Instance its new index record.
	Promoted *index.QuarantineRecord
	Instance *index.Instance
	// Demoted is the quarantine record of the copy served until then, or nil when none
	// was (it had been deleted).
	Demoted *index.QuarantineRecord
}

// Promote makes quarantined copy id the served instance of its SOP Instance UID; the
// copy served until then is quarantined in turn, so nothing is lost. by says who asked
// (Account, Remote). The copy is parsed again from the store (streaming) to build its
// index record. Blob keys do not change.
func (p *Pipeline) Promote(ctx context.Context, id int64, by Source) (*PromoteResult, error) {
	rec, err := p.QuarantinedByID(ctx, id)
	if err != nil {
		return nil, err
	}
	inst, err := p.readInstance(ctx, rec.BlobKey)
	if err != nil {
		return nil, err
	}
	if inst.SOPInstanceUID != rec.SOPInstanceUID {
		return nil, fail(ErrMismatch, nil, "the stored copy's SOP Instance UID differs from its quarantine record")
	}
	inst.ReceivedAt, inst.SourceAE = rec.ReceivedAt, rec.SourceAE
	if len(index.Scopes(ctx)) > 0 {
		// A scoped caller promotes only within its scope: the promoted copy and the copy
		// it displaces alike.
		served, err := p.Index.Instance(index.Unscoped(ctx), inst.SOPInstanceUID)
		if !index.Admits(ctx, &inst.Study) || err == nil && !index.Admits(ctx, &served.Study) {
			return nil, notAuthorized()
		}
	}
	demoted, err := p.Index.Promote(ctx, id, inst, index.QuarantineRecord{
		Reason: fmt.Sprintf("served copy until quarantined copy %d was promoted", id),
		Via:    orDefault(by.Via, "promote"), Account: by.Account, Remote: by.Remote,
	})
	switch {
	case errors.Is(err, index.ErrNotFound):
		return nil, fail(ErrNotFound, err, "quarantined copy %d was promoted or deleted meanwhile", id)
	case errors.Is(err, index.ErrConflict):
		return nil, fail(ErrConflict, err, "the copy's series or study UID belongs to another study or patient")
	case err != nil:
		return nil, fail(ErrUnavailable, err, "the index did not accept the promotion")
	}
	p.log().Info("ingest: quarantined copy promoted", "quarantine_id", id, "sop_instance_uid", inst.SOPInstanceUID, "key", inst.BlobKey, "account", by.Account)
	return &PromoteResult{Promoted: rec, Instance: inst, Demoted: demoted}, nil
}

// DeleteQuarantined removes quarantined copy id: its record, then its blob.
func (p *Pipeline) DeleteQuarantined(ctx context.Context, id int64, by Source) (*index.QuarantineRecord, error) {
	if _, err := p.QuarantinedByID(ctx, id); err != nil { // within the caller's scope
		return nil, err
	}
	rec, err := p.Index.DeleteQuarantined(ctx, id)
	switch {
	case errors.Is(err, index.ErrNotFound):
		return nil, fail(ErrNotFound, err, "quarantined copy %d was promoted or deleted meanwhile", id)
	case err != nil:
		return nil, fail(ErrUnavailable, err, "the index did not remove the quarantine record")
	}
	// The record is gone, so no promotion can make this blob the served copy any more.
	if err := p.Store.Delete(ctx, rec.BlobKey); err != nil && !errors.Is(err, archive.ErrNotFound) {
		p.log().Warn("ingest: quarantined copy's record removed, its blob not; lumen fsck will find it", "key", rec.BlobKey, "err", err)
	}
	p.log().Info("ingest: quarantined copy deleted", "quarantine_id", id, "sop_instance_uid", rec.SOPInstanceUID, "key", rec.BlobKey, "account", by.Account)
	return rec, nil
}
