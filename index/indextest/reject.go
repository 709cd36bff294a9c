package indextest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lumenpacs/lumen/index"
)

const koClass = "1.2.840.10008.5.1.4.1.1.88.59"

func rejecter(t *testing.T, x index.Index) index.Rejecter {
	t.Helper()
	r, ok := x.(index.Rejecter)
	if !ok {
		t.Fatal("the index does not implement index.Rejecter")
	}
	return r
}

// snapshot renders every record at the four levels with the counts the index maintains.
func snapshot(t *testing.T, x index.Index) string {
	t.Helper()
	var b strings.Builder
	for _, level := range []index.Level{index.PatientLevel, index.StudyLevel, index.SeriesLevel, index.ImageLevel} {
		r, err := x.Find(ctx(t), index.Query{Level: level})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range r.Patients {
			fmt.Fprintf(&b, "P %s|%s|%s n=%d\n", p.PatientID, p.IssuerOfPatientID, p.PatientName, p.NumberOfPatientRelatedStudies)
		}
		for _, s := range r.Studies {
			fmt.Fprintf(&b, "S %s|%s series=%d inst=%d mods=%v classes=%v\n", s.StudyInstanceUID, s.PatientID, s.NumberOfStudyRelatedSeries, s.NumberOfStudyRelatedInstances, s.ModalitiesInStudy, s.SOPClassesInStudy)
		}
		for _, s := range r.Series {
			fmt.Fprintf(&b, "E %s|%s|%s n=%d\n", s.SeriesInstanceUID, s.StudyInstanceUID, s.Modality, s.NumberOfSeriesRelatedInstances)
		}
		for _, s := range r.Instances {
			fmt.Fprintf(&b, "I %s|%s|%s|%s|%d|%s|%d\n", s.SOPInstanceUID, s.SeriesInstanceUID, s.SOPClassUID, s.BlobKey, s.Size, s.Metadata, s.ReceivedAt.UnixMilli())
		}
	}
	c, err := x.Counts(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "C %+v\n", c)
	return b.String()
}

// note builds a rejection note of study s in a series of its own.
func note(s stu, uid string) *index.Instance {
	return Inst(s, uid+".0", "KO", ip(99), uid, koClass, ip(1))
}

func ref(in *index.Instance) index.RejectRef {
	return index.RejectRef{StudyInstanceUID: in.StudyInstanceUID, SeriesInstanceUID: in.SeriesInstanceUID, SOPInstanceUID: in.SOPInstanceUID, SOPClassUID: in.SOPClassUID}
}

func byUID(uid string) *index.Instance {
	for _, in := range Fixture() {
		if in.SOPInstanceUID == uid {
			return in
		}
	}
	panic(uid)
}

// testReject checks IHE IOCM rejection: rejected instances are gone from Find at every
// level and from Instance, counts follow, the rejection is listed; a restore brings back
// the same answers; a purge removes the rows; each step is one event per study.
func testReject(t *testing.T, x index.Index) {
	rj := rejecter(t, x)
	fixture(t, x)
	before := snapshot(t, x)
	want := map[string]*index.Instance{}
	for _, uid := range []string{"1.4.12", "1.4.21", "1.4.61"} {
		in, err := x.Instance(ctx(t), uid)
		if err != nil {
			t.Fatal(err)
		}
		want[uid] = in
	}
	c := index.Change{Source: "test", Actor: "tester"}

	// One instance of series 1.3.1 and all of series 1.3.2 (study 1.2.1), and the only
	// instance of study 1.2.4 (its note lies in a study of its own, same patient).
	n1 := note(s1, "1.9.1")
	got, err := rj.Reject(ctx(t), n1, index.RejectQuality, []index.RejectRef{ref(byUID("1.4.12")), ref(byUID("1.4.21")), ref(byUID("1.4.12"))}, c)
	if err != nil || len(got) != 2 || got[0].BlobKey != want["1.4.12"].BlobKey || got[0].NoteUID != "1.9.1" || got[0].Reason != index.RejectQuality {
		t.Fatalf("Reject = %+v, %v", got, err)
	}
	s5 := stu{"1.2.5", "20260101", "", "", "Notes", "", p3}
	n2 := note(s5, "1.9.2")
	if _, err := rj.Reject(ctx(t), n2, index.RejectPatientSafety, []index.RejectRef{ref(byUID("1.4.61"))}, c); err != nil {
		t.Fatal(err)
	}
	for uid := range want {
		if _, err := x.Instance(ctx(t), uid); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("Instance(%s) after rejection: %v", uid, err)
		}
	}
	snap := snapshot(t, x)
	for _, gone := range []string{"I 1.4.12|", "I 1.4.21|", "I 1.4.61|", "E 1.3.2|", "S 1.2.4|", "E 1.3.6|"} {
		if strings.Contains(snap, gone) {
			t.Errorf("rejected record %q still found:\n%s", gone, snap)
		}
	}
	for _, line := range []string{
		"S 1.2.1|PAT1 series=2 inst=3 mods=[CT KO] classes=[" + ctClass + " " + koClass + "]",
		"E 1.3.1|1.2.1|CT n=2",
		"P PAT1|OTHER|Doe^Jane n=1",
		"S 1.2.5|PAT1 series=1 inst=1",
	} {
		if !strings.Contains(snap, line) {
			t.Errorf("missing %q in:\n%s", line, snap)
		}
	}
	r, err := x.Find(ctx(t), index.Query{Level: index.ImageLevel, Filters: filters(t, map[string]string{"SOPInstanceUID": "1.4.12\\1.4.11"})})
	if err != nil || !slices.Equal(uids(r, index.ImageLevel), []string{"1.4.11"}) {
		t.Fatalf("image query: %v, %v", uids(r, index.ImageLevel), err)
	}
	if _, err := x.Find(ctx(t), index.Query{Level: index.StudyLevel, Filters: filters(t, map[string]string{"StudyInstanceUID": "1.2.4"})}); err != nil {
		t.Fatal(err)
	}

	// Listing, paging, lookup.
	list, err := rj.Rejected(ctx(t), index.RejectedQuery{})
	if err != nil || len(list) != 3 || list[0].SOPInstanceUID != "1.4.61" {
		t.Fatalf("Rejected = %+v, %v", list, err)
	}
	page, err := rj.Rejected(ctx(t), index.RejectedQuery{NoteUID: "1.9.1", Limit: 1})
	if err != nil || len(page) != 1 || page[0].SOPInstanceUID != "1.4.21" {
		t.Fatalf("first page = %+v, %v", page, err)
	}
	page, err = rj.Rejected(ctx(t), index.RejectedQuery{NoteUID: "1.9.1", Limit: 1, Before: page[0].ID})
	if err != nil || len(page) != 1 || page[0].SOPInstanceUID != "1.4.12" || page[0].Patient != hosp("PAT1") || page[0].StudyInstanceUID != "1.2.1" {
		t.Fatalf("second page = %+v, %v", page, err)
	}
	if l, err := rj.Rejected(ctx(t), index.RejectedQuery{StudyInstanceUID: "1.2.4"}); err != nil || len(l) != 1 {
		t.Fatalf("by study = %+v, %v", l, err)
	}
	if rec, err := rj.RejectionOf(ctx(t), "1.4.61"); err != nil || rec.Reason != index.RejectPatientSafety || rec.NoteUID != "1.9.2" || rec.Patient != (index.PatientKey{ID: "PAT1", Issuer: "OTHER"}) {
		t.Fatalf("RejectionOf = %+v, %v", rec, err)
	}
	if _, err := rj.RejectionOf(ctx(t), "1.4.11"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("RejectionOf(not rejected) = %v", err)
	}
	var keys []string
	for k, err := range rj.RejectedBlobKeys(ctx(t), "dicom/") {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if !slices.Equal(keys, []string{"dicom/test/1.4.12", "dicom/test/1.4.21", "dicom/test/1.4.61"}) {
		t.Fatalf("RejectedBlobKeys = %v", keys)
	}

	// A rejected instance is not indexed again by a re-send.
	if err := x.Put(ctx(t), byUID("1.4.12")); !errors.Is(err, index.ErrRejected) {
		t.Fatalf("Put(rejected) = %v", err)
	}
	if _, err := x.Replace(ctx(t), byUID("1.4.12")); !errors.Is(err, index.ErrRejected) {
		t.Fatalf("Replace(rejected) = %v", err)
	}

	// Restore: the record rebuilt from the stored object comes back; with the notes
	// deleted, every answer is what it was.
	if _, err := rj.Restore(ctx(t), []index.Restoration{{SOPInstanceUID: "1.4.12", Instance: byUID("1.4.21")}}, "wrong", c); !errors.Is(err, index.ErrConflict) {
		t.Fatalf("Restore(other record) = %v", err)
	}
	if _, err := rj.Restore(ctx(t), []index.Restoration{{SOPInstanceUID: "1.4.99"}}, "x", c); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("Restore(unknown) = %v", err)
	}
	var rs []index.Restoration
	for _, uid := range []string{"1.4.12", "1.4.21", "1.4.61"} {
		rs = append(rs, index.Restoration{SOPInstanceUID: uid, Instance: byUID(uid)})
	}
	if got, err := rj.Restore(ctx(t), rs, "rejected by mistake", c); err != nil || len(got) != 3 {
		t.Fatalf("Restore = %+v, %v", got, err)
	}
	for uid, w := range want {
		in, err := x.Instance(ctx(t), uid)
		if err != nil {
			t.Fatal(err)
		}
		if in.BlobKey != w.BlobKey || in.Size != w.Size || string(in.Metadata) != string(w.Metadata) || !in.ReceivedAt.Equal(w.ReceivedAt) || in.StudyInstanceUID != w.StudyInstanceUID {
			t.Errorf("restored %s = %+v, want %+v", uid, in, w)
		}
	}
	for _, n := range []string{"1.9.1", "1.9.2"} {
		if _, err := x.DeleteInstance(ctx(t), n); err != nil {
			t.Fatal(err)
		}
	}
	if after := snapshot(t, x); after != before {
		t.Fatalf("after restore:\n%s\nbefore:\n%s", after, before)
	}
	if l, err := rj.Rejected(ctx(t), index.RejectedQuery{}); err != nil || len(l) != 0 {
		t.Fatalf("Rejected after restore = %+v, %v", l, err)
	}

	// Purge: the rejection goes; the caller deletes the blob.
	if _, err := rj.Reject(ctx(t), note(s3, "1.9.3"), index.RejectRetentionExpired, []index.RejectRef{ref(byUID("1.4.41")), ref(byUID("1.4.51"))}, c); err != nil {
		t.Fatal(err)
	}
	if _, err := rj.Purge(ctx(t), []string{"1.4.41", "1.4.11"}, "x", c); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("Purge(one not rejected) = %v", err)
	}
	purged, err := rj.Purge(ctx(t), []string{"1.4.41", "1.4.51"}, "retention", c)
	if err != nil || len(purged) != 2 || purged[0].BlobKey != "dicom/test/1.4.41" {
		t.Fatalf("Purge = %+v, %v", purged, err)
	}
	if l, err := rj.Rejected(ctx(t), index.RejectedQuery{}); err != nil || len(l) != 0 {
		t.Fatalf("Rejected after purge = %+v, %v", l, err)
	}
	if s := snapshot(t, x); strings.Contains(s, "1.4.41") || !strings.Contains(s, "S 1.2.3|PAT2 series=1 inst=1 mods=[KO]") {
		t.Fatalf("after purge:\n%s", s)
	}

	// Events: one per study and operation, in order.
	evs, err := identity(t, x).PatientEvents(ctx(t), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, e := range evs {
		seen = append(seen, fmt.Sprintf("%s %s %s %s %v %s", e.Kind, e.Patient.ID+"|"+e.Patient.Issuer, e.Study, e.Series, e.Instances, e.Reason))
	}
	wantEvents := []string{
		"reject PAT1|HOSP 1.2.1  [1.4.12 1.4.21] 113001",
		"reject PAT1|OTHER 1.2.4 1.3.6 [1.4.61] 113037",
		"restore PAT1|HOSP 1.2.1  [1.4.12 1.4.21] rejected by mistake",
		"restore PAT1|OTHER 1.2.4 1.3.6 [1.4.61] rejected by mistake",
		"reject PAT2|HOSP 1.2.3  [1.4.41 1.4.51] 113039",
		"purge PAT2|HOSP 1.2.3  [1.4.41 1.4.51] retention",
	}
	if !slices.Equal(seen, wantEvents) {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(seen, "\n"), strings.Join(wantEvents, "\n"))
	}
	if evs[0].Source != "test" || evs[0].Actor != "tester" {
		t.Fatalf("event source = %+v", evs[0])
	}
	// After a purge the SOP Instance UID is free again.
	if err := x.Put(ctx(t), byUID("1.4.41")); err != nil {
		t.Fatalf("Put after purge: %v", err)
	}
}

// testRejectCases checks the refusals of Reject (nothing changes) and the rejection of
// an instance not received yet, then its arrival.
func testRejectCases(t *testing.T, x index.Index) {
	rj := rejecter(t, x)
	fixture(t, x)
	c := index.Change{Source: "test"}
	before := snapshot(t, x)
	wrongStudy := ref(byUID("1.4.12"))
	wrongStudy.StudyInstanceUID = "1.2.2"
	for name, tc := range map[string]struct {
		note *index.Instance
		refs []index.RejectRef
	}{
		"instance in another study":   {note(s1, "1.9.1"), []index.RejectRef{ref(byUID("1.4.11")), wrongStudy}},
		"instance of another patient": {note(s1, "1.9.1"), []index.RejectRef{ref(byUID("1.4.11")), ref(byUID("1.4.41"))}},
		"note rejects itself":         {note(s1, "1.9.1"), []index.RejectRef{{StudyInstanceUID: "1.2.1", SeriesInstanceUID: "1.9.1.0", SOPInstanceUID: "1.9.1"}}},
		"series of another study":     {note(s1, "1.9.1"), []index.RejectRef{{StudyInstanceUID: "1.2.1", SeriesInstanceUID: "1.3.3", SOPInstanceUID: "1.4.98"}}},
		"note already indexed":        {byUID("1.4.13"), []index.RejectRef{ref(byUID("1.4.11"))}},
	} {
		_, err := rj.Reject(ctx(t), tc.note, index.RejectQuality, tc.refs, c)
		if name == "note already indexed" {
			if !errors.Is(err, index.ErrExists) {
				t.Errorf("%s: %v", name, err)
			}
		} else if !errors.Is(err, index.ErrConflict) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if s := snapshot(t, x); s != before {
		t.Fatalf("a refused rejection changed the index:\n%s", s)
	}

	// Not received yet: recorded without a blob, the arrival is refused by Put and kept
	// hidden by KeepRejected, then a restore shows it.
	late := Inst(s1, "1.3.1", "CT", ip(1), "1.4.14", ctClass, ip(4))
	got, err := rj.Reject(ctx(t), note(s1, "1.9.1"), index.RejectQuality, []index.RejectRef{ref(late)}, c)
	if err != nil || len(got) != 1 || got[0].BlobKey != "" || got[0].Patient != hosp("PAT1") {
		t.Fatalf("Reject(not received) = %+v, %v", got, err)
	}
	if err := x.Put(ctx(t), late); !errors.Is(err, index.ErrRejected) {
		t.Fatalf("Put(rejected before arrival) = %v", err)
	}
	late.ReceivedAt = late.ReceivedAt.Add(1)
	if ok, err := rj.KeepRejected(ctx(t), late); err != nil || !ok {
		t.Fatalf("KeepRejected = %v, %v", ok, err)
	}
	if ok, err := rj.KeepRejected(ctx(t), late); err != nil || ok {
		t.Fatalf("KeepRejected again = %v, %v", ok, err)
	}
	if rec, err := rj.RejectionOf(ctx(t), "1.4.14"); err != nil || rec.BlobKey != late.BlobKey || rec.Size != late.Size {
		t.Fatalf("RejectionOf(arrived) = %+v, %v", rec, err)
	}
	if _, err := x.Instance(ctx(t), "1.4.14"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("Instance(arrived, rejected) = %v", err)
	}
	if _, err := rj.Restore(ctx(t), []index.Restoration{{SOPInstanceUID: "1.4.14", Instance: Inst(s1, "1.3.1", "CT", ip(1), "1.4.14", ctClass, ip(4))}}, "ok", c); err != nil {
		t.Fatal(err)
	}
	if in, err := x.Instance(ctx(t), "1.4.14"); err != nil || in.BlobKey != late.BlobKey {
		t.Fatalf("Instance(restored) = %+v, %v", in, err)
	}
	// A rejection never received and restored only loses its rejection.
	if _, err := rj.Reject(ctx(t), note(s1, "1.9.2"), index.RejectQuality, []index.RejectRef{{StudyInstanceUID: "1.2.1", SeriesInstanceUID: "1.3.1", SOPInstanceUID: "1.4.15"}}, c); err != nil {
		t.Fatal(err)
	}
	if _, err := rj.Restore(ctx(t), []index.Restoration{{SOPInstanceUID: "1.4.15"}}, "ok", c); err != nil {
		t.Fatal(err)
	}
	if err := x.Put(ctx(t), Inst(s1, "1.3.1", "CT", ip(1), "1.4.15", ctClass, ip(5))); err != nil {
		t.Fatal(err)
	}
}

// testRejectRacingArrival runs a rejection note and the first arrival of the instance it
// names at the same time, many times: whichever commits first, the instance is never
// both served and rejected.
func testRejectRacingArrival(t *testing.T, x index.Index) {
	rj := rejecter(t, x)
	p := pat{"RACE", "HOSP", "Race^Ann", "", ""}
	s := stu{"8.1", "20260101", "", "", "", "", p}
	if err := x.Put(ctx(t), Inst(s, "8.1.1", "CT", ip(1), "8.1.1.0", ctClass, ip(1))); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 30; i++ {
		uid := fmt.Sprintf("8.1.1.%d", i)
		in := Inst(s, "8.1.1", "CT", ip(1), uid, ctClass, ip(i))
		var wg sync.WaitGroup
		var putErr, rejErr error
		wg.Add(2)
		go func() { defer wg.Done(); putErr = x.Put(ctx(t), in) }()
		go func() {
			defer wg.Done()
			_, rejErr = rj.Reject(ctx(t), note(stu{"8.2", "20260101", "", "", "", "", p}, fmt.Sprintf("8.9.%d", i)), index.RejectQuality, []index.RejectRef{ref(in)}, index.Change{Source: "test"})
		}()
		wg.Wait()
		if rejErr != nil {
			t.Fatalf("reject %s: %v", uid, rejErr)
		}
		if putErr != nil && !errors.Is(putErr, index.ErrRejected) {
			t.Fatalf("put %s: %v", uid, putErr)
		}
		_, served := x.Instance(ctx(t), uid)
		if served == nil {
			t.Fatalf("%s is served although a rejection names it (put %v)", uid, putErr)
		}
		if _, err := rj.RejectionOf(ctx(t), uid); err != nil {
			t.Fatalf("%s: rejection lost: %v", uid, err)
		}
	}
}

// testRejectChangeIDRestore: a whole study rejected, then its patient's identifier
// changed (A47), then the study restored: it comes back under the record's new
// identifier, never under a record made again for the retired one.
func testRejectChangeIDRestore(t *testing.T, x index.Index) {
	rj, id := rejecter(t, x), identity(t, x)
	p := pat{"OLDID", "HOSP", "Kept^Name", "19700101", "F"}
	s := stu{"8.5", "20260101", "", "", "", "", p}
	in := Inst(s, "8.5.1", "CT", ip(1), "8.5.1.1", ctClass, ip(1))
	if err := x.Put(ctx(t), in); err != nil {
		t.Fatal(err)
	}
	if _, err := id.UpdatePatient(ctx(t), hosp("OLDID"), index.Demographics{}, index.Change{Source: "test"}); err != nil {
		t.Fatal(err) // the record is the index's now: it stays when its last study goes
	}
	if _, err := rj.Reject(ctx(t), note(stu{"8.6", "20260101", "", "", "", "", p}, "8.9.50"), index.RejectQuality, []index.RejectRef{ref(in)}, index.Change{Source: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := id.ChangePatientID(ctx(t), hosp("OLDID"), hosp("NEWID"), index.Change{Source: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := rj.Restore(ctx(t), []index.Restoration{{SOPInstanceUID: "8.5.1.1", Instance: Inst(s, "8.5.1", "CT", ip(1), "8.5.1.1", ctClass, ip(1))}}, "by mistake", index.Change{Source: "test"}); err != nil {
		t.Fatal(err)
	}
	got, err := x.Instance(ctx(t), "8.5.1.1")
	if err != nil || got.PatientID != "NEWID" || got.PatientName != "Kept^Name" || !got.Corrected {
		t.Fatalf("restored after a change of identifier: %+v %v", got, err)
	}
	// The retired identifier is an alias of the record (as after a merge), not a record
	// of its own made again by the restore.
	if k, merged, err := id.ResolvePatient(ctx(t), hosp("OLDID")); err != nil || !merged || k != hosp("NEWID") {
		t.Fatalf("a record was made again for the retired identifier: %v merged=%v %v", k, merged, err)
	}
}

// testRejectMoveStudyRestore: an instance rejected, then its study moved to another
// patient, then the instance restored: it comes back in the study, under the patient the
// study was moved to.
func testRejectMoveStudyRestore(t *testing.T, x index.Index) {
	rj, id := rejecter(t, x), identity(t, x)
	wrong, right := pat{"WRONG7", "HOSP", "Wrong^Seven", "", ""}, pat{"RIGHT7", "HOSP", "Right^Seven", "", ""}
	putStudies(t, x, right, "8.7", 1)
	s := stu{"8.8", "20260101", "", "", "", "", wrong}
	a, b := Inst(s, "8.8.1", "CT", ip(1), "8.8.1.1", ctClass, ip(1)), Inst(s, "8.8.1", "CT", ip(1), "8.8.1.2", ctClass, ip(2))
	for _, in := range []*index.Instance{a, b} {
		if err := x.Put(ctx(t), in); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rj.Reject(ctx(t), note(s, "8.9.70"), index.RejectQuality, []index.RejectRef{ref(b)}, index.Change{Source: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := id.MoveStudy(ctx(t), "8.8", hosp("RIGHT7"), index.Change{Source: "test", Reason: "wrong patient"}); err != nil {
		t.Fatal(err)
	}
	if _, err := rj.Restore(ctx(t), []index.Restoration{{SOPInstanceUID: "8.8.1.2", Instance: Inst(s, "8.8.1", "CT", ip(1), "8.8.1.2", ctClass, ip(2))}}, "by mistake", index.Change{Source: "test"}); err != nil {
		t.Fatalf("restore after a study move: %v", err)
	}
	got, err := x.Instance(ctx(t), "8.8.1.2")
	if err != nil || got.PatientID != "RIGHT7" || got.StudyInstanceUID != "8.8" || !got.Corrected {
		t.Fatalf("restored after a study move: %+v %v", got, err)
	}
}
