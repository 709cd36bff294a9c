package indextest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/sqlindex"
)

// seqQueries are the queries FindSeq is checked on beside the matching table: pages,
// reversed order, metadata, classes, scopes, at every level.
func seqQueries(t *testing.T) []struct {
	name string
	ctx  context.Context
	q    index.Query
} {
	hosp1 := index.WithScope(ctx(t), index.Scope{Patient: &index.PatientKey{ID: "PAT1", Issuer: "HOSP"}})
	return []struct {
		name string
		ctx  context.Context
		q    index.Query
	}{
		{"studies page", ctx(t), index.Query{Level: index.StudyLevel, Limit: 2, Offset: 1}},
		{"studies offset only", ctx(t), index.Query{Level: index.StudyLevel, Offset: 1}},
		{"studies reversed page", ctx(t), index.Query{Level: index.StudyLevel, Limit: 3, Reverse: true}},
		{"studies by name, page", ctx(t), index.Query{Level: index.StudyLevel, Filters: filters(t, map[string]string{"PatientName": "*"}), Limit: 1, Offset: 1}},
		{"studies by name wildcard and date", ctx(t), index.Query{Level: index.StudyLevel, Filters: filters(t, map[string]string{"PatientName": "m*", "StudyDate": "20260101-"}), Limit: 5}},
		{"studies in a scope", hosp1, index.Query{Level: index.StudyLevel, Filters: filters(t, map[string]string{"PatientName": "M*"})}},
		{"studies of a class", ctx(t), index.Query{Level: index.StudyLevel, Class: &index.ClassFilter{Class: index.StudyClass{Modalities: []string{"CT", "XA"}}}, Limit: 10}},
		{"series page", ctx(t), index.Query{Level: index.SeriesLevel, Limit: 2, Offset: 2}},
		{"series reversed", ctx(t), index.Query{Level: index.SeriesLevel, Reverse: true}},
		{"instances with metadata", ctx(t), index.Query{Level: index.ImageLevel, WithMetadata: true}},
		{"instances page", ctx(t), index.Query{Level: index.ImageLevel, Limit: 4, Offset: 2}},
		{"patients page", ctx(t), index.Query{Level: index.PatientLevel, Limit: 2, Offset: 1}},
		{"ignored key", ctx(t), index.Query{Level: index.StudyLevel, Filters: filters(t, map[string]string{"InstitutionName": "X", "SeriesInstanceUID": "1.3.1"})}},
	}
}

// collect runs FindSeq to its end.
func collect(c context.Context, x index.Index, q index.Query) ([]dcm.Tag, []index.Record, error) {
	ignored, seq := x.FindSeq(c, q)
	var recs []index.Record
	for rec, err := range seq {
		if err != nil {
			return ignored, recs, err
		}
		recs = append(recs, rec)
	}
	return ignored, recs, nil
}

// testFindSeq checks that FindSeq yields what Find returns, record for record and in
// the same order, that a loop left early frees what the query held, and that errors end
// the loop.
func testFindSeq(t *testing.T, x index.Index) {
	fixture(t, x)
	same := func(t *testing.T, c context.Context, q index.Query) {
		t.Helper()
		res, err := x.Find(c, q)
		if err != nil {
			t.Fatal(err)
		}
		ignored, recs, err := collect(c, x, q)
		if err != nil {
			t.Fatal(err)
		}
		want := res.Records(q.Level)
		if len(recs) != len(want) {
			t.Fatalf("FindSeq: %d records, Find: %d", len(recs), len(want))
		}
		for i := range recs {
			if !reflect.DeepEqual(recs[i], want[i]) {
				t.Fatalf("record %d: FindSeq %+v, Find %+v", i, recs[i], want[i])
			}
		}
		if fmt.Sprint(ignored) != fmt.Sprint(res.Ignored) {
			t.Fatalf("ignored %v, Find %v", ignored, res.Ignored)
		}
	}
	for _, c := range MatchingCases {
		t.Run(c.Name, func(t *testing.T) {
			same(t, ctx(t), index.Query{Level: c.Level, Filters: filters(t, c.Filters), Fuzzy: c.Fuzzy})
		})
	}
	for _, c := range seqQueries(t) {
		t.Run(c.name, func(t *testing.T) { same(t, c.ctx, c.q) })
	}
	t.Run("left early", func(t *testing.T) {
		// More loops left after their first record than the connections of any pool:
		// one that held its connection (or its transaction) would block the next.
		for i := 0; i < 40; i++ {
			_, seq := x.FindSeq(ctx(t), index.Query{Level: index.StudyLevel})
			n := 0
			for rec, err := range seq {
				if err != nil || rec == nil {
					t.Fatalf("record %v, %v", rec, err)
				}
				n++
				break
			}
			if n != 1 {
				t.Fatalf("%d records before the break", n)
			}
		}
		same(t, ctx(t), index.Query{Level: index.StudyLevel})
	})
	t.Run("bad query", func(t *testing.T) {
		_, recs, err := collect(ctx(t), x, index.Query{Level: index.StudyLevel, Filters: []index.Filter{{Tag: dcm.TagPatientName, Value: "A\x00*"}}})
		if !errors.Is(err, index.ErrBadQuery) || len(recs) != 0 {
			t.Fatalf("%d records, %v", len(recs), err)
		}
	})
	t.Run("ended context", func(t *testing.T) {
		c, cancel := context.WithCancel(ctx(t))
		cancel()
		_, recs, err := collect(c, x, index.Query{Level: index.StudyLevel})
		if !errors.Is(err, context.Canceled) || len(recs) != 0 {
			t.Fatalf("%d records, %v", len(recs), err)
		}
	})
}

// planCases are study queries with patient keys, each run with and without a page:
// the page must be the slice of the whole answer it names.
var planCases = []struct {
	name    string
	filters map[string]string
	fuzzy   bool
}{
	{"no keys", nil, false},
	{"name wildcard", map[string]string{"PatientName": "*"}, false},
	{"name prefix", map[string]string{"PatientName": "m*"}, false},
	{"name and date", map[string]string{"PatientName": "?*", "StudyDate": "20251201-"}, false},
	{"fuzzy name", map[string]string{"PatientName": "jurgen"}, true},
	{"patient id wildcard", map[string]string{"PatientID": "PAT*"}, false},
	{"patient id exact", map[string]string{"PatientID": "PAT1"}, false},
	{"birth date range and sex", map[string]string{"PatientBirthDate": "19000101-19951231", "PatientSex": "M\\F"}, false},
	{"name and modality", map[string]string{"PatientName": "*", "ModalitiesInStudy": "CT\\MR\\XA"}, false},
	{"no match", map[string]string{"PatientName": "ZZZ*"}, false},
}

// QueryPlans runs the query checks of the contract (matching, paging, counts, value
// lists, classes, scopes, FindSeq) on indexes whose study queries take each of the ways
// of sqlindex's patient keys: DensePatients 1 and 2, where the few patients of the
// fixture are "many" or "very many" and the studies are walked in order, and
// DensePatients far above any count, where the query starts from the matching
// patients; and checks that pages of study queries with patient keys are the slices of
// the whole answer they name, each way. newIndex must return a fresh, empty index each
// call.
func QueryPlans(t *testing.T, newIndex func(t *testing.T) *sqlindex.DB) {
	for _, dense := range []int{1, 2, 1 << 30} {
		t.Run(fmt.Sprintf("DensePatients=%d", dense), func(t *testing.T) {
			for _, tc := range []struct {
				name string
				fn   func(t *testing.T, x index.Index)
			}{
				{"Matching", testMatching},
				{"Paging", testPaging},
				{"PagingWithTotal", testPagingTotal},
				{"ValuesMatching", testValues},
				{"StudyClass", testClass},
				{"Scope", testScope},
				{"FindSeq", testFindSeq},
				{"Pages", testPlanPages},
			} {
				t.Run(tc.name, func(t *testing.T) {
					x := newIndex(t)
					t.Cleanup(func() { x.Close() })
					x.DensePatients = dense
					tc.fn(t, x)
				})
			}
		})
	}
}

// testPlanPages checks that every page of the planCases queries, in both orders, is
// the slice of the whole answer it names.
func testPlanPages(t *testing.T, x index.Index) {
	fixture(t, x)
	extra := Inst(stu{"1.2.9", "20251215", "0900", "ACC9", "CT Abdomen", "", pat{"PAT9", "HOSP", "Meier^Anna", "19850505", "F"}}, "1.3.9", "CT", ip(1), "1.4.91", ctClass, ip(1))
	if err := x.Put(ctx(t), extra); err != nil {
		t.Fatal(err)
	}
	for _, c := range planCases {
		for _, reverse := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s reverse=%v", c.name, reverse), func(t *testing.T) {
				q := index.Query{Level: index.StudyLevel, Filters: filters(t, c.filters), Fuzzy: c.fuzzy, Reverse: reverse}
				all, err := x.Find(ctx(t), q)
				if err != nil {
					t.Fatal(err)
				}
				whole := uids(all, index.StudyLevel)
				for limit := 1; limit <= 3; limit++ {
					for offset := 0; offset <= len(whole); offset++ {
						pq := q
						pq.Limit, pq.Offset = limit, offset
						r, err := x.Find(ctx(t), pq)
						if err != nil {
							t.Fatal(err)
						}
						want := whole[offset:min(offset+limit, len(whole))]
						if got := uids(r, index.StudyLevel); fmt.Sprint(got) != fmt.Sprint(want) {
							t.Fatalf("limit %d offset %d: %v, want %v of %v", limit, offset, got, want, whole)
						}
					}
				}
			})
		}
	}
}
