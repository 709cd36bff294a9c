package sqlindex

import (
	"context"
	"database/sql"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
)

type kind int

const (
	kString   kind = iota // case-sensitive string, wildcards allowed
	kUID                  // single UID or backslash/comma list; no wildcards
	kDate                 // DA: single or range
	kTime                 // TM: single or range, on the normalised column
	kPN                   // person name: case-insensitive, fuzzy on demand
	kInt                  // IS: single value
	kCSList               // CS: single, wildcard, or backslash list of alternatives
	kContains             // a ",A,B," list column: any of the values
)

type column struct {
	level index.Level
	col   string // qualified column
	fuzzy string // PN fuzzy column
	kind  kind
}

// columns maps matchable attributes to their columns.
var columns = map[dcm.Tag]column{
	dcm.TagPatientID:              {index.PatientLevel, "p.patient_id", "", kString},
	dcm.TagIssuerOfPatientID:      {index.PatientLevel, "p.issuer", "", kString},
	dcm.TagPatientName:            {index.PatientLevel, "p.name_ci", "p.name_fuzzy", kPN},
	dcm.TagPatientBirthDate:       {index.PatientLevel, "p.birth_date", "", kDate},
	dcm.TagPatientSex:             {index.PatientLevel, "p.sex", "", kCSList},
	dcm.TagStudyInstanceUID:       {index.StudyLevel, "s.study_uid", "", kUID},
	dcm.TagStudyDate:              {index.StudyLevel, "s.study_date", "", kDate},
	dcm.TagStudyTime:              {index.StudyLevel, "s.study_time_norm", "", kTime},
	dcm.TagAccessionNumber:        {index.StudyLevel, "s.accession", "", kString},
	dcm.TagStudyID:                {index.StudyLevel, "s.study_id", "", kString},
	dcm.TagStudyDescription:       {index.StudyLevel, "s.description", "", kString},
	dcm.TagReferringPhysicianName: {index.StudyLevel, "s.referring_ci", "s.referring_fuzzy", kPN},
	dcm.TagModalitiesInStudy:      {index.StudyLevel, "s.modalities", "", kContains},
	dcm.TagSOPClassesInStudy:      {index.StudyLevel, "s.sop_classes", "", kContains},
	dcm.TagSeriesInstanceUID:      {index.SeriesLevel, "se.series_uid", "", kUID},
	dcm.TagModality:               {index.SeriesLevel, "se.modality", "", kCSList},
	dcm.TagSeriesNumber:           {index.SeriesLevel, "se.series_number", "", kInt},
	dcm.TagSeriesDescription:      {index.SeriesLevel, "se.description", "", kString},
	dcm.TagBodyPartExamined:       {index.SeriesLevel, "se.body_part", "", kCSList},
	dcm.TagSeriesDate:             {index.SeriesLevel, "se.series_date", "", kDate},
	dcm.TagSOPInstanceUID:         {index.ImageLevel, "i.sop_uid", "", kUID},
	dcm.TagSOPClassUID:            {index.ImageLevel, "i.sop_class_uid", "", kUID},
	dcm.TagInstanceNumber:         {index.ImageLevel, "i.instance_number", "", kInt},
}

// Matchable reports whether the index can match on tag at level (or above it).
func Matchable(t dcm.Tag, level index.Level) bool {
	c, ok := columns[t]
	return ok && c.level <= level
}

const (
	patientCols  = `p.patient_id, p.issuer, p.name, p.birth_date, p.sex, p.num_studies, p.updated_at IS NOT NULL`
	studyCols    = `s.study_uid, s.study_date, s.study_time, s.accession, s.study_id, s.description, s.referring, s.modalities, s.sop_classes, s.num_series, s.num_instances, s.updated_at`
	seriesCols   = `se.series_uid, se.modality, se.series_number, se.description, se.body_part, se.series_date, se.series_time, se.num_instances`
	instanceCols = `i.sop_uid, i.sop_class_uid, i.instance_number, i.transfer_syntax, i.num_frames, i.rows_, i.cols, i.bits_allocated, i.blob_key, i.size, i.sha256, i.source_ae, i.received_at, i.metadata_omitted, i.content_digest`
	heavyCols    = `i.metadata, i.pixel_layout, i.bulk, i.meta_spans`

	fromPatient  = ` FROM patients p`
	fromStudy    = ` FROM studies s JOIN patients p ON p.id = s.patient_fk`
	fromSeries   = ` FROM series se JOIN studies s ON s.id = se.study_fk JOIN patients p ON p.id = s.patient_fk`
	fromInstance = ` FROM instances i JOIN series se ON se.id = i.series_fk JOIN studies s ON s.id = se.study_fk JOIN patients p ON p.id = s.patient_fk`

	instanceSelect = `SELECT ` + patientCols + `, ` + studyCols + `, ` + seriesCols + `, ` + instanceCols + `, ` + heavyCols + fromInstance
)

// orderTerm is one key of an ORDER BY.
type orderTerm struct {
	expr      string
	desc      bool
	nullsLast bool // a nullable column: NULLS LAST (NULLS FIRST reversed)
	nullable  bool
}

var (
	patientOrder  = []orderTerm{{expr: "p.name_ci"}, {expr: "p.id"}}
	studyOrder    = []orderTerm{{expr: "s.study_date", desc: true}, {expr: "s.study_time_norm", desc: true}, {expr: "s.id", desc: true}}
	seriesOrder   = append(slices.Clone(studyOrder), orderTerm{expr: "se.series_number", nullable: true, nullsLast: true}, orderTerm{expr: "se.id"})
	instanceOrder = append(slices.Clone(seriesOrder), orderTerm{expr: "i.instance_number", nullable: true, nullsLast: true}, orderTerm{expr: "i.id"})
)

// orderBy renders terms, each one reversed when reverse is set.
func orderBy(terms []orderTerm, reverse bool) string {
	parts := make([]string, len(terms))
	for i, t := range terms {
		desc, last := t.desc != reverse, t.nullsLast != reverse
		p := t.expr + " ASC"
		if desc {
			p = t.expr + " DESC"
		}
		if t.nullable {
			if last {
				p += " NULLS LAST"
			} else {
				p += " NULLS FIRST"
			}
		}
		parts[i] = p
	}
	return " ORDER BY " + strings.Join(parts, ", ")
}

// condSet holds the SQL conditions of a query: those on the patient record (p) and the
// others.
type condSet struct{ patient, other []string }

// conditions compiles the query's filters, the caller's scopes and the class filter
// into SQL conditions with their arguments in b. patientOnly compiles only those on the
// patient record. A query the database cannot run as given is index.ErrBadQuery.
func (x *DB) conditions(ctx context.Context, b *builder, q index.Query, patientOnly bool) (condSet, error) {
	var cs condSet
	for _, f := range q.Filters {
		for _, v := range append([]string{f.Value}, f.Values...) {
			if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
				return cs, fmt.Errorf("%w: the value of %s is not valid UTF-8 text or holds a NUL character", index.ErrBadQuery, f.Tag)
			}
		}
	}
	for _, f := range q.Filters {
		c, ok := columns[f.Tag]
		if !ok || c.level > q.Level || patientOnly && c.level != index.PatientLevel {
			continue
		}
		var cond string
		if len(f.Values) > 0 {
			cond = x.matchValues(b, c, f.Values)
		} else {
			cond = x.match(b, c, f.Value, q.Fuzzy)
		}
		switch {
		case cond == "":
		case c.level == index.PatientLevel:
			cs.patient = append(cs.patient, cond)
		default:
			cs.other = append(cs.other, cond)
		}
	}
	if n := len(cs.patient) + len(cs.other) + len(b.args) - b.derived; n > index.MaxQueryTerms {
		return cs, fmt.Errorf("%w: it has %d matching terms (keys and values); the index takes at most %d", index.ErrBadQuery, n, index.MaxQueryTerms)
	}
	if q.Level == index.PatientLevel {
		// Records merged away are not patients any more (their studies are filed
		// under the survivor).
		cs.patient = append(cs.patient, `p.merged_into IS NULL`)
	}
	// The caller's scope (index.WithScope), in the query itself.
	for _, sc := range index.Scopes(ctx) {
		if sc.Patient != nil {
			cs.patient = append(cs.patient, `p.patient_id = `+b.arg(sc.Patient.ID)+` AND p.issuer = `+b.arg(sc.Patient.Issuer))
		}
		if sc.StudyInstanceUID != "" && !patientOnly {
			if q.Level == index.PatientLevel {
				cs.other = append(cs.other, `EXISTS (SELECT 1 FROM studies s WHERE s.patient_fk = p.id AND s.study_uid = `+b.arg(sc.StudyInstanceUID)+`)`)
			} else {
				cs.other = append(cs.other, `s.study_uid = `+b.arg(sc.StudyInstanceUID))
			}
		}
	}
	if q.Class != nil && !patientOnly {
		cond := x.classCondition(b, &q.Class.Class)
		if q.Class.Exclude {
			cond = `NOT ` + cond
		}
		cs.other = append(cs.other, cond)
	}
	return cs, nil
}

// DefaultDensePatients is the default of DB.DensePatients.
const DefaultDensePatients = 1000

// densePatients returns DB.DensePatients or its default.
func (x *DB) densePatients() int {
	if x.DensePatients > 0 {
		return x.DensePatients
	}
	return DefaultDensePatients
}

// exactPatient reports whether q names its patients exactly (a PatientID without
// wildcards, a list of them, or a scope's patient): a handful of records at most.
func exactPatient(ctx context.Context, q index.Query) bool {
	for _, sc := range index.Scopes(ctx) {
		if sc.Patient != nil {
			return true
		}
	}
	for _, f := range q.Filters {
		if f.Tag != dcm.TagPatientID {
			continue
		}
		if v := strings.TrimSpace(f.Value); len(f.Values) > 0 || v != "" && !strings.ContainsAny(v, "*?") {
			return true
		}
	}
	return false
}

// patientClause is the condition that a study's patient meets the patient conditions
// of a study query, in the form that makes the database take the faster way for the
// number of patients they match, which a count bounded by DB.DensePatients tells:
//
//   - Few (fewer than DensePatients): the database starts from those patients and reads
//     their studies (studies_by_patient), then sorts them. The dialect's Fence keeps
//     PostgreSQL from walking the studies with a look-up of each one's patient.
//   - More: it walks the studies in the order of the answer (studies_by_date) and tests
//     each against the set of those patients, built once, so that a page stops early.
//     Wrapping the test in IS TRUE keeps either database from turning it into a join.
//   - Very many (4 × DensePatients, for a page of at most 256 studies): it walks the
//     studies and looks up each one's patient, which for a small page costs less than
//     building the set, in both engines: SQLite builds its sets as b-trees one insertion
//     at a time; PostgreSQL hashes faster, but a set of 63,000 patients (S* where most
//     names start with S) still took 36 ms to build, where the look-ups of the 776
//     studies walked for a page took 2 ms. PostgreSQL plans the EXISTS, left un-fenced,
//     as a semi-join, and may still hash the set where its statistics favour it.
func (x *DB) patientClause(ctx context.Context, b *builder, q index.Query, conds []string) (string, error) {
	pb := &builder{d: x.d}
	pc, err := x.conditions(ctx, pb, q, true)
	if err != nil {
		return "", err
	}
	dense := x.densePatients()
	k := dense
	if q.Limit > 0 && q.Limit+q.Offset <= 256 {
		k = manyPatients * dense
	}
	var n int
	probe := `SELECT COUNT(*) FROM (SELECT 1 AS one FROM patients p WHERE ` + strings.Join(pc.patient, ` AND `) + ` LIMIT ` + pb.arg(k) + `) t`
	rows, err := x.query(ctx, probe, pb.args...)
	if err == nil {
		err = scanOne(rows, &n)
	}
	if err != nil {
		return "", fmt.Errorf("index: find %s: patients: %w", q.Level, err)
	}
	where := strings.Join(conds, ` AND `)
	switch {
	case n < dense:
		return `s.patient_fk IN (SELECT p.id FROM patients p WHERE ` + where + x.d.Fence + `)`, nil
	case n < manyPatients*dense:
		return `(s.patient_fk IN (SELECT p.id FROM patients p WHERE ` + where + `)) IS TRUE`, nil
	}
	return `EXISTS (SELECT 1 FROM patients p WHERE p.id = s.patient_fk AND ` + where + `)`, nil
}

// scanOne reads the one row of a one-column query into dest.
func scanOne(rows *sql.Rows, dest any) error {
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := rows.Scan(dest); err != nil {
		return err
	}
	return rows.Close()
}

// manyPatients × DB.DensePatients patients are very many (patientClause).
const manyPatients = 4

// selectSQL builds the SELECT of a query (its records, not their count).
//
// A study query with patient keys that name no patient exactly, or with an offset,
// tests its patient keys as patientClause does and, with a limit, reads the ids of its
// page first, from the indexes alone (studies_by_date holds the patient and
// ModalitiesInStudy, studies_by_patient the sort keys), then the rows of that page: the
// studies the filters drop, skipped by the offset or sorted out of the page are never
// read. Other queries are a plain join. Either way the order is that of the level
// (orderBy): the same records in the same order.
func (x *DB) selectSQL(ctx context.Context, q index.Query, cols, from, order string) (string, []any, error) {
	b := &builder{d: x.d}
	cs, err := x.conditions(ctx, b, q, false)
	if err != nil {
		return "", nil, err
	}
	where := func(conds []string) string {
		if len(conds) == 0 {
			return ""
		}
		return ` WHERE ` + strings.Join(conds, ` AND `)
	}
	page := func(query string) string {
		if q.Limit > 0 {
			query += ` LIMIT ` + b.arg(q.Limit)
		}
		if q.Offset > 0 {
			if q.Limit <= 0 {
				if x.d.Numbered {
					query += ` LIMIT ALL`
				} else {
					query += ` LIMIT -1`
				}
			}
			query += ` OFFSET ` + b.arg(q.Offset)
		}
		return query
	}
	if q.Level != index.StudyLevel || exactPatient(ctx, q) || len(cs.patient) == 0 && (q.Offset == 0 || q.Limit <= 0) {
		// A plain join: the patients are few (the database starts from them), or the
		// walk of the studies in order reads no more than the page.
		return page(`SELECT ` + cols + from + where(append(cs.patient, cs.other...)) + order), b.args, nil
	}
	conds := cs.other
	if len(cs.patient) > 0 {
		clause, err := x.patientClause(ctx, b, q, cs.patient)
		if err != nil {
			return "", nil, err
		}
		conds = append(conds, clause)
	}
	if q.Limit <= 0 {
		return page(`SELECT ` + cols + from + where(conds) + order), b.args, nil
	}
	ids := page(`SELECT s.id FROM studies s` + where(conds) + order)
	return `SELECT ` + cols + from + ` WHERE s.id IN (` + ids + `)` + order, b.args, nil
}

// classCondition is the SQL of index.StudyClass.Matches on the study s.
func (x *DB) classCondition(b *builder, c *index.StudyClass) string {
	mods, prefixes, parts, keywords := c.Rules()
	var any []string
	for _, m := range mods {
		any = append(any, fmt.Sprintf(x.d.Contains, fmt.Sprintf(x.d.Upper, "s.modalities"), b.arg(","+m+",")))
	}
	for _, p := range prefixes {
		// The list column is ",A,B,": a value starts with p where ",p" occurs.
		any = append(any, fmt.Sprintf(x.d.Contains, "s.sop_classes", b.arg(","+p)))
	}
	if len(parts) > 0 {
		ph := make([]string, len(parts))
		for i, p := range parts {
			ph[i] = b.arg(p)
		}
		any = append(any, `EXISTS (SELECT 1 FROM series cb WHERE cb.study_fk = s.id AND `+fmt.Sprintf(x.d.Upper, "cb.body_part")+` IN (`+strings.Join(ph, ", ")+`))`)
	}
	if len(keywords) > 0 {
		words := fmt.Sprintf(x.d.Words, "s.description")
		for _, k := range keywords {
			any = append(any, fmt.Sprintf(x.d.Contains, words, b.arg(" "+k+" ")))
		}
	}
	if len(any) == 0 {
		return `(1 = 0)` // no rule: no study is in the class
	}
	return `(` + strings.Join(any, ` OR `) + `)`
}

// levelSQL returns the columns, tables and order of a level's SELECT.
func levelSQL(q index.Query) (cols, from, order string, err error) {
	switch q.Level {
	case index.PatientLevel:
		cols, from, order = patientCols, fromPatient, orderBy(patientOrder, q.Reverse)
	case index.StudyLevel:
		cols, from, order = patientCols+`, `+studyCols, fromStudy, orderBy(studyOrder, q.Reverse)
	case index.SeriesLevel:
		cols, from, order = patientCols+`, `+studyCols+`, `+seriesCols, fromSeries, orderBy(seriesOrder, q.Reverse)
	case index.ImageLevel:
		cols, from, order = patientCols+`, `+studyCols+`, `+seriesCols+`, `+instanceCols+`, NULL, NULL, NULL, NULL`, fromInstance, orderBy(instanceOrder, q.Reverse)
		if q.WithMetadata {
			cols = patientCols + `, ` + studyCols + `, ` + seriesCols + `, ` + instanceCols + `, ` + heavyCols
		}
	default:
		return "", "", "", fmt.Errorf("index: find: invalid level %d", q.Level)
	}
	if q.Class != nil && q.Level == index.PatientLevel {
		return "", "", "", fmt.Errorf("index: find: a class filter needs study level or below")
	}
	return cols, from, order, nil
}

// ignored lists the filters of q the index cannot match on at its level.
func ignored(q index.Query) []dcm.Tag {
	var out []dcm.Tag
	for _, f := range q.Filters {
		if c, ok := columns[f.Tag]; !ok || c.level > q.Level {
			out = append(out, f.Tag)
		}
	}
	return out
}

// Find implements index.Index.
func (x *DB) Find(ctx context.Context, q index.Query) (*index.Result, error) {
	res := &index.Result{Ignored: ignored(q)}
	cols, from, order, err := levelSQL(q)
	if err != nil {
		return nil, err
	}
	if q.Total {
		b := &builder{d: x.d}
		query := from
		cs, err := x.conditions(ctx, b, q, false)
		if err != nil {
			return nil, err
		}
		if where := append(cs.patient, cs.other...); len(where) > 0 {
			query += ` WHERE ` + strings.Join(where, ` AND `)
		}
		if q.MaxTotal > 0 {
			query = `SELECT COUNT(*) FROM (SELECT 1 AS one` + query + ` LIMIT ` + b.arg(q.MaxTotal+1) + `) t`
		} else {
			query = `SELECT COUNT(*)` + query
		}
		if err := x.db.QueryRowContext(ctx, query, b.args...).Scan(&res.Total); err != nil {
			return nil, fmt.Errorf("index: find %s: count: %w", q.Level, err)
		}
		if q.CountOnly {
			return res, nil
		}
	}
	query, args, err := x.selectSQL(ctx, q, cols, from, order)
	if err != nil {
		return nil, err
	}
	rows, err := x.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("index: find %s: %w", q.Level, err)
	}
	defer rows.Close()
	sc := rowScanner{correct: !q.Uncorrected}
	if n := min(q.Limit, maxPrealloc); n > 0 {
		// A page is read whole, usually: its records in one allocation rather than a
		// doubling slice.
		switch q.Level {
		case index.PatientLevel:
			res.Patients = make([]index.Patient, 0, n)
		case index.StudyLevel:
			res.Studies = make([]index.Study, 0, n)
		case index.SeriesLevel:
			res.Series = make([]index.Series, 0, n)
		}
	}
	for rows.Next() {
		var err error
		switch q.Level {
		case index.PatientLevel:
			res.Patients = append(res.Patients, index.Patient{})
			err = sc.scan(rows, &res.Patients[len(res.Patients)-1])
		case index.StudyLevel:
			res.Studies = append(res.Studies, index.Study{})
			err = sc.scan(rows, &res.Studies[len(res.Studies)-1])
		case index.SeriesLevel:
			res.Series = append(res.Series, index.Series{})
			err = sc.scan(rows, &res.Series[len(res.Series)-1])
		case index.ImageLevel:
			res.Instances = append(res.Instances, index.Instance{})
			err = sc.scan(rows, &res.Instances[len(res.Instances)-1])
		}
		if err != nil {
			return nil, fmt.Errorf("index: find: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("index: find: %w", err)
	}
	return res, nil
}

// maxPrealloc bounds the records Find makes room for before it reads them (a limit of
// a few hundred, as QIDO-RS pages have, is usually what comes).
const maxPrealloc = 128

// FindSeq implements index.Index. The rows come from one statement held open while
// the loop runs (in PostgreSQL, a cursor of a read-only transaction, fetched a batch at
// a time, so that the database plans for the first rows rather than for all of them).
func (x *DB) FindSeq(ctx context.Context, q index.Query) ([]dcm.Tag, iter.Seq2[index.Record, error]) {
	return ignored(q), func(yield func(index.Record, error) bool) {
		cols, from, order, err := levelSQL(q)
		if err != nil {
			yield(nil, err)
			return
		}
		query, args, err := x.selectSQL(ctx, q, cols, from, order)
		if err != nil {
			yield(nil, err)
			return
		}
		sc := rowScanner{correct: !q.Uncorrected}
		each := func(rows *sql.Rows) (n int, ok bool, err error) {
			defer rows.Close()
			for rows.Next() {
				n++
				var rec index.Record
				switch q.Level {
				case index.PatientLevel:
					rec = &index.Patient{}
				case index.StudyLevel:
					rec = &index.Study{}
				case index.SeriesLevel:
					rec = &index.Series{}
				default:
					rec = &index.Instance{}
				}
				if err := sc.scan(rows, rec); err != nil {
					return n, false, fmt.Errorf("index: find: %w", err)
				}
				if !yield(rec, nil) {
					return n, false, nil
				}
			}
			if err := rows.Err(); err != nil {
				return n, false, fmt.Errorf("index: find: %w", err)
			}
			return n, true, nil
		}
		if !x.d.Cursors || q.Limit > 0 {
			rows, err := x.query(ctx, query, args...)
			if err != nil {
				yield(nil, fmt.Errorf("index: find %s: %w", q.Level, err))
				return
			}
			if _, _, err := each(rows); err != nil {
				yield(nil, err)
			}
			return
		}
		// The cursor's statements run without ctx's cancellation, which ends the loop
		// between two fetches instead: lib/pq answers a context ended in the middle of a
		// statement by cancelling it on a new connection to the server and dropping the
		// one it ran on, and a C-FIND cancelled by its peer (C-CANCEL) would pay for a
		// new connection each time. A fetch reads at most cursorBatch rows.
		dbctx := context.WithoutCancel(ctx)
		tx, err := x.db.BeginTx(dbctx, &sql.TxOptions{ReadOnly: true})
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			if tx != nil {
				tx.Rollback()
			}
			yield(nil, fmt.Errorf("index: find %s: %w", q.Level, err))
			return
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(dbctx, `DECLARE lumen_find NO SCROLL CURSOR FOR `+query, args...); err != nil {
			yield(nil, fmt.Errorf("index: find %s: %w", q.Level, err))
			return
		}
		for batch := cursorFirstBatch; ; batch = cursorBatch {
			if err := ctx.Err(); err != nil {
				yield(nil, fmt.Errorf("index: find %s: %w", q.Level, err))
				return
			}
			rows, err := tx.QueryContext(dbctx, `FETCH FORWARD `+strconv.Itoa(batch)+` FROM lumen_find`)
			if err != nil {
				yield(nil, fmt.Errorf("index: find %s: %w", q.Level, err))
				return
			}
			n, ok, err := each(rows)
			if err != nil {
				yield(nil, err)
				return
			}
			if !ok || n < batch {
				return
			}
		}
	}
}

// The rows a cursor fetch reads: few at first, so that the first answer goes out at
// once, then more at a time.
const (
	cursorFirstBatch = 100
	cursorBatch      = 1000
)

// rowScanner reads rows of a level's SELECT into records; correct applies the
// records' corrections to instance metadata (Instance.CorrectMetadata). It keeps what
// a row is scanned through (the destinations, the list and time columns) from one row
// to the next: a page of records makes no garbage beyond the records themselves.
type rowScanner struct {
	correct   bool
	corrector index.MetadataCorrector
	dest      []any
	study     studyScan
	series    seriesScan
}

// scan reads the current row into rec, a *index.Patient, *index.Study, *index.Series
// or *index.Instance (the level of the SELECT).
func (r *rowScanner) scan(rows *sql.Rows, rec index.Record) error {
	switch v := rec.(type) {
	case *index.Patient:
		r.dest = appendPatientDest(r.dest[:0], v)
		return rows.Scan(r.dest...)
	case *index.Study:
		r.dest = r.study.appendDest(appendPatientDest(r.dest[:0], &v.Patient), v)
		if err := rows.Scan(r.dest...); err != nil {
			return err
		}
		r.study.finish(v)
	case *index.Series:
		d := r.study.appendDest(appendPatientDest(r.dest[:0], &v.Patient), &v.Study)
		r.dest = r.series.appendDest(d, v)
		if err := rows.Scan(r.dest...); err != nil {
			return err
		}
		r.study.finish(&v.Study)
		r.series.finish(v)
	case *index.Instance:
		return r.scanInstance(rows, v)
	}
	return nil
}

func patientDest(p *index.Patient) []any { return appendPatientDest(nil, p) }

func appendPatientDest(d []any, p *index.Patient) []any {
	return append(d, &p.PatientID, &p.IssuerOfPatientID, &p.PatientName, &p.PatientBirthDate, &p.PatientSex, &p.NumberOfPatientRelatedStudies, &p.Corrected)
}

type studyScan struct {
	mods, classes string
	updated       int64
}

func (sc *studyScan) dest(s *index.Study) []any { return sc.appendDest(nil, s) }

func (sc *studyScan) appendDest(d []any, s *index.Study) []any {
	return append(d, &s.StudyInstanceUID, &s.StudyDate, &s.StudyTime, &s.AccessionNumber, &s.StudyID, &s.StudyDescription, &s.ReferringPhysicianName, &sc.mods, &sc.classes, &s.NumberOfStudyRelatedSeries, &s.NumberOfStudyRelatedInstances, &sc.updated)
}

func (sc *studyScan) finish(s *index.Study) {
	s.ModalitiesInStudy = splitList(sc.mods)
	s.SOPClassesInStudy = splitList(sc.classes)
	s.UpdatedAt = time.UnixMilli(sc.updated)
}

type seriesScan struct{ number sql.NullInt64 }

func (ss *seriesScan) dest(se *index.Series) []any { return ss.appendDest(nil, se) }

func (ss *seriesScan) appendDest(d []any, se *index.Series) []any {
	return append(d, &se.SeriesInstanceUID, &se.Modality, &ss.number, &se.SeriesDescription, &se.BodyPartExamined, &se.SeriesDate, &se.SeriesTime, &se.NumberOfSeriesRelatedInstances)
}

func (ss *seriesScan) finish(se *index.Series) {
	if ss.number.Valid {
		n := int(ss.number.Int64)
		se.SeriesNumber = &n
	}
}

// scanInstances reads instance rows; correct applies the records' corrections to the
// metadata (Instance.CorrectMetadata).
func scanInstances(rows *sql.Rows, correct bool) ([]index.Instance, error) {
	defer rows.Close()
	var out []index.Instance
	r := rowScanner{correct: correct}
	for rows.Next() {
		out = append(out, index.Instance{})
		if err := r.scanInstance(rows, &out[len(out)-1]); err != nil {
			return nil, err
		}
	}
	return out, rows.Err()
}

// scanInstance reads the current instance row into in.
func (r *rowScanner) scanInstance(rows *sql.Rows, in *index.Instance) error {
	var sc studyScan
	var ss seriesScan
	var num sql.NullInt64
	var received int64
	var layout, bulk, spans sql.NullString
	var meta []byte // scanned once, straight into bytes (it is the largest column)
	d := append(patientDest(&in.Patient), sc.dest(&in.Study)...)
	d = append(d, ss.dest(&in.Series)...)
	d = append(d, &in.SOPInstanceUID, &in.SOPClassUID, &num, &in.TransferSyntaxUID, &in.NumberOfFrames, &in.Rows, &in.Columns, &in.BitsAllocated, &in.BlobKey, &in.Size, &in.Digest, &in.SourceAE, &received, &in.MetadataOmitted, &in.ContentDigest, &meta, &layout, &bulk, &spans)
	if err := rows.Scan(d...); err != nil {
		return err
	}
	sc.finish(&in.Study)
	ss.finish(&in.Series)
	if num.Valid {
		n := int(num.Int64)
		in.InstanceNumber = &n
	}
	in.ReceivedAt = time.UnixMilli(received)
	if meta != nil {
		// The record's corrections (patient module, moved study) show in the
		// metadata of every surface that reads it.
		in.Metadata, in.MetadataSpans = meta, spans.String
		if r.correct {
			m, err := r.corrector.Correct(in, in.Metadata)
			if err != nil {
				return fmt.Errorf("instance %s: %w", in.SOPInstanceUID, err)
			}
			if in.Corrected {
				in.Metadata, in.MetadataSpans = m, "" // the spans were those of the stored metadata
			}
		}
	}
	if layout.Valid {
		in.PixelLayout = []byte(layout.String)
	}
	if bulk.Valid {
		in.Bulk = []byte(bulk.String)
	}
	return nil
}

// match compiles one key to a SQL condition (PS3.4 §C.2.2.2). An empty value is
// universal matching and adds no condition.
func (x *DB) match(b *builder, c column, value string, fuzzy bool) string {
	v := strings.TrimSpace(value)
	if v == "" || v == "*" {
		return ""
	}
	switch c.kind {
	case kUID:
		uids := strings.FieldsFunc(v, func(r rune) bool { return r == '\\' || r == ',' })
		if len(uids) == 1 {
			return c.col + ` = ` + b.arg(strings.TrimSpace(uids[0]))
		}
		ph := make([]string, len(uids))
		for i, u := range uids {
			ph[i] = b.arg(strings.TrimSpace(u))
		}
		return c.col + ` IN (` + strings.Join(ph, ", ") + `)`
	case kDate, kTime:
		norm := func(s string, upper bool) string {
			if c.kind == kTime {
				return normTime(s, upper)
			}
			return strings.ReplaceAll(s, ".", "") // tolerate the ACR-NEMA YYYY.MM.DD form
		}
		if lo, hi, ok := strings.Cut(v, "-"); ok {
			var conds []string
			if lo = strings.TrimSpace(lo); lo != "" {
				conds = append(conds, c.col+` >= `+b.arg(norm(lo, false)))
			}
			if hi = strings.TrimSpace(hi); hi != "" {
				conds = append(conds, c.col+` <= `+b.arg(norm(hi, true)))
			}
			conds = append(conds, c.col+` <> ''`)
			return `(` + strings.Join(conds, ` AND `) + `)`
		}
		if c.kind == kTime {
			// A single time matches the whole period it names (e.g. "14" is 14:00-14:59).
			return `(` + c.col + ` >= ` + b.arg(normTime(v, false)) + ` AND ` + c.col + ` <= ` + b.arg(normTime(v, true)) + `)`
		}
		return c.col + ` = ` + b.arg(norm(v, false))
	case kInt:
		n, err := strconv.ParseInt(strings.TrimPrefix(v, "+"), 10, 32) // IS: -2^31 .. 2^31-1
		if err != nil {
			return `1 = 0`
		}
		return c.col + ` = ` + b.arg(n)
	case kContains:
		alts := strings.FieldsFunc(v, func(r rune) bool { return r == '\\' || r == ',' })
		var conds []string
		for _, a := range alts {
			conds = append(conds, fmt.Sprintf(x.d.Contains, c.col, b.arg(","+strings.TrimSpace(a)+",")))
		}
		return `(` + strings.Join(conds, ` OR `) + `)`
	case kCSList:
		if strings.Contains(v, "\\") {
			alts := strings.Split(v, "\\")
			var conds []string
			for _, a := range alts {
				if cond := x.stringMatch(b, c.col, strings.TrimSpace(a)); cond != "" {
					conds = append(conds, cond)
				}
			}
			if len(conds) == 0 {
				return ""
			}
			return `(` + strings.Join(conds, ` OR `) + `)`
		}
		return x.stringMatch(b, c.col, v)
	case kPN:
		if fuzzy {
			words := index.FuzzyWords(strings.NewReplacer("*", " ", "?", " ").Replace(v))
			var conds []string
			for _, w := range words {
				conds = append(conds, x.wildcard(b, c.fuzzy, "* "+w+"*"))
			}
			if len(conds) == 0 {
				return ""
			}
			return `(` + strings.Join(conds, ` AND `) + `)`
		}
		return x.stringMatch(b, c.col, index.NameCI(v))
	default:
		return x.stringMatch(b, c.col, v)
	}
}

// matchValues compiles a list of exact values (index.Filter.Values): the attribute
// equals any of them.
func (x *DB) matchValues(b *builder, c column, values []string) string {
	var ph, conds []string
	for _, v := range values {
		v = strings.TrimSpace(v)
		switch c.kind {
		case kInt:
			n, err := strconv.Atoi(strings.TrimPrefix(v, "+"))
			if err != nil {
				continue
			}
			ph = append(ph, b.arg(n))
		case kPN:
			ph = append(ph, b.arg(index.NameCI(v)))
		case kTime:
			ph = append(ph, b.arg(normTime(v, false)))
		case kContains:
			conds = append(conds, fmt.Sprintf(x.d.Contains, c.col, b.arg(","+v+",")))
		default:
			ph = append(ph, b.arg(v))
		}
	}
	if len(ph) > 0 {
		conds = append(conds, c.col+` IN (`+strings.Join(ph, ", ")+`)`)
	}
	if len(conds) == 0 {
		return `1 = 0`
	}
	return `(` + strings.Join(conds, ` OR `) + `)`
}

func (x *DB) stringMatch(b *builder, col, v string) string {
	if v == "" {
		return ""
	}
	if strings.ContainsAny(v, "*?") {
		if strings.Trim(v, "*") == "" {
			return ""
		}
		return x.wildcard(b, col, v)
	}
	return col + ` = ` + b.arg(v)
}

// wildcard matches a DICOM wildcard pattern (* any sequence, ? one character).
//
// In SQLite (Dialect.Glob) a pattern that starts with text (SMI*) also gets the range
// of the values that start with it (col >= 'SMI' AND col < 'SMJ'), which an index on
// col serves, and the GLOB's pattern is an expression rather than a bare parameter:
// SQLite turns a GLOB on a parameter into such a range itself, but then plans the
// statement for the value bound and prepares it again whenever another is bound
// (every query), where the explicit range keeps one prepared plan for every prefix. A
// pattern that is a prefix and a final * is the range alone.
func (x *DB) wildcard(b *builder, col, pattern string) string {
	if x.d.Glob {
		i := strings.IndexAny(pattern, "*?")
		if i > 0 && i == len(pattern)-1 && pattern[i] == '*' {
			b.derived++ // the second bound, derived from the first (see below)
			return `(` + col + ` >= ` + b.arg(pattern[:i]) + ` AND ` + col + ` < ` + b.arg(prefixEnd(pattern[:i])) + `)`
		}
		var sb strings.Builder
		for _, r := range pattern {
			if r == '[' {
				sb.WriteString("[[]")
				continue
			}
			sb.WriteRune(r)
		}
		cond := col + ` GLOB (` + b.arg(sb.String()) + ` || '')`
		if i > 0 {
			// The bounds are derived from the pattern: not terms of their own
			// (index.MaxQueryTerms counts what the query holds).
			b.derived += 2
			cond = `(` + col + ` >= ` + b.arg(pattern[:i]) + ` AND ` + col + ` < ` + b.arg(prefixEnd(pattern[:i])) + ` AND ` + cond + `)`
		}
		return cond
	}
	var sb strings.Builder
	for _, r := range pattern {
		switch r {
		case '*':
			sb.WriteByte('%')
		case '?':
			sb.WriteByte('_')
		case '%', '_', '\\':
			sb.WriteByte('\\')
			sb.WriteRune(r)
		default:
			sb.WriteRune(r)
		}
	}
	return col + ` LIKE ` + b.arg(sb.String()) + ` ESCAPE '\'`
}

// prefixEnd is the least string above every string that starts with prefix, in byte
// order (SQLite's BINARY collation): prefix with its last byte one higher. UTF-8 has no
// byte 0xFF, so the last byte is below it; the result need not be valid UTF-8, which
// a comparison in byte order does not mind.
func prefixEnd(prefix string) string {
	b := []byte(prefix)
	b[len(b)-1]++
	return string(b)
}

// normTime normalises a DICOM TM value (HH, HHMM, HHMMSS, HHMMSS.F{1,6}, or the old
// HH:MM:SS form) to HHMMSS.ffffff. Missing parts are zero, or their maximum when upper.
func normTime(t string, upper bool) string {
	t = strings.ReplaceAll(strings.TrimSpace(t), ":", "")
	if t == "" {
		return ""
	}
	main, frac, _ := strings.Cut(t, ".")
	for _, r := range main + frac {
		if r < '0' || r > '9' {
			return t
		}
	}
	fill := "000000"
	if upper {
		fill = "595959"
	}
	if len(main) > 6 {
		main = main[:6]
	}
	if len(main)%2 == 1 {
		main = "0" + main
	}
	main += fill[len(main):]
	if len(frac) > 6 {
		frac = frac[:6]
	}
	ff := "000000"
	if upper && frac == "" {
		ff = "999999"
	}
	frac += ff[len(frac):]
	return main + "." + frac
}
