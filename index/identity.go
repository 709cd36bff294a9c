package index

import (
	"context"
	"errors"
	"time"
)

// ErrMerged is returned (wrapped) when an operation names a patient record that was
// merged into another one: its identifier is not used any more (IHE PAM), so the caller
// refuses the request (HL7: AE) rather than silently acting on the survivor.
var ErrMerged = errors.New("index: patient record merged into another")

// ErrDuplicateMessage is returned (wrapped) by the Identity operations when the message
// named in Change.Message was applied already: nothing changed. The caller answers with
// the ACK recorded for it (Identity.Message).
var ErrDuplicateMessage = errors.New("index: message already applied")

// Demographics are the patient attributes an update sets. A nil field is left as it
// is; a pointer to "" deletes the value (the HL7 null `""`); any other value replaces it.
type Demographics struct {
	Name      *string // UTF-8, DICOM PN form (Family^Given...)
	BirthDate *string // YYYYMMDD
	Sex       *string
}

// MessageID names one HL7 message for exactly-once processing: MSH-3, MSH-4 and MSH-10,
// and the ACK answered for it.
type MessageID struct {
	Application, Facility, ControlID string
	Ack                              []byte
}

// Change says where an identity change comes from; it is recorded with its event.
type Change struct {
	// Source is the channel (e.g. "hl7", "admin"); Actor who asked (e.g. the sending
	// facility and application, or an account).
	Source, Actor string
	// Message, when set, is recorded in the same transaction as the change, so that a
	// second apply of the same message changes nothing and returns ErrDuplicateMessage.
	Message *MessageID
	// Reason is the free text an administrator gave for the change; it is recorded with
	// the event (PatientEvent.Reason).
	Reason string
}

// Kinds of PatientEvent.
const (
	EventCreate   = "create"
	EventUpdate   = "update"
	EventMerge    = "merge"
	EventChangeID = "change-id"
	// EventUnmerge undoes a merge: Patient is the survivor, Other the record restored.
	EventUnmerge = "unmerge"
	// EventMoveStudy files Study under Patient (Other: the record it left).
	EventMoveStudy = "move-study"
	// EventMoveSeries moves Series into Study, of Patient (Other: the record it left).
	EventMoveSeries = "move-series"
	// EventReject hides Instances (IHE IOCM rejection; Reason is the CID 7010 code),
	// EventRestore brings them back, EventPurge deletes them (blobs and rows).
	EventReject  = "reject"
	EventRestore = "restore"
	EventPurge   = "purge"
)

// PatientEvent is one change to the patient records, recorded in the transaction that
// made it.
type PatientEvent struct {
	// ID orders the events; a reader resumes after the last ID it has read.
	ID   int64
	At   time.Time
	Kind string // one of the Event constants (EventCreate ...)
	// Patient is the record changed, by its key after the change: the created or
	// updated record, the survivor of a merge, the new key of a change of identifier.
	Patient PatientKey
	// Other is the merged-away key of a merge, or the old key of a change of
	// identifier; zero otherwise.
	Other PatientKey
	// Fields names the demographics a create or update set ("name", "birth_date",
	// "sex"); the values are not recorded.
	Fields []string
	// Study and Series name the study or series a move, rejection, restore or purge
	// concerns (for a series move, Study is the study the series went into);
	// Instances the SOP Instance UIDs of a rejection, restore or purge.
	Study, Series string
	Instances     []string
	// FromStudy is the study a series move took Series out of.
	FromStudy string
	// Reason is the rejection reason code (CID 7010) or the reason an administrator gave.
	Reason        string
	Source, Actor string
}

// Identity is implemented by indexes that own patient records: demographic updates,
// merges and changes of identifier, each recorded as a PatientEvent in the same
// transaction. It is found by type assertion, like Queue.
type Identity interface {
	// UpdatePatient creates the record of k with d (EventCreate, created true), or sets
	// the fields of d that are not nil on the existing record (EventUpdate). A record
	// merged away is refused with ErrMerged.
	UpdatePatient(ctx context.Context, k PatientKey, d Demographics, c Change) (created bool, err error)
	// MergePatients merges the record merged into survivor (IHE PAM, HL7 A40): the
	// studies of merged are filed under survivor and merged keeps its key with a link
	// to survivor (records merged into merged earlier are re-pointed: no chains). Its
	// cost does not depend on the number of instances. An unknown merged is nothing
	// to do (nil, no event); an unknown survivor makes it ChangePatientID(merged,
	// survivor); merged already merged into survivor is nothing to do. A merge of a
	// record into itself, into a record merged away, or of a record already merged
	// into another is ErrConflict.
	MergePatients(ctx context.Context, survivor, merged PatientKey, c Change) error
	// ChangePatientID changes the key of a record in place (HL7 A47). An unknown old is
	// ErrNotFound, an old merged away ErrMerged, a new that exists ErrConflict.
	ChangePatientID(ctx context.Context, old, new PatientKey, c Change) error
	// ResolvePatient returns the key studies of k are filed under: k itself, or its
	// survivor with merged true. An unknown k is ErrNotFound.
	ResolvePatient(ctx context.Context, k PatientKey) (PatientKey, bool, error)
	// PatientEvents returns up to limit events with an ID above afterID, in ID order.
	PatientEvents(ctx context.Context, afterID int64, limit int) ([]PatientEvent, error)
	// Message returns the ACK recorded for an applied message (ok false when it was
	// not applied). Only id's Application, Facility and ControlID are read.
	Message(ctx context.Context, id MessageID) (ack []byte, ok bool, err error)
	// MoveStudy files the study studyUID under the active record to (a wrong-patient
	// correction): both records' study counts follow, to is marked corrected, and the
	// record the study left is kept even when it has no study left. An unknown study
	// or to is ErrNotFound, a to merged away ErrMerged, a study filed under to already
	// ErrConflict. Event EventMoveStudy (Patient to, Other the record left, Study).
	MoveStudy(ctx context.Context, studyUID string, to PatientKey, c Change) error
	// MoveSeries moves the series seriesUID into the existing study toStudyUID (of the
	// same or another patient): the number of series and instances, the modalities and
	// SOP classes of both studies are recomputed, a study left without series goes (as
	// when its last instance is deleted), and the record of the target study is marked
	// corrected. An unknown series or study is ErrNotFound, a series in toStudyUID
	// already ErrConflict. Event EventMoveSeries (Patient the target study's record,
	// Other the source study's, Study toStudyUID, FromStudy, Series).
	MoveSeries(ctx context.Context, seriesUID, toStudyUID string, c Change) error
	// UnmergePatient undoes the merge of the record merged into its survivor: merged is
	// active again under its key, with the studies that came with the merge (filed under
	// the survivor by MergePatients, or arriving later under merged's key, or under the
	// key of a record merged into merged earlier), and the records re-pointed to the
	// survivor by that merge (no chains) point at merged again. Both records are marked
	// corrected. Event EventUnmerge (Patient the survivor, Other merged).
	//
	// A merge can be undone while no later change depends on it: it is ErrConflict when,
	// after the merge, an event of kind EventMerge, EventChangeID, EventUnmerge,
	// EventMoveStudy or EventMoveSeries names either record (Patient or Other), a merge
	// and the unmerge that undid it (with no such event between them) left out. This
	// includes the survivor having been merged into a third record since (merged then
	// points there: no chains; undo that merge first). Demographic updates (EventUpdate)
	// and the ingest of new objects do not block: the survivor keeps its demographics,
	// its own studies and those that arrived under its key. An unknown merged is
	// ErrNotFound, one not merged away ErrConflict.
	UnmergePatient(ctx context.Context, merged PatientKey, c Change) error
}
