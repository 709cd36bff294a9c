package audit_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/indextest"
	"github.com/lumenpacs/lumen/service/audit"
)

var quiet = slog.New(slog.DiscardHandler)

// search runs a trail search and fails the test on error.
func search(t *testing.T, x *audit.Trail, q index.AuditQuery) []index.AuditRecord {
	t.Helper()
	list, err := x.Search(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// TestTrail: records are written off the request path in batches, and a search right
// after recording sees every record (it flushes the queue first), newest first; Close
// writes what is still queued; nothing recorded after Close is written, and recording
// then neither blocks nor panics.
func TestTrail(t *testing.T) {
	for _, be := range indextest.Backends {
		t.Run(be, func(t *testing.T) {
			idx := indextest.Open(t, be)
			x := audit.New(idx, nil, quiet)
			// 1,200 records: more than one batch of 500, searched at once.
			const n = 1200
			for i := 0; i < n; i++ {
				x.Record(context.Background(), index.AuditRecord{Actor: fmt.Sprintf("bulk-%d", i%3), Via: "http", Action: "query", Outcome: "ok", Detail: fmt.Sprint(i)})
			}
			for a := 0; a < 3; a++ {
				list := search(t, x, index.AuditQuery{Actor: fmt.Sprintf("bulk-%d", a)})
				if len(list) != n/3 {
					t.Fatalf("bulk-%d: %d records visible right after recording, want %d", a, len(list), n/3)
				}
				// Newest first: the last recorded comes first.
				if want := fmt.Sprint(n - 3 + a); list[0].Detail != want || list[len(list)-1].Detail != fmt.Sprint(a) {
					t.Fatalf("bulk-%d: first %q last %q, want %s and %d", a, list[0].Detail, list[len(list)-1].Detail, want, a)
				}
			}
			// At is set when zero and kept when given.
			at := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
			before := time.Now().Add(-time.Second)
			x.Record(context.Background(), index.AuditRecord{Actor: "clock", Action: "given", At: at})
			x.Record(context.Background(), index.AuditRecord{Actor: "clock", Action: "now"})
			for _, r := range search(t, x, index.AuditQuery{Actor: "clock"}) {
				if r.Action == "given" && !r.At.Equal(at) || r.Action == "now" && (r.At.Before(before) || r.At.After(time.Now().Add(time.Second))) {
					t.Errorf("%s: At %v", r.Action, r.At)
				}
			}

			// Close drains the queue: read the index directly afterwards.
			const m = 700
			for i := 0; i < m; i++ {
				x.Record(context.Background(), index.AuditRecord{Actor: "drain", Action: "store", Outcome: "ok"})
			}
			x.Close()
			list, err := idx.FindAudit(context.Background(), index.AuditQuery{Actor: "drain"})
			if err != nil || len(list) != m {
				t.Fatalf("after Close: %d records (%v), want %d", len(list), err, m)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				x.Record(context.Background(), index.AuditRecord{Actor: "late", Action: "store"})
				x.Flush()
				x.Close()
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Record, Flush or Close after Close blocks")
			}
			if list := search(t, x, index.AuditQuery{Actor: "late"}); len(list) != 0 {
				t.Errorf("a record made after Close was written: %+v", list)
			}
		})
	}
}

// TestTrailBounds: values longer than their bounds (UIDs and IDs 64 bytes, actor 128,
// remote 64, detail 256) are cut, never in the middle of a UTF-8 character, and Detail
// says which fields were cut and how long they were, within its own bound.
func TestTrailBounds(t *testing.T) {
	long := func(c string, n int) string { return strings.Repeat(c, n) }
	for _, be := range indextest.Backends {
		t.Run(be, func(t *testing.T) {
			x := audit.New(indextest.Open(t, be), nil, quiet)
			t.Cleanup(x.Close)
			for i, tc := range []struct {
				name string
				in   index.AuditRecord
				want index.AuditRecord
			}{
				{"within bounds", index.AuditRecord{StudyInstanceUID: long("1", 64), PatientID: long("P", 64), Actor: long("a", 128), Remote: long("r", 64), Detail: long("d", 256)},
					index.AuditRecord{StudyInstanceUID: long("1", 64), PatientID: long("P", 64), Actor: long("a", 128), Remote: long("r", 64), Detail: long("d", 256)}},
				{"long study UID", index.AuditRecord{StudyInstanceUID: long("1", 100), Detail: "C-STORE"},
					index.AuditRecord{StudyInstanceUID: long("1", 64), Detail: "C-STORE [truncated: study 100 bytes]"}},
				{"long actor and remote", index.AuditRecord{Actor: long("a", 300), Remote: long("r", 65)},
					index.AuditRecord{Actor: long("a", 128), Remote: long("r", 64), Detail: " [truncated: actor 300 bytes, remote 65 bytes]"}},
				{"issuer cut inside a UTF-8 character", index.AuditRecord{IssuerOfPatientID: long("x", 63) + "é"},
					index.AuditRecord{IssuerOfPatientID: long("x", 63), Detail: " [truncated: issuer 65 bytes]"}},
				{"long detail keeps its note within bounds", index.AuditRecord{PatientID: long("P", 70), Detail: long("d", 1000)},
					index.AuditRecord{PatientID: long("P", 64), Detail: long("d", 256-len(" [truncated: patient 70 bytes, detail 1000 bytes]")) + " [truncated: patient 70 bytes, detail 1000 bytes]"}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					action := fmt.Sprintf("bounds-%d", i)
					tc.in.Action = action
					x.Record(context.Background(), tc.in)
					list := search(t, x, index.AuditQuery{Action: action})
					if len(list) != 1 {
						t.Fatalf("%d records", len(list))
					}
					r := list[0]
					if r.StudyInstanceUID != tc.want.StudyInstanceUID || r.PatientID != tc.want.PatientID || r.IssuerOfPatientID != tc.want.IssuerOfPatientID ||
						r.Actor != tc.want.Actor || r.Remote != tc.want.Remote || r.Detail != tc.want.Detail {
						t.Errorf("got  %+v\nwant %+v", r, tc.want)
					}
					if len(r.Detail) > 256 || !utf8.ValidString(r.IssuerOfPatientID) {
						t.Errorf("detail of %d bytes, issuer %q", len(r.Detail), r.IssuerOfPatientID)
					}
				})
			}
		})
	}
}

// TestTrailDIMSE: a DIMSE action is recorded with the calling AE title as actor, the
// operation as detail, the peer's address, and the status as outcome ("ok" for
// Success, else its code).
func TestTrailDIMSE(t *testing.T) {
	for _, be := range indextest.Backends {
		t.Run(be, func(t *testing.T) {
			x := audit.New(indextest.Open(t, be), nil, quiet)
			t.Cleanup(x.Close)
			as := &dimse.AssociationInfo{CallingAETitle: "CT1", CalledAETitle: "LUMEN", RemoteAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4000}}
			x.DIMSE(context.Background(), as, "store", "C-STORE", dimse.Status{Code: dimse.StatusSuccess}, "1.2.3", "P1", "HOSP")
			x.DIMSE(context.Background(), as, "retrieve", "C-MOVE to NOWHERE", dimse.Status{Code: dimse.StatusMoveDestinationUnknown, ErrorComment: "unknown"}, "", "", "")
			x.DIMSE(context.Background(), &dimse.AssociationInfo{CallingAETitle: "WS"}, "query", "C-FIND", dimse.Status{Code: dimse.StatusDataSetMismatch}, "", "", "")
			want := []index.AuditRecord{
				{Actor: "ae:WS", Via: "dimse", Action: "query", Outcome: "0xA900", Detail: "C-FIND"},
				{Actor: "ae:CT1", Via: "dimse", Action: "retrieve", Outcome: "0xA801", Remote: "127.0.0.1:4000", Detail: "C-MOVE to NOWHERE"},
				{Actor: "ae:CT1", Via: "dimse", Action: "store", Outcome: "ok", StudyInstanceUID: "1.2.3", PatientID: "P1", IssuerOfPatientID: "HOSP", Remote: "127.0.0.1:4000", Detail: "C-STORE"},
			}
			got := search(t, x, index.AuditQuery{})
			if len(got) != len(want) {
				t.Fatalf("%d records, want %d: %+v", len(got), len(want), got)
			}
			for i, w := range want {
				g := got[i]
				g.ID, g.At = 0, time.Time{}
				if g != w {
					t.Errorf("record %d:\ngot  %+v\nwant %+v", i, g, w)
				}
			}
		})
	}
}

// noAuditTable is an index that keeps no audit table (it hides the index.Auditor
// methods of the real index it holds).
type noAuditTable struct{ index.Index }

// TestNoTrail: a nil Trail and the trail of an index without an audit table take
// records without blocking, and a search says there is no trail.
func TestNoTrail(t *testing.T) {
	var nilTrail *audit.Trail
	nilTrail.Record(context.Background(), index.AuditRecord{Action: "store"})
	nilTrail.Flush()
	nilTrail.Close()
	if _, err := nilTrail.Search(context.Background(), index.AuditQuery{}); !errors.Is(err, audit.ErrNoTrail) {
		t.Errorf("nil trail search: %v, want ErrNoTrail", err)
	}
	x := audit.New(noAuditTable{indextest.Open(t, "sqlite")}, nil, quiet)
	for i := 0; i < 5000; i++ { // more than the queue holds: nothing is queued
		x.Record(context.Background(), index.AuditRecord{Action: "store"})
	}
	x.Flush()
	if _, err := x.Search(context.Background(), index.AuditQuery{}); !errors.Is(err, audit.ErrNoTrail) {
		t.Errorf("search without an audit table: %v, want ErrNoTrail", err)
	}
	x.Close()
}
