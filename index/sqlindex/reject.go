package sqlindex

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/lumenpacs/lumen/index"
)

var _ index.Rejecter = (*DB)(nil)

const rejectionCols = `id, sop_uid, sop_class_uid, study_uid, series_uid, patient_id, issuer, reason, note_uid, blob_key, size, sha256, content_digest, source_ae, received_at, rejected_at, source, actor`

func scanRejections(rows *sql.Rows) ([]index.Rejection, error) {
	defer rows.Close()
	var out []index.Rejection
	for rows.Next() {
		var r index.Rejection
		var blob sql.NullString
		var received sql.NullInt64
		var at int64
		if err := rows.Scan(&r.ID, &r.SOPInstanceUID, &r.SOPClassUID, &r.StudyInstanceUID, &r.SeriesInstanceUID, &r.Patient.ID, &r.Patient.Issuer,
			&r.Reason, &r.NoteUID, &blob, &r.Size, &r.Digest, &r.ContentDigest, &r.SourceAE, &received, &at, &r.Source, &r.Actor); err != nil {
			return nil, err
		}
		r.BlobKey = blob.String
		if received.Valid {
			r.ReceivedAt = time.UnixMilli(received.Int64)
		}
		r.RejectedAt = time.UnixMilli(at)
		out = append(out, r)
	}
	return out, rows.Err()
}

// refuseRejected returns ErrRejected when sopUID has a rejection.
func (x *DB) refuseRejected(ctx context.Context, tx *sql.Tx, sopUID string) error {
	var n int
	if err := x.queryRow(ctx, tx, `SELECT COUNT(*) FROM rejections WHERE sop_uid = ?`, sopUID).Scan(&n); err != nil {
		return fmt.Errorf("rejections: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("%s: %w", sopUID, index.ErrRejected)
	}
	return nil
}

// rejectionTx reads the rejection of sopUID inside tx (nil when there is none).
func (x *DB) rejectionTx(ctx context.Context, tx *sql.Tx, sopUID string) (*index.Rejection, error) {
	rows, err := tx.QueryContext(ctx, x.d.rebind(`SELECT `+rejectionCols+` FROM rejections WHERE sop_uid = ?`), sopUID)
	if err != nil {
		return nil, err
	}
	list, err := scanRejections(rows)
	if err != nil || len(list) == 0 {
		return nil, err
	}
	return &list[0], nil
}

// patientKeyOf returns the key of patient record id inside tx.
func (x *DB) patientKeyOf(ctx context.Context, tx *sql.Tx, id int64) (index.PatientKey, error) {
	var k index.PatientKey
	err := x.queryRow(ctx, tx, `SELECT patient_id, issuer FROM patients WHERE id = ?`, id).Scan(&k.ID, &k.Issuer)
	return k, err
}

// filedUnder returns the record studies of k are filed under (its survivor when merged
// away), or 0 when k has no record.
func (x *DB) filedUnder(ctx context.Context, tx *sql.Tx, k index.PatientKey) (int64, error) {
	var id int64
	err := x.queryRow(ctx, tx, `SELECT COALESCE(merged_into, id) FROM patients WHERE patient_id = ? AND issuer = ?`, nz(k.ID), nz(k.Issuer)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return id, err
}

// eventGroups gathers the instances of one operation by study: one event each.
type eventGroups struct {
	order []string
	by    map[string]*eventGroup
}

type eventGroup struct {
	patient   int64
	key       index.PatientKey
	series    []string
	instances []string
}

func (g *eventGroups) add(study, series, sop string, patient int64, key index.PatientKey) {
	if g.by == nil {
		g.by = map[string]*eventGroup{}
	}
	e := g.by[study]
	if e == nil {
		e = &eventGroup{patient: patient, key: key}
		g.by[study] = e
		g.order = append(g.order, study)
	}
	if len(e.series) == 0 || e.series[len(e.series)-1] != series {
		e.series = append(e.series, series)
	}
	e.instances = append(e.instances, sop)
}

func (x *DB) events(ctx context.Context, tx *sql.Tx, now int64, kind, reason string, g *eventGroups, c index.Change) error {
	for _, study := range g.order {
		e := g.by[study]
		d := eventDetail{Patient: toJSON(e.key), Study: study, Instances: e.instances, Reason: reason}
		if len(e.series) == 1 {
			d.Series = e.series[0]
		}
		if err := x.event(ctx, tx, now, kind, e.patient, nil, d, c); err != nil {
			return err
		}
	}
	return nil
}

// Reject implements index.Rejecter.
func (x *DB) Reject(ctx context.Context, note *index.Instance, reason string, refs []index.RejectRef, c index.Change) ([]index.Rejection, error) {
	if note == nil {
		return nil, errors.New("index: reject: no rejection note")
	}
	var out []index.Rejection
	err := x.tx(ctx, func(tx *sql.Tx) error {
		out = nil
		now := nowMillis()
		var n int
		if err := x.queryRow(ctx, tx, `SELECT COUNT(*) FROM instances WHERE sop_uid = ?`, note.SOPInstanceUID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("note %s: %w", note.SOPInstanceUID, index.ErrExists)
		}
		if err := x.insert(ctx, tx, note); err != nil {
			return err
		}
		var notePid int64
		if err := x.queryRow(ctx, tx, `SELECT patient_fk FROM studies WHERE study_uid = ?`, note.StudyInstanceUID).Scan(&notePid); err != nil {
			return err
		}
		noteKey, err := x.patientKeyOf(ctx, tx, notePid)
		if err != nil {
			return err
		}
		// The instances named are locked against their first arrival (insert takes
		// the same lock): either the arrival commits first and is rejected here, or
		// this commits first and the arrival sees the rejection.
		uids := make([]string, len(refs))
		for i, ref := range refs {
			uids[i] = ref.SOPInstanceUID
		}
		if err := x.lockUIDs(ctx, tx, uids...); err != nil {
			return err
		}
		var g eventGroups
		seen := map[string]bool{}
		for _, ref := range refs {
			if seen[ref.SOPInstanceUID] {
				continue
			}
			seen[ref.SOPInstanceUID] = true
			if ref.SOPInstanceUID == note.SOPInstanceUID {
				return fmt.Errorf("note %s rejects itself: %w", note.SOPInstanceUID, index.ErrConflict)
			}
			if prev, err := x.rejectionTx(ctx, tx, ref.SOPInstanceUID); err != nil {
				return err
			} else if prev != nil {
				continue // rejected already: the first rejection stands
			}
			r := index.Rejection{SOPInstanceUID: ref.SOPInstanceUID, Reason: reason, NoteUID: note.SOPInstanceUID, Source: c.Source, Actor: c.Actor}
			var class, series, study string
			var pid int64
			err := x.queryRow(ctx, tx, `SELECT i.sop_class_uid, se.series_uid, st.study_uid, st.patient_fk FROM instances i JOIN series se ON se.id = i.series_fk JOIN studies st ON st.id = se.study_fk WHERE i.sop_uid = ?`,
				ref.SOPInstanceUID).Scan(&class, &series, &study, &pid)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				// Not received (yet): recorded as the note names it, under the note's
				// patient, unless the series it names is known under another study.
				var other string
				err := x.queryRow(ctx, tx, `SELECT st.study_uid FROM series se JOIN studies st ON st.id = se.study_fk WHERE se.series_uid = ?`, ref.SeriesInstanceUID).Scan(&other)
				if err == nil && other != ref.StudyInstanceUID {
					return fmt.Errorf("instance %s: series %s belongs to another study than the note names: %w", ref.SOPInstanceUID, ref.SeriesInstanceUID, index.ErrConflict)
				}
				if err != nil && !errors.Is(err, sql.ErrNoRows) {
					return err
				}
				r.SOPClassUID, r.StudyInstanceUID, r.SeriesInstanceUID, r.Patient = ref.SOPClassUID, ref.StudyInstanceUID, ref.SeriesInstanceUID, noteKey
				pid = notePid
			case err != nil:
				return err
			default:
				if study != ref.StudyInstanceUID || ref.SeriesInstanceUID != "" && series != ref.SeriesInstanceUID {
					return fmt.Errorf("instance %s is indexed in another study or series than the note names: %w", ref.SOPInstanceUID, index.ErrConflict)
				}
				if pid != notePid {
					return fmt.Errorf("instance %s belongs to another patient than the note: %w", ref.SOPInstanceUID, index.ErrConflict)
				}
				old, err := x.remove(ctx, tx, ref.SOPInstanceUID)
				if err != nil {
					return err
				}
				r.SOPClassUID, r.StudyInstanceUID, r.SeriesInstanceUID, r.Patient = old.SOPClassUID, old.StudyInstanceUID, old.SeriesInstanceUID, noteKey
				r.BlobKey, r.Size, r.Digest, r.ContentDigest, r.SourceAE, r.ReceivedAt = old.BlobKey, old.Size, old.Digest, old.ContentDigest, old.SourceAE, old.ReceivedAt
			}
			r.RejectedAt = time.UnixMilli(now)
			if err := x.insertRejection(ctx, tx, &r); err != nil {
				return err
			}
			g.add(r.StudyInstanceUID, r.SeriesInstanceUID, r.SOPInstanceUID, pid, noteKey)
			out = append(out, r)
		}
		return x.events(ctx, tx, now, index.EventReject, reason, &g, c)
	})
	if err != nil {
		return nil, fmt.Errorf("index: reject with note %s: %w", note.SOPInstanceUID, err)
	}
	return out, nil
}

func (x *DB) insertRejection(ctx context.Context, tx *sql.Tx, r *index.Rejection) error {
	var blob, received any
	if r.BlobKey != "" {
		blob = r.BlobKey
	}
	if !r.ReceivedAt.IsZero() {
		received = r.ReceivedAt.UnixMilli()
	}
	return x.queryRow(ctx, tx, `INSERT INTO rejections (sop_uid, sop_class_uid, study_uid, series_uid, patient_id, issuer, reason, note_uid, blob_key, size, sha256, content_digest, source_ae, received_at, rejected_at, source, actor)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		r.SOPInstanceUID, nz(r.SOPClassUID), r.StudyInstanceUID, r.SeriesInstanceUID, nz(r.Patient.ID), nz(r.Patient.Issuer), r.Reason, r.NoteUID,
		blob, r.Size, r.Digest, r.ContentDigest, r.SourceAE, received, r.RejectedAt.UnixMilli(), r.Source, r.Actor).Scan(&r.ID)
}

// takeRejection removes the rejection of sopUID inside tx and returns it (ErrNotFound
// when there is none; counted by the DELETE, so of two concurrent takers one wins).
func (x *DB) takeRejection(ctx context.Context, tx *sql.Tx, sopUID string) (*index.Rejection, error) {
	r, err := x.rejectionTx(ctx, tx, sopUID)
	if err != nil {
		return nil, err
	}
	res, err := x.exec(ctx, tx, `DELETE FROM rejections WHERE sop_uid = ?`, sopUID)
	if err != nil {
		return nil, err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 || r == nil {
		if err == nil {
			err = fmt.Errorf("rejection of %s: %w", sopUID, index.ErrNotFound)
		}
		return nil, err
	}
	return r, nil
}

// Restore implements index.Rejecter.
func (x *DB) Restore(ctx context.Context, list []index.Restoration, reason string, c index.Change) ([]index.Rejection, error) {
	var out []index.Rejection
	err := x.tx(ctx, func(tx *sql.Tx) error {
		out = nil
		now := nowMillis()
		var g eventGroups
		for _, rs := range list {
			r, err := x.takeRejection(ctx, tx, rs.SOPInstanceUID)
			if err != nil {
				return err
			}
			inst := rs.Instance
			if r.BlobKey == "" {
				if inst != nil {
					return fmt.Errorf("%s was never received, yet a record is given: %w", r.SOPInstanceUID, index.ErrConflict)
				}
				pid, err := x.filedUnder(ctx, tx, r.Patient)
				if err != nil {
					return err
				}
				g.add(r.StudyInstanceUID, r.SeriesInstanceUID, r.SOPInstanceUID, pid, r.Patient)
				out = append(out, *r)
				continue
			}
			if inst == nil || inst.SOPInstanceUID != r.SOPInstanceUID || inst.BlobKey != r.BlobKey {
				return fmt.Errorf("%s: the record given is not the rejected object's (blob %s): %w", r.SOPInstanceUID, r.BlobKey, index.ErrConflict)
			}
			inst.SourceAE, inst.ReceivedAt = r.SourceAE, r.ReceivedAt
			inst.Jobs = nil
			// The instance goes back where it was filed when it was rejected, which is not
			// what its stored header says when its series was moved to another study (and
			// patient) before: the stored bytes are never rewritten.
			inst.StudyInstanceUID, inst.SeriesInstanceUID = r.StudyInstanceUID, r.SeriesInstanceUID
			if k := (index.PatientKey{ID: inst.PatientID, Issuer: inst.IssuerOfPatientID}); k != r.Patient {
				inst.PatientID, inst.IssuerOfPatientID = r.Patient.ID, r.Patient.Issuer
				// Never another patient's demographics, should the record be created.
				inst.PatientName, inst.PatientBirthDate, inst.PatientSex = "", "", ""
			}
			if err := x.insert(ctx, tx, inst); err != nil {
				return err
			}
			var pid int64
			if err := x.queryRow(ctx, tx, `SELECT patient_fk FROM studies WHERE study_uid = ?`, inst.StudyInstanceUID).Scan(&pid); err != nil {
				return err
			}
			key, err := x.patientKeyOf(ctx, tx, pid)
			if err != nil {
				return err
			}
			g.add(inst.StudyInstanceUID, inst.SeriesInstanceUID, inst.SOPInstanceUID, pid, key)
			out = append(out, *r)
		}
		return x.events(ctx, tx, now, index.EventRestore, reason, &g, c)
	})
	if err != nil {
		return nil, fmt.Errorf("index: restore: %w", err)
	}
	return out, nil
}

// Purge implements index.Rejecter.
func (x *DB) Purge(ctx context.Context, sopUIDs []string, reason string, c index.Change) ([]index.Rejection, error) {
	var out []index.Rejection
	err := x.tx(ctx, func(tx *sql.Tx) error {
		out = nil
		now := nowMillis()
		var g eventGroups
		for _, uid := range sopUIDs {
			r, err := x.takeRejection(ctx, tx, uid)
			if err != nil {
				return err
			}
			pid, err := x.filedUnder(ctx, tx, r.Patient)
			if err != nil {
				return err
			}
			g.add(r.StudyInstanceUID, r.SeriesInstanceUID, r.SOPInstanceUID, pid, r.Patient)
			out = append(out, *r)
		}
		return x.events(ctx, tx, now, index.EventPurge, reason, &g, c)
	})
	if err != nil {
		return nil, fmt.Errorf("index: purge: %w", err)
	}
	return out, nil
}

// Rejected implements index.Rejecter.
func (x *DB) Rejected(ctx context.Context, q index.RejectedQuery) ([]index.Rejection, error) {
	rows, err := x.listAside(ctx, "rejections", rejectionCols, [][2]string{{"sop_uid", q.SOPInstanceUID}, {"study_uid", q.StudyInstanceUID}, {"note_uid", q.NoteUID}},
		q.Before, q.Limit, index.MaxRejectedList)
	if err != nil {
		return nil, fmt.Errorf("index: rejected list: %w", err)
	}
	list, err := scanRejections(rows)
	if err != nil {
		return nil, fmt.Errorf("index: rejected list: %w", err)
	}
	return list, nil
}

// RejectionOf implements index.Rejecter.
func (x *DB) RejectionOf(ctx context.Context, sopUID string) (*index.Rejection, error) {
	rows, err := x.db.QueryContext(ctx, x.d.rebind(`SELECT `+rejectionCols+` FROM rejections WHERE sop_uid = ?`), sopUID)
	if err != nil {
		return nil, fmt.Errorf("index: rejection of %s: %w", sopUID, err)
	}
	list, err := scanRejections(rows)
	if err != nil {
		return nil, fmt.Errorf("index: rejection of %s: %w", sopUID, err)
	}
	if len(list) == 0 || !index.Admits(ctx, &index.Study{Patient: index.Patient{PatientID: list[0].Patient.ID, IssuerOfPatientID: list[0].Patient.Issuer}, StudyInstanceUID: list[0].StudyInstanceUID}) {
		return nil, fmt.Errorf("index: rejection of %s: %w", sopUID, index.ErrNotFound)
	}
	return &list[0], nil
}

// KeepRejected implements index.Rejecter.
func (x *DB) KeepRejected(ctx context.Context, inst *index.Instance) (bool, error) {
	var ok bool
	err := x.tx(ctx, func(tx *sql.Tx) error {
		received := inst.ReceivedAt
		if received.IsZero() {
			received = time.Now()
		}
		res, err := x.exec(ctx, tx, `UPDATE rejections SET blob_key = ?, size = ?, sha256 = ?, content_digest = ?, source_ae = ?, received_at = ?, sop_class_uid = ?, study_uid = ?, series_uid = ?
			WHERE sop_uid = ? AND blob_key IS NULL`,
			inst.BlobKey, inst.Size, inst.Digest, inst.ContentDigest, inst.SourceAE, received.UnixMilli(), nz(inst.SOPClassUID), inst.StudyInstanceUID, inst.SeriesInstanceUID, inst.SOPInstanceUID)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		ok = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("index: keep rejected %s: %w", inst.SOPInstanceUID, err)
	}
	return ok, nil
}

// RejectedBlobKeys implements index.Rejecter.
func (x *DB) RejectedBlobKeys(ctx context.Context, prefix string) iter.Seq2[string, error] {
	return x.keys(ctx, "rejections", prefix)
}
