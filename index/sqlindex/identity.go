package sqlindex

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lumenpacs/lumen/index"
)

var _ index.Identity = (*DB)(nil)

// eventDetail is the JSON of patient_events.detail: the keys needed to replay the
// event and the names of the fields set, never their values.
type eventDetail struct {
	Patient   *keyJSON `json:"patient,omitempty"`
	Other     *keyJSON `json:"other,omitempty"`
	Fields    []string `json:"fields,omitempty"`
	Study     string   `json:"study,omitempty"`
	Series    string   `json:"series,omitempty"`
	Instances []string `json:"instances,omitempty"`
	Reason    string   `json:"reason,omitempty"`
	FromStudy string   `json:"from_study,omitempty"`
	// Repointed lists the records a merge re-pointed from the merged record to the
	// survivor (no chains), by row id, so that an unmerge can point them back.
	Repointed []int64 `json:"repointed,omitempty"`
	// Undoable marks a merge made since studies.merged_from is kept (migration 0008):
	// earlier merges did not record which studies came with them.
	Undoable bool `json:"undoable,omitempty"`
}

type keyJSON struct {
	ID     string `json:"id"`
	Issuer string `json:"issuer"`
}

func toJSON(k index.PatientKey) *keyJSON { return &keyJSON{ID: k.ID, Issuer: k.Issuer} }

func normKey(k index.PatientKey) index.PatientKey {
	return index.PatientKey{ID: nz(k.ID), Issuer: nz(k.Issuer)}
}

// patientRow is the identity state of a patient record.
type patientRow struct {
	id     int64
	merged sql.NullInt64
}

// lookup reads the record of k inside tx (ok false when there is none), with the
// row lock lock (Dialect.ForUpdate, or "").
func (x *DB) lookup(ctx context.Context, tx *sql.Tx, k index.PatientKey, lock string) (patientRow, bool, error) {
	var r patientRow
	err := x.queryRow(ctx, tx, `SELECT id, merged_into FROM patients WHERE patient_id = ? AND issuer = ?`+lock, k.ID, k.Issuer).Scan(&r.id, &r.merged)
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	return r, err == nil, err
}

// identityTx runs fn in a transaction that first records c's message, if any: a message
// recorded already is ErrDuplicateMessage and nothing runs.
func (x *DB) identityTx(ctx context.Context, what string, c index.Change, fn func(tx *sql.Tx, now int64) error) error {
	err := x.tx(ctx, func(tx *sql.Tx) error {
		now := nowMillis()
		if m := c.Message; m != nil {
			res, err := x.exec(ctx, tx, `INSERT INTO hl7_messages (sending_application, sending_facility, control_id, received_at, ack) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
				m.Application, m.Facility, m.ControlID, now, m.Ack)
			if err != nil {
				return fmt.Errorf("message: %w", err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				return index.ErrDuplicateMessage
			}
		}
		return fn(tx, now)
	})
	if err != nil {
		return fmt.Errorf("index: %s: %w", what, err)
	}
	return nil
}

// event records one patient event inside tx.
func (x *DB) event(ctx context.Context, tx *sql.Tx, now int64, kind string, patient int64, other *int64, d eventDetail, c index.Change) error {
	if d.Reason == "" {
		d.Reason = c.Reason
	}
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	var o any
	if other != nil {
		o = *other
	}

	if _, err := x.exec(ctx, tx, `INSERT INTO patient_events (at, kind, patient_fk, other_fk, detail, source, actor) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		now, kind, patient, o, string(b), c.Source, c.Actor); err != nil {
		return fmt.Errorf("event: %w", err)
	}
	return nil
}

// nameCols returns the stored forms of a patient name: as given, and the derived
// columns name_ci and name_fuzzy (the same derivation as ingest).
func nameCols(name string) (string, string, string) {
	return name, index.NameCI(name), index.NameFuzzy(name)
}

// UpdatePatient implements index.Identity.
func (x *DB) UpdatePatient(ctx context.Context, k index.PatientKey, d index.Demographics, c index.Change) (bool, error) {
	k = normKey(k)
	var created bool
	err := x.identityTx(ctx, "update patient", c, func(tx *sql.Tx, now int64) error {
		created = false
		var fields []string
		set := `updated_at = ?`
		args := []any{now}
		if d.Name != nil {
			n, ci, fz := nameCols(*d.Name)
			fields = append(fields, "name")
			set += `, name = ?, name_ci = ?, name_fuzzy = ?`
			args = append(args, n, ci, fz)
		}
		if d.BirthDate != nil {
			fields = append(fields, "birth_date")
			set += `, birth_date = ?`
			args = append(args, nz(*d.BirthDate))
		}
		if d.Sex != nil {
			fields = append(fields, "sex")
			set += `, sex = ?`
			args = append(args, nz(*d.Sex))
		}
		r, ok, err := x.lookup(ctx, tx, k, x.d.ForUpdate) // locked: a merge committing meanwhile is seen (ErrMerged)
		if err != nil {
			return err
		}
		if !ok {
			val := func(p *string) string {
				if p == nil {
					return ""
				}
				return *p
			}
			n, ci, fz := nameCols(val(d.Name))
			err := x.queryRow(ctx, tx, `INSERT INTO patients (patient_id, issuer, name, name_ci, name_fuzzy, birth_date, sex, num_studies, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?) ON CONFLICT DO NOTHING RETURNING id`,
				k.ID, k.Issuer, n, ci, fz, nz(val(d.BirthDate)), nz(val(d.Sex)), now, now).Scan(&r.id)
			switch {
			case err == nil:
				created = true
				return x.event(ctx, tx, now, index.EventCreate, r.id, nil, eventDetail{Patient: toJSON(k), Fields: fields}, c)
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
			// A concurrent writer (ingest) created it: update the row it committed.
			if r, ok, err = x.lookup(ctx, tx, k, x.d.ForUpdate); err != nil {
				return err
			} else if !ok {
				return fmt.Errorf("patient record: %w", index.ErrNotFound)
			}
		}
		if r.merged.Valid {
			return fmt.Errorf("patient record: %w", index.ErrMerged)
		}
		if _, err := x.exec(ctx, tx, `UPDATE patients SET `+set+` WHERE id = ?`, append(args, r.id)...); err != nil {
			return err
		}
		return x.event(ctx, tx, now, index.EventUpdate, r.id, nil, eventDetail{Patient: toJSON(k), Fields: fields}, c)
	})
	return created, err
}

// MergePatients implements index.Identity.
//
// Locks (PostgreSQL): ingest reads the row of the key it files under FOR KEY SHARE
// (filePatient). A merge locks FOR UPDATE, before it re-points any study: first the
// records merged into merged earlier, then merged, then survivor. So an ingest filing
// under merged (by merged's key, or by the key of a record merged into it) either holds
// its row lock first, and the merge waits for it to commit and then re-points the study
// it made, or it waits for the merge and then reads merged_into as the merge left it.
// Ingest locks the merged-away row before the survivor's, as the merge does, so the two
// do not deadlock.
func (x *DB) MergePatients(ctx context.Context, survivor, merged index.PatientKey, c index.Change) error {
	survivor, merged = normKey(survivor), normKey(merged)
	return x.identityTx(ctx, "merge patients", c, func(tx *sql.Tx, now int64) error {
		if survivor == merged {
			return fmt.Errorf("a record merged into itself: %w", index.ErrConflict)
		}
		m, ok, err := x.lookup(ctx, tx, merged, "")
		if err != nil || !ok {
			return err // an unknown merged record: nothing to do
		}
		if _, err := x.ids(ctx, tx, `SELECT id FROM patients WHERE merged_into = ? ORDER BY id`+x.d.ForUpdate, m.id); err != nil {
			return err
		}
		if m, ok, err = x.lookup(ctx, tx, merged, x.d.ForUpdate); err != nil || !ok {
			return err
		}
		s, ok, err := x.lookup(ctx, tx, survivor, x.d.ForUpdate)
		if err != nil {
			return err
		}
		if m.merged.Valid {
			if ok && m.merged.Int64 == s.id {
				return nil // merged into survivor already (a replay)
			}
			return fmt.Errorf("the merged record is merged into another record: %w", index.ErrConflict)
		}
		if !ok {
			return x.changeID(ctx, tx, now, m, merged, survivor, c)
		}
		if s.merged.Valid {
			return fmt.Errorf("the surviving record is merged away: %w", index.ErrConflict)
		}
		// With merged locked no record can be merged into it any more: this list is
		// exact (and locked, when a merge into merged committed since the first read).
		repointed, err := x.ids(ctx, tx, `SELECT id FROM patients WHERE merged_into = ? ORDER BY id`+x.d.ForUpdate, m.id)
		if err != nil {
			return err
		}
		// The studies follow by their link to the patient; no instance row is touched.
		// merged_from keeps the record a study was first merged away from.
		if _, err := x.exec(ctx, tx, `UPDATE studies SET patient_fk = ?, merged_from = COALESCE(merged_from, ?) WHERE patient_fk = ?`, s.id, m.id, m.id); err != nil {
			return err
		}
		// Records merged into merged earlier now point at survivor: no chains.
		if _, err := x.exec(ctx, tx, `UPDATE patients SET merged_into = ?, updated_at = ? WHERE merged_into = ?`, s.id, now, m.id); err != nil {
			return err
		}
		if _, err := x.exec(ctx, tx, `UPDATE patients SET merged_into = ?, num_studies = 0, updated_at = ? WHERE id = ?`, s.id, now, m.id); err != nil {
			return err
		}
		if err := x.recountStudies(ctx, tx, now, s.id); err != nil {
			return err
		}
		return x.event(ctx, tx, now, index.EventMerge, s.id, &m.id, eventDetail{Patient: toJSON(survivor), Other: toJSON(merged), Repointed: repointed, Undoable: true}, c)
	})
}

// ChangePatientID implements index.Identity.
func (x *DB) ChangePatientID(ctx context.Context, old, new index.PatientKey, c index.Change) error {
	old, new = normKey(old), normKey(new)
	return x.identityTx(ctx, "change patient id", c, func(tx *sql.Tx, now int64) error {
		r, ok, err := x.lookup(ctx, tx, old, x.d.ForUpdate)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("the prior identifier: %w", index.ErrNotFound)
		}
		if r.merged.Valid {
			return fmt.Errorf("the prior identifier: %w", index.ErrMerged)
		}
		return x.changeID(ctx, tx, now, r, old, new, c)
	})
}

// changeID gives the active record r the key new, unless new is taken by another
// record. The retired key old stays behind as an alias: a row merged into r, with no
// studies. So objects a modality sends later under old file under r (recorded as merged
// from the alias, as after a merge), and patient-scoped links and tokens for old are
// refused as for a merged record, never widened. A change back to a key that is an
// alias of r itself takes it over, and the alias then names the key r leaves.
func (x *DB) changeID(ctx context.Context, tx *sql.Tx, now int64, r patientRow, old, new index.PatientKey, c index.Change) error {
	if old == new {
		return fmt.Errorf("the new identifier is the old one: %w", index.ErrConflict)
	}
	alias, taken, err := x.lookup(ctx, tx, new, x.d.ForUpdate)
	if err != nil {
		return err
	}
	if taken && !(alias.merged.Valid && alias.merged.Int64 == r.id) {
		return fmt.Errorf("the new identifier belongs to a record: %w", index.ErrConflict)
	}
	if taken {
		// r's own alias: it moves out of the way, r takes new, the alias takes old. The
		// interim key starts with SOH, which no PatientID holds (PS3.5 6.2: LO excludes
		// control characters other than ESC) and PostgreSQL text accepts (unlike NUL).
		if _, err := x.exec(ctx, tx, `UPDATE patients SET patient_id = ?, updated_at = ? WHERE id = ?`, fmt.Sprintf("\x01alias-%d", alias.id), now, alias.id); err != nil {
			return err
		}
	}
	if _, err := x.exec(ctx, tx, `UPDATE patients SET patient_id = ?, issuer = ?, updated_at = ? WHERE id = ?`, new.ID, new.Issuer, now, r.id); err != nil {
		return err
	}
	if taken {
		if _, err := x.exec(ctx, tx, `UPDATE patients SET patient_id = ?, issuer = ?, updated_at = ? WHERE id = ?`, old.ID, old.Issuer, now, alias.id); err != nil {
			return err
		}
	} else if _, err := x.exec(ctx, tx, `INSERT INTO patients (patient_id, issuer, name, name_ci, name_fuzzy, birth_date, sex, num_studies, merged_into, created_at, updated_at)
		SELECT ?, ?, name, name_ci, name_fuzzy, birth_date, sex, 0, id, ?, ? FROM patients WHERE id = ?`, old.ID, old.Issuer, now, now, r.id); err != nil {
		return err
	}
	// Rejections name their patient by key: they follow the record, so that a restore
	// files under it, never under the retired identifier.
	if _, err := x.exec(ctx, tx, `UPDATE rejections SET patient_id = ?, issuer = ? WHERE patient_id = ? AND issuer = ?`, new.ID, new.Issuer, old.ID, old.Issuer); err != nil {
		return err
	}
	return x.event(ctx, tx, now, index.EventChangeID, r.id, nil, eventDetail{Patient: toJSON(new), Other: toJSON(old)}, c)
}

// ResolvePatient implements index.Identity.
func (x *DB) ResolvePatient(ctx context.Context, k index.PatientKey) (index.PatientKey, bool, error) {
	k = normKey(k)
	var out index.PatientKey
	var merged bool
	err := x.db.QueryRowContext(ctx, x.d.rebind(`SELECT COALESCE(s.patient_id, p.patient_id), COALESCE(s.issuer, p.issuer), p.merged_into IS NOT NULL
		FROM patients p LEFT JOIN patients s ON s.id = p.merged_into WHERE p.patient_id = ? AND p.issuer = ?`), k.ID, k.Issuer).Scan(&out.ID, &out.Issuer, &merged)
	if errors.Is(err, sql.ErrNoRows) {
		return index.PatientKey{}, false, fmt.Errorf("index: resolve patient: %w", index.ErrNotFound)
	}
	if err != nil {
		return index.PatientKey{}, false, fmt.Errorf("index: resolve patient: %w", err)
	}
	return out, merged, nil
}

// PatientEvents implements index.Identity.
func (x *DB) PatientEvents(ctx context.Context, afterID int64, limit int) ([]index.PatientEvent, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := x.db.QueryContext(ctx, x.d.rebind(`SELECT id, at, kind, detail, source, actor FROM patient_events WHERE id > ? ORDER BY id LIMIT ?`), afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("index: patient events: %w", err)
	}
	defer rows.Close()
	var out []index.PatientEvent
	for rows.Next() {
		var e index.PatientEvent
		var at int64
		var detail string
		if err := rows.Scan(&e.ID, &at, &e.Kind, &detail, &e.Source, &e.Actor); err != nil {
			return nil, fmt.Errorf("index: patient events: %w", err)
		}
		e.At = time.UnixMilli(at)
		var d eventDetail
		if err := json.Unmarshal([]byte(detail), &d); err != nil {
			return nil, fmt.Errorf("index: patient event %d: %w", e.ID, err)
		}
		if d.Patient != nil {
			e.Patient = index.PatientKey{ID: d.Patient.ID, Issuer: d.Patient.Issuer}
		}
		if d.Other != nil {
			e.Other = index.PatientKey{ID: d.Other.ID, Issuer: d.Other.Issuer}
		}
		e.Fields, e.Study, e.Series, e.Instances, e.Reason, e.FromStudy = d.Fields, d.Study, d.Series, d.Instances, d.Reason, d.FromStudy
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("index: patient events: %w", err)
	}
	return out, nil
}

// Message implements index.Identity.
func (x *DB) Message(ctx context.Context, id index.MessageID) ([]byte, bool, error) {
	var ack []byte
	err := x.db.QueryRowContext(ctx, x.d.rebind(`SELECT ack FROM hl7_messages WHERE sending_facility = ? AND sending_application = ? AND control_id = ?`),
		id.Facility, id.Application, id.ControlID).Scan(&ack)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("index: message %s: %w", id.ControlID, err)
	}
	return ack, true, nil
}
