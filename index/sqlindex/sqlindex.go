package sqlindex

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lumenpacs/lumen/index"
)

// DB is an index.Index on a database/sql database.
type DB struct {
	// QuietPeriod is how long after a study's last indexed instance its thumbnail job
	// becomes due (default DefaultQuietPeriod). Set it before use.
	QuietPeriod time.Duration
	// DensePatients is how many patient records the patient keys of a study query (a
	// name or ID with wildcards, a birth date range, a sex) must match for the query to
	// walk the studies in the order of its answer and test each one's patient, rather
	// than start from those patients and sort their studies (default
	// DefaultDensePatients). Either way gives the same answer; the first is faster when
	// the matching patients are many, the second when they are few. Set it before use.
	DensePatients int

	// MaxBatch bounds the instances that concurrent Puts commit in one transaction
	// (default DefaultMaxBatch). Set it before use.
	MaxBatch int
	// BeforeCommit, when set (tests), is called with the number of instances of a Put
	// transaction (see Put) just before it commits.
	BeforeCommit func(n int)
	// AfterCommit, when set, is called after each write transaction has committed
	// (SQLite: it wakes the background checkpointer). It must not block. Set it before
	// use.
	AfterCommit func()

	db    *sql.DB
	wdb   *sql.DB // write transactions, when they have their own pool (UseWriter)
	d     *Dialect
	stmts sync.Map // query text -> *sql.Stmt
	reads sync.Map // query text -> *sql.Stmt, of queries (Dialect.PrepareReads)
	nread atomic.Int32
	wmu   sync.Mutex // held around write transactions when the dialect serialises them

	closers []func() // OnClose

	// Group commit of Puts (group.go), under gmu.
	gmu     sync.Mutex
	gcond   *sync.Cond // leading became false
	queue   []*putRequest
	leading bool // a Put is committing batches
	closed  bool
}

var (
	_ index.Index = (*DB)(nil)
	_ index.Queue = (*DB)(nil)
)

// New wraps an open database whose schema has been migrated (see Migrate).
func New(db *sql.DB, d *Dialect) *DB {
	x := &DB{db: db, d: d}
	x.gcond = sync.NewCond(&x.gmu)
	return x
}

// UseWriter gives write transactions their own connection pool (for SQLite, one
// connection on the same file), so that a crowd of readers holding the shared pool
// cannot starve them. Call it before use; Close closes it too.
func (x *DB) UseWriter(w *sql.DB) { x.wdb = w }

func (x *DB) writer() *sql.DB {
	if x.wdb != nil {
		return x.wdb
	}
	return x.db
}

// SQL returns the underlying database (for backend-specific maintenance and tests).
func (x *DB) SQL() *sql.DB { return x.db }

func nowMillis() int64 { return time.Now().UnixMilli() }

func nz(s string) string { return strings.TrimSpace(s) }

// tx runs fn in a transaction, retrying transient failures a few times.
func (x *DB) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = x.tx1(ctx, fn)
		if err == nil || x.d.IsRetryable == nil || !x.d.IsRetryable(err) || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 20 * time.Millisecond)
	}
	return err
}

func (x *DB) tx1(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if x.d.SerializeWrites {
		x.wmu.Lock()
		defer x.wmu.Unlock()
	}
	tx, err := x.writer().BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	x.committed()
	return nil
}

// committed tells AfterCommit that a write transaction committed.
func (x *DB) committed() {
	if x.AfterCommit != nil {
		x.AfterCommit()
	}
}

// OnClose has Close call f once the Puts in progress have finished, before the
// connection pools close (SQLite: the background checkpointer stops). Call it before
// use.
func (x *DB) OnClose(f func()) { x.closers = append(x.closers, f) }

// stmt returns the prepared form of a static statement, or nil until it is ready.
// Preparing needs a free connection, which a transaction must not wait for (SQLite
// writers hold theirs while queued), so the first use starts the preparation in the
// background and runs the statement unprepared; later uses run the prepared statement
// (database/sql prepares it once per connection), so hot ingest statements are not
// re-parsed.
func (x *DB) stmt(q string) *sql.Stmt {
	v, loaded := x.stmts.LoadOrStore(q, (*sql.Stmt)(nil))
	if loaded {
		return v.(*sql.Stmt)
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st, err := x.writer().PrepareContext(ctx, x.d.rebind(q)) // used inside write transactions
		if err != nil {
			x.stmts.Delete(q) // try again on a later use
			return
		}
		x.stmts.Store(q, st)
	}()
	return nil
}

// stmtCtx is the context a statement inside a write transaction runs with. With
// serialised writes (SQLite: the transaction took the database's write lock at BEGIN,
// and statements inside it wait for no lock), a statement is not interrupted midway
// when ctx ends: the statements of write transactions are short (the rows of one
// instance, of one patient's records), ctx is checked before each runs, and the
// transaction is rolled back on the error. So the driver needs no watcher per
// statement (SQLite's driver otherwise starts a goroutine and installs a progress
// handler for each).
func (x *DB) stmtCtx(ctx context.Context) (context.Context, error) {
	if !x.d.SerializeWrites {
		return ctx, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return context.WithoutCancel(ctx), nil
}

func (x *DB) exec(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	ctx, err := x.stmtCtx(ctx)
	if err != nil {
		return nil, err
	}
	if st := x.stmt(q); st != nil {
		return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, x.d.rebind(q), args...)
}

func (x *DB) queryRow(ctx context.Context, tx *sql.Tx, q string, args ...any) *sql.Row {
	if sctx, err := x.stmtCtx(ctx); err == nil {
		ctx = sctx
	} // else ctx has ended: the query answers with its error
	if st := x.stmt(q); st != nil {
		return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, x.d.rebind(q), args...)
}

// putOne indexes one instance in a transaction of its own (Put without a batch).
func (x *DB) putOne(ctx context.Context, inst *index.Instance) error {
	err := x.tx(ctx, func(tx *sql.Tx) error {
		if err := x.putTx(ctx, tx, inst); err != nil {
			return err
		}
		if x.BeforeCommit != nil {
			x.BeforeCommit(1)
		}
		return nil
	})
	return x.putError(ctx, inst, err)
}

// putTx indexes inst inside tx: ErrExists, before anything is written, when its SOP
// Instance UID is indexed already.
func (x *DB) putTx(ctx context.Context, tx *sql.Tx, inst *index.Instance) error {
	var n int
	if err := x.queryRow(ctx, tx, `SELECT COUNT(*) FROM instances WHERE sop_uid = ?`, inst.SOPInstanceUID).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("index: put %s: %w", inst.SOPInstanceUID, index.ErrExists)
	}
	return x.insert(ctx, tx, inst)
}

// putError turns the error of a Put's transaction into Put's answer.
func (x *DB) putError(ctx context.Context, inst *index.Instance, err error) error {
	if err != nil && x.d.IsUniqueViolation(err) && !errors.Is(err, index.ErrExists) {
		// A concurrent writer indexed the same SOP Instance UID first.
		if _, lerr := x.Instance(ctx, inst.SOPInstanceUID); lerr == nil {
			return fmt.Errorf("index: put %s: %w", inst.SOPInstanceUID, index.ErrExists)
		}
	}
	if err != nil && !errors.Is(err, index.ErrExists) && !errors.Is(err, index.ErrConflict) {
		return fmt.Errorf("index: put %s: %w", inst.SOPInstanceUID, err)
	}
	return err
}

// Replace implements index.Index.
func (x *DB) Replace(ctx context.Context, inst *index.Instance) (*index.Instance, error) {
	var old *index.Instance
	err := x.tx(ctx, func(tx *sql.Tx) error {
		var err error
		old, err = x.remove(ctx, tx, inst.SOPInstanceUID)
		if err != nil && !errors.Is(err, index.ErrNotFound) {
			return err
		}
		return x.insert(ctx, tx, inst)
	})
	if err != nil {
		return nil, fmt.Errorf("index: replace %s: %w", inst.SOPInstanceUID, err)
	}
	return old, nil
}

// DeleteInstance implements index.Index.
func (x *DB) DeleteInstance(ctx context.Context, sopUID string) (*index.Instance, error) {
	var old *index.Instance
	err := x.tx(ctx, func(tx *sql.Tx) error {
		var err error
		old, err = x.remove(ctx, tx, sopUID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("index: delete %s: %w", sopUID, err)
	}
	return old, nil
}

// getOrCreate returns the id of the row matching key, inserting it when missing (with
// the arguments insArgs makes, only then). created reports an insert by this
// transaction. likelyNew (the row's parent was just created) tries the insert first,
// which saves the read when the row is new indeed.
func (x *DB) getOrCreate(ctx context.Context, tx *sql.Tx, sel string, selArgs []any, ins string, insArgs func() []any, likelyNew bool) (id int64, created bool, err error) {
	if !likelyNew {
		err = x.queryRow(ctx, tx, sel, selArgs...).Scan(&id)
		if err == nil {
			return id, false, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return 0, false, err
		}
	}
	// ON CONFLICT DO NOTHING: a concurrent transaction may create the same row; then
	// nothing is returned and the row it committed is read back.
	id, created, err = x.insertID(ctx, tx, ins, insArgs()...)
	if err != nil || created {
		return id, created, err
	}
	if err := x.queryRow(ctx, tx, sel, selArgs...).Scan(&id); err != nil {
		return 0, false, err
	}
	return id, false, nil
}

// insertID runs ins (an INSERT of one row, without its ON CONFLICT clause) with ON
// CONFLICT DO NOTHING, and returns the new row's id, or created false when a row
// conflicted.
func (x *DB) insertID(ctx context.Context, tx *sql.Tx, ins string, args ...any) (id int64, created bool, err error) {
	if x.d.LastInsertID {
		res, err := x.exec(ctx, tx, ins+` ON CONFLICT DO NOTHING`, args...)
		if err != nil {
			return 0, false, err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return 0, false, err
		}
		id, err = res.LastInsertId()
		return id, err == nil, err
	}
	err = x.queryRow(ctx, tx, ins+` ON CONFLICT DO NOTHING RETURNING id`, args...).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return id, err == nil, err
}

func intPtr(p *int) any {
	if p == nil {
		return nil
	}
	return int64(*p)
}

func (x *DB) insert(ctx context.Context, tx *sql.Tx, in *index.Instance) error {
	now := nowMillis()
	if err := x.lockUIDs(ctx, tx, in.SOPInstanceUID); err != nil {
		return err
	}
	// A rejected instance (IHE IOCM) is never indexed again by accident (a re-send, a
	// promotion, fsck): only Restore, which removes the rejection first, brings it back.
	if err := x.refuseRejected(ctx, tx, in.SOPInstanceUID); err != nil {
		return err
	}
	// A record merged away files what arrives under its key under its survivor (and
	// the study records where it came from: mergedFrom).
	studyUID := in.StudyInstanceUID // the study the object is filed in
	// Rows this instance creates are written with their counts and lists including it
	// (a new patient counts the new study, a new study this instance, its series and
	// their modality and SOP class, a new series this instance), so that a new study
	// costs no update of the rows just inserted.
	pid, mergedFrom, pNew, err := x.filePatient(ctx, tx, in, now)
	if err != nil {
		return fmt.Errorf("patient: %w", err)
	}
	sid, sNew, err := x.getOrCreate(ctx, tx,
		`SELECT id FROM studies WHERE study_uid = ?`, []any{in.StudyInstanceUID},
		`INSERT INTO studies (patient_fk, study_uid, study_date, study_time, study_time_norm, accession, study_id, description, referring, referring_ci, referring_fuzzy, modalities, sop_classes, num_series, num_instances, created_at, updated_at, merged_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 1, ?, ?, ?)`,
		func() []any {
			return []any{pid, in.StudyInstanceUID, nz(in.StudyDate), nz(in.StudyTime), normTime(in.StudyTime, false), nz(in.AccessionNumber), nz(in.StudyID), in.StudyDescription, in.ReferringPhysicianName, index.NameCI(in.ReferringPhysicianName), index.NameFuzzy(in.ReferringPhysicianName), valueList(in.Modality), valueList(in.SOPClassUID), now, now, mergedFrom}
		}, pNew)
	if err != nil {
		return fmt.Errorf("study: %w", err)
	}
	if pNew && !sNew {
		// A study of this UID is stored under another record (a new one has none): a
		// conflict below, unless it was moved here. The count stays exact either way.
		if _, err := x.exec(ctx, tx, `UPDATE patients SET num_studies = num_studies - 1 WHERE id = ?`, pid); err != nil {
			return err
		}
	}
	if !sNew {
		// Locked (PostgreSQL) against a concurrent MoveStudy (see Dialect.ForKeyShare).
		var owner int64
		if err := x.queryRow(ctx, tx, `SELECT patient_fk FROM studies WHERE id = ?`+x.d.ForKeyShare, sid).Scan(&owner); err != nil {
			return err
		}
		if owner != pid {
			// A study an administrator moved away from this record (wrong patient at the
			// modality) takes what the modality still sends under that record: the
			// study decides, and the object is served with its patient (Corrected).
			var moved int
			if err := x.queryRow(ctx, tx, `SELECT COUNT(*) FROM patient_events WHERE patient_fk = ? AND other_fk = ? AND kind = ? AND detail LIKE ?`,
				owner, pid, index.EventMoveStudy, `%"study":"`+in.StudyInstanceUID+`"%`).Scan(&moved); err != nil {
				return err
			}
			if moved == 0 {
				return fmt.Errorf("study %s belongs to another patient: %w", in.StudyInstanceUID, index.ErrConflict)
			}
			pid = owner
		}
	}
	seid, seNew, err := x.getOrCreate(ctx, tx,
		`SELECT id FROM series WHERE series_uid = ?`, []any{in.SeriesInstanceUID},
		`INSERT INTO series (study_fk, series_uid, modality, series_number, description, body_part, series_date, series_time, num_instances, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
		func() []any {
			return []any{sid, in.SeriesInstanceUID, nz(in.Modality), intPtr(in.SeriesNumber), in.SeriesDescription, nz(in.BodyPartExamined), nz(in.SeriesDate), nz(in.SeriesTime), now, now}
		}, sNew)
	if err != nil {
		return fmt.Errorf("series: %w", err)
	}
	if !seNew {
		var owner int64
		// Locked (PostgreSQL) against a concurrent MoveSeries.
		if err := x.queryRow(ctx, tx, `SELECT study_fk FROM series WHERE id = ?`+x.d.ForKeyShare, seid).Scan(&owner); err != nil {
			return err
		}
		if owner != sid {
			// A series an administrator moved to another study takes what the modality
			// still sends under its old study: it is filed with the series (and served
			// with that study's UID and patient, Corrected).
			// The object must name the record the series left (or one merged into it).
			var moved int
			if err := x.queryRow(ctx, tx, `SELECT COUNT(*) FROM patient_events WHERE kind = ? AND other_fk = ? AND detail LIKE ? AND detail LIKE ?`,
				index.EventMoveSeries, pid, `%"series":"`+in.SeriesInstanceUID+`"%`, `%"from_study":"`+in.StudyInstanceUID+`"%`).Scan(&moved); err != nil {
				return err
			}
			if moved == 0 {
				return fmt.Errorf("series %s belongs to another study: %w", in.SeriesInstanceUID, index.ErrConflict)
			}
			if sNew {
				// The old study went with the move; the row this object made for it goes
				// (and the count of a record made with it).
				if _, err := x.exec(ctx, tx, `DELETE FROM studies WHERE id = ?`, sid); err != nil {
					return err
				}
				if pNew {
					if _, err := x.exec(ctx, tx, `UPDATE patients SET num_studies = num_studies - 1 WHERE id = ?`, pid); err != nil {
						return err
					}
				}
			}
			sid, sNew = owner, false
			if err := x.queryRow(ctx, tx, `SELECT patient_fk, study_uid FROM studies WHERE id = ?`, sid).Scan(&pid, &studyUID); err != nil {
				return err
			}
		}
	}
	received := now
	if !in.ReceivedAt.IsZero() {
		received = in.ReceivedAt.UnixMilli()
	}
	if _, err := x.exec(ctx, tx, `INSERT INTO instances (series_fk, sop_uid, sop_class_uid, instance_number, transfer_syntax, num_frames, rows_, cols, bits_allocated, blob_key, size, sha256, content_digest, metadata, metadata_omitted, pixel_layout, bulk, source_ae, received_at, meta_spans) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		seid, in.SOPInstanceUID, nz(in.SOPClassUID), intPtr(in.InstanceNumber), nz(in.TransferSyntaxUID), in.NumberOfFrames, in.Rows, in.Columns, in.BitsAllocated, in.BlobKey, in.Size, in.Digest, in.ContentDigest, string(in.Metadata), in.MetadataOmitted, nullString(in.PixelLayout), nullString(in.Bulk), in.SourceAE, received, nullString([]byte(index.MetadataSpans(in.Metadata)))); err != nil {
		return fmt.Errorf("instance: %w", err)
	}
	// The study's row is updated before the series' row: every write transaction of
	// ingest locks a study before its series, also a batch of several instances (Put),
	// whose instances come in the order of their studies, so that two batches (replicas
	// sharing PostgreSQL) do not each hold a row the other waits for.
	// A study this instance created counts it already, and its series: a new study
	// has no series of its own yet, so its series is new too (or moved here, which
	// the move above settles by filing into the series' study instead).
	if !sNew {
		addSeries := 0
		if seNew {
			addSeries = 1
		}
		contains := func(col string) string { return fmt.Sprintf(x.d.Contains, col, "?") }
		if _, err := x.exec(ctx, tx, `UPDATE studies SET num_instances = num_instances + 1, num_series = num_series + ?, updated_at = ?,
		modalities = CASE WHEN ? = '' OR `+contains("modalities")+` THEN modalities ELSE modalities || ? END,
		sop_classes = CASE WHEN ? = '' OR `+contains("sop_classes")+` THEN sop_classes ELSE sop_classes || ? END
		WHERE id = ?`,
			addSeries, now,
			nz(in.Modality), ","+nz(in.Modality)+",", nz(in.Modality)+",",
			nz(in.SOPClassUID), ","+nz(in.SOPClassUID)+",", nz(in.SOPClassUID)+",",
			sid); err != nil {
			return err
		}
	} else if !seNew {
		// Not reached (see above); kept exact all the same.
		if _, err := x.exec(ctx, tx, `UPDATE studies SET num_series = num_series - 1 WHERE id = ?`, sid); err != nil {
			return err
		}
	}
	if !seNew {
		if _, err := x.exec(ctx, tx, `UPDATE series SET num_instances = num_instances + 1, updated_at = ? WHERE id = ?`, now, seid); err != nil {
			return err
		}
	}
	if sNew && !pNew {
		if _, err := x.exec(ctx, tx, `UPDATE patients SET num_studies = num_studies + 1 WHERE id = ?`, pid); err != nil {
			return err
		}
	}
	// The study changed: (re)arm its thumbnail job, due once the study is quiet (not
	// for a tiny image, whose thumbnail is rendered on request: index.ThumbnailAhead).
	if index.ThumbnailAhead(in) {
		if _, err := x.exec(ctx, tx, upsertJob, index.JobThumbnails, studyUID, now+x.quiet().Milliseconds(), now); err != nil {
			return fmt.Errorf("job: %w", err)
		}
	}
	for _, j := range in.Jobs {
		if _, err := x.exec(ctx, tx, upsertJob, j.Kind, j.Key, now, now); err != nil {
			return fmt.Errorf("job: %w", err)
		}
	}
	return nil
}

// lockUIDs takes the Dialect's LockUID on each SOP Instance UID, in sorted order (so
// that two transactions locking several never wait on each other in a cycle).
func (x *DB) lockUIDs(ctx context.Context, tx *sql.Tx, uids ...string) error {
	if x.d.LockUID == "" {
		return nil
	}
	uids = slices.Clone(uids)
	slices.Sort(uids)
	for _, u := range slices.Compact(uids) {
		if _, err := x.exec(ctx, tx, x.d.LockUID, u); err != nil {
			return fmt.Errorf("lock %s: %w", u, err)
		}
	}
	return nil
}

// valueList is the list column (studies.modalities, studies.sop_classes) holding v
// alone: ",v," (or "," when v is empty), as the updates of insert extend it.
func valueList(v string) string {
	if v = nz(v); v == "" {
		return ","
	}
	return "," + v + ","
}

func nullString(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

// remove deletes an instance row inside tx and maintains counts and parents.
func (x *DB) remove(ctx context.Context, tx *sql.Tx, sopUID string) (*index.Instance, error) {
	rows, err := tx.QueryContext(ctx, x.d.rebind(instanceSelect+` WHERE i.sop_uid = ?`), sopUID)
	if err != nil {
		return nil, err
	}
	list, err := scanInstances(rows, true)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%s: %w", sopUID, index.ErrNotFound)
	}
	old := &list[0]
	var seid, sid, pid int64
	if err := x.queryRow(ctx, tx, `SELECT i.series_fk, se.study_fk, st.patient_fk FROM instances i JOIN series se ON se.id = i.series_fk JOIN studies st ON st.id = se.study_fk WHERE i.sop_uid = ?`, sopUID).Scan(&seid, &sid, &pid); err != nil {
		return nil, err
	}
	if _, err := x.exec(ctx, tx, `DELETE FROM instances WHERE sop_uid = ?`, sopUID); err != nil {
		return nil, err
	}
	var left int
	if err := x.queryRow(ctx, tx, `SELECT COUNT(*) FROM instances WHERE series_fk = ?`, seid).Scan(&left); err != nil {
		return nil, err
	}
	seriesGone := 0
	if left == 0 {
		if _, err := x.exec(ctx, tx, `DELETE FROM series WHERE id = ?`, seid); err != nil {
			return nil, err
		}
		seriesGone = 1
	} else if _, err := x.exec(ctx, tx, `UPDATE series SET num_instances = ? WHERE id = ?`, left, seid); err != nil {
		return nil, err
	}
	var studyLeft int
	if err := x.queryRow(ctx, tx, `SELECT COUNT(*) FROM instances i JOIN series se ON se.id = i.series_fk WHERE se.study_fk = ?`, sid).Scan(&studyLeft); err != nil {
		return nil, err
	}
	if studyLeft == 0 {
		if _, err := x.exec(ctx, tx, `DELETE FROM studies WHERE id = ?`, sid); err != nil {
			return nil, err
		}
		if _, err := x.exec(ctx, tx, `UPDATE patients SET num_studies = num_studies - 1 WHERE id = ?`, pid); err != nil {
			return nil, err
		}
		var ps int
		if err := x.queryRow(ctx, tx, `SELECT num_studies FROM patients WHERE id = ?`, pid).Scan(&ps); err != nil {
			return nil, err
		}
		if ps <= 0 {
			// A record an identity operation touched (updated_at set: updated, merged,
			// a survivor, renamed) is kept: the index owns it now, and merged records
			// may point at it.
			if _, err := x.exec(ctx, tx, `DELETE FROM patients WHERE id = ? AND updated_at IS NULL`, pid); err != nil {
				return nil, err
			}
		}
		return old, nil
	}
	// Recompute the study's derived attributes from what remains.
	mods, err := x.distinct(ctx, tx, `SELECT DISTINCT modality FROM series WHERE study_fk = ?`, sid)
	if err != nil {
		return nil, err
	}
	classes, err := x.distinct(ctx, tx, `SELECT DISTINCT i.sop_class_uid FROM instances i JOIN series se ON se.id = i.series_fk WHERE se.study_fk = ?`, sid)
	if err != nil {
		return nil, err
	}
	if _, err := x.exec(ctx, tx, `UPDATE studies SET num_instances = ?, num_series = num_series - ?, modalities = ?, sop_classes = ? WHERE id = ?`,
		studyLeft, seriesGone, joinList(mods), joinList(classes), sid); err != nil {
		return nil, err
	}
	return old, nil
}

func (x *DB) distinct(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, x.d.rebind(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s sql.NullString
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		if s.String != "" {
			out = append(out, s.String)
		}
	}
	return out, rows.Err()
}

func joinList(v []string) string {
	if len(v) == 0 {
		return ","
	}
	return "," + strings.Join(v, ",") + ","
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v != "" {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// Instance implements index.Index.
func (x *DB) Instance(ctx context.Context, sopUID string) (*index.Instance, error) {
	return x.oneInstance(ctx, `i.sop_uid = ?`, sopUID)
}

// InstanceByBlobKey implements index.Index.
func (x *DB) InstanceByBlobKey(ctx context.Context, key string) (*index.Instance, error) {
	return x.oneInstance(ctx, `i.blob_key = ?`, key)
}

func (x *DB) oneInstance(ctx context.Context, where string, arg string) (*index.Instance, error) {
	rows, err := x.db.QueryContext(ctx, x.d.rebind(instanceSelect+` WHERE `+where), arg)
	if err != nil {
		return nil, fmt.Errorf("index: instance %s: %w", arg, err)
	}
	list, err := scanInstances(rows, true)
	if err != nil {
		return nil, fmt.Errorf("index: instance %s: %w", arg, err)
	}
	if len(list) == 0 || !index.Admits(ctx, &list[0].Study) {
		return nil, fmt.Errorf("index: instance %s: %w", arg, index.ErrNotFound)
	}
	return &list[0], nil
}

// BlobKeys implements index.Index.
func (x *DB) BlobKeys(ctx context.Context, prefix string) iter.Seq2[string, error] {
	return x.keys(ctx, "instances", prefix)
}

// keys yields the blob keys of a table (instances or quarantine) starting with prefix.
func (x *DB) keys(ctx context.Context, table, prefix string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		// Page through keys so no long-lived cursor holds the database.
		after := ""
		for {
			rows, err := x.db.QueryContext(ctx, x.d.rebind(`SELECT blob_key FROM `+table+` WHERE blob_key > ? AND blob_key >= ? ORDER BY blob_key`+x.d.ByteOrder+` LIMIT 1000`), after, prefix)
			if err != nil {
				yield("", fmt.Errorf("index: blob keys: %w", err))
				return
			}
			var keys []string
			for rows.Next() {
				var k string
				if err := rows.Scan(&k); err != nil {
					rows.Close()
					yield("", err)
					return
				}
				keys = append(keys, k)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				yield("", err)
				return
			}
			for _, k := range keys {
				if !strings.HasPrefix(k, prefix) {
					if k > prefix {
						return
					}
					continue
				}
				if !yield(k, nil) {
					return
				}
			}
			if len(keys) < 1000 {
				return
			}
			after = keys[len(keys)-1]
		}
	}
}

// Counts implements index.Index.
func (x *DB) Counts(ctx context.Context) (index.Counts, error) {
	var c index.Counts
	var bytes sql.NullInt64
	err := x.db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM patients WHERE merged_into IS NULL), (SELECT COUNT(*) FROM studies), (SELECT COUNT(*) FROM series), (SELECT COUNT(*) FROM instances), (SELECT SUM(size) FROM instances)`).
		Scan(&c.Patients, &c.Studies, &c.Series, &c.Instances, &bytes)
	if err != nil {
		return c, fmt.Errorf("index: counts: %w", err)
	}
	c.Bytes = bytes.Int64
	return c, nil
}

// Ping implements index.Index.
func (x *DB) Ping(ctx context.Context) error {
	if err := x.db.PingContext(ctx); err != nil {
		return fmt.Errorf("index: ping: %w", err)
	}
	var n int
	if err := x.db.QueryRowContext(ctx, `SELECT 1`).Scan(&n); err != nil {
		return fmt.Errorf("index: ping: %w", err)
	}
	return nil
}

// maxReadStmts bounds the prepared queries kept (readStmt): the texts of queries vary
// with their filters, and the common ones come first.
const maxReadStmts = 256

// readStmt returns the prepared statement of a query text when the dialect keeps them
// (Dialect.PrepareReads), preparing it on first use while fewer than maxReadStmts are
// kept; nil otherwise (the caller runs the text).
func (x *DB) readStmt(ctx context.Context, q string) *sql.Stmt {
	if !x.d.PrepareReads {
		return nil
	}
	if v, ok := x.reads.Load(q); ok {
		return v.(*sql.Stmt)
	}
	if x.nread.Load() >= maxReadStmts {
		return nil
	}
	st, err := x.db.PrepareContext(ctx, q)
	if err != nil {
		return nil // the caller runs the text, and reports what fails
	}
	if v, loaded := x.reads.LoadOrStore(q, st); loaded {
		st.Close()
		return v.(*sql.Stmt)
	}
	x.nread.Add(1)
	return st
}

// query runs a query, prepared when the dialect keeps prepared queries.
func (x *DB) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := x.readStmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return x.db.QueryContext(ctx, q, args...)
}

// Close implements index.Index. Puts in progress finish first; later ones fail.
func (x *DB) Close() error {
	x.closeGroup()
	for _, f := range x.closers {
		f()
	}
	for _, m := range []*sync.Map{&x.stmts, &x.reads} {
		m.Range(func(_, v any) bool {
			if st := v.(*sql.Stmt); st != nil {
				st.Close()
			}
			return true
		})
	}
	if x.wdb != nil {
		x.wdb.Close()
	}
	return x.db.Close()
}
