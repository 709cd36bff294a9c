package indextest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
)

// Run runs the contract suite. newIndex must return a fresh, empty index each call.
func Run(t *testing.T, newIndex func(t *testing.T) index.Index) {
	tests := []struct {
		name string
		fn   func(t *testing.T, x index.Index)
	}{
		{"Matching", testMatching},
		{"Records", testRecords},
		{"Counts", testCounts},
		{"Duplicate", testDuplicate},
		{"Conflict", testConflict},
		{"ReplaceAndDelete", testReplaceDelete},
		{"RoundTrip", testRoundTrip},
		{"BlobKeys", testBlobKeys},
		{"ConcurrentPuts", testConcurrent},
		{"Paging", testPaging},
		{"PagingWithTotal", testPagingTotal},
		{"ValuesMatching", testValues},
		{"StudyClass", testClass},
		{"Queue", testQueue},
		{"Worker", testWorker},
		{"Scope", testScope},
		{"FindSeq", testFindSeq},
		{"Audit", testAudit},
		{"ContentDigest", testContentDigest},
		{"Quarantine", testQuarantine},
		{"Promote", testPromote},
		{"PatientUpdate", testPatientUpdate},
		{"PatientMerge", testPatientMerge},
		{"PatientMergeCases", testPatientMergeCases},
		{"PatientChangeIDAlias", testPatientChangeIDAlias},
		{"PatientMessages", testPatientMessages},
		{"Reject", testReject},
		{"RejectCases", testRejectCases},
		{"RejectRacingArrival", testRejectRacingArrival},
		{"RejectChangeIDRestore", testRejectChangeIDRestore},
		{"RejectMoveStudyRestore", testRejectMoveStudyRestore},
		{"PatientMoveStudy", testPatientMoveStudy},
		{"PatientMoveSeries", testPatientMoveSeries},
		{"PatientUnmerge", testPatientUnmerge},
		{"PatientUnmergeOld", testPatientUnmergeOld},
		{"PatientMergeConcurrentPut", testPatientMergeConcurrentPut},
		{"MoveRejectRestore", testMoveRejectRestore},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := newIndex(t)
			t.Cleanup(func() { x.Close() })
			tc.fn(t, x)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func ip(n int) *int { return &n }

type pat struct{ id, issuer, name, birth, sex string }
type stu struct {
	uid, date, time, acc, desc, ref string
	p                               pat
}

var (
	p1 = pat{"PAT1", "HOSP", "Müller^Jürgen", "19700101", "M"}
	p2 = pat{"PAT2", "HOSP", "Smith^John", "19800202", "M"}
	p3 = pat{"PAT1", "OTHER", "Doe^Jane", "19900303", "F"}

	s1 = stu{"1.2.1", "20260110", "101500", "ACC1", "CT Thorax", "Welby^Marcus", p1}
	s2 = stu{"1.2.2", "20260301", "143000.5", "ACC2", "MR Schädel", "", p1}
	s3 = stu{"1.2.3", "20251231", "0830", "XA-77", "Coronary angiography", "", p2}
	s4 = stu{"1.2.4", "", "", "", "Outside study", "", p3}
)

const (
	ctClass  = "1.2.840.10008.5.1.4.1.1.2"
	mrClass  = "1.2.840.10008.5.1.4.1.1.4"
	srClass  = "1.2.840.10008.5.1.4.1.1.88.11"
	xaClass  = "1.2.840.10008.5.1.4.1.1.12.1"
	ecgClass = "1.2.840.10008.5.1.4.1.1.9.1.1"
	otClass  = "1.2.840.10008.5.1.4.1.1.7"
)

// Inst builds a test instance record.
func Inst(s stu, seriesUID, modality string, seriesNo *int, sopUID, class string, number *int) *index.Instance {
	in := &index.Instance{}
	in.PatientID, in.IssuerOfPatientID, in.PatientName, in.PatientBirthDate, in.PatientSex = s.p.id, s.p.issuer, s.p.name, s.p.birth, s.p.sex
	in.StudyInstanceUID, in.StudyDate, in.StudyTime, in.AccessionNumber, in.StudyDescription, in.ReferringPhysicianName = s.uid, s.date, s.time, s.acc, s.desc, s.ref
	in.StudyID = "ID" + s.uid
	in.SeriesInstanceUID, in.Modality, in.SeriesNumber = seriesUID, modality, seriesNo
	in.SOPInstanceUID, in.SOPClassUID, in.InstanceNumber = sopUID, class, number
	in.TransferSyntaxUID = dcm.ExplicitVRLittleEndian
	in.NumberOfFrames = 1
	in.Rows, in.Columns = 64, 64
	in.BlobKey = "dicom/test/" + sopUID
	in.Size = 1000
	in.Digest = strings.Repeat("ab", 32)
	in.Metadata = []byte(`{"00080018":{"vr":"UI","Value":["` + sopUID + `"]}}`)
	return in
}

// Fixture returns the instances the matching table is written against.
func Fixture() []*index.Instance {
	return []*index.Instance{
		Inst(s1, "1.3.1", "CT", ip(1), "1.4.13", ctClass, ip(3)),
		Inst(s1, "1.3.1", "CT", ip(1), "1.4.11", ctClass, ip(1)),
		Inst(s1, "1.3.1", "CT", ip(1), "1.4.12", ctClass, ip(2)),
		Inst(s1, "1.3.2", "SR", ip(2), "1.4.21", srClass, ip(1)),
		Inst(s2, "1.3.3", "MR", ip(1), "1.4.31", mrClass, ip(1)),
		Inst(s2, "1.3.3", "MR", ip(1), "1.4.32", mrClass, ip(2)),
		Inst(s3, "1.3.4", "XA", ip(1), "1.4.41", xaClass, ip(1)),
		Inst(s3, "1.3.5", "ECG", ip(2), "1.4.51", ecgClass, nil),
		Inst(s4, "1.3.6", "OT", nil, "1.4.61", otClass, ip(1)),
	}
}

func fixture(t *testing.T, x index.Index) {
	t.Helper()
	for _, in := range Fixture() {
		if err := x.Put(ctx(t), in); err != nil {
			t.Fatalf("Put(%s): %v", in.SOPInstanceUID, err)
		}
	}
}

// Case is one row of the matching table.
type Case struct {
	Name    string
	Level   index.Level
	Filters map[string]string // keyword or tag -> value
	Fuzzy   bool
	Want    []string // UIDs (or PatientID|Issuer at patient level) in order
}

// MatchingCases is the data-driven matching table shared by every backend.
var MatchingCases = []Case{
	{"all studies newest first", index.StudyLevel, nil, false, []string{"1.2.2", "1.2.1", "1.2.3", "1.2.4"}},
	{"universal key", index.StudyLevel, map[string]string{"PatientName": ""}, false, []string{"1.2.2", "1.2.1", "1.2.3", "1.2.4"}},
	{"patient id single value", index.StudyLevel, map[string]string{"PatientID": "PAT1"}, false, []string{"1.2.2", "1.2.1", "1.2.4"}},
	{"patient id with issuer", index.StudyLevel, map[string]string{"PatientID": "PAT1", "IssuerOfPatientID": "HOSP"}, false, []string{"1.2.2", "1.2.1"}},
	{"patient id wildcard", index.StudyLevel, map[string]string{"PatientID": "PAT?"}, false, []string{"1.2.2", "1.2.1", "1.2.3", "1.2.4"}},
	{"patient id is case-sensitive", index.StudyLevel, map[string]string{"PatientID": "pat1"}, false, nil},
	{"name case-insensitive", index.StudyLevel, map[string]string{"PatientName": "müller^jürgen"}, false, []string{"1.2.2", "1.2.1"}},
	{"name wildcard", index.StudyLevel, map[string]string{"PatientName": "MÜL*"}, false, []string{"1.2.2", "1.2.1"}},
	{"name wildcard lower", index.StudyLevel, map[string]string{"PatientName": "sm?th*"}, false, []string{"1.2.3"}},
	{"name single value is exact", index.StudyLevel, map[string]string{"PatientName": "MULLER"}, false, nil},
	{"fuzzy name prefix, accents", index.StudyLevel, map[string]string{"PatientName": "mul"}, true, []string{"1.2.2", "1.2.1"}},
	{"fuzzy given name", index.StudyLevel, map[string]string{"PatientName": "jurgen"}, true, []string{"1.2.2", "1.2.1"}},
	{"fuzzy both words", index.StudyLevel, map[string]string{"PatientName": "john^smi"}, true, []string{"1.2.3"}},
	{"fuzzy no match", index.StudyLevel, map[string]string{"PatientName": "urgen"}, true, nil},
	{"date single", index.StudyLevel, map[string]string{"StudyDate": "20260110"}, false, []string{"1.2.1"}},
	{"date open end", index.StudyLevel, map[string]string{"StudyDate": "20260101-"}, false, []string{"1.2.2", "1.2.1"}},
	{"date open start", index.StudyLevel, map[string]string{"StudyDate": "-20251231"}, false, []string{"1.2.3"}},
	{"date range", index.StudyLevel, map[string]string{"StudyDate": "20260101-20260201"}, false, []string{"1.2.1"}},
	{"time range", index.StudyLevel, map[string]string{"StudyTime": "1000-1100"}, false, []string{"1.2.1"}},
	{"time hour", index.StudyLevel, map[string]string{"StudyTime": "14"}, false, []string{"1.2.2"}},
	{"time short stored form", index.StudyLevel, map[string]string{"StudyTime": "0800-0900"}, false, []string{"1.2.3"}},
	{"accession wildcard", index.StudyLevel, map[string]string{"AccessionNumber": "XA-*"}, false, []string{"1.2.3"}},
	{"accession case-sensitive", index.StudyLevel, map[string]string{"AccessionNumber": "acc1"}, false, nil},
	{"prefix whose end is the next value", index.StudyLevel, map[string]string{"AccessionNumber": "ACC1*"}, false, []string{"1.2.1"}},
	{"prefix wildcard is case-sensitive", index.StudyLevel, map[string]string{"AccessionNumber": "xa-*"}, false, nil},
	{"prefix and inner wildcard", index.StudyLevel, map[string]string{"PatientID": "PA*1"}, false, []string{"1.2.2", "1.2.1", "1.2.4"}},
	{"name prefix ending in a multi-byte character", index.StudyLevel, map[string]string{"PatientName": "MÜ*"}, false, []string{"1.2.2", "1.2.1"}},
	{"name prefix of the whole name", index.StudyLevel, map[string]string{"PatientName": "smith^john*"}, false, []string{"1.2.3"}},
	{"name prefix and inner wildcard", index.StudyLevel, map[string]string{"PatientName": "M*ER^J*"}, false, []string{"1.2.2", "1.2.1"}},
	{"study uid list", index.StudyLevel, map[string]string{"StudyInstanceUID": "1.2.1\\1.2.3"}, false, []string{"1.2.1", "1.2.3"}},
	{"study uid comma list", index.StudyLevel, map[string]string{"0020000D": "1.2.3,1.2.4"}, false, []string{"1.2.3", "1.2.4"}},
	{"modalities in study", index.StudyLevel, map[string]string{"ModalitiesInStudy": "CT"}, false, []string{"1.2.1"}},
	{"modalities list", index.StudyLevel, map[string]string{"ModalitiesInStudy": "ECG\\MR"}, false, []string{"1.2.2", "1.2.3"}},
	{"sop classes in study", index.StudyLevel, map[string]string{"SOPClassesInStudy": srClass}, false, []string{"1.2.1"}},
	{"description utf-8 wildcard", index.StudyLevel, map[string]string{"StudyDescription": "*Schädel"}, false, []string{"1.2.2"}},
	{"referring physician", index.StudyLevel, map[string]string{"ReferringPhysicianName": "WELBY^MARCUS"}, false, []string{"1.2.1"}},
	{"sex", index.StudyLevel, map[string]string{"PatientSex": "F"}, false, []string{"1.2.4"}},
	{"birth date range", index.StudyLevel, map[string]string{"PatientBirthDate": "19750101-19851231"}, false, []string{"1.2.3"}},
	{"series of a study", index.SeriesLevel, map[string]string{"StudyInstanceUID": "1.2.1"}, false, []string{"1.3.1", "1.3.2"}},
	{"series modality list", index.SeriesLevel, map[string]string{"Modality": "CT\\MR"}, false, []string{"1.3.3", "1.3.1"}},
	{"series number", index.SeriesLevel, map[string]string{"SeriesNumber": "2"}, false, []string{"1.3.2", "1.3.5"}},
	{"series patient key", index.SeriesLevel, map[string]string{"PatientID": "PAT2"}, false, []string{"1.3.4", "1.3.5"}},
	{"series without number sorts last", index.SeriesLevel, map[string]string{"StudyInstanceUID": "1.2.4"}, false, []string{"1.3.6"}},
	{"instances by number", index.ImageLevel, map[string]string{"SeriesInstanceUID": "1.3.1"}, false, []string{"1.4.11", "1.4.12", "1.4.13"}},
	{"instance number", index.ImageLevel, map[string]string{"SeriesInstanceUID": "1.3.1", "InstanceNumber": "2"}, false, []string{"1.4.12"}},
	{"instance uid list", index.ImageLevel, map[string]string{"SOPInstanceUID": "1.4.51\\1.4.11"}, false, []string{"1.4.11", "1.4.51"}},
	{"sop class", index.ImageLevel, map[string]string{"SOPClassUID": mrClass}, false, []string{"1.4.31", "1.4.32"}},
	{"instances of a study", index.ImageLevel, map[string]string{"StudyInstanceUID": "1.2.3"}, false, []string{"1.4.41", "1.4.51"}},
	{"patients", index.PatientLevel, nil, false, []string{"PAT1|OTHER", "PAT1|HOSP", "PAT2|HOSP"}},
	{"patients by id", index.PatientLevel, map[string]string{"PatientID": "PAT1"}, false, []string{"PAT1|OTHER", "PAT1|HOSP"}},
	{"patients by name", index.PatientLevel, map[string]string{"PatientName": "smith*"}, false, []string{"PAT2|HOSP"}},
	{"study key at patient level is ignored", index.PatientLevel, map[string]string{"PatientID": "PAT2", "StudyDate": "19000101"}, false, []string{"PAT2|HOSP"}},
}

func filters(t *testing.T, m map[string]string) []index.Filter {
	var out []index.Filter
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		tag, err := dcm.ParseTag(k)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, index.Filter{Tag: tag, Value: m[k]})
	}
	return out
}

func uids(r *index.Result, level index.Level) []string {
	var out []string
	switch level {
	case index.PatientLevel:
		for _, p := range r.Patients {
			out = append(out, p.PatientID+"|"+p.IssuerOfPatientID)
		}
	case index.StudyLevel:
		for _, s := range r.Studies {
			out = append(out, s.StudyInstanceUID)
		}
	case index.SeriesLevel:
		for _, s := range r.Series {
			out = append(out, s.SeriesInstanceUID)
		}
	case index.ImageLevel:
		for _, s := range r.Instances {
			out = append(out, s.SOPInstanceUID)
		}
	}
	return out
}

func testMatching(t *testing.T, x index.Index) {
	fixture(t, x)
	for _, c := range MatchingCases {
		t.Run(c.Name, func(t *testing.T) {
			r, err := x.Find(ctx(t), index.Query{Level: c.Level, Filters: filters(t, c.Filters), Fuzzy: c.Fuzzy})
			if err != nil {
				t.Fatal(err)
			}
			if got := uids(r, c.Level); fmt.Sprint(got) != fmt.Sprint(c.Want) {
				t.Fatalf("got %v, want %v", got, c.Want)
			}
		})
	}
	t.Run("ignored keys are reported", func(t *testing.T) {
		r, err := x.Find(ctx(t), index.Query{Level: index.StudyLevel, Filters: filters(t, map[string]string{"InstitutionName": "X"})})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Studies) != 4 || len(r.Ignored) != 1 || r.Ignored[0] != dcm.NewTag(0x0008, 0x0080) {
			t.Fatalf("studies %d ignored %v", len(r.Studies), r.Ignored)
		}
	})
}

func testCounts(t *testing.T, x index.Index) {
	fixture(t, x)
	r, err := x.Find(ctx(t), index.Query{Level: index.StudyLevel, Filters: filters(t, map[string]string{"StudyInstanceUID": "1.2.1"})})
	if err != nil || len(r.Studies) != 1 {
		t.Fatalf("%v %v", r, err)
	}
	s := r.Studies[0]
	if s.NumberOfStudyRelatedSeries != 2 || s.NumberOfStudyRelatedInstances != 4 {
		t.Fatalf("counts = %d series, %d instances", s.NumberOfStudyRelatedSeries, s.NumberOfStudyRelatedInstances)
	}
	if fmt.Sprint(s.ModalitiesInStudy) != "[CT SR]" {
		t.Fatalf("ModalitiesInStudy = %v", s.ModalitiesInStudy)
	}
	if fmt.Sprint(s.SOPClassesInStudy) != fmt.Sprint([]string{ctClass, srClass}) {
		t.Fatalf("SOPClassesInStudy = %v", s.SOPClassesInStudy)
	}
	if s.PatientName != "Müller^Jürgen" || s.NumberOfPatientRelatedStudies != 2 || s.StudyDescription != "CT Thorax" {
		t.Fatalf("study = %+v", s)
	}
	rs, err := x.Find(ctx(t), index.Query{Level: index.SeriesLevel, Filters: filters(t, map[string]string{"SeriesInstanceUID": "1.3.1"})})
	if err != nil || len(rs.Series) != 1 || rs.Series[0].NumberOfSeriesRelatedInstances != 3 || *rs.Series[0].SeriesNumber != 1 {
		t.Fatalf("series = %+v, %v", rs, err)
	}
	c, err := x.Counts(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if c != (index.Counts{Patients: 3, Studies: 4, Series: 6, Instances: 9, Bytes: 9000}) {
		t.Fatalf("Counts = %+v", c)
	}
	if err := x.Ping(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

func testDuplicate(t *testing.T, x index.Index) {
	in := Inst(s1, "1.3.1", "CT", ip(1), "1.4.1", ctClass, ip(1))
	if err := x.Put(ctx(t), in); err != nil {
		t.Fatal(err)
	}
	in2 := Inst(s1, "1.3.1", "CT", ip(1), "1.4.1", ctClass, ip(1))
	in2.BlobKey = "dicom/test/other"
	if err := x.Put(ctx(t), in2); !errors.Is(err, index.ErrExists) {
		t.Fatalf("second Put = %v, want ErrExists", err)
	}
	got, err := x.Instance(ctx(t), "1.4.1")
	if err != nil || got.BlobKey != in.BlobKey {
		t.Fatalf("Instance = %+v, %v", got, err)
	}
	if _, err := x.Instance(ctx(t), "9.9.9"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("missing Instance = %v", err)
	}
}

func testConflict(t *testing.T, x index.Index) {
	if err := x.Put(ctx(t), Inst(s1, "1.3.1", "CT", ip(1), "1.4.1", ctClass, ip(1))); err != nil {
		t.Fatal(err)
	}
	// The same series UID under another study is refused, and nothing is half-written.
	err := x.Put(ctx(t), Inst(s3, "1.3.1", "CT", ip(1), "1.4.2", ctClass, ip(2)))
	if !errors.Is(err, index.ErrConflict) {
		t.Fatalf("Put = %v, want ErrConflict", err)
	}
	c, _ := x.Counts(ctx(t))
	if c.Instances != 1 || c.Studies != 1 {
		t.Fatalf("after conflict counts = %+v", c)
	}
	// A study UID reused for another patient is refused too.
	other := Inst(s1, "1.3.9", "CT", ip(1), "1.4.3", ctClass, ip(1))
	other.PatientID = "SOMEONE-ELSE"
	if err := x.Put(ctx(t), other); !errors.Is(err, index.ErrConflict) {
		t.Fatalf("Put = %v, want ErrConflict", err)
	}
	c, _ = x.Counts(ctx(t))
	if c.Patients != 1 {
		t.Fatalf("after patient conflict counts = %+v", c)
	}
}

func testReplaceDelete(t *testing.T, x index.Index) {
	fixture(t, x)
	// Replace moves 1.4.21 (the SR, alone in its series) to a new series with new bytes.
	in := Inst(s1, "1.3.9", "KO", ip(9), "1.4.21", "1.2.840.10008.5.1.4.1.1.88.59", ip(1))
	in.BlobKey = "dicom/test/replaced"
	old, err := x.Replace(ctx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	if old == nil || old.BlobKey != "dicom/test/1.4.21" {
		t.Fatalf("old = %+v", old)
	}
	r, _ := x.Find(ctx(t), index.Query{Level: index.StudyLevel, Filters: filters(t, map[string]string{"StudyInstanceUID": "1.2.1"})})
	s := r.Studies[0]
	if s.NumberOfStudyRelatedSeries != 2 || s.NumberOfStudyRelatedInstances != 4 || fmt.Sprint(s.ModalitiesInStudy) != "[CT KO]" {
		t.Fatalf("after replace: %d series %d instances %v", s.NumberOfStudyRelatedSeries, s.NumberOfStudyRelatedInstances, s.ModalitiesInStudy)
	}
	// Delete one CT instance: counts drop.
	if _, err := x.DeleteInstance(ctx(t), "1.4.12"); err != nil {
		t.Fatal(err)
	}
	r, _ = x.Find(ctx(t), index.Query{Level: index.SeriesLevel, Filters: filters(t, map[string]string{"SeriesInstanceUID": "1.3.1"})})
	if r.Series[0].NumberOfSeriesRelatedInstances != 2 || r.Series[0].NumberOfStudyRelatedInstances != 3 {
		t.Fatalf("after delete: %+v", r.Series[0])
	}
	// Deleting the last instance of a patient's only study removes them all.
	if _, err := x.DeleteInstance(ctx(t), "1.4.61"); err != nil {
		t.Fatal(err)
	}
	c, _ := x.Counts(ctx(t))
	if c.Patients != 2 || c.Studies != 3 || c.Instances != 7 {
		t.Fatalf("counts = %+v", c)
	}
	if _, err := x.DeleteInstance(ctx(t), "1.4.61"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("second delete = %v", err)
	}
	// Removing a whole series recomputes ModalitiesInStudy.
	if _, err := x.DeleteInstance(ctx(t), "1.4.51"); err != nil {
		t.Fatal(err)
	}
	r, _ = x.Find(ctx(t), index.Query{Level: index.StudyLevel, Filters: filters(t, map[string]string{"StudyInstanceUID": "1.2.3"})})
	if fmt.Sprint(r.Studies[0].ModalitiesInStudy) != "[XA]" || r.Studies[0].NumberOfStudyRelatedSeries != 1 {
		t.Fatalf("after series removal: %+v", r.Studies[0])
	}
}

func testRoundTrip(t *testing.T, x index.Index) {
	in := Inst(s2, "1.3.3", "MR", ip(4), "1.4.99", mrClass, ip(7))
	in.Metadata = []byte(`{"00100010":{"vr":"PN","Value":[{"Alphabetic":"Müller^Jürgen"}]}}`)
	in.PixelLayout = []byte(`{"n":1,"o":1234,"l":8192,"fl":8192}`)
	in.Bulk = []byte(`[{"p":"7FE00010","r":{"o":1234,"l":8192},"vr":"OW"}]`)
	in.NumberOfFrames, in.Rows, in.Columns, in.BitsAllocated = 3, 512, 256, 16
	in.MetadataOmitted = "12 private elements beyond the limit of 10000"
	in.SourceAE = "MR1"
	in.Digest = strings.Repeat("0f", 32)
	in.Size = 123456789012
	if err := x.Put(ctx(t), in); err != nil {
		t.Fatal(err)
	}
	got, err := x.Instance(ctx(t), "1.4.99")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Metadata) != string(in.Metadata) || string(got.PixelLayout) != string(in.PixelLayout) || string(got.Bulk) != string(in.Bulk) {
		t.Fatalf("heavy columns differ: %s %s %s", got.Metadata, got.PixelLayout, got.Bulk)
	}
	if got.NumberOfFrames != 3 || got.Rows != 512 || got.Columns != 256 || got.BitsAllocated != 16 || got.MetadataOmitted != in.MetadataOmitted || got.SourceAE != "MR1" || got.Size != in.Size || got.Digest != in.Digest || *got.InstanceNumber != 7 || *got.SeriesNumber != 4 {
		t.Fatalf("instance = %+v", got)
	}
	if got.StudyTime != "143000.5" || got.StudyDate != "20260301" || got.PatientBirthDate != "19700101" || got.StudyID != "ID1.2.2" {
		t.Fatalf("study fields = %+v", got.Study)
	}
	if time.Since(got.ReceivedAt) > time.Hour {
		t.Fatalf("ReceivedAt = %v", got.ReceivedAt)
	}
	byKey, err := x.InstanceByBlobKey(ctx(t), in.BlobKey)
	if err != nil || byKey.SOPInstanceUID != "1.4.99" {
		t.Fatalf("InstanceByBlobKey = %+v, %v", byKey, err)
	}
	// Image-level queries do not carry the heavy columns.
	r, err := x.Find(ctx(t), index.Query{Level: index.ImageLevel, Filters: filters(t, map[string]string{"SOPInstanceUID": "1.4.99"})})
	if err != nil || len(r.Instances) != 1 || r.Instances[0].BlobKey != in.BlobKey || r.Instances[0].Metadata != nil {
		t.Fatalf("Find = %+v, %v", r, err)
	}
	// They carry what QIDO-RS answers by default, and what was left out of the metadata.
	if got := r.Instances[0]; got.BitsAllocated != 16 || got.Rows != 512 || got.MetadataOmitted != in.MetadataOmitted {
		t.Fatalf("Find: BitsAllocated %d Rows %d MetadataOmitted %q", got.BitsAllocated, got.Rows, got.MetadataOmitted)
	}
	// ... unless asked for.
	r, err = x.Find(ctx(t), index.Query{Level: index.ImageLevel, Filters: filters(t, map[string]string{"SOPInstanceUID": "1.4.99"}), WithMetadata: true})
	if err != nil || len(r.Instances) != 1 || string(r.Instances[0].Metadata) != string(in.Metadata) || string(r.Instances[0].PixelLayout) != string(in.PixelLayout) || string(r.Instances[0].Bulk) != string(in.Bulk) {
		t.Fatalf("Find WithMetadata = %+v, %v", r, err)
	}
}

func testBlobKeys(t *testing.T, x index.Index) {
	keys := []string{"dicom/2026/01/02/ab/z", "dicom/2026/01/02/ab/a", "dicom/2026/01/03/00/m", "dicom/2026/01/02-x/q", "other/k"}
	for i, k := range keys {
		in := Inst(s1, "1.3.1", "CT", ip(1), fmt.Sprintf("1.4.%d", i), ctClass, ip(i))
		in.BlobKey = k
		if err := x.Put(ctx(t), in); err != nil {
			t.Fatal(err)
		}
	}
	list := func(prefix string) []string {
		var out []string
		for k, err := range x.BlobKeys(ctx(t), prefix) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, k)
		}
		return out
	}
	want := slices.Clone(keys)
	slices.Sort(want) // byte-wise
	if got := list(""); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("BlobKeys() = %v, want %v", got, want)
	}
	if got := list("dicom/2026/01/02/"); fmt.Sprint(got) != "[dicom/2026/01/02/ab/a dicom/2026/01/02/ab/z]" {
		t.Fatalf("BlobKeys(prefix) = %v", got)
	}
}

func testConcurrent(t *testing.T, x index.Index) {
	const writers, per = 8, 12
	var wg sync.WaitGroup
	errs := make(chan error, writers*per*2)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				series := fmt.Sprintf("1.3.%d", i%3)
				in := Inst(s1, series, []string{"CT", "MR", "SR"}[i%3], ip(i%3), fmt.Sprintf("1.4.%d.%d", w, i), ctClass, ip(i))
				if err := x.Put(ctx(t), in); err != nil {
					errs <- err
				}
			}
		}()
	}
	// The same SOP Instance UID from every writer: exactly one wins.
	var won sync.Map
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := Inst(s1, "1.3.0", "CT", ip(0), "1.4.same", ctClass, ip(1))
			in.BlobKey = fmt.Sprintf("dicom/test/same-%d", w)
			err := x.Put(ctx(t), in)
			switch {
			case err == nil:
				won.Store(w, true)
			case errors.Is(err, index.ErrExists):
			default:
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	n := 0
	won.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Fatalf("%d writers won the same SOP Instance UID", n)
	}
	r, err := x.Find(ctx(t), index.Query{Level: index.StudyLevel})
	if err != nil || len(r.Studies) != 1 {
		t.Fatalf("%+v %v", r, err)
	}
	s := r.Studies[0]
	if s.NumberOfStudyRelatedInstances != writers*per+1 || s.NumberOfStudyRelatedSeries != 3 || fmt.Sprint(s.ModalitiesInStudy) != "[CT MR SR]" {
		t.Fatalf("study counts = %d instances, %d series, %v", s.NumberOfStudyRelatedInstances, s.NumberOfStudyRelatedSeries, s.ModalitiesInStudy)
	}
	if s.NumberOfPatientRelatedStudies != 1 {
		t.Fatalf("patient studies = %d", s.NumberOfPatientRelatedStudies)
	}
}

func testPaging(t *testing.T, x index.Index) {
	fixture(t, x)
	all := []string{"1.2.2", "1.2.1", "1.2.3", "1.2.4"}
	for _, c := range []struct{ limit, offset int }{{2, 0}, {2, 2}, {3, 3}, {10, 4}, {0, 1}} {
		r, err := x.Find(ctx(t), index.Query{Level: index.StudyLevel, Limit: c.limit, Offset: c.offset})
		if err != nil {
			t.Fatal(err)
		}
		end := len(all)
		if c.limit > 0 && c.offset+c.limit < end {
			end = c.offset + c.limit
		}
		want := []string{}
		if c.offset < len(all) {
			want = all[c.offset:end]
		}
		if got := uids(r, index.StudyLevel); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("limit %d offset %d: %v, want %v", c.limit, c.offset, got, want)
		}
	}
}

// testScope checks that a scope in the context (index.WithScope) restricts every level
// of Find and the instance look-ups, whatever the filters say.
func testScope(t *testing.T, x index.Index) {
	fixture(t, x)
	hosp1 := index.WithScope(ctx(t), index.Scope{Patient: &index.PatientKey{ID: "PAT1", Issuer: "HOSP"}})
	noIssuer := index.WithScope(ctx(t), index.Scope{Patient: &index.PatientKey{ID: "PAT1"}})
	study3 := index.WithScope(ctx(t), index.Scope{StudyInstanceUID: "1.2.3"})
	both := index.WithScope(study3, index.Scope{Patient: &index.PatientKey{ID: "PAT1", Issuer: "HOSP"}})
	for _, c := range []struct {
		name    string
		ctx     context.Context
		level   index.Level
		filters map[string]string
		want    []string
	}{
		{"patient: all studies", hosp1, index.StudyLevel, nil, []string{"1.2.2", "1.2.1"}},
		{"patient: the same ID of another issuer stays out", hosp1, index.StudyLevel, map[string]string{"PatientID": "PAT1"}, []string{"1.2.2", "1.2.1"}},
		{"patient: a filter for another patient finds nothing", hosp1, index.StudyLevel, map[string]string{"PatientID": "PAT2"}, nil},
		{"patient: an empty issuer is exact", noIssuer, index.StudyLevel, nil, nil},
		{"patient: patients", hosp1, index.PatientLevel, nil, []string{"PAT1|HOSP"}},
		{"patient: series", hosp1, index.SeriesLevel, nil, []string{"1.3.3", "1.3.1", "1.3.2"}},
		{"patient: instances", hosp1, index.ImageLevel, map[string]string{"SOPClassUID": ctClass}, []string{"1.4.11", "1.4.12", "1.4.13"}},
		{"study: studies", study3, index.StudyLevel, nil, []string{"1.2.3"}},
		{"study: patients", study3, index.PatientLevel, nil, []string{"PAT2|HOSP"}},
		{"study: series", study3, index.SeriesLevel, nil, []string{"1.3.4", "1.3.5"}},
		{"study: another study by filter", study3, index.StudyLevel, map[string]string{"StudyInstanceUID": "1.2.1"}, nil},
		{"two scopes: both apply", both, index.StudyLevel, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := x.Find(c.ctx, index.Query{Level: c.level, Filters: filters(t, c.filters)})
			if err != nil {
				t.Fatal(err)
			}
			if got := uids(r, c.level); fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
	if _, err := x.Instance(hosp1, "1.4.11"); err != nil {
		t.Fatalf("instance in scope: %v", err)
	}
	for _, c := range []context.Context{hosp1, study3} {
		if _, err := x.Instance(c, "1.4.61"); !errors.Is(err, index.ErrNotFound) {
			t.Fatalf("instance out of scope: %v", err)
		}
		if _, err := x.InstanceByBlobKey(c, "dicom/test/1.4.61"); !errors.Is(err, index.ErrNotFound) {
			t.Fatalf("instance by blob key out of scope: %v", err)
		}
	}
}
