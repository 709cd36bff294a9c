package ingest_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/archive/ingest"
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
