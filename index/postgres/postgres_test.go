package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/indextest"
	"github.com/lumenpacs/lumen/index/postgres"
	"github.com/lumenpacs/lumen/index/postgres/pgtest"
	"github.com/lumenpacs/lumen/index/sqlindex"
)

func TestContract(t *testing.T) {
	indextest.Run(t, func(t *testing.T) index.Index {
		x, err := postgres.Open(context.Background(), pgtest.Schema(t))
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
		x, err := postgres.Open(context.Background(), pgtest.Schema(t))
		if err != nil {
			t.Fatal(err)
		}
		return x
	})
}

func TestConcurrentMigrations(t *testing.T) {
	dsn := pgtest.Schema(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x, err := postgres.Open(context.Background(), dsn)
			if err != nil {
				errs <- err
				return
			}
			x.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	x, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if v, err := sqlindex.SchemaVersion(context.Background(), x.SQL()); err != nil || v != 10 {
		t.Fatalf("version %d, %v", v, err)
	}
}

// TestMigration0004Backfill checks that migration 0004 fills BitsAllocated in from the
// metadata of the instances indexed before it.
func TestMigration0004Backfill(t *testing.T) {
	dsn := pgtest.Schema(t)
	indextest.Migration0004Backfill(t, func() (*sqlindex.DB, error) { return postgres.Open(context.Background(), dsn) })
}

// TestMigration0005 checks that migration 0005 (content digests, quarantine) is
// additive.
func TestMigration0005(t *testing.T) {
	dsn := pgtest.Schema(t)
	indextest.Migration0005(t, func() (*sqlindex.DB, error) { return postgres.Open(context.Background(), dsn) })
}
