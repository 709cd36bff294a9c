package sqlindex

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/lumenpacs/lumen/index"
)

// filePatient returns the record an object is filed under: the record of its key, or
// the survivor of that record when it is merged away (mergedFrom is then the merged
// record's id, recorded in studies.merged_from of a study made for the object, else
// nil). An unknown key gets a new record. The row of the key is read FOR KEY SHARE
// (PostgreSQL), which holds up no other ingest and no demographic update, but a
// concurrent merge of that record or its survivor (see MergePatients).
//
// A record it creates (created) counts one study already: the caller files a new
// study under it (or corrects the count).
func (x *DB) filePatient(ctx context.Context, tx *sql.Tx, in *index.Instance, now int64) (pid int64, mergedFrom any, created bool, err error) {
	k := index.PatientKey{ID: nz(in.PatientID), Issuer: nz(in.IssuerOfPatientID)}
	read := func() (int64, any, error) {
		var id int64
		var merged sql.NullInt64
		if err := x.queryRow(ctx, tx, `SELECT id, merged_into FROM patients WHERE patient_id = ? AND issuer = ?`+x.d.ForKeyShare, k.ID, k.Issuer).Scan(&id, &merged); err != nil {
			return 0, nil, err
		}
		if merged.Valid {
			return merged.Int64, id, nil
		}
		return id, nil, nil
	}
	pid, mergedFrom, err = read()
	if !errors.Is(err, sql.ErrNoRows) {
		return pid, mergedFrom, false, err
	}
	// ON CONFLICT DO NOTHING: a concurrent transaction may create the same record; then
	// nothing is returned and the row it committed is read back.
	name, nameCI, nameFuzzy := nameCols(in.PatientName)
	pid, created, err = x.insertID(ctx, tx, `INSERT INTO patients (patient_id, issuer, name, name_ci, name_fuzzy, birth_date, sex, num_studies, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)`,
		k.ID, k.Issuer, name, nameCI, nameFuzzy, nz(in.PatientBirthDate), nz(in.PatientSex), now)
	if err != nil || created {
		return pid, nil, created, err
	}
	pid, mergedFrom, err = read()
	return pid, mergedFrom, false, err
}

// ids returns the first column of the rows of a query.
func (x *DB) ids(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, x.d.rebind(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// placeholders returns "?, ?, ..." for n values.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// int64s returns v as arguments.
func int64s(v []int64) []any {
	out := make([]any, len(v))
	for i, n := range v {
		out[i] = n
	}
	return out
}

// recountStudies sets the study count of the records ids from their studies, and
// marks them corrected (updated_at).
func (x *DB) recountStudies(ctx context.Context, tx *sql.Tx, now int64, ids ...int64) error {
	for _, id := range ids {
		if _, err := x.exec(ctx, tx, `UPDATE patients SET num_studies = (SELECT COUNT(*) FROM studies WHERE patient_fk = ?), updated_at = ? WHERE id = ?`, id, now, id); err != nil {
			return err
		}
	}
	return nil
}

// keyOf returns the key of the record id, locked with lock.
func (x *DB) keyOf(ctx context.Context, tx *sql.Tx, id int64, lock string) (index.PatientKey, error) {
	var k index.PatientKey
	err := x.queryRow(ctx, tx, `SELECT patient_id, issuer FROM patients WHERE id = ?`+lock, id).Scan(&k.ID, &k.Issuer)
	return k, err
}

// lockIDs locks the patient rows ids FOR UPDATE (PostgreSQL), in id order.
func (x *DB) lockIDs(ctx context.Context, tx *sql.Tx, ids ...int64) error {
	if x.d.ForUpdate == "" {
		return nil
	}
	_, err := x.ids(ctx, tx, `SELECT id FROM patients WHERE id IN (`+placeholders(len(ids))+`) ORDER BY id`+x.d.ForUpdate, int64s(ids)...)
	return err
}

// MoveStudy implements index.Identity.
//
// Locks (PostgreSQL): both patient rows FOR UPDATE (in id order), then the study row,
// as ingest locks the patient row before the study row (filePatient, then the study's
// owner check FOR KEY SHARE): an object arriving for the study either commits first
// (and moves with it) or waits and finds the study under another record (ErrConflict,
// as for any study filed under another patient).
func (x *DB) MoveStudy(ctx context.Context, studyUID string, to index.PatientKey, c index.Change) error {
	to = normKey(to)
	return x.identityTx(ctx, "move study", c, func(tx *sql.Tx, now int64) error {
		var sid, from int64
		err := x.queryRow(ctx, tx, `SELECT id, patient_fk FROM studies WHERE study_uid = ?`, studyUID).Scan(&sid, &from)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("study %s: %w", studyUID, index.ErrNotFound)
		}
		if err != nil {
			return err
		}
		t, ok, err := x.lookup(ctx, tx, to, "")
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("the target patient record: %w", index.ErrNotFound)
		}
		if err := x.lockIDs(ctx, tx, t.id, from); err != nil {
			return err
		}
		if t, ok, err = x.lookup(ctx, tx, to, ""); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("the target patient record: %w", index.ErrNotFound)
		}
		if t.merged.Valid {
			return fmt.Errorf("the target patient record: %w", index.ErrMerged)
		}
		var owner int64
		if err := x.queryRow(ctx, tx, `SELECT patient_fk FROM studies WHERE id = ?`+x.d.ForUpdate, sid).Scan(&owner); err != nil {
			return err
		}
		if owner != from {
			return fmt.Errorf("study %s was filed under another record meanwhile; try again: %w", studyUID, index.ErrConflict)
		}
		if t.id == from {
			return fmt.Errorf("study %s is filed under that patient record already: %w", studyUID, index.ErrConflict)
		}
		fromKey, err := x.keyOf(ctx, tx, from, "")
		if err != nil {
			return err
		}
		// A move is a correction, not a merge: merged_from goes, so that undoing an
		// earlier merge does not take the study along.
		if _, err := x.exec(ctx, tx, `UPDATE studies SET patient_fk = ?, merged_from = NULL, updated_at = ? WHERE id = ?`, t.id, now, sid); err != nil {
			return err
		}
		// The record left keeps its flags (its objects did not change); it stays even
		// without studies, so that a move back finds it.
		if _, err := x.exec(ctx, tx, `UPDATE patients SET num_studies = num_studies - 1 WHERE id = ?`, from); err != nil {
			return err
		}
		if _, err := x.exec(ctx, tx, `UPDATE patients SET num_studies = num_studies + 1, updated_at = ? WHERE id = ?`, now, t.id); err != nil {
			return err
		}
		return x.event(ctx, tx, now, index.EventMoveStudy, t.id, &from, eventDetail{Patient: toJSON(to), Other: toJSON(fromKey), Study: studyUID}, c)
	})
}

// MoveSeries implements index.Identity.
//
// Locks (PostgreSQL): both study rows FOR UPDATE (in id order), then the series row, as
// ingest locks the study row before the series row: an object arriving for the series
// either commits first (and is counted in the recount) or waits and finds the series in
// another study (ErrConflict).
func (x *DB) MoveSeries(ctx context.Context, seriesUID, toStudyUID string, c index.Change) error {
	return x.identityTx(ctx, "move series", c, func(tx *sql.Tx, now int64) error {
		var seid, from, to, toPatient int64
		err := x.queryRow(ctx, tx, `SELECT id, study_fk FROM series WHERE series_uid = ?`, seriesUID).Scan(&seid, &from)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("series %s: %w", seriesUID, index.ErrNotFound)
		}
		if err != nil {
			return err
		}
		err = x.queryRow(ctx, tx, `SELECT id FROM studies WHERE study_uid = ?`, toStudyUID).Scan(&to)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("study %s: %w", toStudyUID, index.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if to == from {
			return fmt.Errorf("series %s is in study %s already: %w", seriesUID, toStudyUID, index.ErrConflict)
		}
		var fromStudy string
		var fromPatient int64
		for _, id := range []int64{min(from, to), max(from, to)} {
			var p int64
			var uid string
			if err := x.queryRow(ctx, tx, `SELECT patient_fk, study_uid FROM studies WHERE id = ?`+x.d.ForUpdate, id).Scan(&p, &uid); err != nil {
				return err
			}
			if id == from {
				fromPatient, fromStudy = p, uid
			} else {
				toPatient = p
			}
		}
		var owner int64
		if err := x.queryRow(ctx, tx, `SELECT study_fk FROM series WHERE id = ?`+x.d.ForUpdate, seid).Scan(&owner); err != nil {
			return err
		}
		if owner != from {
			return fmt.Errorf("series %s was moved meanwhile; try again: %w", seriesUID, index.ErrConflict)
		}
		if _, err := x.exec(ctx, tx, `UPDATE series SET study_fk = ?, updated_at = ? WHERE id = ?`, to, now, seid); err != nil {
			return err
		}
		if _, err := x.recountStudy(ctx, tx, now, to); err != nil {
			return err
		}
		left, err := x.recountStudy(ctx, tx, now, from)
		if err != nil {
			return err
		}
		if left == 0 {
			// As when its last instance is deleted (remove): the study goes, its record
			// stays (it is kept, as after a study move, for a move back).
			if _, err := x.exec(ctx, tx, `DELETE FROM studies WHERE id = ?`, from); err != nil {
				return err
			}
			if _, err := x.exec(ctx, tx, `UPDATE patients SET num_studies = num_studies - 1 WHERE id = ?`, fromPatient); err != nil {
				return err
			}
		}
		if _, err := x.exec(ctx, tx, `UPDATE patients SET updated_at = ? WHERE id = ?`, now, toPatient); err != nil {
			return err
		}
		// Both studies changed: (re)arm their thumbnail jobs.
		due := now + x.quiet().Milliseconds()
		if _, err := x.exec(ctx, tx, upsertJob, index.JobThumbnails, toStudyUID, due, now); err != nil {
			return fmt.Errorf("job: %w", err)
		}
		if left > 0 {
			if _, err := x.exec(ctx, tx, upsertJob, index.JobThumbnails, fromStudy, due, now); err != nil {
				return fmt.Errorf("job: %w", err)
			}
		}
		toKey, err := x.keyOf(ctx, tx, toPatient, "")
		if err != nil {
			return err
		}
		fromKey, err := x.keyOf(ctx, tx, fromPatient, "")
		if err != nil {
			return err
		}
		return x.event(ctx, tx, now, index.EventMoveSeries, toPatient, &fromPatient,
			eventDetail{Patient: toJSON(toKey), Other: toJSON(fromKey), Study: toStudyUID, FromStudy: fromStudy, Series: seriesUID}, c)
	})
}

// recountStudy recomputes the number of series and instances, the modalities and SOP
// classes of the study sid from its series and instances (as remove does), and
// returns its number of instances.
func (x *DB) recountStudy(ctx context.Context, tx *sql.Tx, now, sid int64) (int, error) {
	var series, instances int
	if err := x.queryRow(ctx, tx, `SELECT COUNT(*), COALESCE(SUM(num_instances), 0) FROM series WHERE study_fk = ?`, sid).Scan(&series, &instances); err != nil {
		return 0, err
	}
	mods, err := x.distinct(ctx, tx, `SELECT DISTINCT modality FROM series WHERE study_fk = ?`, sid)
	if err != nil {
		return 0, err
	}
	classes, err := x.distinct(ctx, tx, `SELECT DISTINCT i.sop_class_uid FROM instances i JOIN series se ON se.id = i.series_fk WHERE se.study_fk = ?`, sid)
	if err != nil {
		return 0, err
	}
	if _, err := x.exec(ctx, tx, `UPDATE studies SET num_series = ?, num_instances = ?, modalities = ?, sop_classes = ?, updated_at = ? WHERE id = ?`,
		series, instances, joinList(mods), joinList(classes), now, sid); err != nil {
		return 0, err
	}
	return instances, nil
}

// blockingKinds are the events after a merge that make it impossible to undo.
var blockingKinds = []string{index.EventMerge, index.EventChangeID, index.EventUnmerge, index.EventMoveStudy, index.EventMoveSeries}

// laterChanges reports whether an event of blockingKinds after the event eid names the
// record a or b, leaving out each merge undone since by an unmerge of the same two
// records with nothing between them (a merge and its undo cancel out).
func (x *DB) laterChanges(ctx context.Context, tx *sql.Tx, eid, a, b int64) (bool, error) {
	args := []any{eid}
	for _, k := range blockingKinds {
		args = append(args, k)
	}
	args = append(args, a, b, a, b)
	rows, err := tx.QueryContext(ctx, x.d.rebind(`SELECT kind, patient_fk, COALESCE(other_fk, 0) FROM patient_events WHERE id > ? AND kind IN (`+placeholders(len(blockingKinds))+`) AND (patient_fk IN (?, ?) OR other_fk IN (?, ?)) ORDER BY id`), args...)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	type ev struct {
		kind           string
		patient, other int64
	}
	var stack []ev
	for rows.Next() {
		var e ev
		if err := rows.Scan(&e.kind, &e.patient, &e.other); err != nil {
			return false, err
		}
		if n := len(stack); n > 0 && e.kind == index.EventUnmerge && stack[n-1].kind == index.EventMerge && stack[n-1].patient == e.patient && stack[n-1].other == e.other {
			stack = stack[:n-1]
			continue
		}
		stack = append(stack, e)
	}
	return len(stack) > 0, rows.Err()
}

// UnmergePatient implements index.Identity.
//
// Locks (PostgreSQL): as a merge, the merged-away rows first (merged and the records
// its merge re-pointed), then the survivor, all FOR UPDATE before any study moves; an
// object arriving under one of those keys waits or is waited for (see MergePatients).
func (x *DB) UnmergePatient(ctx context.Context, merged index.PatientKey, c index.Change) error {
	merged = normKey(merged)
	return x.identityTx(ctx, "unmerge patient", c, func(tx *sql.Tx, now int64) error {
		m, ok, err := x.lookup(ctx, tx, merged, "")
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("the merged patient record: %w", index.ErrNotFound)
		}
		if !m.merged.Valid {
			return fmt.Errorf("the merged patient record is not merged into another record: %w", index.ErrConflict)
		}
		s := m.merged.Int64
		var eid, into int64
		var detail string
		err = x.queryRow(ctx, tx, `SELECT id, patient_fk, detail FROM patient_events WHERE other_fk = ? AND kind = ? ORDER BY id DESC LIMIT 1`, m.id, index.EventMerge).Scan(&eid, &into, &detail)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && into != s) {
			// Merged into a record that was merged into s since (no chains): that later
			// merge comes first.
			return fmt.Errorf("the merged patient record: the record it was merged into was merged since; undo that merge first: %w", index.ErrConflict)
		}
		if err != nil {
			return err
		}
		var d eventDetail
		if err := json.Unmarshal([]byte(detail), &d); err != nil {
			return fmt.Errorf("merge event %d: %w", eid, err)
		}
		if !d.Undoable {
			return fmt.Errorf("the merged patient record was merged by an earlier version of Lumen, which did not record the studies that came with the merge: %w", index.ErrConflict)
		}
		back := append([]int64{m.id}, d.Repointed...)
		for i := 0; i < len(back); i += 500 {
			part := back[i:min(i+500, len(back))]
			if _, err := x.ids(ctx, tx, `SELECT id FROM patients WHERE id IN (`+placeholders(len(part))+`) ORDER BY id`+x.d.ForUpdate, int64s(part)...); err != nil {
				return err
			}
		}
		if m, _, err = x.lookup(ctx, tx, merged, ""); err != nil {
			return err
		}
		if !m.merged.Valid || m.merged.Int64 != s {
			return fmt.Errorf("the merged patient record was changed meanwhile; try again: %w", index.ErrConflict)
		}
		survivor, err := x.keyOf(ctx, tx, s, x.d.ForUpdate)
		if err != nil {
			return err
		}
		if blocked, err := x.laterChanges(ctx, tx, eid, m.id, s); err != nil {
			return err
		} else if blocked {
			return fmt.Errorf("the merged patient record: a later merge, move or change of identifier depends on the merge: %w", index.ErrConflict)
		}
		if _, err := x.exec(ctx, tx, `UPDATE patients SET merged_into = NULL, updated_at = ? WHERE id = ?`, now, m.id); err != nil {
			return err
		}
		for i := 0; i < len(back); i += 500 {
			part := back[i:min(i+500, len(back))]
			in := `(` + placeholders(len(part)) + `)`
			// The records merged into merged before its merge point at it again.
			if _, err := x.exec(ctx, tx, `UPDATE patients SET merged_into = ?, updated_at = ? WHERE merged_into = ? AND id IN `+in, append([]any{m.id, now, s}, int64s(part)...)...); err != nil {
				return err
			}
			// The studies that came with the merge, or later under those keys, go back;
			// merged_from stays only for those that came from an earlier merge into merged.
			if _, err := x.exec(ctx, tx, `UPDATE studies SET patient_fk = ?, merged_from = CASE WHEN merged_from = ? THEN NULL ELSE merged_from END WHERE patient_fk = ? AND merged_from IN `+in,
				append([]any{m.id, m.id, s}, int64s(part)...)...); err != nil {
				return err
			}
		}
		if err := x.recountStudies(ctx, tx, now, m.id, s); err != nil {
			return err
		}
		return x.event(ctx, tx, now, index.EventUnmerge, s, &m.id, eventDetail{Patient: toJSON(survivor), Other: toJSON(merged)}, c)
	})
}
