package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"

	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/lumenpacs/lumen/service/send"
)

// newDIMSEServer builds the DICOM listener from the configuration.
func newDIMSEServer(c *Config, b *backends, book *peerBook, audit *auditor, log *slog.Logger) *dimse.Server {
	var peers []dimse.Peer
	for _, p := range c.DIMSE.Peers {
		peers = append(peers, dimse.Peer{AETitle: p.AETitle, Host: p.Host, Port: p.Port, Services: p.Services})
	}
	return &dimse.Server{
		Addr:    c.DIMSE.Addr,
		AETitle: c.DIMSE.AETitle,
		Policy: dimse.Policy{
			CheckCalledAE:          c.DIMSE.CheckCalledAE,
			RejectUnknownCallingAE: c.DIMSE.RejectUnknownCallingAE,
			CheckHost:              c.DIMSE.CheckHost,
			Peers:                  peers,
		},
		StoreHandler: &storeHandler{p: b.pipeline, audit: audit, log: log},
		FindHandler:  &findHandler{idx: b.index, aeTitle: c.DIMSE.AETitle, audit: audit, log: log},
		RetrieveHandler: &retrieveHandler{idx: b.index, peers: book, audit: audit, log: log,
			sender: &send.Sender{Store: b.store, CallingAETitle: c.DIMSE.AETitle, Logger: log}},
		CommitHandler:           &commitHandler{idx: b.index, store: b.store, aeTitle: c.DIMSE.AETitle, audit: audit, log: log},
		MaxAssociations:         c.DIMSE.MaxAssociations,
		MaxAssociationsPerAE:    c.DIMSE.MaxAssociationsPerAE,
		MaxPDULength:            uint32(c.DIMSE.MaxPDULength),
		IdleTimeout:             c.DIMSE.IdleTimeout,
		ARTIMTimeout:            c.DIMSE.ARTIMTimeout,
		MaxPendingPerAddress:    c.DIMSE.MaxPendingPerAddress,
		ReservedForPeers:        c.DIMSE.ReservedForPeers,
		AssociateRequestTimeout: c.DIMSE.AssociateRequestTimeout,
		TransferSyntaxes:        c.DIMSE.TransferSyntaxes,
		Logger:                  log,
	}
}

// storeHandler feeds C-STORE data sets into the ingest pipeline.
type storeHandler struct {
	p     *ingest.Pipeline
	audit *auditor
	log   *slog.Logger
}

func (h *storeHandler) HandleStore(ctx context.Context, req *dimse.StoreRequest, data io.Reader) dimse.Status {
	res, err := h.p.IngestDataset(ctx, data, ingest.DatasetInfo{
		TransferSyntaxUID: req.TransferSyntaxUID, SOPClassUID: req.SOPClassUID, SOPInstanceUID: req.SOPInstanceUID,
	}, ingest.Source{CallingAE: req.Association.CallingAETitle, Via: "dimse", Remote: remoteString(req.Association.RemoteAddr)})
	st := storeStatus(err)
	study := ""
	if res != nil {
		study = res.StudyInstanceUID
	}
	h.audit.dimse(ctx, req.Association, "store", "C-STORE", st, study, "", "")
	if err != nil {
		h.log.Warn("dimse: C-STORE failed", "calling_ae", req.Association.CallingAETitle, "sop_instance_uid", req.SOPInstanceUID, "status", st.Code, "err", err)
	}
	return st
}

// storeStatus maps an ingest outcome to the C-STORE status (PS3.4 Table B.2-1). This is
// the one place where ingest errors become DIMSE statuses.
func storeStatus(err error) dimse.Status {
	if err == nil {
		return dimse.Status{Code: dimse.StatusSuccess}
	}
	reason := err.Error()
	var ie *ingest.Error
	if errors.As(err, &ie) {
		reason = ie.Reason
	}
	switch {
	case errors.Is(err, ingest.ErrMismatch):
		return dimse.Status{Code: dimse.StatusDataSetMismatch, ErrorComment: reason}
	case errors.Is(err, ingest.ErrDuplicate):
		return dimse.Status{Code: dimse.StatusDuplicateSOPInstance, ErrorComment: "SOP Instance UID stored with other content"}
	case errors.Is(err, ingest.ErrNotAuthorized):
		return dimse.Status{Code: dimse.StatusNotAuthorized, ErrorComment: reason}
	case errors.Is(err, ingest.ErrInvalid), errors.Is(err, ingest.ErrConflict):
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
