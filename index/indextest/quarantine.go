package indextest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/sqlindex"
)

// testContentDigest: the content digest round-trips, and SetContentDigest fills in a
// missing one only while the record points at the given blob.
func testContentDigest(t *testing.T, x index.Index) {
	in := Inst(s1, "1.3.1", "CT", ip(1), "1.4.1", ctClass, ip(1))
	in.ContentDigest = "c1:" + fmt.Sprintf("%064x", 1)
	if err := x.Put(ctx(t), in); err != nil {
		t.Fatal(err)
	}
	old := Inst(s1, "1.3.1", "CT", ip(1), "1.4.2", ctClass, ip(2)) // indexed before digests
	if err := x.Put(ctx(t), old); err != nil {
		t.Fatal(err)
	}
	get := func(uid string) string {
		got, err := x.Instance(ctx(t), uid)
		if err != nil {
			t.Fatal(err)
		}
		return got.ContentDigest
	}
	if got := get("1.4.1"); got != in.ContentDigest {
		t.Fatalf("ContentDigest = %q", got)
	}
	if got := get("1.4.2"); got != "" {
		t.Fatalf("ContentDigest of an old row = %q", got)
	}
	if err := x.SetContentDigest(ctx(t), "1.4.2", "dicom/test/elsewhere", "c1:x"); err != nil || get("1.4.2") != "" {
		t.Fatalf("SetContentDigest for another blob: %v, %q", err, get("1.4.2"))
	}
	if err := x.SetContentDigest(ctx(t), "1.4.2", old.BlobKey, "c1:y"); err != nil || get("1.4.2") != "c1:y" {
		t.Fatalf("SetContentDigest: %v, %q", err, get("1.4.2"))
	}
	if err := x.SetContentDigest(ctx(t), "1.4.1", in.BlobKey, "c1:z"); err != nil || get("1.4.1") != in.ContentDigest {
		t.Fatalf("SetContentDigest over a digest: %v, %q", err, get("1.4.1"))
	}
	r, err := x.Find(ctx(t), index.Query{Level: index.ImageLevel, Filters: filters(t, map[string]string{"SOPInstanceUID": "1.4.1"})})
	if err != nil || len(r.Instances) != 1 || r.Instances[0].ContentDigest != in.ContentDigest {
		t.Fatalf("Find: %+v, %v", r, err)
	}
}

// qrec is a quarantine record of instance in, kept under key.
func qrec(in *index.Instance, key, reason string) *index.QuarantineRecord {
	return &index.QuarantineRecord{
		SOPInstanceUID: in.SOPInstanceUID, SOPClassUID: in.SOPClassUID, StudyInstanceUID: in.StudyInstanceUID, SeriesInstanceUID: in.SeriesInstanceUID,
		PatientID: in.PatientID, IssuerOfPatientID: in.IssuerOfPatientID, TransferSyntaxUID: in.TransferSyntaxUID,
		SourceAE: "CT_ONE", Via: "dimse", Account: "acct", Remote: "127.0.0.2:4000", Reason: reason,
		BlobKey: key, Size: 4321, Digest: fmt.Sprintf("%064x", 7), ContentDigest: "c1:" + fmt.Sprintf("%064x", 8),
	}
}

// testQuarantine: records are kept, listed newest first (filtered, paged, within the
// caller's scope), found by ID, their keys listed in order, and deleted.
func testQuarantine(t *testing.T, x index.Index) {
	fixture(t, x)
	a := Inst(s1, "1.3.1", "CT", ip(1), "1.4.11", ctClass, ip(1))
	b := Inst(s3, "1.3.4", "XA", ip(1), "1.4.41", xaClass, ip(1))
	at := time.UnixMilli(time.Now().Add(-time.Hour).UnixMilli())
	r1 := qrec(a, "quarantine/2026/01/02/ab/one.dcm", "different content")
	r1.ReceivedAt = at
	r2, r3 := qrec(b, "quarantine/2026/01/02/ab/two.dcm", "different content"), qrec(a, "dicom/2026/01/01/00/three.dcm", "demoted")
	for _, r := range []*index.QuarantineRecord{r1, r2, r3} {
		if err := x.Quarantine(ctx(t), r); err != nil {
			t.Fatal(err)
		}
		if r.ID == 0 || r.ReceivedAt.IsZero() {
			t.Fatalf("record after Quarantine: %+v", r)
		}
	}
	if r1.ID == r2.ID || r2.ID == r3.ID {
		t.Fatal("IDs not distinct")
	}
	ids := func(list []index.QuarantineRecord, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, r := range list {
			out = append(out, r.ID)
		}
		return fmt.Sprint(out)
	}
	want := func(rs ...*index.QuarantineRecord) string {
		var out []int64
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return fmt.Sprint(out)
	}
	for _, c := range []struct {
		name string
		q    index.QuarantineQuery
		want string
	}{
		{"all, newest first", index.QuarantineQuery{}, want(r3, r2, r1)},
		{"by SOP Instance UID", index.QuarantineQuery{SOPInstanceUID: a.SOPInstanceUID}, want(r3, r1)},
		{"by study", index.QuarantineQuery{StudyInstanceUID: b.StudyInstanceUID}, want(r2)},
		{"by blob key", index.QuarantineQuery{BlobKey: r1.BlobKey}, want(r1)},
		{"limit", index.QuarantineQuery{Limit: 2}, want(r3, r2)},
		{"next page", index.QuarantineQuery{Before: r2.ID}, want(r1)},
	} {
		if got := ids(x.Quarantined(ctx(t), c.q)); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	got, err := x.QuarantinedByID(ctx(t), r1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *r1 {
		t.Fatalf("QuarantinedByID = %+v, want %+v", *got, *r1)
	}
	// Within a scope only the scope's records exist.
	hosp1 := index.WithScope(ctx(t), index.Scope{Patient: &index.PatientKey{ID: "PAT1", Issuer: "HOSP"}})
	if got := ids(x.Quarantined(hosp1, index.QuarantineQuery{})); got != want(r3, r1) {
		t.Errorf("scoped list: %s", got)
	}
	if _, err := x.QuarantinedByID(hosp1, r2.ID); !errors.Is(err, index.ErrNotFound) {
		t.Errorf("another patient's record in scope: %v", err)
	}
	if _, err := x.QuarantinedByID(index.Unscoped(hosp1), r2.ID); err != nil {
		t.Errorf("unscoped: %v", err)
	}
	var keys []string
	for k, err := range x.QuarantineBlobKeys(ctx(t), "quarantine/") {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if !slices.Equal(keys, []string{r1.BlobKey, r2.BlobKey}) {
		t.Fatalf("QuarantineBlobKeys = %v", keys)
	}
	// Quarantine records are not instances.
	if c, _ := x.Counts(ctx(t)); c.Instances != int64(len(Fixture())) {
		t.Fatalf("counts = %+v", c)
	}
	if _, err := x.InstanceByBlobKey(ctx(t), r1.BlobKey); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("InstanceByBlobKey of a quarantined copy: %v", err)
	}
	del, err := x.DeleteQuarantined(ctx(t), r2.ID)
	if err != nil || del.BlobKey != r2.BlobKey {
		t.Fatalf("DeleteQuarantined = %+v, %v", del, err)
	}
	if _, err := x.DeleteQuarantined(ctx(t), r2.ID); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("second DeleteQuarantined = %v", err)
	}
	if _, err := x.QuarantinedByID(ctx(t), r2.ID); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("deleted record: %v", err)
	}
}

// testPromote: promoting a quarantined copy makes it the served instance and quarantines
// the served one, atomically; a mismatched, conflicting or vanished record changes
// nothing.
func testPromote(t *testing.T, x index.Index) {
	fixture(t, x)
	served, err := x.Instance(ctx(t), "1.4.11")
	if err != nil {
		t.Fatal(err)
	}
	newer := Inst(s1, "1.3.1", "CT", ip(1), "1.4.11", ctClass, ip(5))
	newer.BlobKey, newer.Digest, newer.ContentDigest = "quarantine/2026/01/02/ab/newer.dcm", fmt.Sprintf("%064x", 9), "c1:new"
	q := qrec(newer, newer.BlobKey, "different content")
	if err := x.Quarantine(ctx(t), q); err != nil {
		t.Fatal(err)
	}
	unchanged := func(what string) {
		t.Helper()
		got, err := x.Instance(ctx(t), "1.4.11")
		if err != nil || got.BlobKey != served.BlobKey {
			t.Fatalf("%s: served copy %+v, %v", what, got, err)
		}
		if _, err := x.QuarantinedByID(ctx(t), q.ID); err != nil {
			t.Fatalf("%s: the quarantine record is gone: %v", what, err)
		}
	}
	// Another blob than the record's: refused.
	wrong := *newer
	wrong.BlobKey = "quarantine/elsewhere"
	if _, err := x.Promote(ctx(t), q.ID, &wrong, index.QuarantineRecord{}); !errors.Is(err, index.ErrConflict) {
		t.Fatalf("Promote of another blob = %v", err)
	}
	unchanged("another blob")
	// A copy whose series belongs to another study: refused, rolled back.
	conflicting := *newer
	conflicting.SeriesInstanceUID = "1.3.4" // study 1.2.3's series
	if _, err := x.Promote(ctx(t), q.ID, &conflicting, index.QuarantineRecord{}); !errors.Is(err, index.ErrConflict) {
		t.Fatalf("Promote into a conflicting hierarchy = %v", err)
	}
	unchanged("conflicting hierarchy")
	demoted, err := x.Promote(ctx(t), q.ID, newer, index.QuarantineRecord{Reason: "replaced by a promotion", Via: "promote", Account: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := x.Instance(ctx(t), "1.4.11")
	if err != nil || got.BlobKey != newer.BlobKey || got.ContentDigest != "c1:new" || *got.InstanceNumber != 5 {
		t.Fatalf("served after promotion: %+v, %v", got, err)
	}
	if demoted == nil || demoted.ID == 0 || demoted.ID == q.ID || demoted.BlobKey != served.BlobKey || demoted.Digest != served.Digest || demoted.SOPInstanceUID != "1.4.11" ||
		demoted.Reason != "replaced by a promotion" || demoted.Account != "admin" || demoted.Via != "promote" || demoted.PatientID != "PAT1" ||
		demoted.StudyInstanceUID != served.StudyInstanceUID || !demoted.ReceivedAt.Equal(served.ReceivedAt) || demoted.Size != served.Size {
		t.Fatalf("demoted = %+v (served was %+v)", demoted, served)
	}
	if back, err := x.QuarantinedByID(ctx(t), demoted.ID); err != nil || *back != *demoted {
		t.Fatalf("demoted record = %+v, %v", back, err)
	}
	if _, err := x.QuarantinedByID(ctx(t), q.ID); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("promoted record still quarantined: %v", err)
	}
	if _, err := x.Promote(ctx(t), q.ID, newer, index.QuarantineRecord{}); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("second Promote = %v", err)
	}
	c, _ := x.Counts(ctx(t))
	if c.Instances != int64(len(Fixture())) {
		t.Fatalf("counts = %+v", c)
	}
	// Promoting when the served instance is gone indexes the copy and demotes nothing.
	if _, err := x.DeleteInstance(ctx(t), "1.4.11"); err != nil {
		t.Fatal(err)
	}
	back := *served
	back.ContentDigest = "c1:old"
	r, err := x.Promote(ctx(t), demoted.ID, &back, index.QuarantineRecord{})
	if err != nil || r != nil {
		t.Fatalf("Promote without a served instance = %+v, %v", r, err)
	}
	if got, err := x.Instance(ctx(t), "1.4.11"); err != nil || got.BlobKey != served.BlobKey {
		t.Fatalf("served = %+v, %v", got, err)
	}
}

// Migration0005 checks that migration 0005 is additive: instances indexed before it
// keep everything and have no content digest (ingest computes it when it needs it),
// and the quarantine starts empty and usable. open opens the same database each time
// it is called (migrating it to the newest version).
func Migration0005(t *testing.T, open func() (*sqlindex.DB, error)) {
	c := context.Background()
	x, err := open()
	if err != nil {
		t.Fatal(err)
	}
	list := Fixture()
	for _, in := range list {
		if err := x.Put(c, in); err != nil {
			t.Fatal(err)
		}
	}
	for _, stmt := range []string{
		`DROP TABLE quarantine`,
		`ALTER TABLE instances DROP COLUMN content_digest`,
		`DELETE FROM schema_migrations WHERE version = 5`,
	} {
		if _, err := x.SQL().ExecContext(c, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	x.Close()
	if x, err = open(); err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	for _, want := range list {
		in, err := x.Instance(c, want.SOPInstanceUID)
		if err != nil {
			t.Fatal(err)
		}
		if in.ContentDigest != "" || in.BlobKey != want.BlobKey || in.Digest != want.Digest {
			t.Fatalf("%s after migration: %+v", want.SOPInstanceUID, in)
		}
	}
	if err := x.Quarantine(c, qrec(list[0], "quarantine/k", "test")); err != nil {
		t.Fatal(err)
	}
}
