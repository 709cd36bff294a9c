package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/lumenpacs/lumen/hl7/mllp"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/service/audit"
	"github.com/lumenpacs/lumen/service/identity"
)

// hl7TestHook, when set (only by the build tag lumen_crashhook, for the crash tests), is
// the listener's identity.Listener.Hook.
var hl7TestHook func(point, controlID string)

// newHL7Server builds the HL7 listener (its listeners are served by the caller): the
// ADT handler of service/identity behind the peer list and the audit trail.
func newHL7Server(c *Config, idx index.Index, trail *audit.Trail, observe func(event, ack string, d time.Duration), log *slog.Logger) (*mllp.Server, error) {
	ix, ok := idx.(index.Identity)
	if !ok {
		return nil, errors.New("hl7: the index keeps no patient records (index.Identity)")
	}
	peers, err := identity.NewPeers(c.HL7.peers())
	if err != nil {
		return nil, fmt.Errorf("config: hl7.peers: %w", err)
	}
	h := &identity.Listener{
		ADT:     &identity.ADT{Index: ix, Issuer: c.HL7.Issuer, ProcessingIDs: c.HL7.ProcessingIDs, Log: log},
		Peers:   peers,
		Audit:   trail,
		Observe: observe,
		Hook:    hl7TestHook,
		Log:     log,
	}
	return &mllp.Server{
		Handler:         h,
		MaxConns:        orNone(c.HL7.MaxConns),
		MaxConnsPerHost: orNone(c.HL7.MaxConnsPerHost),
		IdleTimeout:     orNone(c.HL7.IdleTimeout),
		ReadTimeout:     orNone(c.HL7.ReadTimeout),
		WriteTimeout:    orNone(c.HL7.WriteTimeout),
		MaxMessageBytes: c.HL7.MaxMessageBytes,
		Allow:           h.Allow,
		Logger:          log,
	}, nil
}

// orNone maps a configured 0 ("no limit" in Lumen's configuration, as for the other
// listeners) to the mllp.Server's "none" (negative); the zero value there is its default.
func orNone[T int | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}
