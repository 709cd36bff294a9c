package sqlindex

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/lumenpacs/lumen/index"
)

const quarantineCols = `id, received_at, sop_uid, sop_class_uid, study_uid, series_uid, patient_id, issuer, transfer_syntax, source_ae, via, account, remote, reason, blob_key, size, sha256, content_digest`

func scanQuarantine(rows *sql.Rows) ([]index.QuarantineRecord, error) {
	defer rows.Close()
	var out []index.QuarantineRecord
	for rows.Next() {
		var r index.QuarantineRecord
		var at int64
		if err := rows.Scan(&r.ID, &at, &r.SOPInstanceUID, &r.SOPClassUID, &r.StudyInstanceUID, &r.SeriesInstanceUID, &r.PatientID, &r.IssuerOfPatientID,
			&r.TransferSyntaxUID, &r.SourceAE, &r.Via, &r.Account, &r.Remote, &r.Reason, &r.BlobKey, &r.Size, &r.Digest, &r.ContentDigest); err != nil {
			return nil, err
		}
		r.ReceivedAt = time.UnixMilli(at)
		out = append(out, r)
	}
	return out, rows.Err()
}

// insertQuarantine inserts r inside tx and sets its ID.
func (x *DB) insertQuarantine(ctx context.Context, tx *sql.Tx, r *index.QuarantineRecord) error {
	if r.ReceivedAt.IsZero() {
		r.ReceivedAt = time.Now()
	}
	return x.queryRow(ctx, tx, `INSERT INTO quarantine (received_at, sop_uid, sop_class_uid, study_uid, series_uid, patient_id, issuer, transfer_syntax, source_ae, via, account, remote, reason, blob_key, size, sha256, content_digest)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		r.ReceivedAt.UnixMilli(), r.SOPInstanceUID, nz(r.SOPClassUID), r.StudyInstanceUID, r.SeriesInstanceUID, nz(r.PatientID), nz(r.IssuerOfPatientID),
		nz(r.TransferSyntaxUID), r.SourceAE, r.Via, r.Account, r.Remote, r.Reason, r.BlobKey, r.Size, r.Digest, r.ContentDigest).Scan(&r.ID)
}

// Quarantine implements index.Index.
func (x *DB) Quarantine(ctx context.Context, r *index.QuarantineRecord) error {
	if err := x.tx(ctx, func(tx *sql.Tx) error { return x.insertQuarantine(ctx, tx, r) }); err != nil {
		return fmt.Errorf("index: quarantine %s: %w", r.SOPInstanceUID, err)
	}
	return nil
}

// Quarantined implements index.Index.
func (x *DB) Quarantined(ctx context.Context, q index.QuarantineQuery) ([]index.QuarantineRecord, error) {
	rows, err := x.listAside(ctx, "quarantine", quarantineCols, [][2]string{{"sop_uid", q.SOPInstanceUID}, {"study_uid", q.StudyInstanceUID}, {"blob_key", q.BlobKey}},
		q.Before, q.Limit, index.MaxQuarantineList)
	if err != nil {
		return nil, fmt.Errorf("index: quarantine list: %w", err)
	}
	list, err := scanQuarantine(rows)
	if err != nil {
		return nil, fmt.Errorf("index: quarantine list: %w", err)
	}
	return list, nil
}

// listAside lists the records of a table kept aside from the served ones (quarantine,
// rejections), newest first: those whose columns equal the non-empty values of eq,
// within the caller's scopes (the record's own patient and study, like every other
// read), with an id below before (when not 0), at most limit (max when 0 or above).
func (x *DB) listAside(ctx context.Context, table, cols string, eq [][2]string, before int64, limit, max int) (*sql.Rows, error) {
	b := &builder{d: x.d}
	var where []string
	for _, f := range eq {
		if f[1] != "" {
			where = append(where, f[0]+` = `+b.arg(f[1]))
		}
	}
	for _, sc := range index.Scopes(ctx) {
		if sc.Patient != nil {
			where = append(where, `patient_id = `+b.arg(sc.Patient.ID)+` AND issuer = `+b.arg(sc.Patient.Issuer))
		}
		if sc.StudyInstanceUID != "" {
			where = append(where, `study_uid = `+b.arg(sc.StudyInstanceUID))
		}
	}
	if before != 0 {
		where = append(where, `id < `+b.arg(before))
	}
	if limit <= 0 || limit > max {
		limit = max
	}
	query := `SELECT ` + cols + ` FROM ` + table
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY id DESC LIMIT ` + b.arg(limit)
	return x.db.QueryContext(ctx, query, b.args...)
}

// QuarantinedByID implements index.Index.
func (x *DB) QuarantinedByID(ctx context.Context, id int64) (*index.QuarantineRecord, error) {
	rows, err := x.db.QueryContext(ctx, x.d.rebind(`SELECT `+quarantineCols+` FROM quarantine WHERE id = ?`), id)
	if err != nil {
		return nil, fmt.Errorf("index: quarantine %d: %w", id, err)
	}
	list, err := scanQuarantine(rows)
	if err != nil {
		return nil, fmt.Errorf("index: quarantine %d: %w", id, err)
	}
	if len(list) == 0 || !index.Admits(ctx, quarantineStudy(&list[0])) {
		return nil, fmt.Errorf("index: quarantine %d: %w", id, index.ErrNotFound)
	}
	return &list[0], nil
}

func quarantineStudy(r *index.QuarantineRecord) *index.Study {
	return &index.Study{Patient: index.Patient{PatientID: r.PatientID, IssuerOfPatientID: r.IssuerOfPatientID}, StudyInstanceUID: r.StudyInstanceUID}
}

// takeQuarantined removes record id inside tx and returns it.
func (x *DB) takeQuarantined(ctx context.Context, tx *sql.Tx, id int64) (*index.QuarantineRecord, error) {
	rows, err := tx.QueryContext(ctx, x.d.rebind(`SELECT `+quarantineCols+` FROM quarantine WHERE id = ?`), id)
	if err != nil {
		return nil, err
	}
	list, err := scanQuarantine(rows)
	if err != nil {
		return nil, err
	}
	res, err := x.exec(ctx, tx, `DELETE FROM quarantine WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	// Counted by the DELETE, not the SELECT: of two concurrent takers one deletes it.
	if n, err := res.RowsAffected(); err != nil || n != 1 || len(list) == 0 {
		if err == nil {
			err = fmt.Errorf("%d: %w", id, index.ErrNotFound)
		}
		return nil, err
	}
	return &list[0], nil
}

// DeleteQuarantined implements index.Index.
func (x *DB) DeleteQuarantined(ctx context.Context, id int64) (*index.QuarantineRecord, error) {
	var r *index.QuarantineRecord
	err := x.tx(ctx, func(tx *sql.Tx) error {
		var err error
		r, err = x.takeQuarantined(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("index: delete quarantined %d: %w", id, err)
	}
	return r, nil
}

// Promote implements index.Index.
func (x *DB) Promote(ctx context.Context, id int64, inst *index.Instance, demoted index.QuarantineRecord) (*index.QuarantineRecord, error) {
	var out *index.QuarantineRecord
	err := x.tx(ctx, func(tx *sql.Tx) error {
		out = nil
		q, err := x.takeQuarantined(ctx, tx, id)
		if err != nil {
			return err
		}
		if q.SOPInstanceUID != inst.SOPInstanceUID || q.BlobKey != inst.BlobKey {
			return fmt.Errorf("quarantined copy %d is %s in %s, not %s in %s: %w", id, q.SOPInstanceUID, q.BlobKey, inst.SOPInstanceUID, inst.BlobKey, index.ErrConflict)
		}
		old, err := x.remove(ctx, tx, inst.SOPInstanceUID)
		if err != nil && !errors.Is(err, index.ErrNotFound) {
			return err
		}
		if err := x.insert(ctx, tx, inst); err != nil {
			return err
		}
		if old == nil {
			return nil
		}
		r := demoted
		r.ID = 0
		r.ReceivedAt = old.ReceivedAt
		r.SOPInstanceUID, r.SOPClassUID, r.StudyInstanceUID, r.SeriesInstanceUID = old.SOPInstanceUID, old.SOPClassUID, old.StudyInstanceUID, old.SeriesInstanceUID
		r.PatientID, r.IssuerOfPatientID, r.TransferSyntaxUID = old.PatientID, old.IssuerOfPatientID, old.TransferSyntaxUID
		r.SourceAE = old.SourceAE
		r.BlobKey, r.Size, r.Digest, r.ContentDigest = old.BlobKey, old.Size, old.Digest, old.ContentDigest
		if err := x.insertQuarantine(ctx, tx, &r); err != nil {
			return err
		}
		out = &r
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index: promote quarantined %d: %w", id, err)
	}
	return out, nil
}

// QuarantineBlobKeys implements index.Index.
func (x *DB) QuarantineBlobKeys(ctx context.Context, prefix string) iter.Seq2[string, error] {
	return x.keys(ctx, "quarantine", prefix)
}

// SetContentDigest implements index.Index.
func (x *DB) SetContentDigest(ctx context.Context, sopUID, blobKey, digest string) error {
	err := x.tx(ctx, func(tx *sql.Tx) error {
		_, err := x.exec(ctx, tx, `UPDATE instances SET content_digest = ? WHERE sop_uid = ? AND blob_key = ? AND content_digest = ''`, digest, sopUID, blobKey)
		return err
	})
	if err != nil {
		return fmt.Errorf("index: content digest of %s: %w", sopUID, err)
	}
	return nil
}
