package index

import (
	"time"
)

// QuarantineRecord is a copy of an instance kept aside: an object that arrived under a
// SOP Instance UID already stored with other content (the duplicate policy
// "quarantine"), or a served copy that an administrator replaced by promoting a
// quarantined one. The served instance is the one in the instances table; quarantined
// copies are never served by DICOMweb or DIMSE, only listed, fetched, promoted or
// deleted through the admin API.
type QuarantineRecord struct {
	// ID identifies the record (assigned by Quarantine).
	ID int64
	// ReceivedAt is when the copy arrived (for a demoted served copy: when it was
	// received, not when it was demoted).
	ReceivedAt time.Time
	// The identity of the copy, from its data set.
	SOPInstanceUID, SOPClassUID, StudyInstanceUID, SeriesInstanceUID string
	PatientID, IssuerOfPatientID                                     string
	TransferSyntaxUID                                                string
	// Who sent it: the calling AE title (DIMSE), the way in ("dimse", "stow", "import",
	// "fsck", "promote"), the authenticated account and the peer's address, as far as
	// they are known ("" otherwise).
	SourceAE, Via, Account, Remote string
	// Reason says why the copy is in quarantine.
	Reason string
	// BlobKey locates the copy in the archive.Store; Size, Digest (of the stored bytes,
	// see Instance.Digest) and ContentDigest (dcm.ContentDigest of its data set, or "" when it was not
	// computed: the demoted copy of an instance whose digest was never needed) describe it.
	BlobKey       string
	Size          int64
	Digest        string
	ContentDigest string
}

// QuarantineQuery selects quarantine records, newest first. Zero fields match everything.
type QuarantineQuery struct {
	SOPInstanceUID, StudyInstanceUID, BlobKey string
	// Before, when not 0, returns only records with a smaller ID (the next page).
	Before int64
	// Limit caps the answer: default and maximum MaxQuarantineList.
	Limit int
}

// MaxQuarantineList is the most records one QuarantineQuery returns.
const MaxQuarantineList = 1000
