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
	// What the database file holds, once a checkpoint has copied the whole log, is every
	// committed instance: a copy of the file without its log opens with them all. A
	// checkpoint that ran between two of the Puts (each Put wakes the checkpointer, which
	// waits checkpointInterval) also copies its whole log, of fewer instances: wait for
	// the one after the last Put.
	want := len(indextest.Fixture())
	inFile := func() int {
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
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	n := -1
	for {
		runs, log, done := checkpoints()
		if runs > before && done == log {
			if n = inFile(); n == want {
				break
			}
		}
		if time.Now().After(deadline) {
			if n >= 0 {
				t.Fatalf("the database file without its log holds %d instances, want %d", n, want)
			}
			t.Fatalf("after 10 s: %d checkpoints, the last with %d of %d frames in the database file", runs-before, done, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, n, _ := checkpoints(); n <= 0 || n >= sqlite.WalBackstop {
		t.Fatalf("the log held %d frames", n)
	}
}
