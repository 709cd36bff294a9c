package indextest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
)

// testRecords checks Result.Records and Answer at the four levels on the fixture: one
// record per result, in the result's order, pointing into the result's slice of the
// level; each answers the attributes of its level and of the levels above, and lists
// those below it (and those no level holds) as missing.
func testRecords(t *testing.T, x index.Index) {
	fixture(t, x)
	institution := dcm.NewTag(0x0008, 0x0080)
	tags := []dcm.Tag{dcm.TagPatientID, dcm.TagIssuerOfPatientID, dcm.TagStudyInstanceUID, dcm.TagSeriesInstanceUID, dcm.TagSOPInstanceUID, institution}
	for _, c := range []struct {
		level   index.Level
		typ     string
		missing []dcm.Tag
	}{
		{index.PatientLevel, "*index.Patient", []dcm.Tag{dcm.TagStudyInstanceUID, dcm.TagSeriesInstanceUID, dcm.TagSOPInstanceUID, institution}},
		{index.StudyLevel, "*index.Study", []dcm.Tag{dcm.TagSeriesInstanceUID, dcm.TagSOPInstanceUID, institution}},
		{index.SeriesLevel, "*index.Series", []dcm.Tag{dcm.TagSOPInstanceUID, institution}},
		{index.ImageLevel, "*index.Instance", []dcm.Tag{institution}},
	} {
		t.Run(c.level.String(), func(t *testing.T) {
			r, err := x.Find(ctx(t), index.Query{Level: c.level})
			if err != nil {
				t.Fatal(err)
			}
			recs := r.Records(c.level)
			want := uids(r, c.level)
			if len(recs) != len(want) || len(want) == 0 {
				t.Fatalf("%d records, want %d", len(recs), len(want))
			}
			for i, rec := range recs {
				if typ := fmt.Sprintf("%T", rec); typ != c.typ {
					t.Fatalf("record %d is a %s, want %s", i, typ, c.typ)
				}
				var same bool
				switch rec := rec.(type) {
				case *index.Patient:
					same = rec == &r.Patients[i]
				case *index.Study:
					same = rec == &r.Studies[i]
				case *index.Series:
					same = rec == &r.Series[i]
				case *index.Instance:
					same = rec == &r.Instances[i]
				}
				if !same {
					t.Fatalf("record %d does not point into the result", i)
				}
				ds, missing, err := index.Answer(rec, tags, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(missing, c.missing) {
					t.Fatalf("record %d: missing %v, want %v", i, missing, c.missing)
				}
				got := ds.String(dcm.TagPatientID) + "|" + ds.String(dcm.TagIssuerOfPatientID)
				switch c.level {
				case index.StudyLevel:
					got = ds.String(dcm.TagStudyInstanceUID)
				case index.SeriesLevel:
					got = ds.String(dcm.TagSeriesInstanceUID)
				case index.ImageLevel:
					got = ds.String(dcm.TagSOPInstanceUID)
				}
				if got != want[i] {
					t.Fatalf("record %d answers %q, want %q", i, got, want[i])
				}
				if c.level != index.PatientLevel && ds.String(dcm.TagPatientID) == "" {
					t.Fatalf("record %d: no PatientID in %v", i, ds.Elements)
				}
			}
			for _, other := range []index.Level{index.PatientLevel, index.StudyLevel, index.SeriesLevel, index.ImageLevel} {
				if other != c.level && len(r.Records(other)) != 0 {
					t.Fatalf("%d records at level %v", len(r.Records(other)), other)
				}
			}
		})
	}
	if recs := (&index.Result{Studies: make([]index.Study, 2)}).Records(0); recs != nil {
		t.Fatalf("records at level 0: %v", recs)
	}
}
