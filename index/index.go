package index

import (
	"context"
	"errors"
	"iter"
	"time"

	"github.com/lumenpacs/lumen/dcm"
)

// ErrNotFound is returned (wrapped) when a looked-up object is not indexed.
var ErrNotFound = errors.New("index: not found")

// ErrExists is returned (wrapped) by Put when the SOP Instance UID is already indexed.
var ErrExists = errors.New("index: instance already indexed")

// ErrConflict is returned (wrapped) when an instance contradicts the hierarchy already
// indexed (for example a series UID already used under another study).
var ErrConflict = errors.New("index: conflicting hierarchy")

// ErrBadQuery is returned (wrapped) by Find for a query that cannot be run as given:
// more terms than MaxQueryTerms, or a value that is not valid UTF-8 text or holds a NUL
// character. The caller's input failed, not the index: callers answer it as a bad
// request, never "try again".
var ErrBadQuery = errors.New("index: the query cannot be run")

// MaxQueryTerms is the most terms the filters of one Query may hold together: each
// filter that matches on something counts one, and each value it holds counts one more
// (each UID of a list, each alternative, each fuzzy name word, each end of a range).
// Find refuses larger queries with ErrBadQuery before the database sees them: SQLite
// cannot run an expression deeper than 1000 terms, PostgreSQL more than 65535
// parameters.
const MaxQueryTerms = 900

// Level is a query/retrieve level (QueryRetrieveLevel, 0008,0052).
type Level int

// The four levels of the DICOM information model.
const (
	PatientLevel Level = iota + 1
	StudyLevel
	SeriesLevel
	ImageLevel
)

// String returns the QueryRetrieveLevel code string.
func (l Level) String() string {
	switch l {
	case PatientLevel:
		return "PATIENT"
	case StudyLevel:
		return "STUDY"
	case SeriesLevel:
		return "SERIES"
	case ImageLevel:
		return "IMAGE"
	}
	return "UNKNOWN"
}

// Patient is a patient record. A patient is identified by (ID, Issuer).
type Patient struct {
	PatientID         string
	IssuerOfPatientID string
	PatientName       string // UTF-8, DICOM PN form (Family^Given...)
	PatientBirthDate  string // YYYYMMDD
	PatientSex        string
	// NumberOfPatientRelatedStudies is maintained at ingest.
	NumberOfPatientRelatedStudies int
	// Corrected reports a record an identity operation changed (an update, a merge it
	// survived, a change of identifier, a study or series moved to it): the stored
	// objects filed under it may carry other Patient module values (or, after a move, another
	// Study Instance UID) than the record, and are served with the record's values
	// (see Instance.Corrections). Objects of records never corrected go out as stored.
	Corrected bool
}

// Study is a study record with its patient.
type Study struct {
	Patient
	StudyInstanceUID       string
	StudyDate              string // YYYYMMDD
	StudyTime              string // HHMMSS.ffffff as received
	AccessionNumber        string
	StudyID                string
	StudyDescription       string
	ReferringPhysicianName string
	// ModalitiesInStudy and SOPClassesInStudy are maintained at ingest, sorted.
	ModalitiesInStudy []string
	SOPClassesInStudy []string
	// NumberOfStudyRelatedSeries and ...Instances are maintained at ingest.
	NumberOfStudyRelatedSeries    int
	NumberOfStudyRelatedInstances int
	// UpdatedAt is when the study last received an instance.
	UpdatedAt time.Time
}

// Series is a series record with its study and patient.
type Series struct {
	Study
	SeriesInstanceUID string
	Modality          string
	SeriesNumber      *int
	SeriesDescription string
	BodyPartExamined  string
	SeriesDate        string
	SeriesTime        string
	// NumberOfSeriesRelatedInstances is maintained at ingest.
	NumberOfSeriesRelatedInstances int
}

// Instance is an instance record with its series, study and patient: what ingest
// indexes and what image-level queries return.
type Instance struct {
	Series
	SOPInstanceUID    string
	SOPClassUID       string
	InstanceNumber    *int
	TransferSyntaxUID string
	NumberOfFrames    int
	Rows, Columns     int
	// BitsAllocated (0028,0100), or 0 when the object has none: a default instance
	// return attribute of QIDO-RS (PS3.18 Table 10.6.3-5), held so that queries need
	// not read Metadata.
	BitsAllocated int
	// BlobKey locates the stored PS3.10 file in the archive.Store.
	BlobKey string
	// Size is the stored object's length in bytes.
	Size int64
	// Digest is the digest of the stored object's bytes: "b3:" and its BLAKE3-256 in
	// hex, or, in records written before BLAKE3 replaced it, its SHA-256 in hex without
	// a prefix (ingest's objdigest.go). Its column keeps its first name, sha256, so that
	// replicas of an earlier version sharing the database keep working.
	Digest string
	// ContentDigest is the digest of the data set's content (dcm.ContentDigest), which
	// other encodings of the same data set share, or "" until it is needed: ingest does
	// not compute it for a new instance, only when the SOP Instance UID arrives again
	// with other bytes (then from the stored copy, recorded with SetContentDigest).
	ContentDigest string
	// Metadata is the DICOM JSON object of the data set (PS3.18 F.2), bulk data
	// replaced by relative BulkDataURIs ("bulkdata/<path>"). It is bounded (see
	// dcm.JSONOptions): what did not fit is said in MetadataOmitted.
	Metadata []byte
	// MetadataOmitted says what was left out of Metadata to keep it within its bounds
	// (dcm.JSONOmissions), or "" when Metadata is the whole data set. The stored object
	// itself always holds everything.
	MetadataOmitted string
	// MetadataSpans says where in Metadata the members a correction replaces lie
	// (MetadataSpans), so that serving a corrected record's metadata reads only them.
	// The index computes and keeps it; "" makes a correction scan Metadata.
	MetadataSpans string
	// PixelLayout is the JSON of dcm.PixelLayout (frame byte ranges), or nil.
	PixelLayout []byte
	// Bulk is the JSON of []dcm.BulkRef (where each BulkDataURI's bytes lie), or nil.
	Bulk []byte
	// SourceAE is the calling AE title, or "" for web and import.
	SourceAE string
	// ReceivedAt is when the instance was indexed.
	ReceivedAt time.Time
	// Jobs are background jobs queued in the same transaction that indexes the
	// instance (Put and Replace), due at once: work that must not be lost (forwarding).
	// Not stored with the instance.
	Jobs []JobSpec
}

// Filter is one matching key: an attribute and a value in DICOM matching syntax.
type Filter struct {
	Tag   dcm.Tag
	Value string
	// Values, when not empty, replaces Value with a list of values matched exactly (no
	// wildcards, ranges or lists inside a value; surrounding spaces ignored): a record
	// matches when the attribute equals any of them. It lets one query resolve a list of
	// accession numbers or IDs. Callers bound its length.
	Values []string
}

// Query selects records at one level.
type Query struct {
	Level   Level
	Filters []Filter
	// Fuzzy enables fuzzy person-name matching (QIDO fuzzymatching=true).
	Fuzzy bool
	// Limit caps the number of results (0: no limit); Offset skips results.
	Limit, Offset int
	// WithMetadata, at ImageLevel, also loads each instance's Metadata, PixelLayout and
	// Bulk (left nil otherwise, as they are large).
	WithMetadata bool
	// Uncorrected, with WithMetadata, loads the Metadata as received, without the
	// corrections of the records (Instance.CorrectMetadata): for the archive's own
	// checks of where an object came from, never to answer a caller.
	Uncorrected bool
	// Reverse reverses the order of the results: oldest study first (and, within a
	// study, the last series and instance first).
	Reverse bool
	// Class, when set, admits only the studies in a class (or, with Exclude, those not in
	// it), at study level and below.
	Class *ClassFilter
	// Total also counts the records the query matches, whatever Limit and Offset say,
	// into Result.Total. MaxTotal > 0 bounds that work: counting stops past MaxTotal, and
	// Total is then MaxTotal+1, meaning "more than MaxTotal".
	Total    bool
	MaxTotal int
	// CountOnly, with Total, reads no records: only Result.Total is set.
	CountOnly bool
}

// ClassFilter admits the studies of a class, or (Exclude) the studies outside it.
type ClassFilter struct {
	Class   StudyClass
	Exclude bool
}

// Result holds the records of a query at its level (only the field of the query's level
// is set) and the filters the index could not match on (ignored, as PS3.4 allows).
type Result struct {
	Patients  []Patient
	Studies   []Study
	Series    []Series
	Instances []Instance
	// Ignored lists filter tags that are not matchable at this level.
	Ignored []dcm.Tag
	// Total is the number of matching records when the query asked for it (Query.Total).
	Total int
}

// Counts are totals over the whole index.
type Counts struct {
	Patients, Studies, Series, Instances int64
	Bytes                                int64
}

// Index is the metadata store. Implementations are safe for concurrent use.
type Index interface {
	// Put indexes a new instance, creating its patient, study and series as needed and
	// updating counts, ModalitiesInStudy and SOPClassesInStudy in one transaction.
	// It returns ErrExists if the SOP Instance UID is already indexed.
	Put(ctx context.Context, inst *Instance) error
	// Replace atomically removes the indexed instance with inst's SOP Instance UID and
	// indexes inst; it returns the removed record (whose blob the caller deletes).
	Replace(ctx context.Context, inst *Instance) (*Instance, error)
	// Instance returns the record of one instance, or ErrNotFound.
	Instance(ctx context.Context, sopInstanceUID string) (*Instance, error)
	// DeleteInstance removes an instance and updates counts; parents left empty are
	// removed. It returns the removed record.
	DeleteInstance(ctx context.Context, sopInstanceUID string) (*Instance, error)
	// Find runs a query.
	Find(ctx context.Context, q Query) (*Result, error)
	// FindSeq runs a query as Find does, but yields its records one at a time as the
	// database reads them, in Find's order, instead of collecting them: the first can be
	// answered before the last is read, and memory does not grow with the matches. It
	// returns at once the filters the index cannot match on (Result.Ignored); the query
	// runs when the loop starts and ends when the loop does. An error (ErrBadQuery, a
	// failed database, the end of ctx) is the loop's last pair. Query.Total, MaxTotal and
	// CountOnly do not apply.
	FindSeq(ctx context.Context, q Query) (ignored []dcm.Tag, records iter.Seq2[Record, error])
	// BlobKeys yields the blob keys of indexed instances starting with prefix, in
	// byte-wise lexical order (the order of archive.Store.List).
	BlobKeys(ctx context.Context, prefix string) iter.Seq2[string, error]
	// InstanceByBlobKey returns the instance stored under a blob key, or ErrNotFound.
	InstanceByBlobKey(ctx context.Context, key string) (*Instance, error)
	// Counts returns totals.
	Counts(ctx context.Context) (Counts, error)
	// SetContentDigest records the content digest of an instance indexed without one,
	// provided its record still points at blobKey (otherwise it does nothing).
	SetContentDigest(ctx context.Context, sopInstanceUID, blobKey, digest string) error

	// Quarantine records a copy kept aside and sets r.ID (and r.ReceivedAt, when zero).
	Quarantine(ctx context.Context, r *QuarantineRecord) error
	// Quarantined returns the quarantine records matching q, newest first, within the
	// scopes of ctx (the record's patient and study).
	Quarantined(ctx context.Context, q QuarantineQuery) ([]QuarantineRecord, error)
	// QuarantinedByID returns one quarantine record, or ErrNotFound (also when it lies
	// outside the scopes of ctx).
	QuarantinedByID(ctx context.Context, id int64) (*QuarantineRecord, error)
	// DeleteQuarantined removes a quarantine record and returns it, or ErrNotFound. The
	// caller then removes its blob (after, never before: a concurrent promotion may have
	// made that blob the served copy; a crash in between leaves an orphan blob, which
	// fsck finds).
	DeleteQuarantined(ctx context.Context, id int64) (*QuarantineRecord, error)
	// Promote makes quarantined copy id the served instance, in one transaction: the
	// quarantine record is removed, the indexed instance with inst's SOP Instance UID
	// (if any) is replaced by inst (which must carry the record's SOP Instance UID and
	// blob key, or ErrConflict), and the replaced instance is quarantined in turn, with
	// demoted's Reason, Via, Account and Remote and the rest from its record. It
	// returns that new quarantine record, or nil when no instance was replaced.
	// ErrNotFound when record id does not exist (a concurrent promotion won).
	Promote(ctx context.Context, id int64, inst *Instance, demoted QuarantineRecord) (*QuarantineRecord, error)
	// QuarantineBlobKeys yields the blob keys of quarantine records starting with prefix,
	// in byte-wise lexical order.
	QuarantineBlobKeys(ctx context.Context, prefix string) iter.Seq2[string, error]

	// Ping checks the database connection.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}
