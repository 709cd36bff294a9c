package ingest_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// koRef is one instance a test rejection note references.
type koRef = tools.KORef

func refOf(o gen.Object) koRef {
	return koRef{Study: o.StudyUID, Series: o.SeriesUID, Class: o.SOPClassUID, SOP: o.SOPInstanceUID}
}

// dcmtkNote is a rejection note made with DCMTK (tools.DCMTKRejectionNote): titled (code,
// DCM, meaning) in study of patient, referencing refs.
func dcmtkNote(t *testing.T, sop, study string, patient gen.Patient, code, meaning string, refs ...koRef) []byte {
	t.Helper()
	f, err := os.ReadFile(tools.DCMTKRejectionNote(t, tools.RejectionNote{SOP: sop, Study: study, PatientID: patient.ID, Issuer: patient.Issuer, Code: code, Meaning: meaning, Refs: refs}))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (e *env) visible(t *testing.T, uid string) bool {
	t.Helper()
	_, err := e.idx.Instance(context.Background(), uid)
	if err != nil && !errors.Is(err, index.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func (e *env) rejected(t *testing.T, q index.RejectedQuery) []index.Rejection {
	t.Helper()
	list, err := e.p.Rejected(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// TestRejectionNoteDCMTK runs a rejection note made with DCMTK through the pipeline: the
// referenced instances are hidden once it is stored; they are refused when sent again
// (113037); a re-sent note changes nothing; a restore by note brings them back as they
// were; notes whose references contradict the index are refused with nothing kept.
func TestRejectionNoteDCMTK(t *testing.T) {
	e := newEnv(t)
	mr, err := gen.MRSeries(gen.Options{Seed: 71}, 3, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range mr {
		if _, err := ingestBytes(e, o.Data); err != nil {
			t.Fatal(err)
		}
	}
	before, err := e.idx.Instance(context.Background(), mr[0].SOPInstanceUID)
	if err != nil {
		t.Fatal(err)
	}
	p := gen.DefaultPatient
	study := mr[0].StudyUID
	noteUID := ingest.UIDRoot + ".99.71.1"
	ko := dcmtkNote(t, noteUID, study, p, index.RejectPatientSafety, "Rejected for Patient Safety Reasons", refOf(mr[0]), refOf(mr[1]))
	res, err := ingestBytes(e, ko)
	if err != nil || res.Outcome != ingest.Stored {
		t.Fatalf("note: %+v, %v", res, err)
	}
	if e.visible(t, mr[0].SOPInstanceUID) || e.visible(t, mr[1].SOPInstanceUID) || !e.visible(t, mr[2].SOPInstanceUID) || !e.visible(t, noteUID) {
		t.Fatal("after the note: wrong instances visible")
	}
	if c := e.counts(t); c.Instances != 2 || c.Series != 2 {
		t.Fatalf("counts %+v", c)
	}
	if l := e.rejected(t, index.RejectedQuery{NoteUID: noteUID}); len(l) != 2 || l[0].Reason != index.RejectPatientSafety || l[0].BlobKey == "" || l[0].Source != "test" {
		t.Fatalf("rejected %+v", l)
	}
	blobs := e.blobs(t)
	// Sent again over C-STORE: refused (0x0110), nothing kept.
	ts, ds := dataset(t, mr[0].Data)
	_, err = e.p.IngestDataset(context.Background(), bytes.NewReader(ds), ingest.DatasetInfo{TransferSyntaxUID: ts, SOPClassUID: mr[0].SOPClassUID, SOPInstanceUID: mr[0].SOPInstanceUID}, ingest.Source{Via: "dimse", CallingAE: "MODALITY"})
	if st := ingest.StoreStatus(err); !errors.Is(err, ingest.ErrRejected) || st.Code != dimse.StatusProcessingFailure || !strings.Contains(st.ErrorComment, "113037") {
		t.Fatalf("re-sent rejected instance: %v, status %+v", err, st)
	}
	if got := e.blobs(t); !slices.Equal(got, blobs) {
		t.Fatalf("blobs after refusal %v, want %v", got, blobs)
	}
	// The note sent again: nothing changes.
	if res, err := ingestBytes(e, ko); err != nil || res.Outcome != ingest.AlreadyStored {
		t.Fatalf("note again: %+v, %v", res, err)
	}
	// The start-up check knows the rejected blobs: no orphans.
	if rep, err := e.p.Check(context.Background(), ingest.CheckOptions{Grace: -1}); err != nil || len(rep.Findings) != 0 {
		t.Fatalf("check: %+v, %v", rep, err)
	}
	// Restore by note: the instances come back as they were.
	if _, err := e.p.Restore(context.Background(), nil, noteUID, "sent by mistake", ingest.Source{Account: "admin"}); err != nil {
		t.Fatal(err)
	}
	after, err := e.idx.Instance(context.Background(), mr[0].SOPInstanceUID)
	if err != nil || after.BlobKey != before.BlobKey || string(after.Metadata) != string(before.Metadata) || !after.ReceivedAt.Equal(before.ReceivedAt) || after.Digest != before.Digest {
		t.Fatalf("restored %+v, %v", after, err)
	}
	if c := e.counts(t); c.Instances != 4 {
		t.Fatalf("counts after restore %+v", c)
	}

	// Refused notes keep nothing: a reference in another study than the evidence names,
	// and a note of another patient.
	blobs = e.blobs(t)
	wrong := refOf(mr[2])
	wrong.Study = "1.2.3.4.5"
	for name, note := range map[string][]byte{
		"other study":   dcmtkNote(t, ingest.UIDRoot+".99.71.2", study, p, index.RejectQuality, "Rejected for Quality Reasons", wrong),
		"other patient": dcmtkNote(t, ingest.UIDRoot+".99.71.3", "1.2.3.4.6", gen.Patient{ID: "OTHER", Issuer: "X"}, index.RejectQuality, "Rejected for Quality Reasons", refOf(mr[2])),
	} {
		_, err := ingestBytes(e, note)
		if st := ingest.StoreStatus(err); !errors.Is(err, ingest.ErrConflict) || st.Code != dimse.StatusCannotUnderstand {
			t.Errorf("%s: %v (%+v)", name, err, st)
		}
	}
	if got := e.blobs(t); !slices.Equal(got, blobs) || !e.visible(t, mr[2].SOPInstanceUID) {
		t.Fatalf("a refused note left %v (want %v)", got, blobs)
	}
	// A note without evidence is not understood.
	bad := dcmtkNote(t, ingest.UIDRoot+".99.71.4", study, p, index.RejectQuality, "Rejected for Quality Reasons")
	if _, err := ingestBytes(e, bad); !errors.Is(err, ingest.ErrInvalid) {
		t.Fatalf("note without evidence: %v", err)
	}
}

// TestRejectedBeforeArrival: a note (113001) names an instance not received yet; when it
// arrives it is kept hidden (success with a warning), listed with its blob, and a restore
// shows it. Under 113038 the arrival is refused instead.
func TestRejectedBeforeArrival(t *testing.T) {
	e := newEnv(t)
	mr, err := gen.MRSeries(gen.Options{Seed: 72}, 3, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ingestBytes(e, mr[0].Data); err != nil {
		t.Fatal(err)
	}
	p := gen.DefaultPatient
	note := dcmtkNote(t, ingest.UIDRoot+".99.72.1", mr[0].StudyUID, p, index.RejectQuality, "Rejected for Quality Reasons", refOf(mr[1]))
	if _, err := ingestBytes(e, note); err != nil {
		t.Fatal(err)
	}
	res, err := ingestBytes(e, mr[1].Data)
	if err != nil || res.Outcome != ingest.Hidden || len(res.Warnings) != 1 || e.visible(t, mr[1].SOPInstanceUID) {
		t.Fatalf("arrival after rejection: %+v, %v", res, err)
	}
	l := e.rejected(t, index.RejectedQuery{SOPInstanceUID: mr[1].SOPInstanceUID})
	if len(l) != 1 || l[0].BlobKey != res.BlobKey {
		t.Fatalf("rejections %+v", l)
	}
	// Sent once more: discarded, still hidden.
	if res2, err := ingestBytes(e, mr[1].Data); err != nil || res2.Outcome != ingest.Hidden || res2.BlobKey != res.BlobKey {
		t.Fatalf("second arrival: %+v, %v", res2, err)
	}
	// And in another encoding: the same content (the digests of this object and of the
	// held copy computed now, from their blobs): discarded, still hidden.
	if res3, err := ingestBytes(e, dcmconv(t, mr[1].Data, "+ti")); err != nil || res3.Outcome != ingest.Hidden || res3.BlobKey != res.BlobKey || res3.ContentDigest == "" {
		t.Fatalf("arrival in another encoding: %+v, %v", res3, err)
	}
	// Sent with other content (a pixel changed): not kept, so refused, not acknowledged.
	other := bytes.Clone(mr[1].Data)
	other[len(other)-1] ^= 0xFF
	before := e.blobs(t)
	if _, err := ingestBytes(e, other); !errors.Is(err, ingest.ErrDuplicate) {
		t.Fatalf("arrival with other content: %v", err)
	}
	if got := e.blobs(t); !slices.Equal(got, before) {
		t.Fatal("a refused arrival left a blob")
	}
	if _, err := e.p.Restore(context.Background(), []string{mr[1].SOPInstanceUID}, "", "ok", ingest.Source{Account: "admin"}); err != nil {
		t.Fatal(err)
	}
	if !e.visible(t, mr[1].SOPInstanceUID) {
		t.Fatal("not restored")
	}

	note2 := dcmtkNote(t, ingest.UIDRoot+".99.72.2", mr[0].StudyUID, p, index.RejectWorklistEntry, "Incorrect Modality Worklist Entry", refOf(mr[2]))
	if _, err := ingestBytes(e, note2); err != nil {
		t.Fatal(err)
	}
	blobs := e.blobs(t)
	if _, err := ingestBytes(e, mr[2].Data); !errors.Is(err, ingest.ErrRejected) {
		t.Fatalf("arrival after 113038: %v", err)
	}
	if got := e.blobs(t); !slices.Equal(got, blobs) {
		t.Fatal("a refused arrival left a blob")
	}
}

// TestAdminRejection: the note Lumen writes (ingest.RejectionNote through Reject) is a
// valid KO that DCMTK reads, takes the path a received note takes, and a purge removes
// blobs and rows.
func TestAdminRejection(t *testing.T) {
	e := newEnv(t)
	mr, err := gen.MRSeries(gen.Options{Seed: 73}, 3, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range mr {
		if _, err := ingestBytes(e, o.Data); err != nil {
			t.Fatal(err)
		}
	}
	by := ingest.Source{Account: "admin", Remote: "127.0.0.1"}
	if _, err := e.p.Reject(context.Background(), ingest.RejectionRequest{StudyInstanceUID: mr[0].StudyUID, Reason: index.RejectQuality}, by); !errors.Is(err, ingest.ErrInvalid) {
		t.Fatalf("without description: %v", err)
	}
	if _, err := e.p.Reject(context.Background(), ingest.RejectionRequest{StudyInstanceUID: mr[0].StudyUID, Reason: "113000", Description: "x"}, by); !errors.Is(err, ingest.ErrInvalid) {
		t.Fatalf("not a rejection code: %v", err)
	}
	res, err := e.p.Reject(context.Background(), ingest.RejectionRequest{
		StudyInstanceUID: mr[0].StudyUID, SeriesInstanceUID: mr[0].SeriesUID, SOPInstanceUIDs: []string{mr[0].SOPInstanceUID, mr[2].SOPInstanceUID},
		Reason: index.RejectRetentionExpired, Description: "Retention period of 10 years ended",
	}, by)
	if err != nil || res.Outcome != ingest.Stored {
		t.Fatalf("Reject: %+v, %v", res, err)
	}
	if e.visible(t, mr[0].SOPInstanceUID) || !e.visible(t, mr[1].SOPInstanceUID) || e.visible(t, mr[2].SOPInstanceUID) {
		t.Fatal("wrong instances visible")
	}
	// The note is a KO DCMTK reads, with the title and the evidence.
	b := e.stored(t, res.BlobKey)
	dump := dcmdump(t, b)
	for _, want := range []string{"KeyObjectSelectionDocumentStorage", "(0008,0100) SH [113039]", "[Data Retention Policy Expired]", mr[0].SOPInstanceUID, mr[2].SOPInstanceUID, "[Retention period of 10 years ended]", "[KO]"} {
		if !strings.Contains(dump, want) {
			t.Errorf("note lacks %q:\n%s", want, dump)
		}
	}
	if _, err := dcm.Parse(bytes.NewReader(b), nil); err != nil {
		t.Fatal(err)
	}
	l := e.rejected(t, index.RejectedQuery{NoteUID: res.SOPInstanceUID})
	if len(l) != 2 || l[0].Actor != "admin" || l[0].Source != "admin" {
		t.Fatalf("rejections %+v", l)
	}
	// An instance not in the study (or rejected already) is not found.
	if _, err := e.p.Reject(context.Background(), ingest.RejectionRequest{StudyInstanceUID: mr[0].StudyUID, SOPInstanceUIDs: []string{mr[0].SOPInstanceUID}, Reason: index.RejectQuality, Description: "x"}, by); !errors.Is(err, ingest.ErrNotFound) {
		t.Fatalf("rejected twice: %v", err)
	}
	// Purge: rows and blobs go.
	purged, err := e.p.Purge(context.Background(), nil, res.SOPInstanceUID, "retention", by)
	if err != nil || len(purged) != 2 {
		t.Fatalf("Purge: %+v, %v", purged, err)
	}
	for _, r := range purged {
		if _, _, err := e.store.Get(context.Background(), r.BlobKey); err == nil {
			t.Fatalf("blob %s of a purged instance remains", r.BlobKey)
		}
	}
	if l := e.rejected(t, index.RejectedQuery{}); len(l) != 0 {
		t.Fatalf("rejections after purge %+v", l)
	}
	if _, err := e.p.Purge(context.Background(), []string{mr[0].SOPInstanceUID}, "", "again", by); !errors.Is(err, ingest.ErrNotFound) {
		t.Fatalf("purge again: %v", err)
	}
	evs, err := e.idx.(index.Identity).PatientEvents(context.Background(), 0, 0)
	if err != nil || len(evs) != 2 || evs[0].Kind != index.EventReject || evs[1].Kind != index.EventPurge || evs[1].Reason != "retention" || len(evs[1].Instances) != 2 {
		t.Fatalf("events %+v, %v", evs, err)
	}
	if rep, err := e.p.Check(context.Background(), ingest.CheckOptions{Grace: -1}); err != nil || len(rep.Findings) != 0 {
		t.Fatalf("check: %+v, %v", rep, err)
	}
}

// dcmdump prints a PS3.10 file with DCMTK's dcmdump.
func dcmdump(t *testing.T, b []byte) string {
	t.Helper()
	bin := tools.DCMTK(t, "dcmdump")
	p := filepath.Join(t.TempDir(), "f.dcm")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "+L", p).CombinedOutput()
	if err != nil {
		t.Fatalf("dcmdump: %v\n%s", err, out)
	}
	return string(out)
}
