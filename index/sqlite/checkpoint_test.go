package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/index/indextest"
	"github.com/lumenpacs/lumen/index/sqlite"
)

// TestBackgroundCheckpoint: the pages that commits put in the write-ahead log reach
// the database file in the background, without a commit doing it (the log stays far
// below the committing connection's walBackstop).
func TestBackgroundCheckpoint(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "index.db")
	x, checkpoints, err := sqlite.OpenCheckpointed(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	before, _, _ := checkpoints()
	for _, in := range indextest.Fixture() {
		if err := x.Put(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		runs, log, done := checkpoints()
		if runs > before && done == log {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %d checkpoints, the last with %d of %d frames in the database file", runs-before, done, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, n, _ := checkpoints(); n <= 0 || n >= sqlite.WalBackstop {
		t.Fatalf("the log held %d frames", n)
	}
	// What the database file holds now is every committed instance: a copy of the
	// file without its log opens with them all.
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	q := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(q, data, 0o600); err != nil {
		t.Fatal(err)
	}
	y, err := sqlite.Open(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	var n int
	if err := y.SQL().QueryRowContext(ctx, "SELECT count(*) FROM instances").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if want := len(indextest.Fixture()); n != want {
		t.Fatalf("the database file without its log holds %d instances, want %d", n, want)
	}
}
