package indextest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
)

func identity(t *testing.T, x index.Index) index.Identity {
	t.Helper()
	id, ok := x.(index.Identity)
	if !ok {
		t.Fatal("the index does not implement index.Identity")
	}
	return id
}

func str(s string) *string { return &s }

// patients returns "ID|Issuer|Name|BirthDate|Sex|NumStudies" of every patient-level
// record matching PatientID id ("" for all).
func patients(t *testing.T, x index.Index, id string) []string {
	t.Helper()
	q := index.Query{Level: index.PatientLevel}
	if id != "" {
		q.Filters = []index.Filter{{Tag: dcm.TagPatientID, Value: id}}
	}
	r, err := x.Find(ctx(t), q)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range r.Patients {
		out = append(out, fmt.Sprintf("%s|%s|%s|%s|%s|%d", p.PatientID, p.IssuerOfPatientID, p.PatientName, p.PatientBirthDate, p.PatientSex, p.NumberOfPatientRelatedStudies))
	}
	return out
}

// studiesOf returns the StudyInstanceUIDs found at level by PatientID and issuer.
func studiesOf(t *testing.T, x index.Index, level index.Level, k index.PatientKey) []string {
	t.Helper()
	r, err := x.Find(ctx(t), index.Query{Level: level, Filters: []index.Filter{{Tag: dcm.TagPatientID, Value: k.ID}, {Tag: dcm.TagIssuerOfPatientID, Value: k.Issuer}}})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	add := func(s *index.Study) {
		if s.PatientID != k.ID || s.IssuerOfPatientID != k.Issuer {
			t.Fatalf("%s found by %v answers patient %s|%s", s.StudyInstanceUID, k, s.PatientID, s.IssuerOfPatientID)
		}
		if !slices.Contains(out, s.StudyInstanceUID) {
			out = append(out, s.StudyInstanceUID)
		}
	}
	for i := range r.Studies {
		add(&r.Studies[i])
	}
	for i := range r.Series {
		add(&r.Series[i].Study)
	}
	for i := range r.Instances {
		add(&r.Instances[i].Study)
	}
	slices.Sort(out)
	return out
}

func kinds(t *testing.T, id index.Identity) []string {
	t.Helper()
	evs, err := id.PatientEvents(ctx(t), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}

func hosp(id string) index.PatientKey { return index.PatientKey{ID: id, Issuer: "HOSP"} }

// testPatientUpdate checks UpdatePatient: an unknown key is created, an update sets the
// fields given and only those, a pointer to "" deletes a value, the derived name
// columns follow (matching by name), and each change is one event naming the fields.
func testPatientUpdate(t *testing.T, x index.Index) {
	id := identity(t, x)
	c := index.Change{Source: "hl7", Actor: "HIS|ADT"}
	created, err := id.UpdatePatient(ctx(t), hosp("NEW1"), index.Demographics{Name: str("Doe^John"), BirthDate: str("19600101")}, c)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	if got := patients(t, x, "NEW1"); !slices.Equal(got, []string{"NEW1|HOSP|Doe^John|19600101||0"}) {
		t.Fatalf("created: %v", got)
	}
	// Ingest finds the record and files its study under it.
	in := Inst(stu{"9.1", "20260101", "", "", "", "", pat{"NEW1", "HOSP", "Other^Name", "", "F"}}, "9.1.1", "CT", ip(1), "9.1.1.1", ctClass, ip(1))
	if err := x.Put(ctx(t), in); err != nil {
		t.Fatal(err)
	}
	created, err = id.UpdatePatient(ctx(t), hosp("NEW1"), index.Demographics{Name: str("Müller^Jürgen"), Sex: str("M")}, c)
	if err != nil || created {
		t.Fatalf("update: %v %v", created, err)
	}
	if got := patients(t, x, "NEW1"); !slices.Equal(got, []string{"NEW1|HOSP|Müller^Jürgen|19600101|M|1"}) {
		t.Fatalf("updated: %v", got)
	}
	// The corrected name is what matching sees, case-insensitively and fuzzily.
	for _, fuzzy := range []bool{false, true} {
		v := "müller^jürgen"
		if fuzzy {
			v = "jurg"
		}
		r, err := x.Find(ctx(t), index.Query{Level: index.StudyLevel, Fuzzy: fuzzy, Filters: []index.Filter{{Tag: dcm.TagPatientName, Value: v}}})
		if err != nil || len(r.Studies) != 1 || r.Studies[0].PatientName != "Müller^Jürgen" {
			t.Fatalf("find by corrected name (fuzzy %v): %+v %v", fuzzy, r, err)
		}
	}
	// "" deletes; nil keeps.
	if _, err := id.UpdatePatient(ctx(t), hosp("NEW1"), index.Demographics{BirthDate: str("")}, c); err != nil {
		t.Fatal(err)
	}
	if got := patients(t, x, "NEW1"); !slices.Equal(got, []string{"NEW1|HOSP|Müller^Jürgen||M|1"}) {
		t.Fatalf("deleted birth date: %v", got)
	}
	// An existing record made by ingest is updated, not duplicated.
	fixture(t, x)
	if created, err := id.UpdatePatient(ctx(t), hosp("PAT2"), index.Demographics{Name: str("Smith^Jon")}, c); err != nil || created {
		t.Fatalf("update of an ingested patient: %v %v", created, err)
	}
	if got := patients(t, x, "PAT2"); !slices.Equal(got, []string{"PAT2|HOSP|Smith^Jon|19800202|M|1"}) {
		t.Fatalf("updated ingested patient: %v", got)
	}
	evs, err := id.PatientEvents(ctx(t), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"create NEW1 [name birth_date]", "update NEW1 [name sex]", "update NEW1 [birth_date]", "update PAT2 [name]"}
	if len(evs) != len(want) {
		t.Fatalf("%d events, want %d: %+v", len(evs), len(want), evs)
	}
	for i, e := range evs {
		if got := fmt.Sprintf("%s %s %v", e.Kind, e.Patient.ID, e.Fields); got != want[i] || e.Patient.Issuer != "HOSP" || e.Source != "hl7" || e.Actor != "HIS|ADT" || e.At.IsZero() {
			t.Fatalf("event %d: %+v, want %s", i, e, want[i])
		}
		if i > 0 && e.ID <= evs[i-1].ID {
			t.Fatalf("event ids out of order: %+v", evs)
		}
	}
	if rest, err := id.PatientEvents(ctx(t), evs[1].ID, 1); err != nil || len(rest) != 1 || rest[0].ID != evs[2].ID {
		t.Fatalf("events after %d: %+v %v", evs[1].ID, rest, err)
	}
	// A patient record the index owns stays when its last study goes.
	if _, err := x.DeleteInstance(ctx(t), "9.1.1.1"); err != nil {
		t.Fatal(err)
	}
	if got := patients(t, x, "NEW1"); !slices.Equal(got, []string{"NEW1|HOSP|Müller^Jürgen||M|0"}) {
		t.Fatalf("after its last study went: %v", got)
	}
}

// putStudies indexes n studies of one instance each for patient p.
func putStudies(t *testing.T, x index.Index, p pat, prefix string, n int) []string {
	t.Helper()
	var uids []string
	for i := range n {
		uid := fmt.Sprintf("%s.%d", prefix, i+1)
		in := Inst(stu{uid, fmt.Sprintf("202601%02d", i+1), "", "", "", "", p}, uid+".1", "CT", ip(1), uid+".1.1", ctClass, ip(1))
		if err := x.Put(ctx(t), in); err != nil {
			t.Fatal(err)
		}
		uids = append(uids, uid)
	}
	return uids
}

// testPatientMerge checks MergePatients of a patient with 3 studies into one with 1:
// the survivor shows all 4 at every level, the merged key shows none and is hidden from
// patient-level queries, ResolvePatient follows the link, a later Put under the old key
// files under the survivor (into the same study when it exists), a replay changes
// nothing, and records merged into the merged one earlier are re-pointed (no chains).
func testPatientMerge(t *testing.T, x index.Index) {
	id := identity(t, x)
	c := index.Change{Source: "hl7"}
	temp := pat{"TEMP1", "HOSP", "Unknown^ED", "", "M"}
	real := pat{"REAL1", "HOSP", "Doe^John", "19600101", "M"}
	tempStudies := putStudies(t, x, temp, "7.1", 3)
	realStudies := putStudies(t, x, real, "7.2", 1)
	// An earlier merge into TEMP1: OLD1 (one study) goes to TEMP1.
	oldStudies := putStudies(t, x, pat{"OLD1", "HOSP", "Unknown^X", "", ""}, "7.3", 1)
	if err := id.MergePatients(ctx(t), hosp("TEMP1"), hosp("OLD1"), c); err != nil {
		t.Fatal(err)
	}
	if got := studiesOf(t, x, index.StudyLevel, hosp("TEMP1")); len(got) != 4 {
		t.Fatalf("TEMP1 after the first merge: %v", got)
	}
	before, _ := x.Counts(ctx(t))
	if err := id.MergePatients(ctx(t), hosp("REAL1"), hosp("TEMP1"), c); err != nil {
		t.Fatal(err)
	}
	all := slices.Sorted(slices.Values(slices.Concat(tempStudies, realStudies, oldStudies)))
	for _, level := range []index.Level{index.StudyLevel, index.SeriesLevel, index.ImageLevel} {
		if got := studiesOf(t, x, level, hosp("REAL1")); !slices.Equal(got, all) {
			t.Fatalf("%v: survivor shows %v, want %v", level, got, all)
		}
		for _, gone := range []string{"TEMP1", "OLD1"} {
			if got := studiesOf(t, x, level, hosp(gone)); len(got) != 0 {
				t.Fatalf("%v: merged %s shows %v", level, gone, got)
			}
		}
	}
	if got := patients(t, x, ""); !slices.Equal(got, []string{"REAL1|HOSP|Doe^John|19600101|M|5"}) {
		t.Fatalf("patients after the merge: %v", got)
	}
	if got := patients(t, x, "TEMP1"); len(got) != 0 {
		t.Fatalf("the merged record is found: %v", got)
	}
	r, err := x.Find(ctx(t), index.Query{Level: index.PatientLevel, Total: true, CountOnly: true})
	if err != nil || r.Total != 1 {
		t.Fatalf("patient total: %+v %v", r, err)
	}
	after, _ := x.Counts(ctx(t))
	if before.Patients != 2 || after.Patients != 1 || after.Studies != before.Studies || after.Instances != before.Instances {
		t.Fatalf("counts %+v then %+v", before, after)
	}
	// No chains: both merged records resolve to REAL1 in one step.
	for _, k := range []string{"TEMP1", "OLD1"} {
		if got, merged, err := id.ResolvePatient(ctx(t), hosp(k)); err != nil || !merged || got != hosp("REAL1") {
			t.Fatalf("resolve %s: %v %v %v", k, got, merged, err)
		}
	}
	if got, merged, err := id.ResolvePatient(ctx(t), hosp("REAL1")); err != nil || merged || got != hosp("REAL1") {
		t.Fatalf("resolve REAL1: %v %v %v", got, merged, err)
	}
	if _, _, err := id.ResolvePatient(ctx(t), hosp("NOBODY")); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("resolve unknown: %v", err)
	}
	// A scope of the old key sees nothing; the survivor's scope sees everything.
	oldScope := index.WithScope(ctx(t), index.Scope{Patient: &index.PatientKey{ID: "TEMP1", Issuer: "HOSP"}})
	if r, err := x.Find(oldScope, index.Query{Level: index.StudyLevel}); err != nil || len(r.Studies) != 0 {
		t.Fatalf("old key's scope: %+v %v", r, err)
	}
	// Later objects under the old keys file under the survivor: a new study, and a new
	// instance of a study that was moved.
	late := Inst(stu{"7.1.9", "20260301", "", "", "", "", temp}, "7.1.9.1", "CT", ip(1), "7.1.9.1.1", ctClass, ip(1))
	again := Inst(stu{"7.3.1", "20260101", "", "", "", "", pat{"OLD1", "HOSP", "Unknown^X", "", ""}}, "7.3.1.1", "CT", ip(1), "7.3.1.1.2", ctClass, ip(2))
	for _, in := range []*index.Instance{late, again} {
		if err := x.Put(ctx(t), in); err != nil {
			t.Fatalf("Put %s under a merged key: %v", in.SOPInstanceUID, err)
		}
		got, err := x.Instance(ctx(t), in.SOPInstanceUID)
		if err != nil || got.PatientID != "REAL1" || got.PatientName != "Doe^John" {
			t.Fatalf("%s filed under %+v, %v", in.SOPInstanceUID, got, err)
		}
	}
	if got := patients(t, x, ""); !slices.Equal(got, []string{"REAL1|HOSP|Doe^John|19600101|M|6"}) {
		t.Fatalf("patients after late objects: %v", got)
	}
	// A replay is nothing to do; an update of a merged-away record is refused.
	n := len(kinds(t, id))
	if err := id.MergePatients(ctx(t), hosp("REAL1"), hosp("TEMP1"), c); err != nil {
		t.Fatalf("replayed merge: %v", err)
	}
	if _, err := id.UpdatePatient(ctx(t), hosp("TEMP1"), index.Demographics{Name: str("X^Y")}, c); !errors.Is(err, index.ErrMerged) {
		t.Fatalf("update of a merged record: %v", err)
	}
	if err := id.ChangePatientID(ctx(t), hosp("TEMP1"), hosp("TEMP2"), c); !errors.Is(err, index.ErrMerged) {
		t.Fatalf("change-id of a merged record: %v", err)
	}
	if got := kinds(t, id); len(got) != n {
		t.Fatalf("events after refused operations: %v", got)
	}
	// Refused merges: into itself, into a merged-away record, a record merged elsewhere.
	putStudies(t, x, pat{"THIRD", "HOSP", "", "", ""}, "7.4", 1)
	for _, m := range [][2]string{{"REAL1", "REAL1"}, {"TEMP1", "THIRD"}, {"THIRD", "TEMP1"}} {
		if err := id.MergePatients(ctx(t), hosp(m[0]), hosp(m[1]), c); !errors.Is(err, index.ErrConflict) {
			t.Fatalf("merge %s into %s: %v", m[1], m[0], err)
		}
	}
	evs, err := id.PatientEvents(ctx(t), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Kind != index.EventMerge || evs[0].Patient != hosp("TEMP1") || evs[0].Other != hosp("OLD1") ||
		evs[1].Kind != index.EventMerge || evs[1].Patient != hosp("REAL1") || evs[1].Other != hosp("TEMP1") {
		t.Fatalf("events: %+v", evs)
	}
	// A study of the survivor goes: the count follows, the record stays.
	if _, err := x.DeleteInstance(ctx(t), "7.2.1.1.1"); err != nil {
		t.Fatal(err)
	}
	if got := patients(t, x, "REAL1"); !slices.Equal(got, []string{"REAL1|HOSP|Doe^John|19600101|M|5"}) {
		t.Fatalf("survivor after a delete: %v", got)
	}
}

// testPatientMergeCases checks the IHE PAM cases of MergePatients and ChangePatientID:
// an unknown merged record is nothing to do, an unknown survivor is a change of
// identifier, a change to a taken identifier is a conflict, one of an unknown record
// ErrNotFound.
func testPatientMergeCases(t *testing.T, x index.Index) {
	id := identity(t, x)
	c := index.Change{Source: "admin", Actor: "alice"}
	putStudies(t, x, pat{"A", "HOSP", "A^A", "", ""}, "8.1", 2)
	putStudies(t, x, pat{"B", "HOSP", "B^B", "", ""}, "8.2", 1)
	if err := id.MergePatients(ctx(t), hosp("A"), hosp("NOBODY"), c); err != nil {
		t.Fatalf("merge of an unknown record: %v", err)
	}
	if got := kinds(t, id); len(got) != 0 {
		t.Fatalf("events after a merge of an unknown record: %v", got)
	}
	// Unknown survivor: A becomes C, in place.
	if err := id.MergePatients(ctx(t), hosp("C"), hosp("A"), c); err != nil {
		t.Fatalf("merge into an unknown record: %v", err)
	}
	if got := patients(t, x, ""); !slices.Equal(got, []string{"C|HOSP|A^A|||2", "B|HOSP|B^B|||1"}) {
		t.Fatalf("after the change of identifier: %v", got)
	}
	if got := studiesOf(t, x, index.StudyLevel, hosp("C")); !slices.Equal(got, []string{"8.1.1", "8.1.2"}) {
		t.Fatalf("studies of C: %v", got)
	}
	if got := studiesOf(t, x, index.StudyLevel, hosp("A")); len(got) != 0 {
		t.Fatalf("studies of A: %v", got)
	}
	if err := id.ChangePatientID(ctx(t), hosp("C"), hosp("B"), c); !errors.Is(err, index.ErrConflict) {
		t.Fatalf("change to a taken identifier: %v", err)
	}
	if err := id.ChangePatientID(ctx(t), hosp("NEVER"), hosp("D"), c); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("change of an unknown identifier: %v", err)
	}
	// A is retired: an alias of C, not a record of its own.
	if err := id.ChangePatientID(ctx(t), hosp("A"), hosp("D"), c); !errors.Is(err, index.ErrMerged) {
		t.Fatalf("change of a retired identifier: %v", err)
	}
	// A change of issuer only is a change of key.
	if err := id.ChangePatientID(ctx(t), hosp("B"), index.PatientKey{ID: "B", Issuer: "OTHER"}, c); err != nil {
		t.Fatal(err)
	}
	if got := patients(t, x, "B"); !slices.Equal(got, []string{"B|OTHER|B^B|||1"}) {
		t.Fatalf("after the change of issuer: %v", got)
	}
	evs, err := id.PatientEvents(ctx(t), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Kind != index.EventChangeID || evs[0].Patient != hosp("C") || evs[0].Other != hosp("A") || evs[0].Actor != "alice" ||
		evs[1].Kind != index.EventChangeID || evs[1].Patient != (index.PatientKey{ID: "B", Issuer: "OTHER"}) || evs[1].Other != hosp("B") {
		t.Fatalf("events: %+v", evs)
	}
}

// testPatientChangeIDAlias checks what a change of identifier leaves behind: objects
// sent later under the retired key file under the record (merged from it, as after a
// merge), the retired key resolves to the new one as merged, and a change back to the
// retired key takes it over (the alias then names the key left).
func testPatientChangeIDAlias(t *testing.T, x index.Index) {
	id := identity(t, x)
	c := index.Change{Source: "hl7"}
	temp := pat{"TEMP9", "HOSP", "Unknown^ED", "", ""}
	putStudies(t, x, temp, "9.1", 2)
	if err := id.ChangePatientID(ctx(t), hosp("TEMP9"), hosp("REAL9"), c); err != nil {
		t.Fatal(err)
	}
	if k, merged, err := id.ResolvePatient(ctx(t), hosp("TEMP9")); err != nil || !merged || k != hosp("REAL9") {
		t.Fatalf("the retired key resolves to %v merged=%v %v", k, merged, err)
	}
	// The modality goes on under the old key: a new study and the rest of a known one.
	putStudies(t, x, temp, "9.2", 1)
	in := Inst(stu{"9.1.1", "20260101", "", "", "", "", temp}, "9.1.1.1", "CT", ip(1), "9.1.1.1.2", ctClass, ip(2))
	if err := x.Put(ctx(t), in); err != nil {
		t.Fatalf("the rest of a study under the retired key: %v", err)
	}
	if got := studiesOf(t, x, index.StudyLevel, hosp("REAL9")); !slices.Equal(got, []string{"9.1.1", "9.1.2", "9.2.1"}) {
		t.Fatalf("studies of REAL9: %v", got)
	}
	if got := studiesOf(t, x, index.StudyLevel, hosp("TEMP9")); len(got) != 0 {
		t.Fatalf("studies under the retired key: %v", got)
	}
	if got := patients(t, x, ""); !slices.Equal(got, []string{"REAL9|HOSP|Unknown^ED|||3"}) {
		t.Fatalf("patients: %v", got)
	}
	// Back to the first key (an A47 sent in error, then undone).
	if err := id.ChangePatientID(ctx(t), hosp("REAL9"), hosp("TEMP9"), c); err != nil {
		t.Fatalf("change back to the retired key: %v", err)
	}
	if got := patients(t, x, ""); !slices.Equal(got, []string{"TEMP9|HOSP|Unknown^ED|||3"}) {
		t.Fatalf("patients after the change back: %v", got)
	}
	if k, merged, err := id.ResolvePatient(ctx(t), hosp("REAL9")); err != nil || !merged || k != hosp("TEMP9") {
		t.Fatalf("REAL9 resolves to %v merged=%v %v", k, merged, err)
	}
	if got := studiesOf(t, x, index.StudyLevel, hosp("TEMP9")); len(got) != 3 {
		t.Fatalf("studies of TEMP9: %v", got)
	}
}

// testPatientMessages checks exactly-once messages: the message is recorded with its
// change, a second apply of the same message ID is ErrDuplicateMessage and changes
// nothing, Message returns the recorded ACK, and a refused change records no message.
func testPatientMessages(t *testing.T, x index.Index) {
	id := identity(t, x)
	msg := &index.MessageID{Application: "ADT", Facility: "HIS", ControlID: "MSG0001", Ack: []byte("MSH|^~\\&|LUMEN\rMSA|AA|MSG0001\r")}
	c := index.Change{Source: "hl7", Actor: "HIS|ADT", Message: msg}
	if _, ok, err := id.Message(ctx(t), *msg); err != nil || ok {
		t.Fatalf("message before: %v %v", ok, err)
	}
	if _, err := id.UpdatePatient(ctx(t), hosp("M1"), index.Demographics{Name: str("First^Name")}, c); err != nil {
		t.Fatal(err)
	}
	if _, err := id.UpdatePatient(ctx(t), hosp("M1"), index.Demographics{Name: str("Second^Name")}, c); !errors.Is(err, index.ErrDuplicateMessage) {
		t.Fatalf("second apply: %v", err)
	}
	if err := id.MergePatients(ctx(t), hosp("M1"), hosp("M2"), c); !errors.Is(err, index.ErrDuplicateMessage) {
		t.Fatalf("second apply as a merge: %v", err)
	}
	if got := patients(t, x, "M1"); !slices.Equal(got, []string{"M1|HOSP|First^Name|||0"}) {
		t.Fatalf("after the duplicate: %v", got)
	}
	ack, ok, err := id.Message(ctx(t), index.MessageID{Application: "ADT", Facility: "HIS", ControlID: "MSG0001"})
	if err != nil || !ok || string(ack) != string(msg.Ack) {
		t.Fatalf("recorded ack %q %v %v", ack, ok, err)
	}
	// The same control ID from another application is another message.
	other := &index.MessageID{Application: "ADT2", Facility: "HIS", ControlID: "MSG0001"}
	if _, err := id.UpdatePatient(ctx(t), hosp("M1"), index.Demographics{Sex: str("F")}, index.Change{Message: other}); err != nil {
		t.Fatal(err)
	}
	// A refused change records no message: a resend is refused again, not "applied".
	refused := &index.MessageID{Application: "ADT", Facility: "HIS", ControlID: "MSG0002"}
	for range 2 {
		if err := id.MergePatients(ctx(t), hosp("M1"), hosp("M1"), index.Change{Message: refused}); !errors.Is(err, index.ErrConflict) {
			t.Fatalf("refused merge: %v", err)
		}
	}
	if _, ok, err := id.Message(ctx(t), *refused); err != nil || ok {
		t.Fatalf("refused message recorded: %v %v", ok, err)
	}
	// A merge that is nothing to do is still an applied message.
	noop := &index.MessageID{Application: "ADT", Facility: "HIS", ControlID: "MSG0003"}
	if err := id.MergePatients(ctx(t), hosp("M1"), hosp("NOBODY"), index.Change{Message: noop}); err != nil {
		t.Fatal(err)
	}
	if err := id.MergePatients(ctx(t), hosp("M1"), hosp("NOBODY"), index.Change{Message: noop}); !errors.Is(err, index.ErrDuplicateMessage) {
		t.Fatalf("replayed no-op merge: %v", err)
	}
	if got := kinds(t, id); !slices.Equal(got, []string{index.EventCreate, index.EventUpdate}) {
		t.Fatalf("events: %v", got)
	}
}

// MergeBenchFixture indexes n studies of perStudy instances each under patient from,
// and one study under patient into, with direct Puts from a few goroutines (for
// benchmarks of MergePatients).
func MergeBenchFixture(tb testing.TB, x index.Index, from, into index.PatientKey, n, perStudy int) {
	tb.Helper()
	c := context.Background()
	put := func(p index.PatientKey, study, series string, i int) error {
		in := Inst(stu{study, "20260101", "", "", "", "", pat{p.ID, p.Issuer, "Bench^Patient", "", ""}}, series, "CT", ip(1), fmt.Sprintf("%s.%d", series, i), ctClass, ip(i))
		return x.Put(c, in)
	}
	const workers = 4
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for s := w; s < n; s += workers {
				study := fmt.Sprintf("2.25.%s.%d", from.ID, s)
				for i := range perStudy {
					if err := put(from, study, study+".1", i); err != nil {
						errs <- err
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			tb.Fatal(err)
		}
	}
	if err := put(into, "2.25."+into.ID, "2.25."+into.ID+".1", 0); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkMerge measures MergePatients of a patient with 1,000 studies into another,
// at 1, 20 and 100 instances per study (1,000 to 100,000 instances): the cost must not
// depend on the number of instances (issue 16: < 50 ms). open returns an empty index
// that lives as long as b. Each fixture is made once; each iteration merges the
// previous survivor into a new record, so every merge moves the 1,000 studies (and
// re-points the records merged before: no chains).
func BenchmarkMerge(b *testing.B, open func(tb testing.TB) index.Index) {
	for _, per := range []int{1, 20, 100} {
		var x index.Index
		var id index.Identity
		next := 1
		key := func(i int) index.PatientKey { return index.PatientKey{ID: fmt.Sprintf("P%d", i), Issuer: "HOSP"} }
		b.Run(fmt.Sprintf("studies=1000/instances=%d", 1000*per), func(sb *testing.B) {
			c := context.Background()
			if x == nil {
				x = open(b)
				var ok bool
				if id, ok = x.(index.Identity); !ok {
					sb.Fatal("the index does not implement index.Identity")
				}
				MergeBenchFixture(sb, x, key(0), key(1), 1000, per)
			}
			sb.ResetTimer()
			for range sb.N {
				sb.StopTimer()
				if _, err := id.UpdatePatient(c, key(next), index.Demographics{}, index.Change{}); err != nil {
					sb.Fatal(err)
				}
				sb.StartTimer()
				if err := id.MergePatients(c, key(next), key(next-1), index.Change{Source: "bench"}); err != nil {
					sb.Fatal(err)
				}
				next++
			}
			sb.StopTimer()
			sb.ReportMetric(float64(sb.Elapsed().Microseconds())/1000/float64(sb.N), "ms/merge")
		})
	}
}
