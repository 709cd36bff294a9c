package indextest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/lumenpacs/lumen/index/postgres"
	"github.com/lumenpacs/lumen/index/postgres/pgtest"
	"github.com/lumenpacs/lumen/index/sqlindex"
	"github.com/lumenpacs/lumen/index/sqlite"
)

// Backends are the index backends a test of a package above the index runs against.
var Backends = []string{"sqlite", "postgres"}

// Open opens a fresh, empty index of the backend ("sqlite" on t.TempDir(), or
// "postgres" in a schema of its own from pgtest: missing, PostgreSQL skips the test on a
// developer machine and fails it under CI=true), closed when the test ends.
func Open(t testing.TB, backend string) *sqlindex.DB {
	t.Helper()
	var x *sqlindex.DB
	var err error
	switch backend {
	case "postgres":
		x, err = postgres.Open(context.Background(), pgtest.Schema(t))
	default:
		x, err = sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "index.db"))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}
