package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/archive/s3/miniotest"
	"github.com/lumenpacs/lumen/index/postgres/pgtest"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// runImport runs the lumen binary's import and returns wall time and resource usage.
func runImport(b *testing.B, env []string, args ...string) (time.Duration, *syscall.Rusage, string) {
	cmd := exec.Command(lumenBin, append([]string{"import", "--progress", "none"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		b.Fatalf("import: %v\n%s", err, out)
	}
	return wall, cmd.ProcessState.SysUsage().(*syscall.Rusage), string(out)
}

// BenchmarkImportCT imports about 2,000 generated 512 KB CT instances with the lumen
// binary (fs + SQLite) and reports wall time, instances/s, MB/s and CPU seconds.
func BenchmarkImportCT(b *testing.B) {
	n := 2000
	if v := os.Getenv("LUMEN_BENCH_IMPORT_N"); v != "" {
		fmt.Sscan(v, &n)
	}
	src := b.TempDir()
	var total int64
	err := gen.CTSeriesFunc(gen.Options{Seed: 2000}, n, 512, 512, func(o gen.Object) error {
		total += int64(len(o.Data))
		p := filepath.Join(src, o.Name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		return os.WriteFile(p, o.Data, 0o644)
	})
	if err != nil {
		b.Fatal(err)
	}
	exec.Command("sync").Run()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		data := b.TempDir()
		wall, ru, out := runImport(b, nil, src, "--data-dir", data)
		if !strings.Contains(out, fmt.Sprintf("imported:        %d", n)) {
			b.Fatalf("import summary:\n%s", out)
		}
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		b.ReportMetric(wall.Seconds(), "wall-s")
		b.ReportMetric(float64(n)/wall.Seconds(), "instances/s")
		b.ReportMetric(float64(total)/1e6/wall.Seconds(), "MB/s")
		b.ReportMetric(cpu.Seconds(), "cpu-s")
		b.ReportMetric(float64(ru.Maxrss)/1024, "maxrss-MB")
		// A second run finds everything present.
		wall2, _, out := runImport(b, nil, src, "--data-dir", data)
		if !strings.Contains(out, fmt.Sprintf("already present: %d", n)) {
			b.Fatalf("second import summary:\n%s", out)
		}
		b.ReportMetric(wall2.Seconds(), "rerun-wall-s")
	}
}

// BenchmarkIngestLargeMultiframe imports a single 1 GiB native multi-frame instance and
// reports the peak resident memory of the lumen process (getrusage ru_maxrss).
func BenchmarkIngestLargeMultiframe(b *testing.B) {
	frames := 4096 // 512x512 8-bit frames: 1 GiB of pixel data
	if v := os.Getenv("LUMEN_BENCH_LARGE_FRAMES"); v != "" {
		fmt.Sscan(v, &frames)
	}
	src := filepath.Join(b.TempDir(), "large.dcm")
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	size, err := gen.LargeMultiframe(f, gen.Options{Seed: 1}, frames, 512, 512)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	backends := []struct {
		name string
		env  func(b *testing.B) []string
	}{
		{"fs+sqlite", func(b *testing.B) []string { return []string{"LUMEN_DATA_DIR=" + b.TempDir()} }},
		{"minio+postgres", func(b *testing.B) []string {
			srv := miniotest.Shared(b)
			c := srv.Config(miniotest.BucketName())
			return []string{"LUMEN_DATA_DIR=" + b.TempDir(), "LUMEN_STORE_BACKEND=s3", "LUMEN_STORE_S3_ENDPOINT=" + c.Endpoint,
				"LUMEN_STORE_S3_BUCKET=" + c.Bucket, "LUMEN_STORE_S3_ACCESS_KEY=" + c.AccessKey, "LUMEN_STORE_S3_SECRET_KEY=" + c.SecretKey,
				"LUMEN_INDEX_BACKEND=postgres", "LUMEN_INDEX_POSTGRES_DSN=" + pgtest.Schema(b)}
		}},
	}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				wall, ru, out := runImport(b, be.env(b), src)
				if !strings.Contains(out, "imported:        1") {
					b.Fatalf("summary:\n%s", out)
				}
				b.ReportMetric(float64(size)/1e6/wall.Seconds(), "MB/s")
				b.ReportMetric(float64(ru.Maxrss)/1024, "maxrss-MB")
			}
		})
	}
}
