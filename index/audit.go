package index

import (
	"context"
	"time"
)

// AuditRecord is one audited action: who, what, when, from where, and the outcome.
type AuditRecord struct {
	ID int64
	At time.Time
	// Actor is who acted: an authenticated subject ("dr-who", "token:gateway"), a
	// calling AE title ("ae:CT_SCANNER_1"), a link ("link:<token ID>"), or "anonymous"
	// when authentication is off.
	Actor string
	// Via is the surface: "http", "dimse" or "link".
	Via string
	// Action is store, query, retrieve, delete, send, commit, link-mint or link-use.
	Action string
	// Outcome is "ok", or the failure: an HTTP status ("403") or a DIMSE status
	// ("0xA801").
	Outcome string
	// StudyInstanceUID and the patient (PatientID, IssuerOfPatientID), when known.
	StudyInstanceUID             string
	PatientID, IssuerOfPatientID string
	// Remote is the peer's network address.
	Remote string
	// Detail is the route pattern, the DIMSE operation or the SOP class.
	Detail string
}

// AuditQuery selects audit records, newest first. Zero fields match everything.
type AuditQuery struct {
	Actor, Action, StudyInstanceUID, PatientID string
	From, To                                   time.Time
	Limit                                      int // default and maximum 1000
}

// Auditor is the append-only audit trail kept in the index database.
type Auditor interface {
	// Audit appends records in one transaction (At is set to now when zero).
	Audit(ctx context.Context, rs ...*AuditRecord) error
	// FindAudit returns the records matching q, newest first.
	FindAudit(ctx context.Context, q AuditQuery) ([]AuditRecord, error)
}
