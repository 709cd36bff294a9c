package qr

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/service/send"
)

// RetrieveSCP answers C-MOVE and C-GET (PS3.4 C.4.2, C.4.3) in the Patient Root and
// Study Root information models from the index and the store: C-MOVE sub-operations go
// to a known peer over a new association, C-GET ones on the requestor's association. It
// is a dimse.RetrieveHandler.
type RetrieveSCP struct {
	Index  Index
	Sender *send.Sender
	// Peers are the move destinations Lumen knows (an unknown one is refused with A801).
	Peers *send.Peers
	Audit Auditor      // nil: not audited
	Log   *slog.Logger // nil: quiet
}

// uniqueKeys are the keys of each level a retrieve identifier names (PS3.4 C.4.2.2.1).
var uniqueKeys = map[index.Level]dcm.Tag{
	index.PatientLevel: dcm.TagPatientID,
	index.StudyLevel:   dcm.TagStudyInstanceUID,
	index.SeriesLevel:  dcm.TagSeriesInstanceUID,
	index.ImageLevel:   dcm.TagSOPInstanceUID,
}

// resolve turns a retrieve identifier into the instances it names, in index order.
func (h *RetrieveSCP) resolve(ctx context.Context, req *dimse.RetrieveRequest) ([]index.Instance, *dimse.Status) {
	f, err := dcm.ParseDataset(bytes.NewReader(req.Identifier), req.TransferSyntaxUID, 0, nil)
	if err != nil {
		return nil, &dimse.Status{Code: dimse.StatusCannotUnderstand, ErrorComment: "identifier does not parse"}
	}
	id := f.Dataset
	level, ok := levels[id.String(dcm.TagQueryRetrieveLevel)]
	if !ok {
		return nil, &dimse.Status{Code: dimse.StatusDataSetMismatch, ErrorComment: "QueryRetrieveLevel missing or not PATIENT/STUDY/SERIES/IMAGE"}
	}
	studyRoot := req.SOPClassUID == dimse.StudyRootMove || req.SOPClassUID == dimse.StudyRootGet
	if level == index.PatientLevel && studyRoot {
		return nil, &dimse.Status{Code: dimse.StatusDataSetMismatch, ErrorComment: "Study Root has no PATIENT level"}
	}
	var q index.Query
	q.Level = index.ImageLevel
	for l := index.PatientLevel; l <= level; l++ {
		if l == index.PatientLevel && studyRoot {
			continue
		}
		tag := uniqueKeys[l]
		v := strings.Join(id.Texts(tag), `\`) // PatientID decoded like the index's
		if strings.TrimSpace(v) == "" || strings.ContainsAny(v, "*?") {
			if l == level {
				return nil, &dimse.Status{Code: dimse.StatusDataSetMismatch, ErrorComment: fmt.Sprintf("a %s retrieve needs %s", id.String(dcm.TagQueryRetrieveLevel), dcmName(tag))}
			}
			continue
		}
		q.Filters = append(q.Filters, index.Filter{Tag: tag, Value: v})
	}
	res, err := h.Index.Find(ctx, q)
	if err != nil && errors.Is(err, index.ErrBadQuery) {
		return nil, &dimse.Status{Code: dimse.StatusCannotUnderstand, ErrorComment: strings.TrimPrefix(err.Error(), "index: ")}
	}
	if err != nil {
		logger(h.Log).Warn("dimse: retrieve: index unavailable", "err", err)
		return nil, &dimse.Status{Code: dimse.StatusOutOfResourcesMatches, ErrorComment: "index unavailable"}
	}
	return res.Instances, nil
}

func dcmName(t dcm.Tag) string {
	switch t {
	case dcm.TagPatientID:
		return "PatientID"
	case dcm.TagStudyInstanceUID:
		return "StudyInstanceUID"
	case dcm.TagSeriesInstanceUID:
		return "SeriesInstanceUID"
	}
	return "SOPInstanceUID"
}

// comment bounds an ErrorComment to the 64 characters of its VR (LO).
func comment(s string) string {
	if len(s) > 64 {
		s = s[:61] + "..."
	}
	return s
}

// HandleRetrieve resolves the identifier to instances and performs the sub-operations,
// reporting progress after each (dimse.RetrieveHandler).
func (h *RetrieveSCP) HandleRetrieve(ctx context.Context, req *dimse.RetrieveRequest, get dimse.GetStorer, progress func(dimse.SubOperations) error) (st dimse.Status, n dimse.SubOperations, failed []string) {
	op := "C-MOVE"
	if get != nil {
		op = "C-GET"
	}
	var list []index.Instance
	defer func() {
		study := ""
		if len(list) > 0 {
			study = list[0].StudyInstanceUID
		}
		detail := op
		if get == nil {
			detail += " to " + req.Destination
		}
		audited(ctx, h.Audit, req.Association, "retrieve", detail, st, study, "", "")
	}()
	var dst send.Destination
	if get == nil {
		var ok bool
		if dst, ok = h.Peers.Destination(req.Destination); !ok {
			logger(h.Log).Warn("dimse: C-MOVE to an unknown destination: add it to dimse.peers with ae_title, host and port",
				"destination", req.Destination, "calling_ae", req.Association.CallingAETitle)
			return dimse.Status{Code: dimse.StatusMoveDestinationUnknown, ErrorComment: comment("move destination " + req.Destination + " unknown: not in dimse.peers")}, dimse.SubOperations{}, nil
		}
	}
	list, bad := h.resolve(ctx, req)
	if bad != nil {
		return *bad, dimse.SubOperations{}, nil
	}
	n = dimse.SubOperations{Remaining: len(list)}
	firstReason := ""
	record := func(r send.Result) error {
		n.Remaining--
		switch {
		case r.Failed():
			n.Failed++
			failed = append(failed, r.SOPInstanceUID)
			if firstReason == "" {
				if r.Err != nil {
					firstReason = send.Reason(r.Err)
				} else {
					firstReason = fmt.Sprintf("status 0x%04X %s", r.Status.Code, r.Status.ErrorComment)
				}
			}
		case r.Warning():
			n.Warning++
		default:
			n.Completed++
		}
		return progress(n)
	}
	var sendErr error
	if get == nil {
		sendErr = h.Sender.Send(ctx, dst, list, send.Options{MoveOriginatorAETitle: req.Association.CallingAETitle, MoveOriginatorMessageID: req.MessageID}, record)
	} else {
		for i := range list {
			in := &list[i]
			r := send.Result{SOPInstanceUID: in.SOPInstanceUID}
			// The requestor may have accepted several storage contexts for the class,
			// each with its syntax: the stored one is preferred, else one Lumen can
			// convert the object to.
			accepted := get.Accepted(in.SOPClassUID)
			if r.TransferSyntax = send.Choose(in.TransferSyntaxUID, accepted); len(accepted) == 0 {
				r.Err = fmt.Errorf("the requestor did not accept the SCP role for SOP class %s", in.SOPClassUID)
			} else if r.TransferSyntax == "" {
				r.Err = send.NoRepresentation(in.TransferSyntaxUID, accepted)
			} else if data, err := h.Sender.Open(ctx, in, r.TransferSyntax); err != nil {
				r.Err = err
			} else {
				r.Status, r.Err = get.Store(ctx, in.SOPClassUID, in.SOPInstanceUID, r.TransferSyntax, data)
				data.Close()
				if r.Err != nil && ctx.Err() == nil && !errors.Is(r.Err, dimse.ErrNoContext) {
					sendErr = r.Err
					break
				}
			}
			if r.Err != nil {
				logger(h.Log).Info("dimse: C-GET sub-operation failed", "sop_class", in.SOPClassUID, "transfer_syntax", in.TransferSyntaxUID, "to", r.TransferSyntax, "reason", r.Err)
			}
			if err := record(r); err != nil {
				sendErr = err
				break
			}
		}
	}
	if sendErr != nil && ctx.Err() == nil {
		// The association with the destination could not be opened or broke: the
		// sub-operations not done fail with the reason.
		logger(h.Log).Warn("dimse: "+op+" sub-operations failed", "destination", req.Destination, "err", sendErr)
		for i := len(list) - n.Remaining; i < len(list); i++ {
			failed = append(failed, list[i].SOPInstanceUID)
		}
		n.Failed += n.Remaining
		n.Remaining = 0
		return dimse.Status{Code: dimse.StatusOutOfResourcesSubops, ErrorComment: comment(shortError(sendErr))}, n, failed
	}
	switch {
	case ctx.Err() != nil:
		return dimse.Status{Code: dimse.StatusCancel}, n, failed
	case n.Failed > 0 && n.Completed+n.Warning == 0:
		return dimse.Status{Code: dimse.StatusOutOfResourcesSubops, ErrorComment: comment(firstReason)}, n, failed
	case n.Failed > 0:
		return dimse.Status{Code: dimse.StatusSubOperationsWarning, ErrorComment: comment(fmt.Sprintf("%d failed: %s", n.Failed, firstReason))}, n, failed
	}
	return dimse.Status{Code: dimse.StatusSuccess}, n, nil
}

// shortError says why the association with a move destination failed, for the
// requestor's ErrorComment: never the destination's host or port (the log has those).
func shortError(err error) string {
	var rj *dimse.RejectedError
	var ab *dimse.AbortedError
	var oe *net.OpError
	switch {
	case errors.As(err, &rj):
		return "the move destination rejected the association: " + strings.TrimPrefix(rj.Error(), "dimse: association rejected ")
	case errors.As(err, &ab):
		return "the move destination aborted the association"
	case errors.As(err, &oe) && oe.Op == "dial":
		why := "unreachable"
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			why = "connection refused"
		case oe.Timeout():
			why = "timed out"
		}
		return "cannot connect to the move destination: " + why
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "the move destination did not answer in time"
	}
	var te *tls.CertificateVerificationError
	if errors.As(err, &te) {
		return "the move destination's TLS certificate was not accepted"
	}
	return "the association with the move destination failed"
}
