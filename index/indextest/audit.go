package indextest

import (
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
}
