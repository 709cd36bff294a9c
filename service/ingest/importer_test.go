package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/archive/fs"
	"github.com/lumenpacs/lumen/index/postgres"
	"github.com/lumenpacs/lumen/index/postgres/pgtest"
	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// importBackends runs test against fs + SQLite and fs + PostgreSQL.
func importBackends(t *testing.T, test func(t *testing.T, e *env)) {
	t.Run("fs+sqlite", func(t *testing.T) { test(t, newEnv(t)) })
	t.Run("fs+postgres", func(t *testing.T) {
		s, err := fs.New(filepath.Join(t.TempDir(), "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		x, err := postgres.Open(context.Background(), pgtest.Schema(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { x.Close() })
		test(t, &env{store: s, idx: x, p: &ingest.Pipeline{Store: s, Index: x}})
	})
}

// writeTree writes files (path relative to dir -> content) under dir.
func writeTree(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func ctObjects(t *testing.T, seed uint64, n int) []gen.Object {
	t.Helper()
	ct, err := gen.CTSeries(gen.Options{Seed: seed}, n, 32, 32)
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

// TestImporter imports a tree of good files, a copy of one of them, other content under
// a stored SOP Instance UID, a non-DICOM file, a truncated file, a DICOMDIR and a dangling
// link, then imports it again: every file is counted once, each failure says why, the
// progress reaches the totals, and fsck finds the archive consistent.
func TestImporter(t *testing.T) {
	importBackends(t, func(t *testing.T, e *env) {
		ct := ctObjects(t, 15, 4)
		src := t.TempDir()
		writeTree(t, src, map[string][]byte{
			"a/ct1.dcm":     ct[0].Data,
			"a/ct2.dcm":     ct[1].Data,
			"a/b/ct3.dcm":   ct[2].Data,
			"copy/ct1.dcm":  ct[0].Data,        // the same file again: present
			"z/variant.dcm": variant(ct[1], 1), // other content, ct2's UIDs: quarantined
			"notes.txt":     []byte("Findings: none. This is not a DICOM file."),
			"truncated.dcm": ct[3].Data[:len(ct[3].Data)/2],
			"DICOMDIR":      []byte("a media directory, not an instance"),
		})
		if err := os.Symlink(filepath.Join(src, "gone.dcm"), filepath.Join(src, "dangling.dcm")); err != nil {
			t.Fatal(err)
		}
		var calls []ingest.ImportProgress
		im := &ingest.Importer{Pipeline: e.p, Workers: 3, Progress: func(p ingest.ImportProgress) { calls = append(calls, p) }}
		sum := im.Run(context.Background(), []string{src})

		var total int64
		for _, f := range ingest.ListFiles([]string{src}) {
			total += f.Size
		}
		stored := int64(2*len(ct[0].Data) + 2*len(ct[1].Data) + len(ct[2].Data))
		want := ingest.ImportSummary{Files: 9, Imported: 3, Present: 1, Quarantined: 1, Skipped: 1, Failed: 3, Bytes: stored}
		got := *sum
		if got.Elapsed <= 0 {
			t.Errorf("elapsed %v", got.Elapsed)
		}
		got.Elapsed, got.Failures = 0, nil
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("summary %+v\nwant    %+v", got, want)
		}
		sort.Slice(sum.Failures, func(i, j int) bool { return sum.Failures[i].Path < sum.Failures[j].Path })
		wantFailures := []ingest.ImportFailure{
			{filepath.Join(src, "dangling.dcm"), "cannot read: no such file or directory"},
			{filepath.Join(src, "notes.txt"), "invalid DICOM object: not a DICOM PS3.10 file (no DICM prefix at byte 128): the stream is only 41 bytes long"},
			{filepath.Join(src, "truncated.dcm"), fmt.Sprintf("invalid DICOM object: at byte %d, element (7FE0,0010): truncated DICOM stream: value length 2048 runs past the end of the %d-byte stream",
				bytes.LastIndex(ct[3].Data, []byte{0xE0, 0x7F, 0x10, 0x00}), len(ct[3].Data)/2)},
		}
		if !reflect.DeepEqual(sum.Failures, wantFailures) {
			t.Fatalf("failures:\n%q\nwant\n%q", sum.Failures, wantFailures)
		}
		// Progress: the totals once listed, then one call per file, in order.
		if len(calls) != 10 || calls[0] != (ingest.ImportProgress{Files: 9, Bytes: total}) {
			t.Fatalf("progress calls: %+v", calls)
		}
		for i, c := range calls[1:] {
			if c.DoneFiles != i+1 || c.Files != 9 || c.Bytes != total || c.DoneBytes < calls[i].DoneBytes {
				t.Fatalf("progress call %d: %+v after %+v", i+1, c, calls[i])
			}
		}
		if last := calls[len(calls)-1]; last.DoneBytes != total {
			t.Fatalf("progress ends at %+v, want %d bytes", last, total)
		}
		if c := e.counts(t); c.Instances != 3 {
			t.Fatalf("index: %+v", c)
		}
		e.clean(t)

		// Again: what is stored is present, the other content under ct2's UIDs (whichever
		// of the two was stored first) is quarantined again, and the failures stay.
		sum = im.Run(context.Background(), []string{src})
		got = *sum
		got.Elapsed, got.Failures = 0, nil
		want = ingest.ImportSummary{Files: 9, Present: 4, Quarantined: 1, Skipped: 1, Failed: 3, Bytes: stored}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("second run %+v\nwant       %+v", got, want)
		}
		if c := e.counts(t); c.Instances != 3 {
			t.Fatalf("index after the second run: %+v", c)
		}
		e.clean(t)
	})
}

// TestImporterCancel: cancelling the context stops the import; the files not imported
// are counted as not attempted and the archive stays consistent.
func TestImporterCancel(t *testing.T) {
	importBackends(t, func(t *testing.T, e *env) {
		ct := ctObjects(t, 16, 8)
		src := t.TempDir()
		for _, o := range ct {
			writeTree(t, src, map[string][]byte{o.SOPInstanceUID + ".dcm": o.Data})
		}
		t.Run("before", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			sum := (&ingest.Importer{Pipeline: e.p, Workers: 2}).Run(ctx, []string{src})
			if sum.Files != 8 || sum.NotAttempted != 8 || sum.Imported+sum.Failed != 0 || sum.Stopped != "import interrupted" {
				t.Fatalf("summary %+v", sum)
			}
			if c := e.counts(t); c.Instances != 0 {
				t.Fatalf("index: %+v", c)
			}
			e.clean(t)
		})
		t.Run("during", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			im := &ingest.Importer{Pipeline: e.p, Workers: 1, Progress: func(p ingest.ImportProgress) {
				if p.DoneFiles == 2 {
					cancel()
				}
			}}
			sum := im.Run(ctx, []string{src})
			if sum.Files != 8 || sum.Imported != 2 || sum.NotAttempted != 6 || sum.Failed != 0 || sum.Stopped != "import interrupted" {
				t.Fatalf("summary %+v", sum)
			}
			if c := e.counts(t); c.Instances != 2 {
				t.Fatalf("index: %+v", c)
			}
			e.clean(t)
			// A re-run completes the import.
			sum = im.Run(context.Background(), []string{src})
			if sum.Present != 2 || sum.Imported != 6 || sum.NotAttempted != 0 || sum.Stopped != "" {
				t.Fatalf("re-run %+v", sum)
			}
		})
	})
}

// TestImporterStorageDown: MaxUnavailable storage failures in a row stop the import, each
// failure naming the cause.
func TestImporterStorageDown(t *testing.T) {
	e := newEnv(t)
	e.p.Store = failingStore{e.store}
	ct := ctObjects(t, 17, ingest.MaxUnavailable+5)
	src := t.TempDir()
	for _, o := range ct {
		writeTree(t, src, map[string][]byte{o.SOPInstanceUID + ".dcm": o.Data})
	}
	sum := (&ingest.Importer{Pipeline: e.p, Workers: 1}).Run(context.Background(), []string{src})
	if sum.Failed != ingest.MaxUnavailable || sum.NotAttempted != 5 || sum.Imported != 0 ||
		sum.Stopped != "import stopped after repeated storage failures" {
		t.Fatalf("summary %+v", sum)
	}
	for _, f := range sum.Failures {
		if !strings.HasPrefix(f.Reason, "storage unavailable: ") || !strings.HasSuffix(f.Reason, ": disk on fire") {
			t.Fatalf("%s: %s", f.Path, f.Reason)
		}
	}
	if c := e.counts(t); c.Instances != 0 {
		t.Fatalf("index: %+v", c)
	}
}

// TestListFiles: files as given, directories recursively in lexical order, links to
// files followed, links to directories not, and unreadable paths reported without
// their path in the error.
func TestListFiles(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"b/2.dcm": []byte("22"), "b/1.dcm": []byte("1"), "a.dcm": []byte("333")})
	os.Symlink(filepath.Join(src, "a.dcm"), filepath.Join(src, "c-link.dcm"))
	os.Symlink(filepath.Join(src, "b"), filepath.Join(src, "d-dirlink"))
	missing := filepath.Join(src, "missing.dcm")
	got := ingest.ListFiles([]string{src, missing, filepath.Join(src, "b", "1.dcm")})
	want := []ingest.ImportFile{
		{Path: filepath.Join(src, "a.dcm"), Size: 3},
		{Path: filepath.Join(src, "b", "1.dcm"), Size: 1},
		{Path: filepath.Join(src, "b", "2.dcm"), Size: 2},
		{Path: filepath.Join(src, "c-link.dcm"), Size: 3},
		{Path: missing, Err: os.ErrNotExist},
		{Path: filepath.Join(src, "b", "1.dcm"), Size: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Path != w.Path || g.Size != w.Size || (w.Err == nil) != (g.Err == nil) {
			t.Fatalf("file %d: %+v, want %+v", i, g, w)
		}
		if w.Err != nil && (g.Err.Error() != "no such file or directory" || !os.IsNotExist(g.Err)) {
			t.Fatalf("file %d: error %v", i, g.Err)
		}
	}
}
