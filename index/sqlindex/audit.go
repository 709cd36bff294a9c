package sqlindex

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/lumenpacs/lumen/index"
)

// Audit implements index.Auditor.
func (x *DB) Audit(ctx context.Context, rs ...*index.AuditRecord) error {
	if len(rs) == 0 {
		return nil
	}
	now := time.Now()
	err := x.tx(ctx, func(tx *sql.Tx) error {
		for _, r := range rs {
			at := r.At
			if at.IsZero() {
				at = now
			}
			if _, err := x.exec(ctx, tx, `INSERT INTO audit (at, actor, via, action, outcome, study_uid, patient_id, issuer, remote, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				at.UnixMilli(), r.Actor, r.Via, r.Action, r.Outcome, r.StudyInstanceUID, r.PatientID, r.IssuerOfPatientID, r.Remote, r.Detail); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("index: audit: %w", err)
	}
	return nil
}

// FindAudit implements index.Auditor.
func (x *DB) FindAudit(ctx context.Context, q index.AuditQuery) ([]index.AuditRecord, error) {
	b := &builder{d: x.d}
	var where []string
	for _, f := range []struct{ col, v string }{{"actor", q.Actor}, {"action", q.Action}, {"study_uid", q.StudyInstanceUID}, {"patient_id", q.PatientID}} {
		if f.v != "" {
			where = append(where, f.col+` = `+b.arg(f.v))
		}
	}
	// The caller's scope (index.WithScope), like every other read: a record is visible
	// when it names the scope's patient, or a study of that patient; a study scope sees
	// its study's records only. Records naming neither are outside every scope.
	for _, sc := range index.Scopes(ctx) {
		if sc.Patient != nil {
			own := `(patient_id = ` + b.arg(sc.Patient.ID) + ` AND issuer = ` + b.arg(sc.Patient.Issuer) + `)`
			where = append(where, `(`+own+` OR study_uid IN (SELECT s.study_uid FROM studies s JOIN patients p ON p.id = s.patient_fk WHERE p.patient_id = `+
				b.arg(sc.Patient.ID)+` AND p.issuer = `+b.arg(sc.Patient.Issuer)+`))`)
		}
		if sc.StudyInstanceUID != "" {
			where = append(where, `study_uid = `+b.arg(sc.StudyInstanceUID))
		}
	}
	if !q.From.IsZero() {
		where = append(where, `at >= `+b.arg(q.From.UnixMilli()))
	}
	if !q.To.IsZero() {
		where = append(where, `at <= `+b.arg(q.To.UnixMilli()))
	}
	limit := q.Limit
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	query := `SELECT id, at, actor, via, action, outcome, study_uid, patient_id, issuer, remote, detail FROM audit`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY at DESC, id DESC LIMIT ` + b.arg(limit)
	rows, err := x.db.QueryContext(ctx, query, b.args...)
	if err != nil {
		return nil, fmt.Errorf("index: audit search: %w", err)
	}
	defer rows.Close()
	var out []index.AuditRecord
	for rows.Next() {
		var r index.AuditRecord
		var at int64
		if err := rows.Scan(&r.ID, &at, &r.Actor, &r.Via, &r.Action, &r.Outcome, &r.StudyInstanceUID, &r.PatientID, &r.IssuerOfPatientID, &r.Remote, &r.Detail); err != nil {
			return nil, fmt.Errorf("index: audit search: %w", err)
		}
		r.At = time.UnixMilli(at)
		out = append(out, r)
	}
	return out, rows.Err()
}
