package commit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/lumenpacs/lumen/archive"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/index"
)

// Failure reasons of a storage commitment (PS3.4 J.3.3.1.1).
const (
	failureProcessing         = 0x0110
	failureNoSuchInstance     = 0x0112
	failureClassInstanceClash = 0x0119
)

// Index is what the SCP reads of the index: an instance by SOP Instance UID.
type Index interface {
	Instance(ctx context.Context, sopInstanceUID string) (*index.Instance, error)
}

// Store is what the SCP reads of the blob store: whether an object is there.
type Store interface {
	Stat(ctx context.Context, key string) (archive.ObjectInfo, error)
}

// Auditor records a DIMSE action of an association (service/audit.Trail does).
type Auditor interface {
	DIMSE(ctx context.Context, as *dimse.AssociationInfo, action, op string, st dimse.Status, study, patient, issuer string)
}

// SCP is the Storage Commitment Push Model SCP (PS3.4 J): an instance is committed when
// the index has it (indexed only once durably stored, DESIGN §2.3) under the same SOP
// class and its stored object is present in the store. It is a dimse.CommitHandler.
type SCP struct {
	Index Index
	Store Store
	// AETitle is Lumen's, answered as RetrieveAETitle.
	AETitle string
	Audit   Auditor      // nil: not audited
	Log     *slog.Logger // nil: quiet
}

// HandleCommit checks each referenced instance and returns the N-EVENT-REPORT to send:
// its event type (1: all committed, 2: failures exist) and its event information.
func (h *SCP) HandleCommit(ctx context.Context, req *dimse.CommitRequest) (dimse.Status, uint16, []byte) {
	f, err := dcm.ParseDataset(bytes.NewReader(req.ActionInformation), req.TransferSyntaxUID, 0, nil)
	if err != nil {
		return dimse.Status{Code: dimse.StatusCannotUnderstand, ErrorComment: "action information does not parse"}, 0, nil
	}
	ds := f.Dataset
	txn := ds.String(dcm.TagTransactionUID)
	refs := ds.Get(dcm.TagReferencedSOPSequence)
	if !dcm.ValidUID(txn) || refs == nil || len(refs.Items) == 0 {
		return dimse.Status{Code: dimse.StatusCannotUnderstand, ErrorComment: "TransactionUID or ReferencedSOPSequence missing"}, 0, nil
	}
	var ok, failed []*dcm.Dataset
	for _, it := range refs.Items {
		class, uid := it.String(dcm.TagReferencedSOPClassUID), it.String(dcm.TagReferencedSOPInstanceUID)
		reason := uint16(0)
		in, err := h.Index.Instance(ctx, uid)
		switch {
		case err != nil && !isNotFound(err):
			reason = failureProcessing
		case err != nil:
			reason = failureNoSuchInstance
		case in.SOPClassUID != class:
			reason = failureClassInstanceClash
		default:
			if _, err := h.Store.Stat(ctx, in.BlobKey); err != nil {
				reason = failureNoSuchInstance
				if !isNotFound(err) {
					reason = failureProcessing
				}
			}
		}
		item := &dcm.Dataset{}
		item.Set(dcm.NewString(dcm.TagReferencedSOPClassUID, "UI", class))
		item.Set(dcm.NewString(dcm.TagReferencedSOPInstanceUID, "UI", uid))
		if reason != 0 {
			item.Set(dcm.NewUS(dcm.TagFailureReason, reason))
			failed = append(failed, item)
		} else {
			ok = append(ok, item)
		}
	}
	out := &dcm.Dataset{}
	out.Set(dcm.NewString(dcm.TagTransactionUID, "UI", txn))
	out.Set(dcm.NewString(dcm.TagRetrieveAETitle, "AE", h.AETitle))
	if len(ok) > 0 {
		out.Set(dcm.NewSequence(dcm.TagReferencedSOPSequence, ok...))
	}
	event := dimse.CommitmentSucceeded
	if len(failed) > 0 {
		event = dimse.CommitmentFailuresExist
		out.Set(dcm.NewSequence(dcm.TagFailedSOPSequence, failed...))
	}
	b, err := out.Encode(req.TransferSyntaxUID)
	if err != nil {
		return dimse.Status{Code: dimse.StatusProcessingFailure, ErrorComment: "cannot encode the result"}, 0, nil
	}
	if h.Log != nil {
		h.Log.Info("dimse: storage commitment", "calling_ae", req.Association.CallingAETitle, "committed", len(ok), "failed", len(failed))
	}
	outcome := dimse.Status{Code: dimse.StatusSuccess}
	if len(failed) > 0 {
		outcome.Code = failureNoSuchInstance // some instances are not committed
	}
	if h.Audit != nil {
		h.Audit.DIMSE(ctx, req.Association, "commit", fmt.Sprintf("N-ACTION %d committed, %d failed", len(ok), len(failed)), outcome, "", "", "")
	}
	return dimse.Status{Code: dimse.StatusSuccess}, event, b
}

// isNotFound reports an index or store "not found".
func isNotFound(err error) bool {
	return errors.Is(err, index.ErrNotFound) || errors.Is(err, archive.ErrNotFound)
}
