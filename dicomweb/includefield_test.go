package dicomweb

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/lumenpacs/lumen/archive/fs"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/sqlite"
	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// resultObjectBefore is resultObject as it was before the merge went one way: record →
// JSON → map, stored metadata → map, the maps merged and marshalled again. The tests
// hold the new merge to its output, byte for byte.
func resultObjectBefore(rec index.Record, tags []dcm.Tag, url string, meta []byte, all bool) ([]byte, error) {
	ds := &dcm.Dataset{}
	nonASCII := false
	var fromMeta []string
	for _, t := range tags {
		vr, vals, ok := rec.Attribute(t)
		if !ok {
			if meta != nil {
				fromMeta = append(fromMeta, t.Hex())
			}
			continue
		}
		for _, v := range vals {
			if !dcm.IsASCII(v) {
				nonASCII = true
			}
		}
		e, err := dcm.NewValue(t, vr, vals...)
		if err != nil {
			return nil, err
		}
		ds.Set(e)
	}
	ds.Set(dcm.NewString(dcm.TagInstanceAvailability, "CS", "ONLINE"))
	ds.Set(dcm.NewString(dcm.TagRetrieveURL, "UR", url))
	if nonASCII {
		ds.Set(dcm.NewString(dcm.TagSpecificCharacterSet, "CS", "ISO_IR 192"))
	}
	js, _, err := ds.JSON(nil)
	if err != nil {
		return nil, err
	}
	if meta == nil || (len(fromMeta) == 0 && !all) {
		return js, nil
	}
	var held, stored map[string]json.RawMessage
	if err := json.Unmarshal(js, &held); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(absoluteBulkURIs(meta, url), &stored); err != nil {
		return nil, err
	}
	if all {
		for k, v := range stored {
			if _, ok := held[k]; !ok && k != "00080005" {
				held[k] = v
			}
		}
	} else {
		for _, k := range fromMeta {
			if v, ok := stored[k]; ok {
				held[k] = v
			}
		}
	}
	if _, ok := stored["00080005"]; ok && !nonASCII {
		held["00080005"] = stored["00080005"]
	}
	return json.Marshal(held)
}

const testRoot = "http://lumen.test/dicom-web"

// corpusRecords indexes the generated corpus (CT, MR, SR, XA and US cines, ECG; one
// patient with a non-ASCII name) in a SQLite index and returns its study, series and
// instance records, instances with their stored metadata.
func corpusRecords(t testing.TB) (studies, series, instances []index.Record) {
	t.Helper()
	ctx := context.Background()
	st, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	idx, err := sqlite.Open(ctx, t.TempDir()+"/index.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	p := &ingest.Pipeline{Store: st, Index: idx}
	objs, err := gen.Corpus(3)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if _, err := p.IngestFile(ctx, bytes.NewReader(o.Data), int64(len(o.Data)), ingest.Source{Via: "import"}); err != nil {
			t.Fatal(err)
		}
	}
	find := func(level index.Level) []index.Record {
		res, err := idx.Find(ctx, index.Query{Level: level, WithMetadata: true})
		if err != nil {
			t.Fatal(err)
		}
		return res.Records(level)
	}
	return find(index.StudyLevel), find(index.SeriesLevel), find(index.ImageLevel)
}

// storedDocs are stored metadata documents beyond those dcm writes: members the
// record's answer has too (PatientName, RetrieveURL, InstanceAvailability, Specific
// Character Set with and without a value), characters json.Marshal escapes, escaped
// quotes and brackets in strings, BulkDataURIs at the top and nested, white space,
// members out of order and twice, null and empty objects.
var storedDocs = []string{
	`{"00080005":{"vr":"CS","Value":["ISO_IR 192"]},"00080008":{"vr":"CS","Value":["ORIGINAL","PRIMARY"]},"00081190":{"vr":"UR","Value":["http://elsewhere/<x>&y"]},"00100010":{"vr":"PN","Value":[{"Alphabetic":"Stored^Name"}]}}`,
	`{"00080005":{"vr":"CS"},"00080056":{"vr":"CS","Value":["NEARLINE"]},"7FE00010":{"vr":"OW","BulkDataURI":"bulkdata/7FE00010"}}`,
	"{\"00081030\":{\"vr\":\"LO\",\"Value\":[\"a\u2028b\u2029 <c> & d\"]},\"00204000\":{\"vr\":\"LT\",\"Value\":[\"say \\\"hi\\\" \\\\ \\\"}\\\" ]\"]}}",
	`{"00400275":{"vr":"SQ","Value":[{"00420011":{"vr":"OB","BulkDataURI":"bulkdata/00400275/0/00420011"}},{"00420011":{"vr":"OB","BulkDataURI":"bulkdata/00400275/1/00420011"}}]}}`,
	` { "00080008" : { "vr" : "CS", "Value" : [ "DERIVED" , "SECONDARY" ] } , "00420011": {"vr": "OB", "BulkDataURI": "bulkdata/00420011"}, "00420012": {"vr":"OB","BulkDataURI":"bulkdata/00420012"} } `,
	`{"00200013":{"vr":"IS","Value":[5]},"00080008":{"vr":"CS","Value":["A"]},"00080008":{"vr":"CS","Value":["B"]},"00080005":{"vr":"CS","Value":["ISO_IR 192"]}}`,
	`null`,
	`{}`,
	" {\n} ",
	`{"00080008":{"vr":"CS","Value":["ORIGINAL"]},"00280100":{"vr":"US","Value":[16]},"00280101":{"vr":"US","Value":[12]},"0040A730":{"vr":"SQ","Value":[{"0040A160":{"vr":"UT","Value":["x"]}}]}}`,
}

// badDocs are stored metadata documents that are no JSON object: both merges refuse
// them.
var badDocs = []string{``, `{`, `[1]`, `{"00080008":1,}`, `{"00080008" 1}`, `{"00080008":{"vr":"CS"}`, `{"00080008":"x}`, `{} x`, `{"00080008":[}]}`}

// tagSets are return attributes as QIDO-RS builds them: the defaults, includefield of
// attributes only the stored metadata holds, of attributes the record's answer holds
// too (RetrieveURL, InstanceAvailability, Specific Character Set), of one absent
// everywhere, and every level's attributes.
func tagSets() [][]dcm.Tag {
	base := append(slices.Clone(instanceTags), dcm.TagStudyInstanceUID, dcm.TagSeriesInstanceUID)
	sets := [][]dcm.Tag{
		nil,
		base,
		append(slices.Clone(base), dcm.NewTag(0x0008, 0x0008)),
		append(slices.Clone(base), dcm.NewTag(0x0008, 0x0008), dcm.NewTag(0x0028, 0x0101), dcm.NewTag(0x0040, 0xA730), dcm.NewTag(0x0042, 0x0011)),
		append(slices.Clone(base), dcm.TagRetrieveURL, dcm.TagInstanceAvailability, dcm.TagSpecificCharacterSet),
		append(slices.Clone(base), dcm.TagSpecificCharacterSet),
		append(slices.Clone(base), dcm.NewTag(0x0009, 0x1010)),
		slices.Concat(base, seriesTags, studyTags, studyAllTags, []dcm.Tag{dcm.TagPatientName, dcm.NewTag(0x0008, 0x1030)}),
	}
	for i := range sets {
		slices.Sort(sets[i])
		sets[i] = slices.Compact(sets[i])
	}
	return sets
}

// TestResultObjectAsBefore holds the one-way merge to the output of the map round trip
// it replaced, byte for byte: the records of a generated corpus with the metadata dcm
// stored for them, then crafted stored documents (a member in both, with either rule
// of which wins), with every set of return attributes, with and without includefield=all.
func TestResultObjectAsBefore(t *testing.T) {
	studies, series, instances := corpusRecords(t)
	if len(studies) == 0 || len(series) == 0 || len(instances) < 30 {
		t.Fatalf("corpus: %d studies, %d series, %d instances", len(studies), len(series), len(instances))
	}
	check := func(t *testing.T, rec index.Record, tags []dcm.Tag, all bool) {
		t.Helper()
		var meta []byte
		if in, ok := rec.(*index.Instance); ok {
			meta = in.Metadata
		}
		want, wantErr := resultObjectBefore(rec, tags, retrieveURL(testRoot, rec), meta, all)
		got, err := resultObject(rec, tags, testRoot, all)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("error %v, before %v (meta %q)", err, wantErr, meta)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("tags %v all %v meta %q\ngot    %s\nbefore %s", tags, all, meta, got, want)
		}
	}
	// The crafted documents go with a patient whose answer has a Specific Character Set
	// (a non-ASCII name) and with one whose answer has none: the two rules of which
	// Specific Character Set wins.
	var crafted []index.Record
	for _, ascii := range []bool{true, false} {
		for _, rec := range instances {
			if _, v, _ := rec.Attribute(dcm.TagPatientName); dcm.IsASCII(v[0]) == ascii {
				crafted = append(crafted, rec)
				break
			}
		}
	}
	if len(crafted) != 2 {
		t.Fatal("the corpus lacks an ASCII or a non-ASCII patient name")
	}
	for _, tags := range tagSets() {
		for _, all := range []bool{false, true} {
			for _, rec := range slices.Concat(studies, series, instances) {
				check(t, rec, tags, all)
			}
			for _, rec := range crafted {
				in := *rec.(*index.Instance)
				for _, doc := range storedDocs {
					in.Metadata = []byte(doc)
					check(t, &in, tags, all)
				}
				if _, missing, _ := index.Answer(&in, tags, nil); len(missing) > 0 || all { // the merge runs
					for _, doc := range badDocs {
						in.Metadata = []byte(doc)
						if _, err := resultObject(&in, tags, testRoot, all); err == nil {
							t.Errorf("stored metadata %q: no error", doc)
						}
						check(t, &in, tags, all)
					}
				}
			}
		}
	}
}

// TestMergeStoredWins spells out which member wins when both documents have it.
func TestMergeStoredWins(t *testing.T) {
	held := `{"00080005":{"vr":"CS","Value":["ISO_IR 192"]},"00080056":{"vr":"CS","Value":["ONLINE"]},"00100010":{"vr":"PN","Value":[{"Alphabetic":"Held"}]}}`
	stored := `{"00080005":{"vr":"CS"},"00080056":{"vr":"CS","Value":["NEARLINE"]},"00100010":{"vr":"PN","Value":[{"Alphabetic":"Stored"}]},"00200013":{"vr":"IS","Value":[1]}}`
	for _, c := range []struct {
		name     string
		fromMeta []dcm.Tag
		all      bool
		want     string
	}{
		{"includefield of an attribute the answer has: stored wins", []dcm.Tag{dcm.TagInstanceAvailability, dcm.TagSpecificCharacterSet}, false,
			`{"00080005":{"vr":"CS"},"00080056":{"vr":"CS","Value":["NEARLINE"]},"00100010":{"vr":"PN","Value":[{"Alphabetic":"Held"}]}}`},
		{"all: held wins, stored adds", nil, true,
			`{"00080005":{"vr":"CS","Value":["ISO_IR 192"]},"00080056":{"vr":"CS","Value":["ONLINE"]},"00100010":{"vr":"PN","Value":[{"Alphabetic":"Held"}]},"00200013":{"vr":"IS","Value":[1]}}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := mergeStored([]byte(held), []byte(stored), "http://x", c.fromMeta, c.all)
			if err != nil || string(got) != c.want {
				t.Fatalf("got %s, %v\nwant %s", got, err, c.want)
			}
		})
	}
}

// BenchmarkQIDOIncludeFieldMerge measures the result objects of the 39 instances of the
// generated corpus (CT, MR, SR, XA, US, ECG) with their stored metadata, before (the map round trip) and after
// (one pass), for one attribute only the metadata holds (ImageType) and for all.
func BenchmarkQIDOIncludeFieldMerge(b *testing.B) {
	_, _, instances := corpusRecords(b)
	base := append(slices.Clone(instanceTags), dcm.TagStudyInstanceUID, dcm.TagSeriesInstanceUID)
	for _, c := range []struct {
		name string
		tags []dcm.Tag
		all  bool
	}{
		{"ImageType", append(slices.Clone(base), dcm.NewTag(0x0008, 0x0008)), false},
		{"all", slices.Concat(base, seriesTags, studyTags, studyAllTags), true},
	} {
		slices.Sort(c.tags)
		c.tags = slices.Compact(c.tags)
		b.Run(c.name+"/before", func(b *testing.B) {
			for b.Loop() {
				for _, rec := range instances {
					if _, err := resultObjectBefore(rec, c.tags, retrieveURL(testRoot, rec), rec.(*index.Instance).Metadata, c.all); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(c.name+"/after", func(b *testing.B) {
			for b.Loop() {
				for _, rec := range instances {
					if _, err := resultObject(rec, c.tags, testRoot, c.all); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
