package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/indextest"
	"github.com/lumenpacs/lumen/index/sqlindex"
	"github.com/lumenpacs/lumen/index/sqlite"
)

func TestContract(t *testing.T) {
	indextest.Run(t, func(t *testing.T) index.Index {
		x, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "index.db"))
		if err != nil {
			t.Fatal(err)
		}
		return x
	})
}

// TestQueryPlans runs the query checks with study queries taking either way of
// starting from their patient keys (sqlindex.DB.DensePatients).
func TestQueryPlans(t *testing.T) {
	indextest.QueryPlans(t, func(t *testing.T) *sqlindex.DB {
		x, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "index.db"))
		if err != nil {
			t.Fatal(err)
		}
		return x
	})
}

func TestMigrationsIdempotent(t *testing.T) {
	p := filepath.Join(t.TempDir(), "index.db")
	for range 2 {
		x, err := sqlite.Open(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		v, err := sqlindex.SchemaVersion(context.Background(), x.SQL())
		if err != nil || v != 10 {
			t.Fatalf("version %d, %v", v, err)
		}
		x.Close()
	}
}

// TestMigration0004Backfill checks that migration 0004 fills BitsAllocated in from the
// metadata of the instances indexed before it.
func TestMigration0004Backfill(t *testing.T) {
	p := filepath.Join(t.TempDir(), "index.db")
	indextest.Migration0004Backfill(t, func() (*sqlindex.DB, error) { return sqlite.Open(context.Background(), p) })
}

// TestMigration0005 checks that migration 0005 (content digests, quarantine) is
// additive.
func TestMigration0005(t *testing.T) {
	p := filepath.Join(t.TempDir(), "index.db")
	indextest.Migration0005(t, func() (*sqlindex.DB, error) { return sqlite.Open(context.Background(), p) })
}
