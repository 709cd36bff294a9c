package ingest_test

import (
	"bytes"
	"context"
	"os"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/archive/fs"
	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/lumenpacs/lumen/testdata/gen"
)

func TestCheck(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ct, err := gen.CTSeries(gen.Options{Seed: 21}, 4, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	var results []*ingest.Result
	for _, o := range ct[:3] {
		r, err := ingestBytes(e, o.Data)
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, r)
	}
	// An orphan blob: a valid object written without indexing (as after a crash).
	orphanKey := ingest.NewBlobKey(time.Now())
	if _, err := e.store.Put(ctx, orphanKey, bytes.NewReader(ct[3].Data), int64(len(ct[3].Data))); err != nil {
		t.Fatal(err)
	}
	// An invalid orphan: garbage left by a failed write.
	junkKey := ingest.NewBlobKey(time.Now())
	e.store.Put(ctx, junkKey, bytes.NewReader([]byte("junk")), 4)
	// A dangling row: the blob of an indexed instance disappears.
	if err := e.store.Delete(ctx, results[1].BlobKey); err != nil {
		t.Fatal(err)
	}
	check := func(repair bool) *ingest.Report {
		rep, err := e.p.Check(ctx, ingest.CheckOptions{Grace: -time.Second, Repair: repair})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	rep := check(false)
	if rep.Orphans() != 2 || rep.Dangling() != 1 {
		t.Fatalf("report = %+v", rep)
	}
	for _, f := range rep.Findings {
		if f.Kind == "dangling-row" && f.SOPInstanceUID != results[1].SOPInstanceUID {
			t.Fatalf("dangling row = %+v", f)
		}
	}
	// Within the grace period nothing is reported as orphan.
	if rep, _ := e.p.Check(ctx, ingest.CheckOptions{Grace: time.Hour}); rep.Orphans() != 0 {
		t.Fatalf("fresh blobs reported as orphans: %+v", rep)
	}
	rep = check(true)
	actions := map[string]string{}
	for _, f := range rep.Findings {
		actions[f.Key] = f.Action
	}
	if actions[orphanKey] != "reindexed" || actions[junkKey] != "removed" || actions[results[1].BlobKey] != "row-removed" {
		t.Fatalf("repair actions = %v", actions)
	}
	if rep := check(false); len(rep.Findings) != 0 {
		t.Fatalf("after repair: %+v", rep)
	}
	c := e.counts(t)
	if c.Instances != 3 {
		t.Fatalf("counts = %+v", c)
	}
	if _, err := e.idx.Instance(ctx, ct[3].SOPInstanceUID); err != nil {
		t.Fatalf("orphan not re-indexed: %v", err)
	}
	if p := ingest.RecentPrefixes(time.Date(2026, 3, 1, 5, 0, 0, 0, time.UTC), 2); p[0] != "dicom/2026/02/28/" || p[1] != "dicom/2026/03/01/" {
		t.Fatalf("RecentPrefixes = %v", p)
	}
}

// The filesystem store's temporary files are what Check sweeps.
var _ ingest.TempSweeper = (*fs.Store)(nil)

// TestCheckStaleTempFiles: an interrupted put (or a crash) leaves the filesystem store's
// temporary files (.tmp-*) beside the objects. They can never be committed; Check reports
// those older than the grace period and removes them with Repair, and keeps fresh ones
// (a put may be writing them).
func TestCheckStaleTempFiles(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	root := e.store.(*fs.Store).Root()
	now := time.Now()
	old := now.Add(-2 * time.Hour)
	write := func(key string, mtime time.Time) string {
		t.Helper()
		p := filepath.Join(root, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Repeat([]byte{0x55}, 64<<10), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Temporary files sit in the directory of the key being written.
	dir := path.Dir(ingest.NewBlobKey(now))
	stale := write(dir+"/.tmp-1234567", old)
	fresh := write(dir+"/.tmp-7654321", now)
	staleThumb := write("thumbnails/1.2.3/.tmp-42", old)
	exists := func(p string) bool {
		_, err := os.Stat(p)
		return err == nil
	}
	temps := func(rep *ingest.Report) map[string]ingest.Finding {
		out := map[string]ingest.Finding{}
		for _, f := range rep.Findings {
			if f.Kind == "temp-file" {
				out[f.Key] = f
			}
		}
		return out
	}
	rel := func(p string) string {
		r, _ := filepath.Rel(root, p)
		return filepath.ToSlash(r)
	}

	// Report only: found, not removed.
	rep, err := e.p.Check(ctx, ingest.CheckOptions{Grace: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	got := temps(rep)
	if len(got) != 2 || got[rel(stale)].Action != "" || got[rel(staleThumb)].Size != 64<<10 {
		t.Fatalf("temp findings = %+v (report %+v)", got, rep)
	}
	if !exists(stale) || !exists(staleThumb) || !exists(fresh) {
		t.Fatal("a check without repair removed a file")
	}

	// Repair removes the stale ones and keeps the fresh one.
	rep, err = e.p.Check(ctx, ingest.CheckOptions{Grace: 10 * time.Minute, Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	got = temps(rep)
	if len(got) != 2 || got[rel(stale)].Action != "removed" || got[rel(staleThumb)].Action != "removed" {
		t.Fatalf("temp findings after repair = %+v", got)
	}
	if exists(stale) || exists(staleThumb) {
		t.Fatal("stale temporary files are still there after repair")
	}
	if !exists(fresh) {
		t.Fatal("a fresh temporary file (a put may be writing it) was removed")
	}
	if rep.Orphans() != 0 || rep.Dangling() != 0 {
		t.Fatalf("temporary files counted as orphans: %+v", rep)
	}
}

// TestCheckRemoveTempAtStartUp: the start-up check (recent prefixes, no repair) removes
// stale temporary files with RemoveTemp, keeps fresh ones, and leaves orphans alone.
func TestCheckRemoveTempAtStartUp(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	root := e.store.(*fs.Store).Root()
	now := time.Now()
	key := ingest.NewBlobKey(now)
	if _, err := e.store.Put(ctx, key, bytes.NewReader([]byte("junk")), 4); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(filepath.Join(root, filepath.FromSlash(key)))
	stale, fresh := filepath.Join(dir, ".tmp-1"), filepath.Join(dir, ".tmp-2")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := now.Add(-time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(root, filepath.FromSlash(key)), old, old); err != nil {
		t.Fatal(err)
	}
	rep, err := e.p.Check(ctx, ingest.CheckOptions{Prefixes: ingest.RecentPrefixes(now, 2), Grace: 10 * time.Minute, RemoveTemp: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Temps() != 1 || rep.Orphans() != 1 {
		t.Fatalf("report = %+v", rep)
	}
	for _, f := range rep.Findings {
		if f.Kind == "orphan-blob" && f.Action != "" {
			t.Fatalf("orphan touched without repair: %+v", f)
		}
		if f.Kind == "temp-file" && f.Action != "removed" {
			t.Fatalf("temp file not removed: %+v", f)
		}
	}
	if _, err := os.Stat(stale); err == nil {
		t.Fatal("stale temporary file still there")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("fresh temporary file removed: %v", err)
	}
}
