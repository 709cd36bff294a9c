package indextest

import (
	"context"
	"fmt"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/sqlindex"
)

// File returns a minimal PS3.10 file (Explicit VR Little Endian, UTF-8) holding the
// attributes of an index record, so that the matching table can be run end to end
// through ingest (C-FIND, QIDO-RS).
func File(in *index.Instance) ([]byte, error) {
	ds := &dcm.Dataset{}
	set := func(tag dcm.Tag, vr, v string) {
		if v != "" {
			ds.Set(dcm.NewString(tag, vr, v))
		}
	}
	ds.Set(dcm.NewString(dcm.TagSpecificCharacterSet, "CS", "ISO_IR 192"))
	set(dcm.TagSOPClassUID, "UI", in.SOPClassUID)
	set(dcm.TagSOPInstanceUID, "UI", in.SOPInstanceUID)
	set(dcm.TagStudyDate, "DA", in.StudyDate)
	set(dcm.TagStudyTime, "TM", in.StudyTime)
	set(dcm.TagAccessionNumber, "SH", in.AccessionNumber)
	set(dcm.TagModality, "CS", in.Modality)
	set(dcm.TagReferringPhysicianName, "PN", in.ReferringPhysicianName)
	set(dcm.TagStudyDescription, "LO", in.StudyDescription)
	set(dcm.TagPatientName, "PN", in.PatientName)
	set(dcm.TagPatientID, "LO", in.PatientID)
	set(dcm.TagIssuerOfPatientID, "LO", in.IssuerOfPatientID)
	set(dcm.TagPatientBirthDate, "DA", in.PatientBirthDate)
	set(dcm.TagPatientSex, "CS", in.PatientSex)
	set(dcm.TagStudyInstanceUID, "UI", in.StudyInstanceUID)
	set(dcm.TagSeriesInstanceUID, "UI", in.SeriesInstanceUID)
	set(dcm.TagStudyID, "SH", in.StudyID)
	if in.SeriesNumber != nil {
		set(dcm.TagSeriesNumber, "IS", fmt.Sprint(*in.SeriesNumber))
	}
	if in.InstanceNumber != nil {
		set(dcm.TagInstanceNumber, "IS", fmt.Sprint(*in.InstanceNumber))
	}
	body, err := ds.Encode(dcm.ExplicitVRLittleEndian)
	if err != nil {
		return nil, err
	}
	return append(dcm.EncodeMeta(dcm.Meta{MediaStorageSOPClassUID: in.SOPClassUID, MediaStorageSOPInstanceUID: in.SOPInstanceUID, TransferSyntaxUID: dcm.ExplicitVRLittleEndian, ImplementationClassUID: "1.2.3.4"}), body...), nil
}

// Unmigrate0004 puts a migrated database back as it was before migration 0004 (no
// bits_allocated or metadata_omitted columns), so that a test can check what the
// migration does to instances indexed before it. exec runs one statement.
func Unmigrate0004(exec func(stmt string) error) error {
	for _, stmt := range []string{
		`ALTER TABLE instances DROP COLUMN bits_allocated`,
		`ALTER TABLE instances DROP COLUMN metadata_omitted`,
		`DELETE FROM schema_migrations WHERE version = 4`,
	} {
		if err := exec(stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	return nil
}

// Backfill0004Fixture returns instances whose stored metadata holds BitsAllocated in
// the forms migration 0004 meets (and some it cannot read), with the BitsAllocated the
// migration should find.
func Backfill0004Fixture() (list []*index.Instance, want map[string]int) {
	want = map[string]int{}
	for i, c := range []struct {
		meta string
		bits int
	}{
		{`{"00080018":{"vr":"UI","Value":["x"]},"00280100":{"vr":"US","Value":[16]}}`, 16},
		{`{"00280100":{"vr":"US","Value":[8]},"7FE00010":{"vr":"OB","BulkDataURI":"bulkdata/7FE00010"}}`, 8},
		{`{"00081140":{"vr":"SQ","Value":[{"00280100":{"vr":"US","Value":[12]}}]}}`, 0}, // nested only
		{`{"00280100":{"vr":"US"}}`, 0},
		{`{"00100010":{"vr":"PN","Value":[{"Alphabetic":"A\u0000B"}]},"00280100":{"vr":"US","Value":[32]}}`, 32},
		{`not json "00280100"`, 0},
	} {
		in := Inst(s1, "1.3.1", "CT", ip(1), fmt.Sprintf("1.4.%d", i), ctClass, ip(i))
		in.Metadata = []byte(c.meta)
		list = append(list, in)
		want[in.SOPInstanceUID] = c.bits
	}
	return list, want
}

// Migration0004Backfill checks that migration 0004 fills BitsAllocated in from the
// metadata of the instances indexed before it: open opens the same database each time
// it is called (migrating it to the newest version).
func Migration0004Backfill(t *testing.T, open func() (*sqlindex.DB, error)) {
	ctx := context.Background()
	x, err := open()
	if err != nil {
		t.Fatal(err)
	}
	list, want := Backfill0004Fixture()
	for _, in := range list {
		if err := x.Put(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	if err := Unmigrate0004(func(stmt string) error { _, err := x.SQL().ExecContext(ctx, stmt); return err }); err != nil {
		t.Fatal(err)
	}
	x.Close()
	if x, err = open(); err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	for uid, bits := range want {
		in, err := x.Instance(ctx, uid)
		if err != nil {
			t.Fatal(err)
		}
		if in.BitsAllocated != bits || in.MetadataOmitted != "" {
			t.Errorf("%s: BitsAllocated %d, want %d (MetadataOmitted %q)", uid, in.BitsAllocated, bits, in.MetadataOmitted)
		}
	}
}
