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

func TestMigrationsIdempotent(t *testing.T) {
	p := filepath.Join(t.TempDir(), "index.db")
	for range 2 {
		x, err := sqlite.Open(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		v, err := sqlindex.SchemaVersion(context.Background(), x.SQL())
		if err != nil || v != 3 {
			t.Fatalf("version %d, %v", v, err)
		}
		x.Close()
	}
}
