package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/sqlindex"
	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// lumen_words(text) is index.DescriptionWords, for the study class keywords
// (index.StudyClass): the same Go function on both sides of a comparison.
func init() {
	sqlite.MustRegisterDeterministicScalarFunction("lumen_words", 1, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		switch v := args[0].(type) {
		case string:
			return index.DescriptionWords(v), nil
		case []byte:
			return index.DescriptionWords(string(v)), nil
		}
		return " ", nil
	})
}

// Dialect returns the SQLite dialect.
func Dialect() *sqlindex.Dialect {
	sub, _ := fs.Sub(migrations, "migrations")
	return &sqlindex.Dialect{
		Name: "sqlite",
		Glob: true,
		// One writer at a time; other processes (lumen import beside lumen serve) still
		// coordinate through SQLite's locks and busy timeout.
		SerializeWrites: true,
		PrepareReads:    true,
		LastInsertID:    true,
		Contains:        "instr(%[1]s, %[2]s) > 0",
		Upper:           "upper(%[1]s)", // ASCII only (no ICU)
		Words:           "lumen_words(%[1]s)",
		Migrations:      sub,
		IsUniqueViolation: func(err error) bool {
			var se *sqlite.Error
			if errors.As(err, &se) {
				return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
			}
			return false
		},
		IsRetryable: func(err error) bool {
			var se *sqlite.Error
			if errors.As(err, &se) {
				c := se.Code() & 0xff
				return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
			}
			return false
		},
	}
}

// readConns is the number of connections that serve reads.
const readConns = 8

// Open opens (creating if needed) the index database file at path and applies
// migrations.
func Open(ctx context.Context, path string) (*sqlindex.DB, error) {
	x, _, err := open(ctx, path)
	return x, err
}

// open is Open, returning the index's checkpointer too (tests).
func open(ctx context.Context, path string) (*sqlindex.DB, *checkpointer, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, nil, fmt.Errorf("index/sqlite: %w", err)
		}
	}
	q := url.Values{}
	// mmap_size 0: pages are read into each connection's page cache, where they stay
	// parsed. Through a map, SQLite makes and parses a page object at each fetch of a
	// page (btreeInitPage: 30 % of the server's CPU under 8 QIDO clients) and maps the
	// file again as it grows. 8 QIDO clients at 100,000 studies: 2.3× the requests per
	// second on a server started on the filled index, 1.07× in peerbench's alternating
	// rounds (docs/benchmarks.md, issue 17's sixth pass).
	// wal_autocheckpoint: the checkpointer does it in the background (walBackstop).
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(30000)", "foreign_keys(1)", "mmap_size(0)", fmt.Sprintf("wal_autocheckpoint(%d)", walBackstop)} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	dsn := "file:" + strings.ReplaceAll(path, "?", "%3F") + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("index/sqlite: open %s: %w", path, err)
	}
	// One writer at a time is SQLite's model; a small pool serves concurrent readers,
	// each kept open between queries: a connection opened afresh reads and parses the
	// schema, maps the file and prepares its statements again, with a cold page cache
	// (database/sql keeps only 2 idle connections by default).
	db.SetMaxOpenConns(readConns)
	db.SetMaxIdleConns(readConns)
	d := Dialect()
	if err := sqlindex.Migrate(ctx, db, d); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("index/sqlite: %w", err)
	}
	// Writes get a connection of their own, so that readers filling the pool above
	// never make a writer wait behind them (database/sql hands a released connection to
	// any waiter, not the oldest).
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("index/sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	cp, err := startCheckpointer(dsn)
	if err != nil {
		w.Close()
		db.Close()
		return nil, nil, fmt.Errorf("index/sqlite: open %s: %w", path, err)
	}
	x := sqlindex.New(db, d)
	x.UseWriter(w)
	x.AfterCommit = cp.wake
	x.OnClose(cp.close)
	return x, cp, nil
}
