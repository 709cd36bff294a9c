package indextest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/index"
)

// testAudit checks the audit trail: records are appended and found by actor, action,
// study, patient and time, newest first.
func testAudit(t *testing.T, x index.Index) {
	a, ok := x.(index.Auditor)
	if !ok {
		t.Fatal("the index does not implement index.Auditor")
	}
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	recs := []index.AuditRecord{
		{At: t0, Actor: "ae:CT1", Via: "dimse", Action: "store", Outcome: "ok", StudyInstanceUID: "1.2.1", PatientID: "P1", IssuerOfPatientID: "H", Remote: "127.0.0.1:4000", Detail: "C-STORE"},
		{At: t0.Add(time.Second), Actor: "dr-who", Via: "http", Action: "retrieve", Outcome: "ok", StudyInstanceUID: "1.2.1", Detail: "/dicom-web/studies/:study"},
		{At: t0.Add(2 * time.Second), Actor: "dr-who", Via: "http", Action: "query", Outcome: "403", Detail: "/dicom-web/studies"},
	}
	for i := range recs {
		if err := a.Audit(ctx(t), &recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		q    index.AuditQuery
		want []string
	}{
		{index.AuditQuery{}, []string{"query", "retrieve", "store"}},
		{index.AuditQuery{Actor: "dr-who"}, []string{"query", "retrieve"}},
		{index.AuditQuery{StudyInstanceUID: "1.2.1"}, []string{"retrieve", "store"}},
		{index.AuditQuery{PatientID: "P1"}, []string{"store"}},
		{index.AuditQuery{Action: "query"}, []string{"query"}},
		{index.AuditQuery{From: t0.Add(time.Second), To: t0.Add(time.Second)}, []string{"retrieve"}},
		{index.AuditQuery{Limit: 1}, []string{"query"}},
	} {
		got, err := a.FindAudit(ctx(t), c.q)
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, r := range got {
			actions = append(actions, r.Action)
		}
		if len(actions) != len(c.want) || strings.Join(actions, ",") != strings.Join(c.want, ",") {
			t.Errorf("%+v: %v, want %v", c.q, actions, c.want)
		}
	}
	got, _ := a.FindAudit(ctx(t), index.AuditQuery{PatientID: "P1"})
	if r := got[0]; !r.At.Equal(t0) || r.Actor != "ae:CT1" || r.Via != "dimse" || r.Remote != "127.0.0.1:4000" || r.IssuerOfPatientID != "H" || r.Detail != "C-STORE" || r.ID == 0 {
		t.Errorf("record read back: %+v", r)
	}

	testAuditScope(t, x, a)
}

// testAuditScope: a search is scoped like every other read. A patient scope sees the
// records naming its patient or one of its studies; nothing of another patient (the
// same PatientID under another issuer included), nor records naming no one.
func testAuditScope(t *testing.T, x index.Index, a index.Auditor) {
	for _, in := range []*index.Instance{Inst(s1, "1.3.1", "CT", ip(1), "1.4.11", ctClass, ip(1)), Inst(s4, "1.3.6", "OT", nil, "1.4.61", otClass, ip(1))} {
		if err := x.Put(ctx(t), in); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []index.AuditRecord{
		{Actor: "scoped", Action: "a-own-patient", PatientID: p1.id, IssuerOfPatientID: p1.issuer},
		{Actor: "scoped", Action: "b-own-study", StudyInstanceUID: s1.uid},
		{Actor: "scoped", Action: "c-twin-patient", PatientID: p3.id, IssuerOfPatientID: p3.issuer},
		{Actor: "scoped", Action: "d-twin-study", StudyInstanceUID: s4.uid},
		{Actor: "scoped", Action: "e-no-one"},
		{Actor: "scoped", Action: "f-unknown-study", StudyInstanceUID: "9.9.9"},
	} {
		if err := a.Audit(ctx(t), &r); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		scope index.Scope
		want  string
	}{
		{index.Scope{Patient: &index.PatientKey{ID: p1.id, Issuer: p1.issuer}}, "a-own-patient,b-own-study"},
		{index.Scope{Patient: &index.PatientKey{ID: p3.id, Issuer: p3.issuer}}, "c-twin-patient,d-twin-study"},
		{index.Scope{StudyInstanceUID: s1.uid}, "b-own-study"},
		{index.Scope{Patient: &index.PatientKey{ID: "NOBODY"}}, ""},
	} {
		got, err := a.FindAudit(index.WithScope(ctx(t), c.scope), index.AuditQuery{Actor: "scoped"})
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, r := range got {
			actions = append(actions, r.Action)
		}
		slices.Sort(actions)
		if strings.Join(actions, ",") != c.want {
			t.Errorf("audit search in scope %+v: %v, want %s", c.scope, actions, c.want)
		}
	}
}
