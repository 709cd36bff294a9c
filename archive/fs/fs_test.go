package fs_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/archive"
	"github.com/lumenpacs/lumen/archive/archivetest"
	"github.com/lumenpacs/lumen/archive/fs"
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

func BenchmarkPut(b *testing.B) {
	s, err := fs.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat([]byte("lumen!"), 512<<10/6)
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		if _, err := s.Put(context.Background(), "bench/"+string(rune('a'+i%26))+"/obj", bytes.NewReader(data), int64(len(data))); err != nil {
			b.Fatal(err)
		}
	}
}
