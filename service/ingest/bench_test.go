package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lumenpacs/lumen/archive"
	"github.com/lumenpacs/lumen/archive/fs"
	"github.com/lumenpacs/lumen/archive/s3"
	"github.com/lumenpacs/lumen/archive/s3/miniotest"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/postgres"
	"github.com/lumenpacs/lumen/index/postgres/pgtest"
	"github.com/lumenpacs/lumen/index/sqlite"
	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// newTemplate prepares copies of one 512x512 16-bit CT instance (about 512 KB), each
// with its own SOP Instance UID.
func newTemplate(b *testing.B) *gen.Copies {
	objs, err := gen.CTSeries(gen.Options{Seed: 1234}, 1, 512, 512)
	if err != nil {
		b.Fatal(err)
	}
	c, err := gen.NewCopies(objs[0])
	if err != nil {
		b.Fatal(err)
	}
	return c
}

var benchRun atomic.Int64

func benchIngest(b *testing.B, st archive.Store, ix index.Index, writers int) {
	tpl := newTemplate(b)
	p := &ingest.Pipeline{Store: st, Index: ix}
	run := fmt.Sprintf("%03d", benchRun.Add(1)%1000)
	// Each iteration clones the template (a 512 KB copy, about 1% of an iteration).
	b.SetBytes(int64(tpl.Size()))
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1) - 1
				if n >= int64(b.N) {
					return
				}
				data := tpl.Copy(run, n)
				if _, err := p.IngestFile(context.Background(), bytes.NewReader(data), int64(len(data)), ingest.Source{Via: "bench"}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "instances/s")
}

// BenchmarkIngest measures the whole pipeline (stream, parse, hash, durable store, index
// commit) with 512 KB CT instances, serially and with 4 concurrent writers.
func BenchmarkIngest(b *testing.B) {
	backends := []struct {
		name string
		open func(b *testing.B) (archive.Store, index.Index)
	}{
		{"fs+sqlite", func(b *testing.B) (archive.Store, index.Index) {
			st, err := fs.New(filepath.Join(b.TempDir(), "blobs"))
			if err != nil {
				b.Fatal(err)
			}
			ix, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "index.db"))
			if err != nil {
				b.Fatal(err)
			}
			return st, ix
		}},
		{"fs+postgres", func(b *testing.B) (archive.Store, index.Index) {
			st, err := fs.New(filepath.Join(b.TempDir(), "blobs"))
			if err != nil {
				b.Fatal(err)
			}
			ix, err := postgres.Open(context.Background(), pgtest.Schema(b))
			if err != nil {
				b.Fatal(err)
			}
			return st, ix
		}},
		{"minio+postgres", func(b *testing.B) (archive.Store, index.Index) {
			srv := miniotest.Shared(b)
			st, err := s3.New(context.Background(), srv.Config(miniotest.BucketName()))
			if err != nil {
				b.Fatal(err)
			}
			ix, err := postgres.Open(context.Background(), pgtest.Schema(b))
			if err != nil {
				b.Fatal(err)
			}
			return st, ix
		}},
	}
	for _, be := range backends {
		for _, writers := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/writers=%d", be.name, writers), func(b *testing.B) {
				st, ix := be.open(b)
				defer ix.Close()
				benchIngest(b, st, ix, writers)
			})
		}
	}
}
