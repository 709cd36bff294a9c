package ingest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"

	"github.com/lumenpacs/lumen/dimse"
)

// Auditor records a DIMSE action of an association (service/audit.Trail does).
type Auditor interface {
	DIMSE(ctx context.Context, as *dimse.AssociationInfo, action, op string, st dimse.Status, study, patient, issuer string)
}

// StoreSCP is the Storage SCP (PS3.4 B): it feeds C-STORE data sets, streamed, into the
// ingest pipeline and answers with the status of StoreStatus. It is a
// dimse.StoreHandler.
type StoreSCP struct {
	Pipeline *Pipeline
	Audit    Auditor      // nil: not audited
	Log      *slog.Logger // nil: quiet
}

// HandleStore ingests one C-STORE data set and returns its status: Success only once
// the object is durable in the store and the index.
func (h *StoreSCP) HandleStore(ctx context.Context, req *dimse.StoreRequest, data io.Reader) dimse.Status {
	res, err := h.Pipeline.IngestDataset(ctx, data, DatasetInfo{
		TransferSyntaxUID: req.TransferSyntaxUID, SOPClassUID: req.SOPClassUID, SOPInstanceUID: req.SOPInstanceUID,
	}, Source{CallingAE: req.Association.CallingAETitle, Via: "dimse", Remote: remoteString(req.Association.RemoteAddr)})
	st := StoreStatus(err)
	study := ""
	if res != nil {
		study = res.StudyInstanceUID
	}
	if h.Audit != nil {
		h.Audit.DIMSE(ctx, req.Association, "store", "C-STORE", st, study, "", "")
	}
	if err != nil && h.Log != nil {
		h.Log.Warn("dimse: C-STORE failed", "calling_ae", req.Association.CallingAETitle, "sop_instance_uid", req.SOPInstanceUID, "status", st.Code, "err", err)
	}
	return st
}

// StoreStatus maps an ingest outcome to the C-STORE status (PS3.4 Table B.2-1). This is
// the one place where ingest errors become DIMSE statuses.
func StoreStatus(err error) dimse.Status {
	if err == nil {
		return dimse.Status{Code: dimse.StatusSuccess}
	}
	reason := err.Error()
	var ie *Error
	if errors.As(err, &ie) {
		reason = ie.Reason
	}
	switch {
	case errors.Is(err, ErrMismatch):
		return dimse.Status{Code: dimse.StatusDataSetMismatch, ErrorComment: reason}
	case errors.Is(err, ErrDuplicate):
		return dimse.Status{Code: dimse.StatusDuplicateSOPInstance, ErrorComment: "SOP Instance UID stored with other content"}
	case errors.Is(err, ErrNotAuthorized):
		return dimse.Status{Code: dimse.StatusNotAuthorized, ErrorComment: reason}
	case errors.Is(err, ErrRejected):
		// PS3.4 B.2.3 has no status of its own for this; dcm4chee answers with its
		// private 0xA771, which senders read as "out of resources, retry".
		return dimse.Status{Code: dimse.StatusProcessingFailure, ErrorComment: reason}
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrConflict):
		return dimse.Status{Code: dimse.StatusCannotUnderstand, ErrorComment: reason}
	default:
		// Store or index unavailable, or the association ended mid-transfer.
		return dimse.Status{Code: dimse.StatusOutOfResources, ErrorComment: "storage unavailable, retry later"}
	}
}

// remoteString is a peer's address, or "" when it is not known.
func remoteString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
