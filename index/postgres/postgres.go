package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/lib/pq"
	"github.com/lumenpacs/lumen/index/sqlindex"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLockID is the pg_advisory_xact_lock key taken while migrating.
const migrationLockID = 0x4c756d656e // "Lumen"

// The ASCII letters, spelt out: PostgreSQL's upper() and regular expression ranges
// follow the collation, and index.StudyClass compares ASCII only.
const (
	lower = "abcdefghijklmnopqrstuvwxyz"
	upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

// Dialect returns the PostgreSQL dialect.
func Dialect() *sqlindex.Dialect {
	sub, _ := fs.Sub(migrations, "migrations")
	return &sqlindex.Dialect{
		Name:     "postgres",
		Numbered: true,
		Contains: "strpos(%[1]s, %[2]s) > 0",
		Upper:    "translate(%[1]s, '" + lower + "', '" + upper + "')",
		// index.DescriptionWords: upper-case ASCII, every run of other characters a space.
		Words:       "(' ' || regexp_replace(translate(%[1]s, '" + lower + "', '" + upper + "'), '[^" + upper + "0123456789]+', ' ', 'g') || ' ')",
		ByteOrder:   ` COLLATE "C"`,
		SkipLocked:  ` FOR UPDATE SKIP LOCKED`,
		ForKeyShare: ` FOR KEY SHARE`,
		ForUpdate:   ` FOR UPDATE`,
		LockUID:     `SELECT pg_advisory_xact_lock(hashtextextended(?, 0))`,
		Fence:       ` OFFSET 0`,
		Cursors:     true,
		Migrations:  sub,
		IsUniqueViolation: func(err error) bool {
			var pe *pq.Error
			return errors.As(err, &pe) && pe.Code == "23505"
		},
		IsRetryable: func(err error) bool {
			var pe *pq.Error
			if errors.As(err, &pe) {
				switch pe.Code {
				case "40001", "40P01": // serialization_failure, deadlock_detected
					return true
				}
			}
			return false
		},
		LockMigrations: func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockID)
			return err
		},
	}
}

// Open connects to PostgreSQL with a lib/pq connection string (URL or key=value form)
// and applies migrations.
func Open(ctx context.Context, dsn string) (*sqlindex.DB, error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("index/postgres: %w", err)
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(16)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("index/postgres: connect: %w", err)
	}
	d := Dialect()
	if err := sqlindex.Migrate(ctx, db, d); err != nil {
		db.Close()
		return nil, fmt.Errorf("index/postgres: %w", err)
	}
	return sqlindex.New(db, d), nil
}

// Advice lists what in the server's settings works against Lumen's query plans, for the
// operator to read at start-up: autovacuum off, or track_counts off (which stops it),
// leaves the tables without statistics and visibility map, and at 1,000,000 instances an
// exact PatientID C-FIND then took 614 ms instead of 1.6 ms (docs/operations.md).
func Advice(ctx context.Context, x *sqlindex.DB) ([]string, error) {
	var autovacuum, trackCounts string
	err := x.SQL().QueryRowContext(ctx, `SELECT current_setting('autovacuum'), current_setting('track_counts')`).Scan(&autovacuum, &trackCounts)
	if err != nil {
		return nil, fmt.Errorf("index/postgres: settings: %w", err)
	}
	return advice(autovacuum, trackCounts), nil
}

// advice is Advice for the values of the settings autovacuum and track_counts.
func advice(autovacuum, trackCounts string) []string {
	if autovacuum == "on" && trackCounts == "on" {
		return nil
	}
	return []string{fmt.Sprintf("PostgreSQL runs without autovacuum (autovacuum %s, track_counts %s): query plans depend on table statistics and the visibility map it keeps; turn it on, or run VACUUM ANALYZE after large imports and restores (docs/operations.md)", autovacuum, trackCounts)}
}
