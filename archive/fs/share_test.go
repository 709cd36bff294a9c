package fs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestSharedDirSync: commits renamed into a directory while its fsync runs share the
// next fsync, which starts only after their renames; the commit whose fsync was running
// returns with it, the others only after theirs.
func TestSharedDirSync(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(s.Root(), "d")
	var mu sync.Mutex
	var calls []string // per fsync of dir: the objects visible when it started
	first, release := make(chan struct{}), make(chan struct{})
	syncDirFunc = func(d string) error {
		if d == dir {
			entries, _ := os.ReadDir(d)
			var names string
			for _, e := range entries {
				names += e.Name() + " "
			}
			mu.Lock()
			calls = append(calls, names)
			n := len(calls)
			mu.Unlock()
			if n == 1 {
				close(first)
				<-release
			}
		}
		return syncDir(d)
	}
	t.Cleanup(func() { syncDirFunc = syncDir })
	put := func(key string) chan error {
		done := make(chan error, 1)
		go func() {
			w, err := s.Create(context.Background(), key)
			if err == nil {
				w.Write([]byte(key))
				_, err = w.Commit(context.Background())
			}
			done <- err
		}()
		return done
	}
	a := put("d/a")
	<-first // a's fsync is running
	var others []chan error
	for i := range 3 {
		others = append(others, put(fmt.Sprintf("d/o%d", i)))
	}
	// Wait until the three wait for the next round (renamed into place).
	for waiting := 0; waiting < 3; {
		s.smu.Lock()
		if ds := s.syncs[dir]; ds != nil && ds.pending != nil {
			waiting = ds.pending.members
		}
		s.smu.Unlock()
		time.Sleep(100 * time.Microsecond)
	}
	for _, o := range others {
		select {
		case err := <-o:
			t.Fatalf("a commit returned (%v) before an fsync that started after its rename", err)
		default:
		}
	}
	close(release)
	if err := <-a; err != nil {
		t.Fatal(err)
	}
	for _, o := range others {
		if err := <-o; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 2 || calls[1] != "a o0 o1 o2 " {
		t.Fatalf("directory fsyncs: %q, want 2, the second after the three renames", calls)
	}
	if len(s.syncs) != 0 {
		t.Fatalf("%d directory states left", len(s.syncs))
	}
}
