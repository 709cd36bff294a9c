package sqlindex

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// Migrate applies the dialect's migrations not yet recorded in schema_migrations, each in
// its own transaction. Migration files are named NNNN_description.sql; statements are
// separated by lines holding only "-- +statement".
func Migrate(ctx context.Context, db *sql.DB, d *Dialect) error {
	if err := createMigrationsTable(ctx, db, d); err != nil {
		return fmt.Errorf("index: migrate: %w", err)
	}
	entries, err := fs.ReadDir(d.Migrations, ".")
	if err != nil {
		return fmt.Errorf("index: migrate: %w", err)
	}
	type mig struct {
		version int
		name    string
	}
	var migs []mig
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		v, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil {
			return fmt.Errorf("index: migrate: bad migration name %s", e.Name())
		}
		migs = append(migs, mig{v, e.Name()})
	}
	sort.Slice(migs, func(i, j int) bool { return migs[i].version < migs[j].version })
	for _, m := range migs {
		if err := applyOne(ctx, db, d, m.version, m.name); err != nil {
			return err
		}
	}
	return nil
}

func applyOne(ctx context.Context, db *sql.DB, d *Dialect, version int, name string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("index: migrate %s: %w", name, err)
	}
	defer tx.Rollback()
	if d.LockMigrations != nil {
		if err := d.LockMigrations(ctx, tx); err != nil {
			return fmt.Errorf("index: migrate %s: lock: %w", name, err)
		}
	}
	var n int
	if err := tx.QueryRowContext(ctx, d.rebind(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), version).Scan(&n); err != nil {
		return fmt.Errorf("index: migrate %s: %w", name, err)
	}
	if n > 0 {
		return nil
	}
	body, err := fs.ReadFile(d.Migrations, name)
	if err != nil {
		return fmt.Errorf("index: migrate %s: %w", name, err)
	}
	for _, stmt := range strings.Split(string(body), "-- +statement") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("index: migrate %s: %w", name, err)
		}
	}
	if _, err := tx.ExecContext(ctx, d.rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`), version, name, nowMillis()); err != nil {
		return fmt.Errorf("index: migrate %s: %w", name, err)
	}
	return tx.Commit()
}

// SchemaVersion returns the highest applied migration version.
func SchemaVersion(ctx context.Context, db *sql.DB) (int, error) {
	var v sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, err
	}
	return int(v.Int64), nil
}

func createMigrationsTable(ctx context.Context, db *sql.DB, d *Dialect) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if d.LockMigrations != nil {
		if err := d.LockMigrations(ctx, tx); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return err
	}
	return tx.Commit()
}
