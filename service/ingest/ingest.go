package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/lumenpacs/lumen/archive"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
)

// DuplicatePolicy says what happens when an instance arrives whose SOP Instance UID is
// already stored with different content. The same content (the same data set in
// another encoding, or with other File Meta Information: see dcm.ContentDigest) is
// always a success with nothing written.
type DuplicatePolicy string

// Duplicate policies.
const (
	// Quarantine (the default) acknowledges the new object, keeps the stored one as the
	// served copy, and keeps the new one too, aside, in the quarantine (QuarantinePrefix
	// in the store, a record in the index) for an administrator to promote or delete.
	// Nothing a sender sent is lost, and the sender sees success: modalities and routers
	// re-send studies every day, and a refusal is an alarm at the modality.
	Quarantine DuplicatePolicy = "quarantine"
	// Reject refuses the new object: nothing changes and the sender is told why (DIMSE
	// 0x0111, STOW-RS FailureReason 0x0111).
	Reject DuplicatePolicy = "reject"
	// Overwrite replaces the stored object and its index record atomically (the
	// replaced blob is removed).
	Overwrite DuplicatePolicy = "overwrite"
	// KeepFirst acknowledges the new object but discards it (logged).
	KeepFirst DuplicatePolicy = "keep-first"
)

// ParsePolicy parses a policy name; "" is Quarantine.
func ParsePolicy(s string) (DuplicatePolicy, error) {
	switch DuplicatePolicy(s) {
	case "", Quarantine:
		return Quarantine, nil
	case Reject, Overwrite, KeepFirst:
		return DuplicatePolicy(s), nil
	}
	return "", fmt.Errorf("ingest: unknown duplicate policy %q (want quarantine, reject, overwrite or keep-first)", s)
}

// Errors, wrapped in an *Error that carries a reason free of patient data.
var (
	// ErrInvalid: the bytes are not a usable DICOM object (DIMSE 0xC000 family).
	ErrInvalid = errors.New("invalid DICOM object")
	// ErrMismatch: the object contradicts itself or its envelope, e.g. meta information
	// and data set disagree (DIMSE 0xA900).
	ErrMismatch = errors.New("data set does not match its declared identity")
	// ErrDuplicate: the SOP Instance UID is stored with different content and the policy
	// is Reject.
	ErrDuplicate = errors.New("SOP Instance UID already stored with different content")
	// ErrConflict: the object contradicts the stored hierarchy (series under another
	// study, study under another patient).
	ErrConflict = errors.New("object conflicts with stored hierarchy")
	// ErrUnavailable: the store or the index failed (DIMSE 0xA700 out of resources).
	ErrUnavailable = errors.New("storage unavailable")
	// ErrNotAuthorized: the request is limited to a scope (index.WithScope: a
	// patient-scoped account) and the object, or a stored record its UIDs name, lies
	// outside it (status 0x0124 "Refused: Not Authorized").
	ErrNotAuthorized = errors.New("not authorized")
	// ErrNotFound: no quarantined copy has the given ID (or none within the caller's
	// scope), or no rejection the given SOP Instance UID.
	ErrNotFound = errors.New("no such quarantined copy or rejection")
	// ErrRejected: the SOP Instance UID was rejected (IHE IOCM) for a reason after which
	// it is not accepted again (DIMSE 0x0110 "Processing failure", STOW-RS FailureReason
	// 0x0110, with a comment that says so).
	ErrRejected = errors.New("SOP Instance UID rejected")
)

// notAuthorized is the one refusal of an object outside the request's scope. Whether
// the object names another patient, or its UIDs are stored under another patient (the
// same or different content, or a study or series of another patient), the answer is
// the same, so that a scoped account cannot learn what exists outside its scope.
func notAuthorized() *Error {
	return fail(ErrNotAuthorized, nil, "refused: not authorized for this object (it names a patient outside this account's scope, or UIDs stored outside it)")
}

// Error is an ingest failure: Kind is one of the Err* sentinels, Reason says what to fix
// (never patient data), Err is the underlying cause.
type Error struct {
	Kind   error
	Reason string
	Err    error
	// SOPClassUID and SOPInstanceUID identify the refused object when it parsed far
	// enough to tell (STOW-RS lists them in FailedSOPSequence); "" otherwise.
	SOPClassUID, SOPInstanceUID string
}

// Error formats the kind, the reason and the cause.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("ingest: %v: %s: %v", e.Kind, e.Reason, e.Err)
	}
	return fmt.Sprintf("ingest: %v: %s", e.Kind, e.Reason)
}

// Unwrap returns both the kind and the cause for errors.Is.
func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

func fail(kind error, cause error, format string, args ...any) *Error {
	return &Error{Kind: kind, Reason: fmt.Sprintf(format, args...), Err: cause}
}

// Outcome is what ingest did with an object.
type Outcome string

// Outcomes.
const (
	Stored        Outcome = "stored"         // new instance stored and indexed
	AlreadyStored Outcome = "already-stored" // the same content was already stored
	Replaced      Outcome = "replaced"       // different content replaced the stored object
	KeptExisting  Outcome = "kept-existing"  // different content discarded (KeepFirst)
	Quarantined   Outcome = "quarantined"    // different content kept aside (Quarantine)
)

// Source describes where an object came from.
type Source struct {
	// CallingAE is the sender's AE title for DIMSE, or "".
	CallingAE string
	// Via is "dimse", "stow", "import" or "fsck".
	Via string
	// StudyInstanceUID, when set, is the only study the object may belong to (STOW-RS
	// to /studies/{study}); an object of another study is refused with ErrMismatch.
	StudyInstanceUID string
	// Account is the authenticated account that sent the object, and Remote the peer's
	// address, when known: kept with a quarantined copy.
	Account, Remote string
}

// Result describes an ingested object.
type Result struct {
	Outcome           Outcome
	SOPClassUID       string
	SOPInstanceUID    string
	StudyInstanceUID  string
	SeriesInstanceUID string
	TransferSyntaxUID string
	BlobKey           string
	Size              int64
	Digest            string
	// ContentDigest is the data set's dcm.ContentDigest when it was computed: only for an
	// object whose SOP Instance UID was known already (stored, quarantined or rejected)
	// and whose bytes differ from the copy kept; "" otherwise.
	ContentDigest string
	// QuarantineID is the quarantine record that holds the object (Outcome Quarantined).
	QuarantineID int64
	// Warnings say what the sender should know about an object that was accepted
	// (kept in quarantine, zero padding after the data set); no patient data.
	Warnings []string
}

// Pipeline ingests objects into a store and an index. Its zero value is not usable; set
// Store and Index. Safe for concurrent use.
type Pipeline struct {
	// Store receives the blobs; Index the records.
	Store archive.Store
	Index index.Index
	// Duplicates is the policy for a known SOP Instance UID with different content
	// (default Quarantine).
	Duplicates DuplicatePolicy
	// Logger receives operational messages (no patient data above Debug). Default:
	// slog.Default().
	Logger *slog.Logger
	// ImplementationClassUID and ImplementationVersionName go into meta information
	// written for bare data sets.
	ImplementationClassUID    string
	ImplementationVersionName string
	// Metrics, when set, is updated for each object.
	Metrics *Metrics
	// Now returns the current time (tests); default time.Now.
	Now func() time.Time
	// Jobs, when set, says which background jobs to queue with each new instance, in
	// the transaction that indexes it (forwarding rules), from its record and source.
	Jobs func(inst *index.Instance, src Source) []index.JobSpec
	// DefaultIssuer, when set, is the IssuerOfPatientID an object without one (absent
	// or empty) is indexed under: the patient key of the index only; the stored object
	// keeps its bytes (modalities rarely send an issuer, while an ADT feed always names
	// its assigning authority: docs/hl7.md §2.1).
	DefaultIssuer string
}

// DefaultImplementationClassUID identifies Lumen in meta information it writes.
const DefaultImplementationClassUID = "1.2.826.0.1.3680043.10.1234.1"

// DefaultImplementationVersionName is written with DefaultImplementationClassUID.
const DefaultImplementationVersionName = "LUMEN_1"

// BlobPrefix is the store prefix of ingested objects.
const BlobPrefix = "dicom/"

func (p *Pipeline) log() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.Default()
}

// issuer is the IssuerOfPatientID an object is indexed under: its own, or
// DefaultIssuer when it has none.
func (p *Pipeline) issuer(own string) string {
	if own == "" {
		return p.DefaultIssuer
	}
	return own
}

func (p *Pipeline) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// NewBlobKey returns a fresh key: dicom/YYYY/MM/DD/xx/<32 hex>.dcm. The date (UTC, of
// receipt) bounds start-up checks to recent prefixes. xx, the second of receipt modulo
// 256 (hex), fans each day out 256 ways, while the objects received in the same second
// share a directory, and so the fsyncs of that directory (archive/fs shares them
// between concurrent puts).
func NewBlobKey(t time.Time) string {
	var b [16]byte
	rand.Read(b[:])
	t = t.UTC()
	ms := uint64(t.UnixMilli())
	// Time-ordered id: 48-bit milliseconds then random bits.
	for i := 0; i < 6; i++ {
		b[i] = byte(ms >> (40 - 8*i))
	}
	id := hex.EncodeToString(b[:])
	return fmt.Sprintf("%s%04d/%02d/%02d/%02x/%s.dcm", BlobPrefix, t.Year(), int(t.Month()), t.Day(), byte(t.Unix()), id)
}

// DatasetInfo is the envelope of a bare data set (from the DIMSE C-STORE command and
// the accepted presentation context).
type DatasetInfo struct {
	TransferSyntaxUID string
	SOPClassUID       string
	SOPInstanceUID    string
}

// IngestFile ingests a PS3.10 file read from r. size is its length or -1.
func (p *Pipeline) IngestFile(ctx context.Context, r io.Reader, size int64, src Source) (*Result, error) {
	return p.ingest(ctx, r, size, nil, src)
}

// IngestDataset ingests a bare data set read from r, encoded in info.TransferSyntaxUID,
// writing File Meta Information in front of it.
func (p *Pipeline) IngestDataset(ctx context.Context, r io.Reader, info DatasetInfo, src Source) (*Result, error) {
	if !dcm.ValidUID(info.SOPInstanceUID) || !dcm.ValidUID(info.SOPClassUID) || !dcm.ValidUID(info.TransferSyntaxUID) {
		return nil, fail(ErrInvalid, nil, "SOP class, SOP instance or transfer syntax UID missing or malformed")
	}
	return p.ingest(ctx, r, -1, &info, src)
}

func (p *Pipeline) ingest(ctx context.Context, r io.Reader, size int64, ds *DatasetInfo, src Source) (res *Result, err error) {
	start := p.now()
	defer func() { p.Metrics.observe(res, err, start) }()
	key := NewBlobKey(start)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var meta []byte
	total := size
	if ds != nil {
		meta = dcm.EncodeMeta(dcm.Meta{
			MediaStorageSOPClassUID:      ds.SOPClassUID,
			MediaStorageSOPInstanceUID:   ds.SOPInstanceUID,
			TransferSyntaxUID:            ds.TransferSyntaxUID,
			ImplementationClassUID:       orDefault(p.ImplementationClassUID, DefaultImplementationClassUID),
			ImplementationVersionName:    orDefault(p.ImplementationVersionName, DefaultImplementationVersionName),
			SourceApplicationEntityTitle: src.CallingAE,
		})
		total = -1
	}
	var blob *blobWriter
	abort := func(e *Error) (*Result, error) {
		if blob != nil {
			blob.abort(e)
		}
		// Nothing should be visible, but a store may have finished before the failure
		// surfaced (or lost its answer): remove whatever it made.
		p.cleanup(ctx, key)
		return nil, e
	}
	var f *dcm.File
	var pe *dcm.ParseError
	defer func() {
		var ie *Error
		if errors.As(err, &ie) && ie.SOPInstanceUID == "" {
			switch {
			case f != nil && f.Dataset != nil:
				ie.SOPClassUID, ie.SOPInstanceUID = f.Dataset.String(dcm.TagSOPClassUID), f.Dataset.String(dcm.TagSOPInstanceUID)
			case ds != nil:
				ie.SOPClassUID, ie.SOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
			}
		}
	}()
	if blob, err = p.openBlob(pctx, key, total); err != nil {
		return abort(storeFailure(err))
	}
	h := newObjectHash()
	sink := io.MultiWriter(blob, h)
	// The bytes are hashed once, here, for the object digest (objdigest.go). The content
	// digest (dcm.ContentDigest), which only a SOP Instance UID arriving again with other
	// bytes needs, is computed then, from the stored copy (digestOf).
	if ds != nil {
		if _, err := sink.Write(meta); err != nil {
			return abort(storeFailure(err))
		}
		f, err = dcm.ParseDataset(io.TeeReader(r, sink), ds.TransferSyntaxUID, int64(len(meta)), nil)
	} else {
		f, err = dcm.Parse(io.TeeReader(r, sink), &dcm.Options{Size: size})
	}
	if err != nil {
		if !errors.As(err, &pe) {
			pe = nil
		}
		if pe != nil && (errors.Is(err, dcm.ErrNotDICOM) || errors.Is(err, dcm.ErrTruncated) || errors.Is(err, dcm.ErrMalformed) || errors.Is(err, dcm.ErrTooLarge)) {
			return abort(fail(ErrInvalid, nil, "%s", strings.TrimPrefix(pe.Error(), "dcm: ")))
		}
		// The reader or the store failed, not the bytes.
		if pe != nil {
			err = pe.Err
		}
		return abort(storeFailure(err))
	}
	if verr := validate(f, ds); verr != nil {
		return abort(verr)
	}
	if src.StudyInstanceUID != "" && f.Dataset.String(dcm.TagStudyInstanceUID) != src.StudyInstanceUID {
		return abort(fail(ErrMismatch, nil, "StudyInstanceUID (0020,000D) differs from the study of the request"))
	}
	if len(index.Scopes(ctx)) > 0 && !index.Admits(ctx, &index.Study{
		Patient:          index.Patient{PatientID: f.Dataset.Text(dcm.TagPatientID), IssuerOfPatientID: p.issuer(f.Dataset.Text(dcm.TagIssuerOfPatientID))},
		StudyInstanceUID: f.Dataset.String(dcm.TagStudyInstanceUID),
	}) {
		return abort(notAuthorized())
	}
	durableStart := time.Now()
	pres := blob.commit()
	p.Metrics.observeStage("store", durableStart)
	if pres.err != nil {
		// A remote store may have committed the object before the failure reached us
		// (a lost response): remove it if we can; otherwise fsck finds the orphan.
		p.cleanup(ctx, key)
		return nil, fail(ErrUnavailable, pres.err, "the object store did not accept the object")
	}
	inst, err := buildInstance(f)
	if err != nil {
		p.cleanup(ctx, key)
		return nil, fail(ErrInvalid, err, "could not build the index record")
	}
	inst.BlobKey = key
	inst.IssuerOfPatientID = p.issuer(inst.IssuerOfPatientID)
	if inst.MetadataOmitted != "" {
		p.log().Warn("ingest: stored metadata bounded; the object keeps everything", "key", key, "omitted", inst.MetadataOmitted)
	}
	inst.Size = pres.info.Size
	inst.Digest = objectDigest(h)
	inst.SourceAE = src.CallingAE
	inst.ReceivedAt = start
	// A Key Object Selection document titled with a rejection code (IHE IOCM) is
	// indexed together with the rejection of what it references.
	if note, nerr := parseRejectionNote(f); nerr != nil {
		p.cleanup(ctx, key)
		return nil, nerr
	} else if note != nil {
		res, err = p.commitNote(ctx, inst, note, src)
	} else {
		res, err = p.commit(ctx, inst, src)
	}
	if res != nil && f.TrailingZeros > 0 {
		// Other readers (DCMTK, pydicom) accept it with a warning; so do we. The object
		// is stored as received.
		p.log().Warn("ingest: zero padding after the data set; stored as received", "via", src.Via, "calling_ae", src.CallingAE, "sop_instance_uid", inst.SOPInstanceUID, "bytes", f.TrailingZeros)
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d bytes of zero padding follow the data set; the object was stored as received", f.TrailingZeros))
	}
	return res, err
}

// storeFailure reports a failure to read or stream the object.
func storeFailure(err error) *Error {
	return fail(ErrUnavailable, err, "the object could not be received or streamed to the object store")
}

// committedAnyway settles an index write that failed with an unknown outcome: if the
// row points at the new blob, the write committed after all (true); if the index answers
// that it does not, the blob is removed; if the index cannot answer, the blob is kept
// (an orphan at worst, which fsck re-indexes or removes) rather than risk a row
// without its blob.
//
// The read is not limited to the caller's scope (index.Unscoped): the question is about
// the archive's own write, and a scoped read that does not see the row (another
// patient's, or moved since) must not remove the blob of a row that committed.
func (p *Pipeline) committedAnyway(ctx context.Context, inst *index.Instance, removeBlob func()) bool {
	lctx, cancel := context.WithTimeout(index.Unscoped(context.WithoutCancel(ctx)), cleanupTimeout)
	defer cancel()
	existing, err := p.Index.Instance(lctx, inst.SOPInstanceUID)
	switch {
	case err == nil && existing.BlobKey == inst.BlobKey:
		return true
	case err == nil || errors.Is(err, index.ErrNotFound):
		removeBlob()
	default:
		p.log().Warn("ingest: index outcome unknown; blob kept for lumen fsck", "key", inst.BlobKey, "err", err)
	}
	return false
}

// cleanupTimeout bounds the removal of a blob after a failure, so an unreachable store
// does not hold the caller; what cannot be removed is an orphan that fsck finds.
const cleanupTimeout = 10 * time.Second

// cleanup removes a blob that must not stay (failed or replaced), best effort.
func (p *Pipeline) cleanup(ctx context.Context, key string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := p.Store.Delete(cctx, key); err != nil && !errors.Is(err, archive.ErrNotFound) {
		p.log().Warn("ingest: could not remove blob; lumen fsck will find it", "key", key, "err", err)
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// commit indexes inst, applying the duplicate policy; on failure the blob is removed.
func (p *Pipeline) commit(ctx context.Context, inst *index.Instance, src Source) (*Result, error) {
	res := &Result{
		Outcome: Stored, SOPClassUID: inst.SOPClassUID, SOPInstanceUID: inst.SOPInstanceUID,
		StudyInstanceUID: inst.StudyInstanceUID, SeriesInstanceUID: inst.SeriesInstanceUID,
		TransferSyntaxUID: inst.TransferSyntaxUID, BlobKey: inst.BlobKey, Size: inst.Size, Digest: inst.Digest,
		ContentDigest: inst.ContentDigest,
	}
	removeBlob := func() { p.cleanup(ctx, inst.BlobKey) }
	if p.Jobs != nil {
		inst.Jobs = p.Jobs(inst, src)
	}
	indexStart := time.Now()
	err := p.Index.Put(ctx, inst)
	p.Metrics.observeStage("index", indexStart)
	if err == nil {
		return res, nil
	}
	scoped := len(index.Scopes(ctx)) > 0
	if errors.Is(err, index.ErrRejected) {
		return p.rejectedArrival(ctx, inst, src, res)
	}
	if errors.Is(err, index.ErrConflict) {
		removeBlob()
		if scoped {
			return nil, notAuthorized() // the hierarchy it conflicts with may be another patient's
		}
		return nil, fail(ErrConflict, err, "series or study UID already belongs to another study or patient")
	}
	if !errors.Is(err, index.ErrExists) {
		// The outcome may be unknown (the connection broke during COMMIT): only remove
		// the blob once the index says the row is not there, or an index row could be
		// left without its blob.
		if p.committedAnyway(ctx, inst, removeBlob) {
			return res, nil
		}
		return nil, fail(ErrUnavailable, err, "the index did not accept the record")
	}
	// Bookkeeping: the stored record is read whatever the caller's scope, and the scope
	// is then checked on it, so that a scoped caller learns nothing of another patient's
	// instance (the one refusal, whatever the content).
	existing, lerr := p.Index.Instance(index.Unscoped(ctx), inst.SOPInstanceUID)
	if lerr != nil {
		removeBlob()
		return nil, fail(ErrUnavailable, lerr, "could not read the stored record")
	}
	if scoped && !index.Admits(ctx, &existing.Study) {
		removeBlob()
		return nil, notAuthorized()
	}
	same := p.sameContent(ctx, existing, inst)
	res.ContentDigest = inst.ContentDigest
	if same {
		removeBlob()
		res.Outcome, res.BlobKey, res.Size, res.Digest = AlreadyStored, existing.BlobKey, existing.Size, existing.Digest
		return res, nil
	}
	switch orPolicy(p.Duplicates) {
	case Quarantine:
		return p.quarantine(ctx, inst, src, res)
	case KeepFirst:
		removeBlob()
		p.log().Info("ingest: kept stored instance, discarded different bytes with the same SOP Instance UID", "via", src.Via, "calling_ae", src.CallingAE, "key", existing.BlobKey)
		res.Outcome, res.BlobKey, res.Digest, res.Size = KeptExisting, existing.BlobKey, existing.Digest, existing.Size
		return res, nil
	case Overwrite:
		old, err := p.Index.Replace(ctx, inst)
		if err != nil {
			if errors.Is(err, index.ErrConflict) {
				removeBlob()
				return nil, fail(ErrConflict, err, "series or study UID already belongs to another study or patient")
			}
			if p.committedAnyway(ctx, inst, removeBlob) {
				// The replacement committed; the replaced blob is left for fsck.
				res.Outcome = Replaced
				return res, nil
			}
			return nil, fail(ErrUnavailable, err, "the index did not accept the replacement")
		}
		if old != nil && old.BlobKey != inst.BlobKey {
			p.cleanup(ctx, old.BlobKey)
		}
		res.Outcome = Replaced
		return res, nil
	default:
		removeBlob()
		return nil, fail(ErrDuplicate, nil, "refused by the duplicate policy reject; the stored copy is kept")
	}
}

func orPolicy(p DuplicatePolicy) DuplicatePolicy {
	if p == "" {
		return Quarantine
	}
	return p
}

// validate checks required UIDs and that meta information and data set agree.
func validate(f *dcm.File, ds *DatasetInfo) *Error {
	d := f.Dataset
	sop := d.String(dcm.TagSOPInstanceUID)
	class := d.String(dcm.TagSOPClassUID)
	for _, c := range []struct {
		name string
		v    string
	}{
		{"SOPInstanceUID (0008,0018)", sop},
		{"SOPClassUID (0008,0016)", class},
		{"StudyInstanceUID (0020,000D)", d.String(dcm.TagStudyInstanceUID)},
		{"SeriesInstanceUID (0020,000E)", d.String(dcm.TagSeriesInstanceUID)},
	} {
		if c.v == "" {
			return fail(ErrInvalid, nil, "%s is missing", c.name)
		}
		if !dcm.ValidUID(c.v) {
			return fail(ErrInvalid, nil, "%s is not a valid UID", c.name)
		}
	}
	if ds != nil {
		if sop != ds.SOPInstanceUID {
			return fail(ErrMismatch, nil, "SOPInstanceUID in the data set differs from AffectedSOPInstanceUID")
		}
		if class != ds.SOPClassUID {
			return fail(ErrMismatch, nil, "SOPClassUID in the data set differs from AffectedSOPClassUID")
		}
		return nil
	}
	if m := f.Meta.String(dcm.TagMediaStorageSOPInstanceUID); m != sop {
		return fail(ErrMismatch, nil, "MediaStorageSOPInstanceUID (0002,0003) differs from SOPInstanceUID (0008,0018)")
	}
	if m := f.Meta.String(dcm.TagMediaStorageSOPClassUID); m != class {
		return fail(ErrMismatch, nil, "MediaStorageSOPClassUID (0002,0002) differs from SOPClassUID (0008,0016)")
	}
	return nil
}

func optInt(d *dcm.Dataset, t dcm.Tag) *int {
	v, ok := d.Int(t)
	if !ok {
		return nil
	}
	n := int(v)
	return &n
}

// buildInstance extracts the index record from a parsed object.
func buildInstance(f *dcm.File) (*index.Instance, error) {
	d := f.Dataset
	cs := d.CharacterSet() // parsed once for every text attribute below
	in := &index.Instance{}
	in.PatientID = d.TextIn(cs, dcm.TagPatientID)
	in.IssuerOfPatientID = d.TextIn(cs, dcm.TagIssuerOfPatientID)
	in.PatientName = d.TextIn(cs, dcm.TagPatientName)
	in.PatientBirthDate = d.String(dcm.TagPatientBirthDate)
	in.PatientSex = d.String(dcm.TagPatientSex)
	in.StudyInstanceUID = d.String(dcm.TagStudyInstanceUID)
	in.StudyDate = d.String(dcm.TagStudyDate)
	in.StudyTime = d.String(dcm.TagStudyTime)
	in.AccessionNumber = d.TextIn(cs, dcm.TagAccessionNumber)
	in.StudyID = d.TextIn(cs, dcm.TagStudyID)
	in.StudyDescription = d.TextIn(cs, dcm.TagStudyDescription)
	in.ReferringPhysicianName = d.TextIn(cs, dcm.TagReferringPhysicianName)
	in.SeriesInstanceUID = d.String(dcm.TagSeriesInstanceUID)
	in.Modality = d.String(dcm.TagModality)
	in.SeriesNumber = optInt(d, dcm.TagSeriesNumber)
	in.SeriesDescription = d.TextIn(cs, dcm.TagSeriesDescription)
	in.BodyPartExamined = d.String(dcm.TagBodyPartExamined)
	in.SeriesDate = d.String(dcm.TagSeriesDate)
	in.SeriesTime = d.String(dcm.TagSeriesTime)
	in.SOPInstanceUID = d.String(dcm.TagSOPInstanceUID)
	in.SOPClassUID = d.String(dcm.TagSOPClassUID)
	in.InstanceNumber = optInt(d, dcm.TagInstanceNumber)
	in.TransferSyntaxUID = f.TransferSyntax
	if rows, ok := d.Int(dcm.TagRows); ok {
		in.Rows = int(rows)
	}
	if cols, ok := d.Int(dcm.TagColumns); ok {
		in.Columns = int(cols)
	}
	if d.Get(dcm.TagPixelData) != nil {
		in.NumberOfFrames = 1
		if n, ok := d.Int(dcm.TagNumberOfFrames); ok && n > 0 {
			in.NumberOfFrames = int(n)
		}
	}
	if bits, ok := d.Int(dcm.TagBitsAllocated); ok && bits > 0 && bits <= 0xFFFF {
		in.BitsAllocated = int(bits)
	}
	// The metadata is bounded (dcm.JSONOptions defaults); what was left out is said in
	// the record. The stored object keeps everything.
	var omitted dcm.JSONOmissions
	js, bulk, err := d.JSON(&dcm.JSONOptions{Omitted: &omitted})
	if err != nil {
		return nil, err
	}
	in.Metadata = js
	in.MetadataOmitted = omitted.String()
	if !f.Deflated && len(bulk) > 0 {
		if in.Bulk, err = json.Marshal(bulk); err != nil {
			return nil, err
		}
	}
	if pl := f.PixelLayout(); pl != nil {
		if in.PixelLayout, err = json.Marshal(pl); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// PeekSOPInstanceUID reads the File Meta Information at the start of a PS3.10 file and
// returns its MediaStorageSOPInstanceUID, or "" if it cannot.
func PeekSOPInstanceUID(r io.Reader) string {
	b := make([]byte, 4096)
	n, _ := io.ReadFull(r, b)
	b = b[:n]
	if !dcm.Sniff(b) {
		return ""
	}
	// Parse only the meta group: cut the stream where group 0002 ends.
	f, err := dcm.Parse(&metaOnly{b: b}, nil)
	if err != nil || f == nil {
		return ""
	}
	return f.Meta.String(dcm.TagMediaStorageSOPInstanceUID)
}

// metaOnly yields the bytes up to the end of the meta group, as if the file ended there.
type metaOnly struct {
	b   []byte
	off int
}

func (m *metaOnly) Read(p []byte) (int, error) {
	if m.off == 0 {
		// Find the group length to cut exactly after the meta information.
		if len(m.b) >= 144 && string(m.b[132:136]) == "\x02\x00\x00\x00" && string(m.b[136:138]) == "UL" {
			gl := int(m.b[140]) | int(m.b[141])<<8 | int(m.b[142])<<16 | int(m.b[143])<<24
			if end := 144 + gl; end <= len(m.b) {
				m.b = m.b[:end]
			}
		}
	}
	if m.off >= len(m.b) {
		return 0, io.EOF
	}
	n := copy(p, m.b[m.off:])
	m.off += n
	return n, nil
}
