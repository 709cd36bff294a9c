package ingest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"

	"github.com/lumenpacs/lumen/archive"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
)

// KeyObjectSelectionDocumentStorage is the SOP Class UID of a Key Object Selection
// document, the IOD of an IHE IOCM rejection note.
const KeyObjectSelectionDocumentStorage = "1.2.840.10008.5.1.4.1.1.88.59"

// Hidden is the outcome of an object that arrived under a SOP Instance UID rejected
// for quality reasons (113001) or because its retention expired (113039): accepted and
// kept hidden with the rejection (or discarded when the rejection holds a copy
// already), never served until an administrator restores it.
const Hidden Outcome = "hidden"

// Tags of the Key Object Document module and SR content (PS3.3 C.17.6, C.17.3).
var (
	tagCodeValue                                 = dcm.NewTag(0x0008, 0x0100)
	tagCodingSchemeDesignator                    = dcm.NewTag(0x0008, 0x0102)
	tagCodeMeaning                               = dcm.NewTag(0x0008, 0x0104)
	tagReferencedSeriesSequence                  = dcm.NewTag(0x0008, 0x1115)
	tagConceptNameCodeSequence                   = dcm.NewTag(0x0040, 0xA043)
	tagCurrentRequestedProcedureEvidenceSequence = dcm.NewTag(0x0040, 0xA375)
)

// rejectionNote is what a rejection note says: its reason (CID 7010 code) and the
// instances it rejects.
type rejectionNote struct {
	reason string
	refs   []index.RejectRef
}

// parseRejectionNote returns the rejection a parsed object carries, or nil when it is
// not a rejection note (not a KO, or a KO with another document title). A rejection note
// whose evidence is missing or malformed is ErrInvalid: nothing could be rejected.
func parseRejectionNote(f *dcm.File) (*rejectionNote, *Error) {
	d := f.Dataset
	if d.String(dcm.TagSOPClassUID) != KeyObjectSelectionDocumentStorage {
		return nil, nil
	}
	title := d.Get(tagConceptNameCodeSequence)
	if title == nil || len(title.Items) != 1 {
		return nil, nil
	}
	code := title.Items[0]
	reason := code.String(tagCodeValue)
	if code.String(tagCodingSchemeDesignator) != "DCM" || index.RejectionCodes[reason] == "" {
		return nil, nil
	}
	n := &rejectionNote{reason: reason}
	ev := d.Get(tagCurrentRequestedProcedureEvidenceSequence)
	if ev == nil || len(ev.Items) == 0 {
		return nil, fail(ErrInvalid, nil, "rejection note (%s) without CurrentRequestedProcedureEvidenceSequence (0040,A375): it names nothing to reject", reason)
	}
	for _, st := range ev.Items {
		study := st.String(dcm.TagStudyInstanceUID)
		if !dcm.ValidUID(study) {
			return nil, fail(ErrInvalid, nil, "rejection note: StudyInstanceUID (0020,000D) missing or malformed in CurrentRequestedProcedureEvidenceSequence")
		}
		series := st.Get(tagReferencedSeriesSequence)
		if series == nil || len(series.Items) == 0 {
			return nil, fail(ErrInvalid, nil, "rejection note: ReferencedSeriesSequence (0008,1115) missing in CurrentRequestedProcedureEvidenceSequence")
		}
		for _, se := range series.Items {
			seriesUID := se.String(dcm.TagSeriesInstanceUID)
			if !dcm.ValidUID(seriesUID) {
				return nil, fail(ErrInvalid, nil, "rejection note: SeriesInstanceUID (0020,000E) missing or malformed in ReferencedSeriesSequence")
			}
			sops := se.Get(dcm.TagReferencedSOPSequence)
			if sops == nil || len(sops.Items) == 0 {
				return nil, fail(ErrInvalid, nil, "rejection note: ReferencedSOPSequence (0008,1199) missing in ReferencedSeriesSequence")
			}
			for _, sop := range sops.Items {
				uid, class := sop.String(dcm.TagReferencedSOPInstanceUID), sop.String(dcm.TagReferencedSOPClassUID)
				if !dcm.ValidUID(uid) || !dcm.ValidUID(class) {
					return nil, fail(ErrInvalid, nil, "rejection note: ReferencedSOPInstanceUID (0008,1155) or ReferencedSOPClassUID (0008,1150) missing or malformed")
				}
				n.refs = append(n.refs, index.RejectRef{StudyInstanceUID: study, SeriesInstanceUID: seriesUID, SOPInstanceUID: uid, SOPClassUID: class})
			}
		}
	}
	return n, nil
}

// rejecter returns the index's rejections, or an error when it keeps none.
func (p *Pipeline) rejecter() (index.Rejecter, *Error) {
	rj, ok := p.Index.(index.Rejecter)
	if !ok {
		return nil, fail(ErrUnavailable, nil, "the index keeps no rejections (IHE IOCM)")
	}
	return rj, nil
}

// actor names who made a change, for the index's events.
func actor(src Source) string {
	switch {
	case src.Account != "":
		return src.Account
	case src.CallingAE != "":
		return "ae:" + src.CallingAE
	}
	return ""
}

// commitNote indexes a rejection note and rejects what it references in one index
// transaction, so that the sender is acknowledged only once both are durable. A note
// already stored with the same content is a success that changes nothing (its
// rejections were applied when it was stored; a restore since is not undone by a
// re-send); with other content it is refused whatever the duplicate policy: a
// rejection note is never replaced or quarantined (send a new note).
func (p *Pipeline) commitNote(ctx context.Context, inst *index.Instance, note *rejectionNote, src Source) (*Result, error) {
	res := &Result{
		Outcome: Stored, SOPClassUID: inst.SOPClassUID, SOPInstanceUID: inst.SOPInstanceUID,
		StudyInstanceUID: inst.StudyInstanceUID, SeriesInstanceUID: inst.SeriesInstanceUID,
		TransferSyntaxUID: inst.TransferSyntaxUID, BlobKey: inst.BlobKey, Size: inst.Size, Digest: inst.Digest,
		ContentDigest: inst.ContentDigest,
	}
	removeBlob := func() { p.cleanup(ctx, inst.BlobKey) }
	rj, ferr := p.rejecter()
	if ferr != nil {
		removeBlob()
		return nil, ferr
	}
	if p.Jobs != nil {
		inst.Jobs = p.Jobs(inst, src)
	}
	list, err := rj.Reject(ctx, inst, note.reason, note.refs, index.Change{Source: orDefault(src.Via, "ingest"), Actor: actor(src)})
	if err == nil {
		p.log().Info("ingest: rejection note stored; referenced instances hidden (IHE IOCM)", "via", src.Via, "calling_ae", src.CallingAE, "account", src.Account,
			"note", inst.SOPInstanceUID, "reason", note.reason, "referenced", len(note.refs), "rejected", len(list))
		return res, nil
	}
	scoped := len(index.Scopes(ctx)) > 0
	switch {
	case errors.Is(err, index.ErrConflict):
		removeBlob()
		if scoped {
			return nil, notAuthorized()
		}
		return nil, fail(ErrConflict, err, "rejection note refused, nothing rejected: %s", conflictDetail(err))
	case errors.Is(err, index.ErrRejected):
		return p.rejectedArrival(ctx, inst, src, res)
	case errors.Is(err, index.ErrExists):
		existing, lerr := p.Index.Instance(index.Unscoped(ctx), inst.SOPInstanceUID)
		if lerr != nil {
			removeBlob()
			return nil, fail(ErrUnavailable, lerr, "could not read the stored record")
		}
		if scoped && !index.Admits(ctx, &existing.Study) {
			removeBlob()
			return nil, notAuthorized()
		}
		same := p.sameContent(ctx, existing, inst) // before the blob goes: its digest may be needed
		res.ContentDigest = inst.ContentDigest
		removeBlob()
		if same {
			res.Outcome, res.BlobKey, res.Size, res.Digest = AlreadyStored, existing.BlobKey, existing.Size, existing.Digest
			return res, nil
		}
		return nil, fail(ErrDuplicate, nil, "a rejection note with this SOP Instance UID is stored with other content; a rejection note is never replaced: send a new one")
	}
	if p.committedAnyway(ctx, inst, removeBlob) {
		return res, nil
	}
	return nil, fail(ErrUnavailable, err, "the index did not accept the rejection note")
}

// conflictDetail is the index's account of a refused rejection, without its prefixes.
func conflictDetail(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, "note "); i >= 0 {
		if j := strings.Index(s[i:], ": "); j >= 0 {
			s = s[i+j+2:]
		}
	}
	return strings.TrimSuffix(s, ": "+index.ErrConflict.Error())
}

// rejectedArrival answers an object whose SOP Instance UID was rejected (IHE IOCM RAD-66
// and dcm4chee's defaults): after 113037 (patient safety) or 113038 (incorrect worklist
// entry) it is refused (ErrRejected) and nothing is kept; after 113001 (quality) or
// 113039 (retention expired) it is accepted but stays hidden: kept as the rejected
// instance's stored copy when the rejection came before the object (so a restore can
// show it), discarded when the rejection holds a copy of the same content already, and
// refused (ErrDuplicate) when that copy has other content. An object that names
// another patient than the rejection is refused too. Nothing becomes visible.
func (p *Pipeline) rejectedArrival(ctx context.Context, inst *index.Instance, src Source, res *Result) (*Result, error) {
	removeBlob := func() { p.cleanup(ctx, inst.BlobKey) }
	rj, ferr := p.rejecter()
	if ferr != nil {
		removeBlob()
		return nil, ferr
	}
	rec, err := rj.RejectionOf(index.Unscoped(ctx), inst.SOPInstanceUID)
	if err != nil {
		removeBlob()
		if errors.Is(err, index.ErrNotFound) { // restored or purged meanwhile
			return nil, fail(ErrUnavailable, err, "the rejection of this SOP Instance UID changed meanwhile; send it again")
		}
		return nil, fail(ErrUnavailable, err, "could not read the rejection")
	}
	if len(index.Scopes(ctx)) > 0 && !index.Admits(ctx, &index.Study{Patient: index.Patient{PatientID: rec.Patient.ID, IssuerOfPatientID: rec.Patient.Issuer}, StudyInstanceUID: rec.StudyInstanceUID}) {
		removeBlob()
		return nil, notAuthorized()
	}
	refused := fail(ErrRejected, nil, "SOP Instance UID rejected (IHE IOCM, %s %q by rejection note %s); it is not accepted again; an administrator can restore it", rec.Reason, index.RejectionCodes[rec.Reason], rec.NoteUID)
	samePatient := strings.TrimSpace(inst.PatientID) == rec.Patient.ID && strings.TrimSpace(inst.IssuerOfPatientID) == rec.Patient.Issuer
	if (rec.Reason != index.RejectQuality && rec.Reason != index.RejectRetentionExpired) || !samePatient {
		removeBlob()
		p.log().Info("ingest: object refused: its SOP Instance UID was rejected", "via", src.Via, "calling_ae", src.CallingAE, "sop_instance_uid", inst.SOPInstanceUID, "reason", rec.Reason, "note", rec.NoteUID)
		return nil, refused
	}
	res.Outcome = Hidden
	if rec.BlobKey == "" {
		ok, err := rj.KeepRejected(ctx, inst)
		if err != nil {
			if lrec, lerr := rj.RejectionOf(index.Unscoped(context.WithoutCancel(ctx)), inst.SOPInstanceUID); lerr == nil && lrec.BlobKey == inst.BlobKey {
				ok = true // committed after all
			} else if lerr == nil || errors.Is(lerr, index.ErrNotFound) {
				removeBlob()
				return nil, fail(ErrUnavailable, err, "the index did not keep the rejected object")
			} else {
				return nil, fail(ErrUnavailable, err, "the index did not keep the rejected object") // the blob stays for fsck
			}
		}
		if ok {
			res.Warnings = append(res.Warnings, fmt.Sprintf("the SOP Instance UID was rejected (IHE IOCM, %s) before the object arrived: it is kept hidden until an administrator restores it", rec.Reason))
			p.log().Info("ingest: object of a rejected SOP Instance UID kept hidden", "via", src.Via, "calling_ae", src.CallingAE, "sop_instance_uid", inst.SOPInstanceUID, "reason", rec.Reason, "key", inst.BlobKey)
			return res, nil
		}
		if rec, err = rj.RejectionOf(index.Unscoped(ctx), inst.SOPInstanceUID); err != nil {
			removeBlob()
			return nil, fail(ErrUnavailable, err, "the rejection of this SOP Instance UID changed meanwhile; send it again")
		}
	}
	same := rec.Digest == inst.Digest
	if !same {
		// Digests computed now if need be, the new object's before its blob goes.
		d := p.instanceDigest(ctx, inst)
		res.ContentDigest = d
		same = d != "" && p.digestOf(ctx, rec.ContentDigest, rec.BlobKey) == d
	}
	removeBlob()
	if !same {
		// Other content than the copy the rejection holds: not kept, so not acknowledged.
		p.log().Info("ingest: object refused: its SOP Instance UID was rejected and is held with other content", "via", src.Via, "calling_ae", src.CallingAE, "sop_instance_uid", inst.SOPInstanceUID, "reason", rec.Reason)
		return nil, fail(ErrDuplicate, nil, "SOP Instance UID rejected (IHE IOCM, %s) and held with other content; this object was not kept", rec.Reason)
	}
	res.BlobKey, res.Size, res.Digest = rec.BlobKey, rec.Size, rec.Digest
	res.Warnings = append(res.Warnings, fmt.Sprintf("the SOP Instance UID is rejected (IHE IOCM, %s): this object was not kept and the instance stays hidden until an administrator restores it", rec.Reason))
	p.log().Info("ingest: object of a rejected SOP Instance UID discarded", "via", src.Via, "calling_ae", src.CallingAE, "sop_instance_uid", inst.SOPInstanceUID, "reason", rec.Reason)
	return res, nil
}

// Rejected lists rejections (newest first) within the scopes of ctx.
func (p *Pipeline) Rejected(ctx context.Context, q index.RejectedQuery) ([]index.Rejection, error) {
	rj, ferr := p.rejecter()
	if ferr != nil {
		return nil, ferr
	}
	list, err := rj.Rejected(ctx, q)
	if err != nil {
		return nil, fail(ErrUnavailable, err, "could not list the rejections")
	}
	return list, nil
}

// resolveRejections returns the rejections named by SOP Instance UID and by note, within
// the scopes of ctx. An unknown SOP Instance UID, or a note that rejected nothing still
// rejected, is ErrNotFound.
func (p *Pipeline) resolveRejections(ctx context.Context, rj index.Rejecter, sopUIDs []string, noteUID string) ([]index.Rejection, error) {
	var out []index.Rejection
	seen := map[string]bool{}
	for _, uid := range sopUIDs {
		if seen[uid] {
			continue
		}
		seen[uid] = true
		rec, err := rj.RejectionOf(ctx, uid)
		switch {
		case errors.Is(err, index.ErrNotFound):
			return nil, fail(ErrNotFound, nil, "no rejection of SOP Instance UID %s", uid)
		case err != nil:
			return nil, fail(ErrUnavailable, err, "could not read the rejections")
		}
		out = append(out, *rec)
	}
	if noteUID != "" {
		var before int64
		found := false
		for {
			list, err := rj.Rejected(ctx, index.RejectedQuery{NoteUID: noteUID, Before: before})
			if err != nil {
				return nil, fail(ErrUnavailable, err, "could not read the rejections")
			}
			for _, r := range list {
				found = true
				if !seen[r.SOPInstanceUID] {
					seen[r.SOPInstanceUID] = true
					out = append(out, r)
				}
			}
			if len(list) < index.MaxRejectedList {
				break
			}
			before = list[len(list)-1].ID
		}
		if !found {
			return nil, fail(ErrNotFound, nil, "no instance is still rejected by rejection note %s", noteUID)
		}
	}
	if len(out) == 0 {
		return nil, fail(ErrNotFound, nil, "no rejection named")
	}
	return out, nil
}

// Restore ends the rejection of the instances named (by SOP Instance UID, and all those
// rejection note noteUID rejected), in one index transaction: each stored object is
// parsed again from the store (streaming) and indexed as it was; one never received only
// loses its rejection. reason (required) is recorded with the events; by says who asked.
// The rejection notes stay stored.
func (p *Pipeline) Restore(ctx context.Context, sopUIDs []string, noteUID, reason string, by Source) ([]index.Rejection, error) {
	rj, ferr := p.rejecter()
	if ferr != nil {
		return nil, ferr
	}
	recs, err := p.resolveRejections(ctx, rj, sopUIDs, noteUID)
	if err != nil {
		return nil, err
	}
	list := make([]index.Restoration, 0, len(recs))
	for _, r := range recs {
		rs := index.Restoration{SOPInstanceUID: r.SOPInstanceUID}
		if r.BlobKey != "" {
			inst, err := p.readInstance(ctx, r.BlobKey)
			if err != nil {
				return nil, err
			}
			if inst.SOPInstanceUID != r.SOPInstanceUID {
				return nil, fail(ErrMismatch, nil, "the stored object of rejected instance %s has another SOP Instance UID", r.SOPInstanceUID)
			}
			rs.Instance = inst
		}
		list = append(list, rs)
	}
	out, err := rj.Restore(ctx, list, reason, index.Change{Source: orDefault(by.Via, "admin"), Actor: actor(by)})
	switch {
	case errors.Is(err, index.ErrNotFound):
		return nil, fail(ErrNotFound, err, "a rejection was restored or purged meanwhile; nothing was restored")
	case errors.Is(err, index.ErrConflict):
		return nil, fail(ErrConflict, err, "a restored instance's series or study belongs to another study or patient now; nothing was restored")
	case err != nil:
		return nil, fail(ErrUnavailable, err, "the index did not accept the restore")
	}
	p.log().Info("ingest: rejected instances restored", "count", len(out), "note", noteUID, "account", by.Account)
	return out, nil
}

// Purge deletes rejected instances for good (by SOP Instance UID, and all those
// rejection note noteUID rejected): their rejections in one index transaction, then
// their blobs (a crash in between leaves orphan blobs, which fsck finds). reason
// (required) is recorded with the events; by says who asked.
func (p *Pipeline) Purge(ctx context.Context, sopUIDs []string, noteUID, reason string, by Source) ([]index.Rejection, error) {
	rj, ferr := p.rejecter()
	if ferr != nil {
		return nil, ferr
	}
	recs, err := p.resolveRejections(ctx, rj, sopUIDs, noteUID)
	if err != nil {
		return nil, err
	}
	uids := make([]string, len(recs))
	for i, r := range recs {
		uids[i] = r.SOPInstanceUID
	}
	out, err := rj.Purge(ctx, uids, reason, index.Change{Source: orDefault(by.Via, "admin"), Actor: actor(by)})
	switch {
	case errors.Is(err, index.ErrNotFound):
		return nil, fail(ErrNotFound, err, "a rejection was restored or purged meanwhile; nothing was purged")
	case err != nil:
		return nil, fail(ErrUnavailable, err, "the index did not accept the purge")
	}
	for _, r := range out {
		if r.BlobKey == "" {
			continue
		}
		if err := p.Store.Delete(ctx, r.BlobKey); err != nil && !errors.Is(err, archive.ErrNotFound) {
			p.log().Warn("ingest: purged instance's rejection removed, its blob not; lumen fsck will find it", "key", r.BlobKey, "err", err)
		}
	}
	p.log().Info("ingest: rejected instances purged", "count", len(out), "note", noteUID, "account", by.Account)
	return out, nil
}

// rejectedBlobKeys yields the blob keys of rejected instances starting with prefix (none
// when the index keeps no rejections): for fsck they are no orphans.
func (p *Pipeline) rejectedBlobKeys(ctx context.Context, prefix string) iter.Seq2[string, error] {
	if rj, ok := p.Index.(index.Rejecter); ok {
		return rj.RejectedBlobKeys(ctx, prefix)
	}
	return func(func(string, error) bool) {}
}

// rejectionByBlobKey returns the rejection whose stored object is key, or nil.
func (p *Pipeline) rejectionByBlobKey(ctx context.Context, key string) *index.Rejection {
	rj, ok := p.Index.(index.Rejecter)
	if !ok {
		return nil
	}
	// Blob keys name their SOP Instance UID nowhere; the stored object is gone, so the
	// rejection is found by listing (rare: a dangling rejected blob).
	var before int64
	for {
		list, err := rj.Rejected(ctx, index.RejectedQuery{Before: before})
		if err != nil {
			return nil
		}
		for i := range list {
			if list[i].BlobKey == key {
				return &list[i]
			}
		}
		if len(list) < index.MaxRejectedList {
			return nil
		}
		before = list[len(list)-1].ID
	}
}
