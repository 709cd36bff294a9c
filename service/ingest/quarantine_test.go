package ingest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/archive"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/sqlindex"
	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// variant returns o with its last byte (a pixel) changed: other content, same UIDs.
func variant(o gen.Object, x byte) []byte {
	b := bytes.Clone(o.Data)
	b[len(b)-1] ^= x
	return b
}

// clean checks that Check finds nothing: quarantined copies are not orphans.
func (e *env) clean(t *testing.T) {
	t.Helper()
	rep, err := e.p.Check(context.Background(), ingest.CheckOptions{Grace: -time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 0 {
		t.Fatalf("fsck findings: %+v", rep.Findings)
	}
}

func (e *env) open(t *testing.T, id int64) []byte {
	t.Helper()
	rc, _, _, err := e.p.OpenQuarantined(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return b
}

func (e *env) served(t *testing.T, uid string) []byte {
	t.Helper()
	inst, err := e.idx.Instance(context.Background(), uid)
	if err != nil {
		t.Fatal(err)
	}
	return e.stored(t, inst.BlobKey)
}

// TestQuarantineLifecycle: a different object under a stored SOP Instance UID is kept in
// quarantine (once, however often it is re-sent), listed, fetched byte for byte,
// promoted (the served copy is quarantined in turn) and deleted; fsck sees no orphan at
// any step.
func TestQuarantineLifecycle(t *testing.T) {
	mr, _ := gen.MRSeries(gen.Options{Seed: 51}, 1, 16, 16)
	uid := mr[0].SOPInstanceUID
	first, second := mr[0].Data, variant(mr[0], 0xFF)
	e := newEnv(t)
	if _, err := ingestBytes(e, first); err != nil {
		t.Fatal(err)
	}
	src := ingest.Source{Via: "stow", Account: "uploader", Remote: "127.0.0.7"}
	res, err := e.p.IngestFile(context.Background(), bytes.NewReader(second), int64(len(second)), src)
	if err != nil || res.Outcome != ingest.Quarantined || res.QuarantineID == 0 || len(res.Warnings) != 1 || !strings.HasPrefix(res.BlobKey, ingest.QuarantinePrefix) {
		t.Fatalf("second copy: %+v, %v", res, err)
	}
	if !strings.Contains(res.Warnings[0], "quarantine") {
		t.Fatalf("warning %q", res.Warnings[0])
	}
	// Sent again (the same second version, in another encoding): the same record.
	_, ds := dataset(t, second)
	again, err := e.p.IngestDataset(context.Background(), bytes.NewReader(ds),
		ingest.DatasetInfo{TransferSyntaxUID: dcm.ExplicitVRLittleEndian, SOPClassUID: mr[0].SOPClassUID, SOPInstanceUID: uid}, ingest.Source{Via: "dimse", CallingAE: "MR_TWO"})
	if err != nil || again.Outcome != ingest.Quarantined || again.QuarantineID != res.QuarantineID {
		t.Fatalf("second copy again: %+v, %v", again, err)
	}
	if n := len(e.blobs(t)); n != 2 {
		t.Fatalf("%d blobs", n)
	}
	e.clean(t)
	list, err := e.p.Quarantined(context.Background(), index.QuarantineQuery{})
	if err != nil || len(list) != 1 {
		t.Fatalf("list = %+v, %v", list, err)
	}
	q := list[0]
	if q.ID != res.QuarantineID || q.SOPInstanceUID != uid || q.Via != "stow" || q.Account != "uploader" || q.Remote != "127.0.0.7" || q.Size != int64(len(second)) ||
		q.ContentDigest != res.ContentDigest || q.Reason == "" || q.PatientID != gen.DefaultPatient.ID {
		t.Fatalf("record = %+v", q)
	}
	if !bytes.Equal(e.open(t, q.ID), second) || !bytes.Equal(e.served(t, uid), first) {
		t.Fatal("quarantined or served bytes differ")
	}
	// Promote: the second copy is served, the first quarantined in turn.
	pr, err := e.p.Promote(context.Background(), q.ID, ingest.Source{Account: "admin"})
	if err != nil || pr.Demoted == nil || pr.Instance.BlobKey != q.BlobKey {
		t.Fatalf("promote = %+v, %v", pr, err)
	}
	if !bytes.Equal(e.served(t, uid), second) || !bytes.Equal(e.open(t, pr.Demoted.ID), first) {
		t.Fatal("after promotion: wrong bytes served or quarantined")
	}
	if pr.Demoted.Account != "admin" || pr.Demoted.Via != "promote" {
		t.Fatalf("demoted = %+v", pr.Demoted)
	}
	if inst, _ := e.idx.Instance(context.Background(), uid); inst.ContentDigest != q.ContentDigest || inst.Size != q.Size {
		t.Fatalf("served record = %+v", inst)
	}
	if c := e.counts(t); c.Instances != 1 {
		t.Fatalf("counts = %+v", c)
	}
	e.clean(t)
	if _, err := e.p.Promote(context.Background(), q.ID, ingest.Source{}); !errors.Is(err, ingest.ErrNotFound) {
		t.Fatalf("promoting a promoted copy: %v", err)
	}
	// The first version sent again now matches the quarantined record.
	if res, err := ingestBytes(e, first); err != nil || res.Outcome != ingest.Quarantined || res.QuarantineID != pr.Demoted.ID {
		t.Fatalf("first copy again: %+v, %v", res, err)
	}
	// Delete: the record and its blob are gone.
	if _, err := e.p.DeleteQuarantined(context.Background(), pr.Demoted.ID, ingest.Source{Account: "admin"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.QuarantinedByID(context.Background(), pr.Demoted.ID); !errors.Is(err, ingest.ErrNotFound) {
		t.Fatalf("deleted record: %v", err)
	}
	if blobs := e.blobs(t); len(blobs) != 1 || blobs[0] != q.BlobKey {
		t.Fatalf("blobs after delete: %v", blobs)
	}
	e.clean(t)
	if _, err := e.p.DeleteQuarantined(context.Background(), pr.Demoted.ID, ingest.Source{}); !errors.Is(err, ingest.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

// TestQuarantineScope: a patient-scoped writer's different copy of its own patient's
// instance is quarantined; a foreign instance gets the one refusal, whatever the
// content; a scoped caller lists, promotes and deletes only within its scope.
func TestQuarantineScope(t *testing.T) {
	own, _ := gen.CTSeries(gen.Options{Seed: 52}, 1, 16, 16)
	other := gen.Patient{ID: "OTHER-TEST-0001", Issuer: "LUMEN-TEST", Name: "Other^Patient", BirthDate: "19800101", Sex: "F"}
	foreign, _ := gen.CTSeries(gen.Options{Seed: 53, Patient: other}, 1, 16, 16)
	e := newEnv(t)
	for _, o := range []gen.Object{own[0], foreign[0]} {
		if _, err := ingestBytes(e, o.Data); err != nil {
			t.Fatal(err)
		}
	}
	p := gen.DefaultPatient
	scoped := index.WithScope(context.Background(), index.Scope{Patient: &index.PatientKey{ID: p.ID, Issuer: p.Issuer}})
	ing := func(b []byte) (*ingest.Result, error) {
		return e.p.IngestFile(scoped, bytes.NewReader(b), int64(len(b)), ingest.Source{Via: "stow"})
	}
	res, err := ing(variant(own[0], 1))
	if err != nil || res.Outcome != ingest.Quarantined {
		t.Fatalf("own patient's different copy: %+v, %v", res, err)
	}
	if res, err := ing(own[0].Data); err != nil || res.Outcome != ingest.AlreadyStored {
		t.Fatalf("own patient's same copy: %+v, %v", res, err)
	}
	// The foreign instance under the scoped writer's own identity: same refusal for the
	// same content and for other content.
	asOwn := func(b []byte) []byte {
		return bytes.ReplaceAll(b, []byte(other.ID), []byte(p.ID))
	}
	var reasons []string
	for _, b := range [][]byte{foreign[0].Data, variant(foreign[0], 1), asOwn(foreign[0].Data)} {
		_, err := ing(b)
		var ie *ingest.Error
		if !errors.Is(err, ingest.ErrNotAuthorized) || !errors.As(err, &ie) {
			t.Fatalf("foreign: %v", err)
		}
		reasons = append(reasons, ie.Reason)
	}
	if reasons[0] != reasons[1] || reasons[1] != reasons[2] {
		t.Fatalf("refusals differ: %q", reasons)
	}
	// The foreign instance's different copy, sent unscoped, is quarantined: the scoped
	// caller does not see it.
	fres, err := ingestBytes(e, variant(foreign[0], 2))
	if err != nil || fres.Outcome != ingest.Quarantined {
		t.Fatal(err)
	}
	list, _ := e.p.Quarantined(scoped, index.QuarantineQuery{})
	if len(list) != 1 || list[0].ID != res.QuarantineID {
		t.Fatalf("scoped list = %+v", list)
	}
	if _, err := e.p.Promote(scoped, fres.QuarantineID, ingest.Source{}); !errors.Is(err, ingest.ErrNotFound) {
		t.Fatalf("scoped promotion of a foreign copy: %v", err)
	}
	if _, err := e.p.DeleteQuarantined(scoped, fres.QuarantineID, ingest.Source{}); !errors.Is(err, ingest.ErrNotFound) {
		t.Fatalf("scoped deletion of a foreign copy: %v", err)
	}
	if _, err := e.p.Promote(scoped, res.QuarantineID, ingest.Source{}); err != nil {
		t.Fatalf("scoped promotion of its own copy: %v", err)
	}
}

// TestResentLegacyRow: an instance indexed without a content digest (ingest does not
// compute it; rows written before digests were kept have none either) is compared by
// computing the digest from the stored copy, once, and recording it; the re-sent object's
// digest, computed from its own blob, is the same.
func TestResentLegacyRow(t *testing.T) {
	ct, _ := gen.CTSeries(gen.Options{Seed: 54}, 1, 16, 16)
	e := newEnv(t)
	first, err := ingestBytes(e, ct[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	want := dcm.NewContentDigest()
	if _, err := dcm.Parse(bytes.NewReader(ct[0].Data), &dcm.Options{Digest: want}); err != nil {
		t.Fatal(err)
	}
	if inst, _ := e.idx.Instance(context.Background(), ct[0].SOPInstanceUID); inst.ContentDigest != "" || first.ContentDigest != "" {
		t.Fatalf("digest computed at ingest: %q, %q", inst.ContentDigest, first.ContentDigest)
	}
	if _, err := e.idx.(*sqlindex.DB).SQL().Exec(`UPDATE instances SET content_digest = ''`); err != nil {
		t.Fatal(err)
	}
	impl := dcmconv(t, ct[0].Data, "+ti")
	res, err := ingestBytes(e, impl)
	if err != nil || res.Outcome != ingest.AlreadyStored || res.BlobKey != first.BlobKey || res.ContentDigest != want.Sum() {
		t.Fatalf("re-sent: %+v, %v", res, err)
	}
	if inst, _ := e.idx.Instance(context.Background(), ct[0].SOPInstanceUID); inst.ContentDigest != want.Sum() {
		t.Fatalf("digest recorded %q, want %q", inst.ContentDigest, want.Sum())
	}
}

// TestQuarantinedWithoutDigest: a quarantine record kept without a content digest (the
// demoted copy of an instance whose digest was never needed) is compared by the digest
// of its blob: the same content re-sent in another encoding finds it, and is not kept a
// second time.
func TestQuarantinedWithoutDigest(t *testing.T) {
	mr, _ := gen.MRSeries(gen.Options{Seed: 55}, 1, 16, 16)
	e := newEnv(t)
	if _, err := ingestBytes(e, mr[0].Data); err != nil {
		t.Fatal(err)
	}
	second := variant(mr[0], 0x0F)
	res, err := ingestBytes(e, second)
	if err != nil || res.Outcome != ingest.Quarantined {
		t.Fatalf("second copy: %+v, %v", res, err)
	}
	if _, err := e.idx.(*sqlindex.DB).SQL().Exec(`UPDATE quarantine SET content_digest = ''`); err != nil {
		t.Fatal(err)
	}
	again, err := ingestBytes(e, dcmconv(t, second, "+ti"))
	if err != nil || again.Outcome != ingest.Quarantined || again.QuarantineID != res.QuarantineID {
		t.Fatalf("second copy in another encoding: %+v, %v", again, err)
	}
	if n := len(e.blobs(t)); n != 2 {
		t.Fatalf("%d blobs, want 2", n)
	}
}

// quarantineFails fails the copy into quarantine.
type quarantineFails struct{ archive.Store }

func (s quarantineFails) Put(ctx context.Context, key string, r io.Reader, size int64) (archive.ObjectInfo, error) {
	if strings.HasPrefix(key, ingest.QuarantinePrefix) {
		io.CopyN(io.Discard, r, 100)
		return archive.ObjectInfo{}, errors.New("disk full")
	}
	return s.Store.Put(ctx, key, r, size)
}

// lostQuarantine records the copy but reports a broken connection.
type lostQuarantine struct{ index.Index }

func (l lostQuarantine) Quarantine(ctx context.Context, r *index.QuarantineRecord) error {
	if err := l.Index.Quarantine(ctx, r); err != nil {
		return err
	}
	return errors.New("driver: bad connection")
}

// TestQuarantineFailures: nothing is acknowledged unless the copy and its record are
// durable, and nothing is left half-done.
func TestQuarantineFailures(t *testing.T) {
	mr, _ := gen.MRSeries(gen.Options{Seed: 55}, 1, 16, 16)
	t.Run("copy fails", func(t *testing.T) {
		e := newEnv(t)
		if _, err := ingestBytes(e, mr[0].Data); err != nil {
			t.Fatal(err)
		}
		e.p.Store = quarantineFails{e.store}
		if _, err := ingestBytes(e, variant(mr[0], 1)); !errors.Is(err, ingest.ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
		if n := len(e.blobs(t)); n != 1 {
			t.Fatalf("%d blobs", n)
		}
		e.p.Store = e.store
		e.clean(t)
	})
	t.Run("record committed, answer lost", func(t *testing.T) {
		e := newEnv(t)
		if _, err := ingestBytes(e, mr[0].Data); err != nil {
			t.Fatal(err)
		}
		e.p.Index = lostQuarantine{e.idx}
		res, err := ingestBytes(e, variant(mr[0], 1))
		if err != nil || res.Outcome != ingest.Quarantined {
			t.Fatalf("res = %+v, %v", res, err)
		}
		e.p.Index = e.idx
		if !bytes.Equal(e.open(t, res.QuarantineID), variant(mr[0], 1)) {
			t.Fatal("quarantined bytes differ")
		}
		e.clean(t)
	})
}

// TestCheckQuarantine: fsck repairs orphans into the quarantine (different content under
// an indexed UID), removes orphan copies of quarantined content, and reports a
// quarantine record whose blob is gone.
func TestCheckQuarantine(t *testing.T) {
	mr, _ := gen.MRSeries(gen.Options{Seed: 56}, 1, 16, 16)
	e := newEnv(t)
	ctx := context.Background()
	if _, err := ingestBytes(e, mr[0].Data); err != nil {
		t.Fatal(err)
	}
	put := func(b []byte) string {
		key := ingest.NewBlobKey(time.Now())
		if _, err := e.store.Put(ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
		return key
	}
	orphan := put(variant(mr[0], 1))
	rep, err := e.p.Check(ctx, ingest.CheckOptions{Grace: -time.Second, Repair: true})
	if err != nil || len(rep.Findings) != 1 || rep.Findings[0].Action != "quarantined" {
		t.Fatalf("repair = %+v, %v", rep, err)
	}
	list, _ := e.p.Quarantined(ctx, index.QuarantineQuery{})
	if len(list) != 1 || list[0].BlobKey != orphan || list[0].Via != "fsck" {
		t.Fatalf("quarantine = %+v", list)
	}
	copyKey := put(variant(mr[0], 1))
	rep, _ = e.p.Check(ctx, ingest.CheckOptions{Grace: -time.Second, Repair: true})
	if len(rep.Findings) != 1 || rep.Findings[0].Key != copyKey || rep.Findings[0].Action != "removed" {
		t.Fatalf("repair of a copy of quarantined content = %+v", rep)
	}
	if err := e.store.Delete(ctx, orphan); err != nil {
		t.Fatal(err)
	}
	rep, _ = e.p.Check(ctx, ingest.CheckOptions{Grace: -time.Second})
	if rep.Dangling() != 1 || rep.Findings[0].SOPInstanceUID != mr[0].SOPInstanceUID {
		t.Fatalf("dangling quarantine record = %+v", rep)
	}
	rep, _ = e.p.Check(ctx, ingest.CheckOptions{Grace: -time.Second, Repair: true})
	if rep.Dangling() != 1 || rep.Findings[0].Action != "row-removed" {
		t.Fatalf("repair of a dangling quarantine record = %+v", rep)
	}
	e.clean(t)
}
