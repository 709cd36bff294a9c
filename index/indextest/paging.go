package indextest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
)

// testPagingTotal checks Query.Total (the count of every match, whatever the page),
// MaxTotal, CountOnly and Reverse, at every level, with filters and scopes.
func testPagingTotal(t *testing.T, x index.Index) {
	fixture(t, x)
	studies := []string{"1.2.2", "1.2.1", "1.2.3", "1.2.4"}
	instances := []string{"1.4.31", "1.4.32", "1.4.11", "1.4.12", "1.4.13", "1.4.21", "1.4.41", "1.4.51", "1.4.61"}
	reversed := func(v []string) []string { r := slices.Clone(v); slices.Reverse(r); return r }
	hosp1 := index.WithScope(ctx(t), index.Scope{Patient: &index.PatientKey{ID: "PAT1", Issuer: "HOSP"}})
	for _, c := range []struct {
		name      string
		q         index.Query
		scoped    bool
		want      []string
		wantTotal int
	}{
		{"studies page", index.Query{Level: index.StudyLevel, Limit: 2, Offset: 1, Total: true}, false, studies[1:3], 4},
		{"studies past the end", index.Query{Level: index.StudyLevel, Limit: 2, Offset: 10, Total: true}, false, nil, 4},
		{"studies oldest first", index.Query{Level: index.StudyLevel, Limit: 3, Reverse: true, Total: true}, false, reversed(studies)[:3], 4},
		{"studies oldest first, second page", index.Query{Level: index.StudyLevel, Limit: 3, Offset: 3, Reverse: true, Total: true}, false, reversed(studies)[3:], 4},
		{"count only", index.Query{Level: index.StudyLevel, Total: true, CountOnly: true}, false, nil, 4},
		{"count bounded", index.Query{Level: index.StudyLevel, Limit: 1, Total: true, MaxTotal: 2}, false, studies[:1], 3},
		{"count bound not reached", index.Query{Level: index.StudyLevel, Total: true, MaxTotal: 4}, false, studies, 4},
		{"count with filters", index.Query{Level: index.StudyLevel, Filters: filters(t, map[string]string{"PatientID": "PAT1"}), Limit: 1, Total: true}, false, studies[:1], 3},
		{"count within a scope", index.Query{Level: index.StudyLevel, Limit: 1, Offset: 1, Total: true}, true, studies[1:2], 2},
		{"series page", index.Query{Level: index.SeriesLevel, Limit: 2, Offset: 2, Total: true}, false, []string{"1.3.2", "1.3.4"}, 6},
		{"series oldest first", index.Query{Level: index.SeriesLevel, Filters: filters(t, map[string]string{"StudyInstanceUID": "1.2.3"}), Reverse: true, Total: true}, false, []string{"1.3.5", "1.3.4"}, 2},
		{"instances page", index.Query{Level: index.ImageLevel, Limit: 4, Offset: 2, Total: true}, false, instances[2:6], 9},
		{"instances reversed", index.Query{Level: index.ImageLevel, Reverse: true, Total: true}, false, reversed(instances), 9},
		{"patients", index.Query{Level: index.PatientLevel, Limit: 1, Total: true}, false, []string{"PAT1|OTHER"}, 3},
		{"no total unless asked", index.Query{Level: index.StudyLevel, Limit: 1}, false, studies[:1], 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			cx := ctx(t)
			if c.scoped {
				cx = hosp1
			}
			r, err := x.Find(cx, c.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := uids(r, c.q.Level); fmt.Sprint(got) != fmt.Sprint(c.want) || r.Total != c.wantTotal {
				t.Fatalf("got %v total %d, want %v total %d", got, r.Total, c.want, c.wantTotal)
			}
		})
	}
}

// testValues checks Filter.Values: exact matching on any of a list of values.
func testValues(t *testing.T, x index.Index) {
	fixture(t, x)
	for _, c := range []struct {
		name   string
		level  index.Level
		tag    dcm.Tag
		values []string
		want   []string
	}{
		{"accession numbers", index.StudyLevel, dcm.TagAccessionNumber, []string{"ACC2", " XA-77 ", "NOPE"}, []string{"1.2.2", "1.2.3"}},
		{"accession numbers are exact: case", index.StudyLevel, dcm.TagAccessionNumber, []string{"acc1"}, nil},
		{"accession numbers are exact: no wildcards", index.StudyLevel, dcm.TagAccessionNumber, []string{"XA-*", "ACC?"}, nil},
		{"study UIDs", index.StudyLevel, dcm.TagStudyInstanceUID, []string{"1.2.4", "1.2.1"}, []string{"1.2.1", "1.2.4"}},
		{"study UIDs: no lists inside a value", index.StudyLevel, dcm.TagStudyInstanceUID, []string{`1.2.4\1.2.1`}, nil},
		{"patient IDs", index.StudyLevel, dcm.TagPatientID, []string{"PAT2"}, []string{"1.2.3"}},
		{"series modalities", index.SeriesLevel, dcm.TagModality, []string{"SR", "XA"}, []string{"1.3.2", "1.3.4"}},
		{"series numbers", index.SeriesLevel, dcm.TagSeriesNumber, []string{"2", "x"}, []string{"1.3.2", "1.3.5"}},
		{"names are case-insensitive", index.StudyLevel, dcm.TagPatientName, []string{"smith^john"}, []string{"1.2.3"}},
		{"modalities in study", index.StudyLevel, dcm.TagModalitiesInStudy, []string{"ECG", "MR"}, []string{"1.2.2", "1.2.3"}},
		{"nothing valid matches nothing", index.SeriesLevel, dcm.TagSeriesNumber, []string{"x"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := x.Find(ctx(t), index.Query{Level: c.level, Filters: []index.Filter{{Tag: c.tag, Values: c.values}}, Total: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := uids(r, c.level); fmt.Sprint(got) != fmt.Sprint(c.want) || r.Total != len(c.want) {
				t.Fatalf("got %v (total %d), want %v", got, r.Total, c.want)
			}
		})
	}
}

// testClass checks that the index matches a study class (Query.Class) as
// index.StudyClass.Matches does, included and excluded, paged and counted.
func testClass(t *testing.T, x index.Index) {
	fixture(t, x)
	heart := Inst(stu{"1.2.5", "20240505", "1200", "H1", "Echo-cardiography (TTE), follow-up", "", p2}, "1.3.7", "US", ip(1), "1.4.71", "1.2.840.10008.5.1.4.1.1.6.1", ip(1))
	heart.BodyPartExamined = "heart"
	mr := Inst(stu{"1.2.6", "20240606", "1200", "H2", "Cardiac_MR ÉCHO", "", p2}, "1.3.8", "MR", ip(1), "1.4.81", mrClass, ip(1))
	mr.BodyPartExamined = "CHEST"
	for _, in := range []*index.Instance{heart, mr} {
		if err := x.Put(ctx(t), in); err != nil {
			t.Fatal(err)
		}
	}
	all, err := x.Find(ctx(t), index.Query{Level: index.StudyLevel})
	if err != nil {
		t.Fatal(err)
	}
	series, err := x.Find(ctx(t), index.Query{Level: index.SeriesLevel})
	if err != nil {
		t.Fatal(err)
	}
	bodyParts := map[string][]string{}
	for _, se := range series.Series {
		bodyParts[se.StudyInstanceUID] = append(bodyParts[se.StudyInstanceUID], se.BodyPartExamined)
	}
	for _, c := range []struct {
		name  string
		class index.StudyClass
		want  []string // the studies in the class, newest first
	}{
		{"modalities", index.StudyClass{Modalities: []string{"xa", "ECG"}}, []string{"1.2.3"}},
		{"sop class prefixes", index.StudyClass{SOPClassPrefixes: []string{"1.2.840.10008.5.1.4.1.1.9.", "1.2.840.10008.5.1.4.1.1.88"}}, []string{"1.2.1", "1.2.3"}},
		{"body parts", index.StudyClass{BodyParts: []string{"HEART"}}, []string{"1.2.5"}},
		{"keywords are whole words", index.StudyClass{Keywords: []string{"tte", "CARDIO", "MR"}}, []string{"1.2.2", "1.2.6", "1.2.5"}},
		{"keywords across punctuation", index.StudyClass{Keywords: []string{"Cardiography", "ANGIOGRAPHY"}}, []string{"1.2.3", "1.2.5"}},
		{"non-ASCII letters separate words", index.StudyClass{Keywords: []string{"CHO", "ÉCHO", "SCH"}}, []string{"1.2.2", "1.2.6"}},
		{"any rule", index.StudyClass{Modalities: []string{"SR"}, BodyParts: []string{"chest"}, Keywords: []string{"outside"}}, []string{"1.2.1", "1.2.6", "1.2.4"}},
		{"no rules: no study", index.StudyClass{Keywords: []string{"", "two words"}}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var ref, refOut []string
			for i := range all.Studies {
				st := &all.Studies[i]
				if c.class.Matches(st, bodyParts[st.StudyInstanceUID]) {
					ref = append(ref, st.StudyInstanceUID)
				} else {
					refOut = append(refOut, st.StudyInstanceUID)
				}
			}
			if fmt.Sprint(ref) != fmt.Sprint(c.want) {
				t.Fatalf("StudyClass.Matches: %v, want %v", ref, c.want)
			}
			in, err := x.Find(ctx(t), index.Query{Level: index.StudyLevel, Class: &index.ClassFilter{Class: c.class}, Total: true})
			if err != nil {
				t.Fatal(err)
			}
			out, err := x.Find(ctx(t), index.Query{Level: index.StudyLevel, Class: &index.ClassFilter{Class: c.class, Exclude: true}, Total: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := uids(in, index.StudyLevel); fmt.Sprint(got) != fmt.Sprint(ref) || in.Total != len(ref) {
				t.Fatalf("in the class: %v (total %d), want %v", got, in.Total, ref)
			}
			if got := uids(out, index.StudyLevel); fmt.Sprint(got) != fmt.Sprint(refOut) || out.Total != len(refOut) {
				t.Fatalf("out of the class: %v (total %d), want %v", got, out.Total, refOut)
			}
			if len(ref) > 1 {
				page, err := x.Find(ctx(t), index.Query{Level: index.StudyLevel, Class: &index.ClassFilter{Class: c.class}, Limit: 1, Offset: 1, Total: true})
				if err != nil || fmt.Sprint(uids(page, index.StudyLevel)) != fmt.Sprint(ref[1:2]) || page.Total != len(ref) {
					t.Fatalf("page: %v %v", page, err)
				}
			}
		})
	}
	// Below study level, the class is the study's.
	r, err := x.Find(ctx(t), index.Query{Level: index.ImageLevel, Class: &index.ClassFilter{Class: index.StudyClass{BodyParts: []string{"heart"}}}})
	if err != nil || fmt.Sprint(uids(r, index.ImageLevel)) != "[1.4.71]" {
		t.Fatalf("instances of the class: %v %v", r, err)
	}
}
