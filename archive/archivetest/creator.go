package archivetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/lumenpacs/lumen/archive"
)

// runCreator runs the archive.Creator contract on stores that implement it.
func runCreator(t *testing.T, newStore func(t *testing.T) archive.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s archive.Store, c archive.Creator)
	}{
		{"CreateCommit", testCreateCommit},
		{"CreateAbort", testCreateAbort},
		{"CreateCancelled", testCreateCancelled},
		{"CreateOverwrite", testCreateOverwrite},
		{"CreateConcurrent", testCreateConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			c, ok := s.(archive.Creator)
			if !ok {
				t.Skip("the store does not implement archive.Creator")
			}
			tc.fn(t, s, c)
		})
	}
}

// writeInPieces writes data to w in uneven pieces.
func writeInPieces(t *testing.T, w archive.Writer, data []byte) {
	t.Helper()
	for i, step := 0, 1; i < len(data); i, step = i+step, step*3+1 {
		end := min(i+step, len(data))
		if n, err := w.Write(data[i:end]); err != nil || n != end-i {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
}

func testCreateCommit(t *testing.T, s archive.Store, c archive.Creator) {
	data := payload(31, 300_007)
	w, err := c.Create(ctx(t), "created/a/b.dcm")
	if err != nil {
		t.Fatal(err)
	}
	writeInPieces(t, w, data[:1000])
	// Nothing is visible before Commit.
	assertAbsent(t, s, "created/a/b.dcm")
	writeInPieces(t, w, data[1000:])
	info, err := w.Commit(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.Key != "created/a/b.dcm" || info.Size != int64(len(data)) || info.ModTime.IsZero() {
		t.Fatalf("Commit info = %+v", info)
	}
	if got := mustGet(t, s, "created/a/b.dcm"); !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
	// The Writer is finished.
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Commit succeeded")
	}
	if _, err := w.Commit(ctx(t)); err == nil {
		t.Fatal("second Commit succeeded")
	}
	w.Abort() // does nothing after Commit
	if got := mustGet(t, s, "created/a/b.dcm"); !bytes.Equal(got, data) {
		t.Fatal("Abort after Commit changed the object")
	}
	// Empty objects too.
	w, err = c.Create(ctx(t), "created/empty")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := w.Commit(ctx(t)); err != nil || info.Size != 0 {
		t.Fatalf("empty Commit = %+v, %v", info, err)
	}
	if got := mustGet(t, s, "created/empty"); len(got) != 0 {
		t.Fatalf("empty object has %d bytes", len(got))
	}
	if _, err := c.Create(ctx(t), "../escape"); !errors.Is(err, archive.ErrInvalidKey) {
		t.Fatalf("Create(../escape) = %v, want ErrInvalidKey", err)
	}
}

func testCreateAbort(t *testing.T, s archive.Store, c archive.Creator) {
	w, err := c.Create(ctx(t), "aborted/x")
	if err != nil {
		t.Fatal(err)
	}
	writeInPieces(t, w, payload(32, 10_000))
	w.Abort()
	w.Abort()
	assertAbsent(t, s, "aborted/x")
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Abort succeeded")
	}
	if _, err := w.Commit(ctx(t)); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
	assertAbsent(t, s, "aborted/x")
}

func testCreateCancelled(t *testing.T, s archive.Store, c archive.Creator) {
	cc, cancel := context.WithCancel(ctx(t))
	cancel()
	if _, err := c.Create(cc, "cancelled/create"); err == nil {
		t.Fatal("Create with a cancelled context succeeded")
	}
	// The context of Create ends while writing: writes and the commit fail.
	cc, cancel = context.WithCancel(ctx(t))
	w, err := c.Create(cc, "cancelled/writing")
	if err != nil {
		t.Fatal(err)
	}
	writeInPieces(t, w, payload(33, 5000))
	cancel()
	if _, err := w.Write([]byte("more")); err == nil {
		t.Fatal("Write after the context ended succeeded")
	}
	if _, err := w.Commit(ctx(t)); err == nil {
		t.Fatal("Commit after the context of Create ended succeeded")
	}
	assertAbsent(t, s, "cancelled/writing")
	// The context of Commit is cancelled.
	w, err = c.Create(ctx(t), "cancelled/commit")
	if err != nil {
		t.Fatal(err)
	}
	writeInPieces(t, w, payload(34, 5000))
	cc, cancel = context.WithCancel(ctx(t))
	cancel()
	if _, err := w.Commit(cc); err == nil {
		t.Fatal("Commit with a cancelled context succeeded")
	}
	assertAbsent(t, s, "cancelled/commit")
}

func testCreateOverwrite(t *testing.T, s archive.Store, c archive.Creator) {
	mustPut(t, s, "over", []byte("original"))
	w, err := c.Create(ctx(t), "over")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("replacement"))
	if got := string(mustGet(t, s, "over")); got != "original" {
		t.Fatalf("before Commit got %q", got)
	}
	w.Abort()
	if got := string(mustGet(t, s, "over")); got != "original" {
		t.Fatalf("after Abort got %q", got)
	}
	w, err = c.Create(ctx(t), "over")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("replacement"))
	if _, err := w.Commit(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if got := string(mustGet(t, s, "over")); got != "replacement" {
		t.Fatalf("after Commit got %q", got)
	}
}

// testCreateConcurrent commits objects from many goroutines into few directories, so
// that a backend sharing work between commits (a directory fsync) is exercised.
func testCreateConcurrent(t *testing.T, s archive.Store, c archive.Creator) {
	const writers, each = 8, 6
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				key := fmt.Sprintf("conc/%d/%d-%d", i%2, g, i)
				w, err := c.Create(ctx(t), key)
				if err != nil {
					errs <- err
					return
				}
				w.Write(payload(uint64(100+g*each+i), 3000+g))
				if _, err := w.Commit(ctx(t)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for g := range writers {
		for i := range each {
			key := fmt.Sprintf("conc/%d/%d-%d", i%2, g, i)
			if got := mustGet(t, s, key); !bytes.Equal(got, payload(uint64(100+g*each+i), 3000+g)) {
				t.Fatalf("%s differs", key)
			}
		}
	}
}
