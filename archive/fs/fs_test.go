package fs_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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

// BenchmarkPut is the device's floor for the archive: durable 512 KB puts under fresh
// keys (create, write, fsync, rename, directory fsync), by 1 and 4 concurrent writers.
// No ingest or network path can store instances faster than this on the same disk.
func BenchmarkPut(b *testing.B) {
	data := bytes.Repeat([]byte("lumen!"), 512<<10/6)
	for _, writers := range []int{1, 4} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s, err := fs.New(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			var next atomic.Int64
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			var wg sync.WaitGroup
			for range writers {
				wg.Go(func() {
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						key := fmt.Sprintf("bench/%02x/%d.dcm", i%256, i)
						if _, err := s.Put(context.Background(), key, bytes.NewReader(data), int64(len(data))); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
		})
	}
}
