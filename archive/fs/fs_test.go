package fs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/archive"
	"github.com/lumenpacs/lumen/archive/archivetest"
	"github.com/lumenpacs/lumen/archive/fs"
	"github.com/lumenpacs/lumen/testdata/tools"
)

func TestContract(t *testing.T) {
	archivetest.Run(t, func(t *testing.T) archive.Store {
		s, err := fs.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestNoTempFilesLeft(t *testing.T) {
	dir := t.TempDir()
	s, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Put(ctx, "x/y/z", bytes.NewReader([]byte("abc")), 10); err == nil {
		t.Fatal("short put succeeded")
	}
	if _, err := s.Put(ctx, "x/y/w", bytes.NewReader([]byte("abc")), 3); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if strings.Contains(p, ".tmp-") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(dir, "x", "y", "w")); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkPut is the device's floor for the archive: durable 512 KB puts under fresh
// keys (create, write, fsync, rename, directory fsync), by 1 and 4 concurrent writers.
// No ingest or network path can store instances faster than this on the same disk.
//
// dirs=spread puts each object in one of 256 directories by its number; dirs=second in
// the directory of the current second (of 256), so concurrent puts share their
// directory and its fsyncs, as ingest's keys do.
func BenchmarkPut(b *testing.B) {
	for _, writers := range []int{1, 4} {
		for _, dirs := range []string{"spread", "second"} {
			b.Run(fmt.Sprintf("writers=%d/dirs=%s", writers, dirs), func(b *testing.B) {
				s, err := fs.New(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				archivetest.BenchPuts(b, s, 512<<10, writers, dirs == "second")
			})
		}
	}
}

// TestStaleTemps: the temporary files of interrupted puts are found under the prefix they
// belong to, old ones only; RemoveTemp takes only temporary files, keeps one written
// since, and a put whose file was removed fails without committing anything.
func TestStaleTemps(t *testing.T) {
	dir := t.TempDir()
	s, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	old := now.Add(-time.Hour)
	for _, p := range []string{"a/b/.tmp-1", "a/c/.tmp-2", ".tmp-ping-3", "a/b/obj"} {
		f := filepath.Join(dir, filepath.FromSlash(p))
		os.MkdirAll(filepath.Dir(f), 0o750)
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(f, old, old)
	}
	os.WriteFile(filepath.Join(dir, "a", "b", ".tmp-fresh"), nil, 0o600)
	list := func(prefix string) []string {
		var out []string
		for info, err := range s.StaleTemps(ctx, prefix, now.Add(-time.Minute)) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, info.Key)
		}
		return out
	}
	if got := list(""); !slices.Equal(got, []string{".tmp-ping-3", "a/b/.tmp-1", "a/c/.tmp-2"}) {
		t.Fatalf("StaleTemps(\"\") = %v", got)
	}
	if got := list("a/b/"); !slices.Equal(got, []string{"a/b/.tmp-1"}) {
		t.Fatalf("StaleTemps(a/b/) = %v", got)
	}
	if got := list("zz/"); len(got) != 0 {
		t.Fatalf("StaleTemps(zz/) = %v", got)
	}
	for _, name := range []string{"a/b/obj", "../x/.tmp-1", "a/b"} {
		if _, err := s.RemoveTemp(ctx, name, now); !errors.Is(err, archive.ErrInvalidKey) {
			t.Errorf("RemoveTemp(%q) = %v, want ErrInvalidKey", name, err)
		}
	}
	if removed, err := s.RemoveTemp(ctx, "a/b/.tmp-fresh", now.Add(-time.Minute)); removed || err != nil {
		t.Fatalf("RemoveTemp(fresh) = %v, %v", removed, err)
	}
	if removed, err := s.RemoveTemp(ctx, "a/b/.tmp-1", now); !removed || err != nil {
		t.Fatalf("RemoveTemp = %v, %v", removed, err)
	}
	if _, err := s.RemoveTemp(ctx, "a/b/.tmp-1", now); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("RemoveTemp(removed) = %v", err)
	}

	// A put whose temporary file is removed under it fails closed.
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := s.Put(ctx, "p/q/obj", pr, -1)
		done <- err
	}()
	pw.Write([]byte("first half"))
	var tmp string
	for info, err := range s.StaleTemps(ctx, "p/", now.Add(time.Hour)) {
		if err != nil {
			t.Fatal(err)
		}
		tmp = info.Key
	}
	if tmp == "" {
		t.Fatal("the temporary file of a put in progress is not listed")
	}
	if removed, err := s.RemoveTemp(ctx, tmp, now.Add(time.Hour)); !removed || err != nil {
		t.Fatalf("RemoveTemp(in progress) = %v, %v", removed, err)
	}
	pw.Write([]byte("second half"))
	pw.Close()
	if err := <-done; err == nil {
		t.Fatal("a put whose temporary file was removed succeeded")
	}
	if _, err := s.Stat(ctx, "p/q/obj"); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("Stat after the failed put = %v", err)
	}
}

// TestContractAnonymousTemps runs the contract on a store whose puts write anonymous
// files (where the file system offers them; otherwise it is the store of New).
func TestContractAnonymousTemps(t *testing.T) {
	archivetest.Run(t, func(t *testing.T) archive.Store {
		s, err := fs.Open(t.TempDir(), fs.Options{AnonymousTemps: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestAnonymousTemps: with Options.AnonymousTemps, a put in progress, an aborted put, a
// short put and an overwrite leave no file but the objects, which have their content
// and mode 0640.
func TestAnonymousTemps(t *testing.T) {
	dir := t.TempDir()
	s, err := fs.Open(dir, fs.Options{AnonymousTemps: true})
	if err != nil {
		t.Fatal(err)
	}
	if !s.AnonymousTemps() {
		tools.Missing(t, "the file system of the test directory offers no anonymous files (O_TMPFILE)")
	}
	ctx := context.Background()
	names := func() []string {
		entries, err := os.ReadDir(filepath.Join(dir, "a", "b"))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	w, err := s.Create(ctx, "a/b/obj")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("first"))
	if got := names(); len(got) != 0 {
		t.Fatalf("entries while the put is in progress: %v", got)
	}
	for info, err := range s.StaleTemps(ctx, "", time.Now().Add(time.Hour)) {
		t.Fatalf("StaleTemps during the put: %v, %v", info, err)
	}
	if _, err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w, err = s.Create(ctx, "a/b/aborted")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("never"))
	w.Abort()
	if _, err := s.Put(ctx, "a/b/short", bytes.NewReader([]byte("abc")), 10); err == nil {
		t.Fatal("short put succeeded")
	}
	if _, err := s.Put(ctx, "a/b/obj", bytes.NewReader([]byte("second")), 6); err != nil {
		t.Fatal(err)
	}
	if got := names(); !slices.Equal(got, []string{"obj"}) {
		t.Fatalf("entries = %v, want [obj]", got)
	}
	b, err := os.ReadFile(filepath.Join(dir, "a", "b", "obj"))
	if err != nil || string(b) != "second" {
		t.Fatalf("object = %q, %v", b, err)
	}
	st, err := os.Stat(filepath.Join(dir, "a", "b", "obj"))
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("mode = %v, %v", st.Mode(), err)
	}
}

// TestContractDirectWrites runs the contract on a store that writes with direct I/O
// and anonymous files.
func TestContractDirectWrites(t *testing.T) {
	archivetest.Run(t, func(t *testing.T) archive.Store {
		s, err := fs.Open(t.TempDir(), fs.Options{AnonymousTemps: true, DirectWrites: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestDirectWrites: objects written with direct I/O, of sizes around the block and the
// buffer, in pieces aligned and not, read back as written, with named and anonymous
// temporary files.
func TestDirectWrites(t *testing.T) {
	for _, anon := range []bool{false, true} {
		s, err := fs.Open(t.TempDir(), fs.Options{AnonymousTemps: anon, DirectWrites: true})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		// A buffer from make of 1 MiB starts aligned (a large allocation): pieces from
		// its start are aligned, pieces from odd offsets not.
		src := make([]byte, 1<<20+4099)
		for i := range src {
			src[i] = byte(i*7 + i>>12)
		}
		for _, size := range []int{0, 1, 4095, 4096, 4097, 256<<10 - 1, 256 << 10, 256<<10 + 1, 1<<20 + 4099} {
			for _, piece := range []int{1000, 4096, 64 << 10, 300 << 10, 1 << 21} {
				key := fmt.Sprintf("d/%v/%d-%d", anon, size, piece)
				w, err := s.Create(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < size; i += piece {
					if n, err := w.Write(src[i:min(i+piece, size)]); err != nil || n != min(i+piece, size)-i {
						t.Fatalf("%s: Write = %d, %v", key, n, err)
					}
				}
				info, err := w.Commit(ctx)
				if err != nil || info.Size != int64(size) {
					t.Fatalf("%s: Commit = %+v, %v", key, info, err)
				}
				rc, _, err := s.Get(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(rc)
				rc.Close()
				if !bytes.Equal(got, src[:size]) {
					t.Fatalf("%s: read back %d bytes differing from the %d written", key, len(got), size)
				}
			}
		}
	}
}
