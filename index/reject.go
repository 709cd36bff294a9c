package index

import (
	"context"
	"errors"
	"iter"
	"time"
)

// ErrRejected is returned (wrapped) by Put (and every write that would index an
// instance) when the SOP Instance UID was rejected (IHE IOCM): a rejected instance is
// never indexed again by accident; only Rejecter.Restore brings it back.
var ErrRejected = errors.New("index: instance rejected")

// Rejection reason codes: the document titles of a rejection note (PS3.16 CID 7010 "Key
// Object Selection Document Title", coding scheme DCM; the same four are CID 7031). CID
// 7011 holds the finer reasons that may qualify 113001, not these titles.
const (
	RejectQuality          = "113001" // Rejected for Quality Reasons
	RejectPatientSafety    = "113037" // Rejected for Patient Safety Reasons
	RejectWorklistEntry    = "113038" // Incorrect Modality Worklist Entry
	RejectRetentionExpired = "113039" // Data Retention Policy Expired
)

// RejectionCodes maps each rejection reason code to its code meaning.
var RejectionCodes = map[string]string{
	RejectQuality:          "Rejected for Quality Reasons",
	RejectPatientSafety:    "Rejected for Patient Safety Reasons",
	RejectWorklistEntry:    "Incorrect Modality Worklist Entry",
	RejectRetentionExpired: "Data Retention Policy Expired",
}

// RejectRef names one instance a rejection note rejects, as the note's
// CurrentRequestedProcedureEvidenceSequence gives it.
type RejectRef struct {
	StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID, SOPClassUID string
}

// Rejection is one rejected instance: hidden from every query and retrieve (its row is
// out of the instances table), kept until it is restored or purged.
type Rejection struct {
	// ID orders the rejections (the list pages on it).
	ID int64
	// SOPInstanceUID names the rejected instance; SOPClassUID, StudyInstanceUID and
	// SeriesInstanceUID are those of its record (or, when it was not received yet, those
	// the note named).
	SOPInstanceUID, SOPClassUID, StudyInstanceUID, SeriesInstanceUID string
	// Patient is the patient the instance was filed under (the note's, when not received).
	Patient PatientKey
	// Reason is the CID 7010 code of the note; NoteUID the note's SOP Instance UID.
	Reason, NoteUID string
	// BlobKey locates the stored object, or is "" when it was not received (yet); Size,
	// Digest, ContentDigest, SourceAE and ReceivedAt are those of its record.
	BlobKey       string
	Size          int64
	Digest        string
	ContentDigest string
	SourceAE      string
	ReceivedAt    time.Time
	// RejectedAt is when the rejection was recorded; Source and Actor who asked.
	RejectedAt    time.Time
	Source, Actor string
}

// RejectedQuery selects rejections, newest first. Zero fields match everything.
type RejectedQuery struct {
	StudyInstanceUID, NoteUID, SOPInstanceUID string
	// Before, when not 0, returns only rejections with a smaller ID (the next page).
	Before int64
	// Limit caps the answer: default and maximum MaxRejectedList.
	Limit int
}

// MaxRejectedList is the most rejections one RejectedQuery returns.
const MaxRejectedList = 1000

// Restoration names one rejection to end: Instance is the record rebuilt from the
// stored object (its BlobKey must be the rejection's), or nil for an instance never
// received (only the rejection goes).
type Restoration struct {
	SOPInstanceUID string
	Instance       *Instance
}

// Rejecter is implemented by indexes that keep IHE IOCM rejections. It is found by type
// assertion, like Identity. Every operation records one PatientEvent per study it
// touches (EventReject, EventRestore, EventPurge) in its transaction.
type Rejecter interface {
	// Reject indexes the rejection note (as Put does: ErrExists, ErrConflict) and
	// rejects refs with reason, all in one transaction: each referenced instance's row
	// leaves the instances table (counts maintained, empty parents removed) and a
	// rejection records it. A reference to an instance not indexed records a rejection
	// without blob, filed under the note's patient. A reference already rejected is
	// left as it is. A reference whose indexed instance lies in another study or series
	// than refs names, or belongs to another patient than the note, is ErrConflict and
	// nothing changes. It returns the rejections recorded.
	Reject(ctx context.Context, note *Instance, reason string, refs []RejectRef, c Change) ([]Rejection, error)
	// Restore ends the rejections named, in one transaction: each instance is indexed
	// again from its Restoration, filed under the study, series and patient its
	// rejection recorded (a series moved before the rejection keeps it), and its
	// rejection removed. An unknown SOP Instance UID
	// is ErrNotFound; an Instance whose blob key is not the rejection's, or missing for
	// a rejection with a blob, is ErrConflict. reason is recorded with the events.
	Restore(ctx context.Context, list []Restoration, reason string, c Change) ([]Rejection, error)
	// Purge removes the rejections of sopUIDs and returns them, in one transaction; the
	// caller then deletes their blobs (after, never before: a crash in between leaves
	// orphan blobs, which fsck finds). An unknown SOP Instance UID is ErrNotFound.
	Purge(ctx context.Context, sopUIDs []string, reason string, c Change) ([]Rejection, error)
	// Rejected lists rejections matching q, newest first, within the scopes of ctx.
	Rejected(ctx context.Context, q RejectedQuery) ([]Rejection, error)
	// RejectionOf returns the rejection of a SOP Instance UID, or ErrNotFound.
	RejectionOf(ctx context.Context, sopUID string) (*Rejection, error)
	// KeepRejected records inst, an object that arrived after its SOP Instance UID was
	// rejected without having been received, as the rejected instance's stored copy
	// (hidden like the rest). ok is false when the rejection already has a blob or is
	// gone (nothing changed).
	KeepRejected(ctx context.Context, inst *Instance) (ok bool, err error)
	// RejectedBlobKeys yields the blob keys of rejections starting with prefix, in
	// byte-wise lexical order (fsck: they are no orphans).
	RejectedBlobKeys(ctx context.Context, prefix string) iter.Seq2[string, error]
}
