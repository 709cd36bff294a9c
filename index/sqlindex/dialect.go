package sqlindex

import (
	"context"
	"database/sql"
	"io/fs"
	"strconv"
)

// Dialect holds what differs between SQL engines.
type Dialect struct {
	// Name is "sqlite" or "postgres".
	Name string
	// Numbered reports $1-style placeholders (PostgreSQL) instead of ?.
	Numbered bool
	// Glob reports SQLite GLOB for case-sensitive wildcard matching; otherwise LIKE
	// with ESCAPE '\' is used (case-sensitive in PostgreSQL).
	Glob bool
	// Contains is the SQL of "haystack contains needle": a format with %[1]s for the
	// column and %[2]s for the placeholder.
	Contains string
	// Upper is the SQL upper-casing the ASCII letters of a text, and no other
	// character (index.ASCIIUpper): a format with %[1]s for the operand.
	Upper string
	// Words is the SQL of index.DescriptionWords: a format with %[1]s for the operand.
	Words string
	// ByteOrder is appended to ORDER BY on keys to get byte-wise order.
	ByteOrder string
	// IsUniqueViolation reports a unique-constraint error.
	IsUniqueViolation func(error) bool
	// IsRetryable reports a transient error (serialization failure, deadlock, busy)
	// after which the whole transaction may be retried.
	IsRetryable func(error) bool
	// Migrations holds NNNN_name.sql files applied in order.
	Migrations fs.FS
	// SerializeWrites runs write transactions one at a time inside the process (SQLite
	// has a single writer; waiting on a mutex beats its busy-timeout polling).
	SerializeWrites bool
	// SkipLocked is appended to the SELECT that claims a job (" FOR UPDATE SKIP LOCKED"
	// in PostgreSQL, so replicas do not wait on each other's claims); "" for SQLite,
	// whose writers are serial anyway.
	SkipLocked string
	// ForKeyShare and ForUpdate are appended to a SELECT to lock the rows it reads
	// (" FOR KEY SHARE" and " FOR UPDATE" in PostgreSQL; "" for SQLite, whose writers
	// are serial). Ingest reads the patient, study and series rows it files under with
	// ForKeyShare, which does not hold up other ingest (nor demographic updates); the
	// identity operations (merge, moves, unmerge) lock the rows they re-point with
	// ForUpdate, so that an object is never filed under a record or study that a
	// concurrent operation is moving or merging away.
	ForKeyShare, ForUpdate string
	// LockUID is a statement taking a lock on one SOP Instance UID until the end of the
	// transaction (a PostgreSQL advisory lock on its hash), or "" for SQLite, whose
	// writers are serial. Ingest and rejection take it, so that a rejection note and
	// the first arrival of an instance it names are never committed side by side
	// without seeing each other (the instance visible and rejected at once).
	LockUID string
	// Fence is appended to a subquery to keep the planner from merging it into the
	// query around it (" OFFSET 0" in PostgreSQL), or "" (SQLite keeps an IN subquery
	// whole).
	Fence string
	// PrepareReads keeps the queries of Find and FindSeq prepared (up to maxReadStmts
	// texts): SQLite parses and plans a statement on every run otherwise. PostgreSQL
	// plans an unnamed statement for the values it runs with, which the prefix
	// matching of names needs.
	PrepareReads bool
	// Cursors reports server-side cursors (DECLARE ... CURSOR, FETCH): FindSeq reads
	// the records of a query without a limit through one, so that the database plans
	// for the first rows (PostgreSQL) rather than for all of them.
	Cursors bool
	// LastInsertID reports that an INSERT's result gives the new row's id
	// (sql.Result.LastInsertId: SQLite), so that ingest inserts its rows with Exec
	// rather than a query with RETURNING, which database/sql runs with a goroutine of
	// its own watching each result set.
	LastInsertID bool
	// LockMigrations serialises concurrent migrators (e.g. an advisory lock), or nil.
	LockMigrations func(ctx context.Context, tx *sql.Tx) error
}

type builder struct {
	d    *Dialect
	args []any
	// derived counts the args computed from others (the bounds of a prefix), which
	// are not terms of the query (index.MaxQueryTerms).
	derived int
}

func (b *builder) arg(v any) string {
	b.args = append(b.args, v)
	if b.d.Numbered {
		return "$" + strconv.Itoa(len(b.args))
	}
	// Numbered too (?NNN), so that a statement may place its conditions in another
	// order than the one they were compiled in.
	return "?" + strconv.Itoa(len(b.args))
}

// rebind converts ? placeholders to $n for numbered dialects (for static statements).
func (d *Dialect) rebind(q string) string {
	if !d.Numbered {
		return q
	}
	out := make([]byte, 0, len(q)+16)
	n := 0
	inStr := false
	for i := 0; i < len(q); i++ {
		c := q[i]
		if c == '\'' {
			inStr = !inStr
		}
		if c == '?' && !inStr {
			n++
			out = append(out, '$')
			out = strconv.AppendInt(out, int64(n), 10)
			continue
		}
		out = append(out, c)
	}
	return string(out)
}
