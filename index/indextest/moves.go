package indextest

import (
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
)

// study returns the study record of uid (nil when there is none).
func study(t *testing.T, x index.Index, uid string) *index.Study {
	t.Helper()
	r, err := x.Find(ctx(t), index.Query{Level: index.StudyLevel, Filters: []index.Filter{{Tag: dcm.TagStudyInstanceUID, Value: uid}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Studies) == 0 {
		return nil
	}
	return &r.Studies[0]
}

// studyLine is "patient|series|instances|modalities|classes" of a study record.
func studyLine(s *index.Study) string {
	if s == nil {
		return "none"
	}
	return fmt.Sprintf("%s|%d|%d|%v|%v", s.PatientID, s.NumberOfStudyRelatedSeries, s.NumberOfStudyRelatedInstances, s.ModalitiesInStudy, s.SOPClassesInStudy)
}

// corrected reports the Corrected flag of the active record of k.
func corrected(t *testing.T, x index.Index, k index.PatientKey) bool {
	t.Helper()
	r, err := x.Find(ctx(t), index.Query{Level: index.PatientLevel, Filters: []index.Filter{{Tag: dcm.TagPatientID, Value: k.ID}, {Tag: dcm.TagIssuerOfPatientID, Value: k.Issuer}}})
	if err != nil || len(r.Patients) != 1 {
		t.Fatalf("patient %v: %+v %v", k, r, err)
	}
	return r.Patients[0].Corrected
}

// lastEvent returns the newest patient event.
func lastEvent(t *testing.T, id index.Identity) index.PatientEvent {
	t.Helper()
	evs, err := id.PatientEvents(ctx(t), 0, 0)
	if err != nil || len(evs) == 0 {
		t.Fatalf("events: %v %v", evs, err)
	}
	return evs[len(evs)-1]
}

// testPatientMoveStudy checks MoveStudy: the study and its instances answer the target
// record, both study counts follow, the target is corrected (the source not), the
// record left stays without studies, the event names both records, the study and the
// reason; unknown study or patient, a merged target and a move to the same record are
// refused and change nothing. An object arriving later for the moved study under the
// old key is filed with the study; one naming another patient than a study that was
// never moved from it contradicts the hierarchy (ErrConflict).
func testPatientMoveStudy(t *testing.T, x index.Index) {
	id := identity(t, x)
	c := index.Change{Source: "admin", Actor: "alice", Reason: "wrong patient at the modality"}
	a := pat{"A", "HOSP", "A^A", "", ""}
	putStudies(t, x, a, "5.1", 2)
	putStudies(t, x, pat{"B", "HOSP", "B^B", "", ""}, "5.2", 1)
	putStudies(t, x, pat{"M", "HOSP", "M^M", "", ""}, "5.3", 1)
	if err := id.MergePatients(ctx(t), hosp("B"), hosp("M"), index.Change{}); err != nil {
		t.Fatal(err)
	}
	n := len(kinds(t, id))
	for _, tc := range []struct {
		study string
		to    index.PatientKey
		want  error
	}{
		{"5.9.9", hosp("B"), index.ErrNotFound},
		{"5.1.1", hosp("NOBODY"), index.ErrNotFound},
		{"5.1.1", hosp("M"), index.ErrMerged},
		{"5.1.1", hosp("A"), index.ErrConflict},
	} {
		if err := id.MoveStudy(ctx(t), tc.study, tc.to, c); !errors.Is(err, tc.want) {
			t.Fatalf("move %s to %v: %v, want %v", tc.study, tc.to, err, tc.want)
		}
	}
	if got := kinds(t, id); len(got) != n || corrected(t, x, hosp("A")) {
		t.Fatalf("refused moves changed something: %v", got)
	}
	if err := id.MoveStudy(ctx(t), "5.1.1", hosp("B"), c); err != nil {
		t.Fatal(err)
	}
	if got := studiesOf(t, x, index.StudyLevel, hosp("B")); !slices.Equal(got, []string{"5.1.1", "5.2.1", "5.3.1"}) {
		t.Fatalf("studies of B: %v", got)
	}
	for _, level := range []index.Level{index.StudyLevel, index.SeriesLevel, index.ImageLevel} {
		if got := studiesOf(t, x, level, hosp("A")); !slices.Equal(got, []string{"5.1.2"}) {
			t.Fatalf("%v: studies of A: %v", level, got)
		}
	}
	if got, err := x.Instance(ctx(t), "5.1.1.1.1"); err != nil || got.PatientID != "B" || got.PatientName != "B^B" || !got.Corrected {
		t.Fatalf("moved instance: %+v %v", got, err)
	}
	if got := slices.Sorted(slices.Values(patients(t, x, ""))); !slices.Equal(got, []string{"A|HOSP|A^A|||1", "B|HOSP|B^B|||3"}) {
		t.Fatalf("patients: %v", got)
	}
	if !corrected(t, x, hosp("B")) || corrected(t, x, hosp("A")) {
		t.Fatal("the target must be corrected, the source not")
	}
	e := lastEvent(t, id)
	if e.Kind != index.EventMoveStudy || e.Patient != hosp("B") || e.Other != hosp("A") || e.Study != "5.1.1" || e.Reason != c.Reason || e.Source != "admin" || e.Actor != "alice" {
		t.Fatalf("event: %+v", e)
	}
	// A later object of the study under the old key (the modality still has the wrong
	// patient) is filed with the study, under B, and served corrected.
	late := Inst(stu{"5.1.1", "20260101", "", "", "", "", a}, "5.1.1.1", "CT", ip(1), "5.1.1.1.9", ctClass, ip(9))
	if err := x.Put(ctx(t), late); err != nil {
		t.Fatalf("late object under the old key: %v", err)
	}
	if got, err := x.Instance(ctx(t), "5.1.1.1.9"); err != nil || got.PatientID != "B" || !got.Corrected {
		t.Fatalf("late object: %+v %v", got, err)
	}
	// The last study leaves A: A stays, with no study, and the study can move back.
	if err := id.MoveStudy(ctx(t), "5.1.2", hosp("B"), c); err != nil {
		t.Fatal(err)
	}
	if got := patients(t, x, "A"); !slices.Equal(got, []string{"A|HOSP|A^A|||0"}) {
		t.Fatalf("A after its last study left: %v", got)
	}
	if err := id.MoveStudy(ctx(t), "5.1.2", hosp("A"), c); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(slices.Values(patients(t, x, ""))); !slices.Equal(got, []string{"A|HOSP|A^A|||1", "B|HOSP|B^B|||3"}) {
		t.Fatalf("patients after the move back: %v", got)
	}
	// A study that came with a merge and was moved does not go back with an unmerge.
	if err := id.MoveStudy(ctx(t), "5.3.1", hosp("A"), c); err != nil {
		t.Fatal(err)
	}
	if err := id.UnmergePatient(ctx(t), hosp("M"), c); !errors.Is(err, index.ErrConflict) {
		t.Fatalf("unmerge after a move: %v", err)
	}
	// A study of B never moved from A still refuses an object naming A.
	other := Inst(stu{"5.8.1", "20260101", "", "", "", "", pat{"B", "HOSP", "B^B", "", ""}}, "5.8.1.1", "CT", ip(1), "5.8.1.1.1", ctClass, ip(1))
	if err := x.Put(ctx(t), other); err != nil {
		t.Fatal(err)
	}
	stray := Inst(stu{"5.8.1", "20260101", "", "", "", "", a}, "5.8.1.1", "CT", ip(1), "5.8.1.1.2", ctClass, ip(2))
	if err := x.Put(ctx(t), stray); !errors.Is(err, index.ErrConflict) {
		t.Fatalf("an object naming another patient than its study's: %v", err)
	}
}

// testPatientMoveSeries checks MoveSeries: the series and its instances answer the
// target study and its record, both studies' counts, modalities and SOP classes are
// recomputed, a study left without series goes (its record stays), the target record
// is corrected, and the event names both studies and records.
func testPatientMoveSeries(t *testing.T, x index.Index) {
	id := identity(t, x)
	c := index.Change{Source: "admin", Actor: "bob", Reason: "series of another examination"}
	a := stu{"6.1", "20260101", "", "", "", "", pat{"A", "HOSP", "A^A", "", ""}}
	b := stu{"6.2", "20260102", "", "", "", "", pat{"B", "HOSP", "B^B", "", ""}}
	for _, in := range []*index.Instance{
		Inst(a, "6.1.1", "CT", ip(1), "6.1.1.1", ctClass, ip(1)),
		Inst(a, "6.1.1", "CT", ip(1), "6.1.1.2", ctClass, ip(2)),
		Inst(a, "6.1.2", "SR", ip(2), "6.1.2.1", srClass, ip(1)),
		Inst(b, "6.2.1", "MR", ip(1), "6.2.1.1", mrClass, ip(1)),
	} {
		if err := x.Put(ctx(t), in); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		series, study string
		want          error
	}{
		{"6.9.9", "6.2", index.ErrNotFound},
		{"6.1.2", "6.9", index.ErrNotFound},
		{"6.1.2", "6.1", index.ErrConflict},
	} {
		if err := id.MoveSeries(ctx(t), tc.series, tc.study, c); !errors.Is(err, tc.want) {
			t.Fatalf("move %s to %s: %v, want %v", tc.series, tc.study, err, tc.want)
		}
	}
	if got := kinds(t, id); len(got) != 0 {
		t.Fatalf("refused moves made events: %v", got)
	}
	if err := id.MoveSeries(ctx(t), "6.1.2", "6.2", c); err != nil {
		t.Fatal(err)
	}
	if got := studyLine(study(t, x, "6.1")); got != "A|1|2|[CT]|["+ctClass+"]" {
		t.Fatalf("source study: %s", got)
	}
	if got := studyLine(study(t, x, "6.2")); got != "B|2|2|[MR SR]|["+mrClass+" "+srClass+"]" {
		t.Fatalf("target study: %s", got)
	}
	if got, err := x.Instance(ctx(t), "6.1.2.1"); err != nil || got.StudyInstanceUID != "6.2" || got.PatientID != "B" || !got.Corrected {
		t.Fatalf("moved instance: %+v %v", got, err)
	}
	r, err := x.Find(ctx(t), index.Query{Level: index.SeriesLevel, Filters: []index.Filter{{Tag: dcm.TagStudyInstanceUID, Value: "6.2"}}})
	if err != nil || len(r.Series) != 2 {
		t.Fatalf("series of 6.2: %+v %v", r, err)
	}
	e := lastEvent(t, id)
	if e.Kind != index.EventMoveSeries || e.Patient != hosp("B") || e.Other != hosp("A") || e.Study != "6.2" || e.FromStudy != "6.1" || e.Series != "6.1.2" || e.Reason != c.Reason {
		t.Fatalf("event: %+v", e)
	}
	if !corrected(t, x, hosp("B")) || corrected(t, x, hosp("A")) {
		t.Fatal("the target record must be corrected, the source not")
	}
	// The last series leaves 6.1: the study goes, A stays without studies.
	if err := id.MoveSeries(ctx(t), "6.1.1", "6.2", c); err != nil {
		t.Fatal(err)
	}
	if s := study(t, x, "6.1"); s != nil {
		t.Fatalf("emptied study still there: %s", studyLine(s))
	}
	if got := studyLine(study(t, x, "6.2")); got != "B|3|4|[CT MR SR]|["+ctClass+" "+mrClass+" "+srClass+"]" {
		t.Fatalf("target study: %s", got)
	}
	if got := slices.Sorted(slices.Values(patients(t, x, ""))); !slices.Equal(got, []string{"A|HOSP|A^A|||0", "B|HOSP|B^B|||1"}) {
		t.Fatalf("patients: %v", got)
	}
	cnt, err := x.Counts(ctx(t))
	if err != nil || cnt.Studies != 1 || cnt.Series != 3 || cnt.Instances != 4 {
		t.Fatalf("counts: %+v %v", cnt, err)
	}
	// New objects of the moved series are filed in its new study when they say so.
	more := Inst(b, "6.1.1", "CT", ip(1), "6.1.1.3", ctClass, ip(3))
	if err := x.Put(ctx(t), more); err != nil {
		t.Fatal(err)
	}
	if got := studyLine(study(t, x, "6.2")); got != "B|3|5|[CT MR SR]|["+ctClass+" "+mrClass+" "+srClass+"]" {
		t.Fatalf("after a new object: %s", got)
	}
	// ... and when the modality still names the old study and patient (the study went
	// with the move): filed with the series, no study made for the old UID.
	late := Inst(a, "6.1.1", "CT", ip(1), "6.1.1.4", ctClass, ip(4))
	if err := x.Put(ctx(t), late); err != nil {
		t.Fatalf("late object of a moved series: %v", err)
	}
	if got, err := x.Instance(ctx(t), "6.1.1.4"); err != nil || got.StudyInstanceUID != "6.2" || got.PatientID != "B" || !got.Corrected {
		t.Fatalf("late object: %+v %v", got, err)
	}
	if s := study(t, x, "6.1"); s != nil {
		t.Fatalf("a study was made for the old UID: %s", studyLine(s))
	}
	if got := studyLine(study(t, x, "6.2")); got != "B|3|6|[CT MR SR]|["+ctClass+" "+mrClass+" "+srClass+"]" {
		t.Fatalf("after a late object: %s", got)
	}
	if got := slices.Sorted(slices.Values(patients(t, x, ""))); !slices.Equal(got, []string{"A|HOSP|A^A|||0", "B|HOSP|B^B|||1"}) {
		t.Fatalf("patients after a late object: %v", got)
	}
	// A series never moved from the study an object names is still a conflict.
	stray := Inst(a, "6.2.1", "MR", ip(1), "6.2.1.9", mrClass, ip(9))
	if err := x.Put(ctx(t), stray); !errors.Is(err, index.ErrConflict) {
		t.Fatalf("an object naming another study than its series': %v", err)
	}
}

// testPatientUnmerge checks UnmergePatient on the merge of testPatientMerge (OLD1 into
// TEMP1, then TEMP1 into REAL1): TEMP1 is active again with the studies that came with
// the merge, those that arrived later under its key or OLD1's, and OLD1 points at it
// again; REAL1 keeps its own studies, those that arrived under its key and its
// demographic update. Then OLD1's merge can be undone too. Refused: an unknown record,
// one not merged, one whose survivor was merged since, and a merge a later change
// depends on.
func testPatientUnmerge(t *testing.T, x index.Index) {
	id := identity(t, x)
	c := index.Change{Source: "admin", Actor: "carol", Reason: "merged the wrong twin"}
	temp := pat{"TEMP1", "HOSP", "Unknown^ED", "", "M"}
	real := pat{"REAL1", "HOSP", "Doe^John", "19600101", "M"}
	old := pat{"OLD1", "HOSP", "Unknown^X", "", ""}
	tempStudies := putStudies(t, x, temp, "4.1", 3)
	putStudies(t, x, real, "4.2", 1)
	oldStudies := putStudies(t, x, old, "4.3", 1)
	if err := id.MergePatients(ctx(t), hosp("TEMP1"), hosp("OLD1"), c); err != nil {
		t.Fatal(err)
	}
	if err := id.MergePatients(ctx(t), hosp("REAL1"), hosp("TEMP1"), c); err != nil {
		t.Fatal(err)
	}
	// OLD1 was merged into TEMP1, which is merged since: TEMP1's merge comes first.
	if err := id.UnmergePatient(ctx(t), hosp("OLD1"), c); !errors.Is(err, index.ErrConflict) {
		t.Fatalf("unmerge of OLD1 first: %v", err)
	}
	// Later: objects under each key, and a demographic update of the survivor.
	lateTemp := putStudies(t, x, temp, "4.4", 1)
	lateOld := putStudies(t, x, old, "4.5", 1)
	lateReal := putStudies(t, x, real, "4.6", 1)
	if _, err := id.UpdatePatient(ctx(t), hosp("REAL1"), index.Demographics{Name: str("Doe^Johnny")}, c); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		k    string
		want error
	}{{"NOBODY", index.ErrNotFound}, {"REAL1", index.ErrConflict}} {
		if err := id.UnmergePatient(ctx(t), hosp(tc.k), c); !errors.Is(err, tc.want) {
			t.Fatalf("unmerge %s: %v, want %v", tc.k, err, tc.want)
		}
	}
	if err := id.UnmergePatient(ctx(t), hosp("TEMP1"), c); err != nil {
		t.Fatal(err)
	}
	wantTemp := slices.Sorted(slices.Values(slices.Concat(tempStudies, oldStudies, lateTemp, lateOld)))
	for _, level := range []index.Level{index.StudyLevel, index.SeriesLevel, index.ImageLevel} {
		if got := studiesOf(t, x, level, hosp("TEMP1")); !slices.Equal(got, wantTemp) {
			t.Fatalf("%v: TEMP1 shows %v, want %v", level, got, wantTemp)
		}
		if got := studiesOf(t, x, level, hosp("REAL1")); !slices.Equal(got, []string{"4.2.1", lateReal[0]}) {
			t.Fatalf("%v: REAL1 shows %v", level, got)
		}
	}
	if got := slices.Sorted(slices.Values(patients(t, x, ""))); !slices.Equal(got, []string{"REAL1|HOSP|Doe^Johnny|19600101|M|2", "TEMP1|HOSP|Unknown^ED||M|6"}) {
		t.Fatalf("patients: %v", got)
	}
	if got, merged, err := id.ResolvePatient(ctx(t), hosp("OLD1")); err != nil || !merged || got != hosp("TEMP1") {
		t.Fatalf("OLD1 resolves to %v %v %v", got, merged, err)
	}
	if got, merged, err := id.ResolvePatient(ctx(t), hosp("TEMP1")); err != nil || merged || got != hosp("TEMP1") {
		t.Fatalf("TEMP1 resolves to %v %v %v", got, merged, err)
	}
	if !corrected(t, x, hosp("TEMP1")) || !corrected(t, x, hosp("REAL1")) {
		t.Fatal("both records must be corrected")
	}
	if got, err := x.Instance(ctx(t), "4.1.1.1.1"); err != nil || got.PatientID != "TEMP1" || got.PatientName != "Unknown^ED" {
		t.Fatalf("instance after the unmerge: %+v %v", got, err)
	}
	e := lastEvent(t, id)
	if e.Kind != index.EventUnmerge || e.Patient != hosp("REAL1") || e.Other != hosp("TEMP1") || e.Reason != c.Reason || e.Actor != "carol" {
		t.Fatalf("event: %+v", e)
	}
	// Objects under OLD1 are filed under TEMP1 again.
	lateOld2 := putStudies(t, x, old, "4.7", 1)
	if got, err := x.Instance(ctx(t), lateOld2[0]+".1.1"); err != nil || got.PatientID != "TEMP1" {
		t.Fatalf("object under OLD1: %+v %v", got, err)
	}
	// The merge of OLD1 into TEMP1 is undoable: the merge after it was undone.
	if err := id.UnmergePatient(ctx(t), hosp("OLD1"), c); err != nil {
		t.Fatal(err)
	}
	wantOld := slices.Sorted(slices.Values(slices.Concat(oldStudies, lateOld, lateOld2)))
	if got := studiesOf(t, x, index.StudyLevel, hosp("OLD1")); !slices.Equal(got, wantOld) {
		t.Fatalf("OLD1 shows %v, want %v", got, wantOld)
	}
	if got := patients(t, x, "OLD1"); !slices.Equal(got, []string{"OLD1|HOSP|Unknown^X|||3"}) {
		t.Fatalf("OLD1: %v", got)
	}
	// Merge again and change something after it: the merge cannot be undone any more.
	if err := id.MergePatients(ctx(t), hosp("REAL1"), hosp("TEMP1"), c); err != nil {
		t.Fatal(err)
	}
	if err := id.MoveStudy(ctx(t), lateReal[0], hosp("OLD1"), c); err != nil {
		t.Fatal(err)
	}
	n := len(kinds(t, id))
	if err := id.UnmergePatient(ctx(t), hosp("TEMP1"), c); !errors.Is(err, index.ErrConflict) {
		t.Fatalf("unmerge after a move: %v", err)
	}
	if got := kinds(t, id); len(got) != n {
		t.Fatalf("a refused unmerge made an event: %v", got)
	}
	// A survivor merged since: REAL1 into OLD1 re-points TEMP1 to OLD1.
	if err := id.MergePatients(ctx(t), hosp("OLD1"), hosp("REAL1"), c); err != nil {
		t.Fatal(err)
	}
	if err := id.UnmergePatient(ctx(t), hosp("TEMP1"), c); !errors.Is(err, index.ErrConflict) {
		t.Fatalf("unmerge of a record whose survivor was merged since: %v", err)
	}
	// Undoing the last merge restores REAL1 and TEMP1 under it.
	if err := id.UnmergePatient(ctx(t), hosp("REAL1"), c); err != nil {
		t.Fatal(err)
	}
	if got, merged, err := id.ResolvePatient(ctx(t), hosp("TEMP1")); err != nil || !merged || got != hosp("REAL1") {
		t.Fatalf("TEMP1 resolves to %v %v %v", got, merged, err)
	}
	all, _ := x.Counts(ctx(t))
	if got := len(studiesOf(t, x, index.StudyLevel, hosp("REAL1"))) + len(studiesOf(t, x, index.StudyLevel, hosp("OLD1"))); int64(got) != all.Studies {
		t.Fatalf("%d studies under REAL1 and OLD1, %d in all", got, all.Studies)
	}
}

// testPatientMergeConcurrentPut runs Puts of new studies under a key while that key's
// record is merged into another: every study ends under the survivor (none under the
// merged-away record), the counts agree, and undoing the merge takes every one of them
// back (merged_from recorded by the merge or by ingest). On PostgreSQL this needs the
// row locks of Dialect.ForKeyShare/ForUpdate.
func testPatientMergeConcurrentPut(t *testing.T, x index.Index) {
	id := identity(t, x)
	temp := pat{"TEMP1", "HOSP", "Unknown^ED", "", ""}
	putStudies(t, x, pat{"REAL1", "HOSP", "Doe^John", "", ""}, "3.1", 1)
	putStudies(t, x, temp, "3.2", 1)
	const writers, each = 6, 25
	var wg sync.WaitGroup
	started := make(chan struct{}, writers*each)
	errs := make(chan error, writers*each+1)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				uid := fmt.Sprintf("3.3.%d.%d", w, i)
				if err := x.Put(ctx(t), Inst(stu{uid, "20260101", "", "", "", "", temp}, uid+".1", "CT", ip(1), uid+".1.1", ctClass, ip(1))); err != nil {
					errs <- err
				}
				started <- struct{}{}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range writers * each / 3 {
			<-started
		}
		if err := id.MergePatients(ctx(t), hosp("REAL1"), hosp("TEMP1"), index.Change{Source: "test"}); err != nil {
			errs <- err
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := 2 + writers*each
	if got := studiesOf(t, x, index.StudyLevel, hosp("REAL1")); len(got) != total {
		t.Fatalf("%d studies under the survivor, want %d", len(got), total)
	}
	if got := studiesOf(t, x, index.ImageLevel, hosp("TEMP1")); len(got) != 0 {
		t.Fatalf("studies under the merged record: %v", got)
	}
	if got := slices.Sorted(slices.Values(patients(t, x, ""))); !slices.Equal(got, []string{fmt.Sprintf("REAL1|HOSP|Doe^John|||%d", total)}) {
		t.Fatalf("patients: %v", got)
	}
	if err := id.UnmergePatient(ctx(t), hosp("TEMP1"), index.Change{Source: "test"}); err != nil {
		t.Fatal(err)
	}
	if got := studiesOf(t, x, index.StudyLevel, hosp("TEMP1")); len(got) != total-1 {
		t.Fatalf("%d studies back under TEMP1, want %d", len(got), total-1)
	}
}

// testPatientUnmergeOld checks that a merge recorded before studies.merged_from was kept
// (migration 0008: its event does not say it can be undone) is not undone: the restored
// record would lack the studies that came with the merge.
func testPatientUnmergeOld(t *testing.T, x index.Index) {
	id := identity(t, x)
	putStudies(t, x, pat{"A", "HOSP", "", "", ""}, "2.1", 1)
	putStudies(t, x, pat{"B", "HOSP", "", "", ""}, "2.2", 1)
	if err := id.MergePatients(ctx(t), hosp("A"), hosp("B"), index.Change{}); err != nil {
		t.Fatal(err)
	}
	db, ok := x.(interface{ SQL() *sql.DB })
	if !ok {
		t.Skip("the index is not an SQL database")
	}
	if _, err := db.SQL().ExecContext(ctx(t), `UPDATE patient_events SET detail = '{"patient":{"id":"A","issuer":"HOSP"},"other":{"id":"B","issuer":"HOSP"}}' WHERE kind = 'merge'`); err != nil {
		t.Fatal(err)
	}
	if err := id.UnmergePatient(ctx(t), hosp("B"), index.Change{}); !errors.Is(err, index.ErrConflict) {
		t.Fatalf("unmerge of a merge recorded before 0008: %v", err)
	}
	if got := studiesOf(t, x, index.StudyLevel, hosp("A")); len(got) != 2 {
		t.Fatalf("studies of A: %v", got)
	}
}

// testMoveRejectRestore: a series moved to another patient's study, then one of its
// instances rejected and restored (the restore reads the instance from its stored
// object, whose header still names the old study and patient): it comes back in the
// study and under the patient it was moved to, served corrected.
func testMoveRejectRestore(t *testing.T, x index.Index) {
	id := identity(t, x)
	rj := rejecter(t, x)
	c := index.Change{Source: "admin", Actor: "alice", Reason: "wrong patient"}
	wrong, right := pat{"W", "HOSP", "Wrong^One", "", ""}, pat{"R", "HOSP", "Right^One", "", ""}
	putStudies(t, x, right, "6.2", 1)
	ws := stu{"6.1.1", "20260101", "", "", "", "", wrong}
	for i, sop := range []string{"6.1.1.2.1", "6.1.1.2.2"} {
		if err := x.Put(ctx(t), Inst(ws, "6.1.1.2", "MR", ip(2), sop, ctClass, ip(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.Put(ctx(t), Inst(ws, "6.1.1.1", "CT", ip(1), "6.1.1.1.1", ctClass, ip(1))); err != nil {
		t.Fatal(err)
	}
	if err := id.MoveSeries(ctx(t), "6.1.1.2", "6.2.1", c); err != nil {
		t.Fatal(err)
	}
	stored := Inst(ws, "6.1.1.2", "MR", ip(2), "6.1.1.2.1", ctClass, ip(1)) // as its header reads
	moved, err := x.Instance(ctx(t), "6.1.1.2.1")
	if err != nil {
		t.Fatal(err)
	}
	stored.BlobKey = moved.BlobKey
	before := snapshot(t, x)
	if _, err := rj.Reject(ctx(t), note(stu{"6.2.1", "20260101", "", "", "", "", right}, "6.9.1"), index.RejectQuality, []index.RejectRef{{StudyInstanceUID: "6.2.1", SeriesInstanceUID: "6.1.1.2", SOPInstanceUID: "6.1.1.2.1", SOPClassUID: ctClass}}, c); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Instance(ctx(t), "6.1.1.2.1"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("rejected instance: %v", err)
	}
	if _, err := rj.Restore(ctx(t), []index.Restoration{{SOPInstanceUID: "6.1.1.2.1", Instance: stored}}, "rejected by mistake", c); err != nil {
		t.Fatalf("restore of an instance of a moved series: %v", err)
	}
	got, err := x.Instance(ctx(t), "6.1.1.2.1")
	if err != nil || got.StudyInstanceUID != "6.2.1" || got.PatientID != "R" || got.PatientName != "Right^One" || !got.Corrected {
		t.Fatalf("restored instance: %+v %v", got, err)
	}
	// Back as before the rejection, but for the note, which stays stored.
	after := snapshot(t, x)
	for _, line := range strings.Split(before, "\n") {
		if strings.HasPrefix(line, "I ") || strings.HasPrefix(line, "E ") {
			if !strings.Contains(after, line[:strings.Index(line, "|")+1]) {
				t.Errorf("after the restore, %q is missing:\n%s", line, after)
			}
		}
	}
	if r, _ := x.Find(ctx(t), index.Query{Level: index.StudyLevel, Filters: filters(t, map[string]string{"StudyInstanceUID": "6.1.1"})}); len(r.Studies) != 1 || r.Studies[0].PatientID != "W" || r.Studies[0].NumberOfStudyRelatedInstances != 1 {
		t.Fatalf("the study the series left: %+v", r.Studies)
	}
}
