package main

import (
	"log/slog"

	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/service/audit"
	"github.com/lumenpacs/lumen/service/commit"
	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/lumenpacs/lumen/service/qr"
	"github.com/lumenpacs/lumen/service/send"
)

// newDIMSEServer builds the DICOM listener from the configuration.
func newDIMSEServer(c *Config, b *backends, book *send.Peers, trail *audit.Trail, log *slog.Logger) *dimse.Server {
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
		StoreHandler: &ingest.StoreSCP{Pipeline: b.pipeline, Audit: trail, Log: log},
		FindHandler:  &qr.FindSCP{Index: b.index, AETitle: c.DIMSE.AETitle, Audit: trail, Log: log},
		RetrieveHandler: &qr.RetrieveSCP{Index: b.index, Peers: book, Audit: trail, Log: log,
			Sender: &send.Sender{Store: b.store, CallingAETitle: c.DIMSE.AETitle, Logger: log}},
		CommitHandler:           &commit.SCP{Index: b.index, Store: b.store, AETitle: c.DIMSE.AETitle, Audit: trail, Log: log},
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
