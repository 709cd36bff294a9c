package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"iter"
	"path/filepath"
	"testing"

	"github.com/lumenpacs/lumen/archive"
	"github.com/lumenpacs/lumen/archive/fs"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/sqlite"
	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/lumenpacs/lumen/testdata/gen"
)

type env struct {
	store archive.Store
	idx   index.Index
	p     *ingest.Pipeline
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s, err := fs.New(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	x, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return &env{store: s, idx: x, p: &ingest.Pipeline{Store: s, Index: x}}
}

func (e *env) blobs(t *testing.T) []string {
	var out []string
	for info, err := range e.store.List(context.Background(), "") {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, info.Key)
	}
	return out
}

func (e *env) counts(t *testing.T) index.Counts {
	c, err := e.idx.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ingestBytes(e *env, b []byte) (*ingest.Result, error) {
	return e.p.IngestFile(context.Background(), bytes.NewReader(b), int64(len(b)), ingest.Source{Via: "test"})
}

func corpus(t *testing.T) []gen.Object {
	objs, err := gen.Corpus(1)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func TestCorpus(t *testing.T) {
	e := newEnv(t)
	objs := corpus(t)
	perSeries := map[string]int{}
	studies := map[string]map[string]bool{}
	for _, o := range objs {
		res, err := ingestBytes(e, o.Data)
		if err != nil {
			t.Fatalf("%s: %v", o.Name, err)
		}
		if res.Outcome != ingest.Stored || res.SOPInstanceUID != o.SOPInstanceUID {
			t.Fatalf("%s: %+v", o.Name, res)
		}
		perSeries[o.SeriesUID]++
		if studies[o.StudyUID] == nil {
			studies[o.StudyUID] = map[string]bool{}
		}
		studies[o.StudyUID][o.SeriesUID] = true
		// The stored object is the received file, byte for byte.
		if got := e.stored(t, res.BlobKey); !bytes.Equal(got, o.Data) {
			t.Fatalf("%s: stored bytes differ", o.Name)
		}
	}
	r, err := e.idx.Find(context.Background(), index.Query{Level: index.SeriesLevel})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Series) != len(perSeries) {
		t.Fatalf("%d series indexed, want %d", len(r.Series), len(perSeries))
	}
	for _, s := range r.Series {
		if s.NumberOfSeriesRelatedInstances != perSeries[s.SeriesInstanceUID] {
			t.Fatalf("series %s: %d instances, want %d", s.SeriesInstanceUID, s.NumberOfSeriesRelatedInstances, perSeries[s.SeriesInstanceUID])
		}
		if s.NumberOfStudyRelatedSeries != len(studies[s.StudyInstanceUID]) {
			t.Fatalf("study %s: %d series", s.StudyInstanceUID, s.NumberOfStudyRelatedSeries)
		}
	}
	// The UTF-8 patient name is indexed as text and matches case-insensitively.
	rs, err := e.idx.Find(context.Background(), index.Query{Level: index.StudyLevel, Filters: []index.Filter{{Tag: dcm.TagPatientName, Value: "müller*"}}})
	if err != nil || len(rs.Studies) != 2 {
		t.Fatalf("name query: %d studies, %v", len(rs.Studies), err)
	}
	// Re-ingesting is a no-op.
	before := e.blobs(t)
	for _, o := range objs {
		res, err := ingestBytes(e, o.Data)
		if err != nil || res.Outcome != ingest.AlreadyStored {
			t.Fatalf("second ingest of %s: %+v, %v", o.Name, res, err)
		}
	}
	if after := e.blobs(t); len(after) != len(before) {
		t.Fatalf("blobs %d -> %d after re-ingest", len(before), len(after))
	}
}

func TestFramesAndMetadata(t *testing.T) {
	e := newEnv(t)
	xa, err := gen.XACine(gen.Options{Seed: 3}, 10, 32, 48)
	if err != nil {
		t.Fatal(err)
	}
	res, err := ingestBytes(e, xa.Data)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := e.idx.Instance(context.Background(), res.SOPInstanceUID)
	if err != nil {
		t.Fatal(err)
	}
	if inst.NumberOfFrames != 10 || inst.Rows != 32 || inst.Columns != 48 {
		t.Fatalf("instance = %d frames %dx%d", inst.NumberOfFrames, inst.Rows, inst.Columns)
	}
	var pl dcm.PixelLayout
	if err := json.Unmarshal(inst.PixelLayout, &pl); err != nil {
		t.Fatal(err)
	}
	f, err := dcm.Parse(bytes.NewReader(xa.Data), nil)
	if err != nil {
		t.Fatal(err)
	}
	pd := f.Dataset.Get(dcm.TagPixelData)
	for i := range 10 {
		rs, err := pl.Frame(i)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := e.store.GetRange(context.Background(), inst.BlobKey, rs[0].Offset, rs[0].Length)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		start := pd.Offset + int64(i*32*48)
		if !bytes.Equal(got, xa.Data[start:start+32*48]) {
			t.Fatalf("frame %d differs", i+1)
		}
	}
	var meta map[string]any
	if err := json.Unmarshal(inst.Metadata, &meta); err != nil {
		t.Fatal(err)
	}
	if pdj := meta["7FE00010"].(map[string]any); pdj["BulkDataURI"] != "bulkdata/7FE00010" {
		t.Fatalf("pixel data JSON = %v", pdj)
	}
}

func TestDataset(t *testing.T) {
	e := newEnv(t)
	ct, err := gen.CTSeries(gen.Options{Seed: 5}, 1, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	f, err := dcm.Parse(bytes.NewReader(ct[0].Data), nil)
	if err != nil {
		t.Fatal(err)
	}
	body := ct[0].Data[f.DatasetOffset:]
	info := ingest.DatasetInfo{TransferSyntaxUID: dcm.ExplicitVRLittleEndian, SOPClassUID: ct[0].SOPClassUID, SOPInstanceUID: ct[0].SOPInstanceUID}
	res, err := e.p.IngestDataset(context.Background(), bytes.NewReader(body), info, ingest.Source{Via: "dimse", CallingAE: "CT1"})
	if err != nil {
		t.Fatal(err)
	}
	stored := e.stored(t, res.BlobKey)
	sf, err := dcm.Parse(bytes.NewReader(stored), nil)
	if err != nil {
		t.Fatalf("stored file does not parse: %v", err)
	}
	if sf.Meta.String(dcm.TagSourceApplicationEntityTitle) != "CT1" || sf.Meta.String(dcm.TagMediaStorageSOPInstanceUID) != ct[0].SOPInstanceUID {
		t.Fatal("meta information not written as expected")
	}
	if !bytes.Equal(stored[sf.DatasetOffset:], body) {
		t.Fatal("data set bytes changed")
	}
	// Pixel offsets refer to the stored file, meta header included.
	inst, _ := e.idx.Instance(context.Background(), ct[0].SOPInstanceUID)
	var pl dcm.PixelLayout
	json.Unmarshal(inst.PixelLayout, &pl)
	if pl.Offset != sf.Dataset.Get(dcm.TagPixelData).Offset {
		t.Fatalf("pixel offset %d, stored file has %d", pl.Offset, sf.Dataset.Get(dcm.TagPixelData).Offset)
	}
	// A data set whose SOP Instance UID disagrees with the command is refused.
	info.SOPInstanceUID = "1.2.3.4"
	_, err = e.p.IngestDataset(context.Background(), bytes.NewReader(body), info, ingest.Source{Via: "dimse"})
	if !errors.Is(err, ingest.ErrMismatch) {
		t.Fatalf("err = %v, want ErrMismatch", err)
	}
	if n := len(e.blobs(t)); n != 1 {
		t.Fatalf("%d blobs after refused data set", n)
	}
}

func TestDuplicatePolicies(t *testing.T) {
	mr, err := gen.MRSeries(gen.Options{Seed: 1}, 1, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	// Same UIDs, different bytes: change the last pixel byte.
	mr2 := []gen.Object{mr[0]}
	mr2[0].Data = bytes.Clone(mr[0].Data)
	mr2[0].Data[len(mr2[0].Data)-1] ^= 0xFF
	cases := []struct {
		policy  ingest.DuplicatePolicy
		wantErr error
		outcome ingest.Outcome
		keep    []byte
	}{
		{ingest.Reject, ingest.ErrDuplicate, "", mr[0].Data},
		{ingest.KeepFirst, nil, ingest.KeptExisting, mr[0].Data},
		{ingest.Overwrite, nil, ingest.Replaced, mr2[0].Data},
	}
	for _, c := range cases {
		t.Run(string(c.policy), func(t *testing.T) {
			e := newEnv(t)
			e.p.Duplicates = c.policy
			if _, err := ingestBytes(e, mr[0].Data); err != nil {
				t.Fatal(err)
			}
			res, err := ingestBytes(e, mr2[0].Data)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("err = %v", err)
				}
			} else if err != nil || res.Outcome != c.outcome {
				t.Fatalf("res = %+v, %v", res, err)
			}
			if blobs := e.blobs(t); len(blobs) != 1 {
				t.Fatalf("blobs = %v", blobs)
			}
			inst, _ := e.idx.Instance(context.Background(), mr[0].SOPInstanceUID)
			rc, _, _ := e.store.Get(context.Background(), inst.BlobKey)
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, c.keep) {
				t.Fatal("wrong version kept")
			}
			if c := e.counts(t); c.Instances != 1 {
				t.Fatalf("counts = %+v", c)
			}
		})
	}
}

// patchMeta rewrites a string value in the meta group or data set (same length).
func replaceOnce(t *testing.T, b []byte, old, new string) []byte {
	t.Helper()
	i := bytes.Index(b, []byte(old))
	if i < 0 || len(old) != len(new) {
		t.Fatalf("cannot patch %q", old)
	}
	out := bytes.Clone(b)
	copy(out[i:], new)
	return out
}

func TestBadInput(t *testing.T) {
	ct, err := gen.CTSeries(gen.Options{Seed: 9}, 1, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	good := ct[0].Data
	sop := ct[0].SOPInstanceUID
	f, _ := dcm.Parse(bytes.NewReader(good), nil)
	// Data set without SOPInstanceUID: rename the tag (0008,0018) to (0008,0019).
	noSOP := bytes.Clone(good)
	ds := noSOP[f.DatasetOffset:]
	i := bytes.Index(ds, []byte{0x08, 0x00, 0x18, 0x00, 'U', 'I'})
	if i < 0 {
		t.Fatal("no SOPInstanceUID element")
	}
	ds[i+2] = 0x19
	// Meta says another SOP Instance UID: change the first occurrence (in the meta group).
	last := sop[len(sop)-1]
	repl := "1"
	if last == '1' {
		repl = "2"
	}
	mismatch := replaceOnce(t, good, sop, sop[:len(sop)-1]+repl)
	cases := map[string]struct {
		data []byte
		want error
	}{
		"not DICOM":         {[]byte("this is a text file, not DICOM at all. " + string(bytes.Repeat([]byte("x"), 200))), ingest.ErrInvalid},
		"truncated":         {good[:len(good)-100], ingest.ErrInvalid},
		"no SOPInstanceUID": {noSOP, ingest.ErrInvalid},
		"meta disagrees":    {mismatch, ingest.ErrMismatch},
		"empty":             {nil, ingest.ErrInvalid},
		"preamble only":     {good[:132], ingest.ErrInvalid},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			_, err := ingestBytes(e, c.data)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			var ie *ingest.Error
			if !errors.As(err, &ie) || ie.Reason == "" {
				t.Fatalf("no reason in %v", err)
			}
			if b := e.blobs(t); len(b) != 0 {
				t.Fatalf("blobs left: %v", b)
			}
			if c := e.counts(t); c.Instances != 0 {
				t.Fatalf("index rows: %+v", c)
			}
			// The pipeline keeps working.
			if _, err := ingestBytes(e, good); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// failingStore fails every put.
type failingStore struct{ archive.Store }

func (failingStore) Put(ctx context.Context, key string, r io.Reader, size int64) (archive.ObjectInfo, error) {
	io.CopyN(io.Discard, r, 1000)
	return archive.ObjectInfo{}, errors.New("disk on fire")
}

// failingIndex fails every put.
type failingIndex struct{ index.Index }

func (failingIndex) Put(ctx context.Context, in *index.Instance) error {
	return errors.New("database gone")
}

func TestBackendFailures(t *testing.T) {
	ct, _ := gen.CTSeries(gen.Options{Seed: 11}, 1, 64, 64)
	t.Run("store", func(t *testing.T) {
		e := newEnv(t)
		e.p.Store = failingStore{e.store}
		_, err := ingestBytes(e, ct[0].Data)
		if !errors.Is(err, ingest.ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
		if c := e.counts(t); c.Instances != 0 {
			t.Fatalf("index row without blob: %+v", c)
		}
	})
	t.Run("index", func(t *testing.T) {
		e := newEnv(t)
		e.p.Index = failingIndex{e.idx}
		_, err := ingestBytes(e, ct[0].Data)
		if !errors.Is(err, ingest.ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
		if b := e.blobs(t); len(b) != 0 {
			t.Fatalf("blob left after index failure: %v", b)
		}
	})
}

func TestSamples(t *testing.T) {
	dir, err := gen.ModuleSamplesDir()
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	for _, n := range []string{"1.dcm", "2.dcm", "3.dcm", "4.dcm", "5.dcm", "6.dcm"} {
		b, err := readFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ingestBytes(e, b); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
	}
	if c := e.counts(t); c.Instances != 6 {
		t.Fatalf("counts = %+v", c)
	}
}

var _ iter.Seq[int]

// lostCommit commits but reports a broken connection, as when the link drops during
// COMMIT.
type lostCommit struct{ index.Index }

func (l lostCommit) Put(ctx context.Context, in *index.Instance) error {
	if err := l.Index.Put(ctx, in); err != nil {
		return err
	}
	return errors.New("driver: bad connection")
}

// unreachable fails every call.
type unreachable struct{ index.Index }

func (unreachable) Put(ctx context.Context, in *index.Instance) error {
	return errors.New("driver: bad connection")
}

func (unreachable) Instance(ctx context.Context, uid string) (*index.Instance, error) {
	return nil, errors.New("dial tcp: connection refused")
}

// TestUnknownCommitOutcome: an index error of unknown outcome never leaves an index row
// without its blob.
func TestUnknownCommitOutcome(t *testing.T) {
	ct, _ := gen.CTSeries(gen.Options{Seed: 31}, 2, 16, 16)
	t.Run("committed after all", func(t *testing.T) {
		e := newEnv(t)
		e.p.Index = lostCommit{e.idx}
		res, err := ingestBytes(e, ct[0].Data)
		if err != nil || res.Outcome != ingest.Stored {
			t.Fatalf("res = %+v, %v", res, err)
		}
		inst, err := e.idx.Instance(context.Background(), ct[0].SOPInstanceUID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.Stat(context.Background(), inst.BlobKey); err != nil {
			t.Fatalf("indexed row without its blob: %v", err)
		}
	})
	t.Run("index unreachable", func(t *testing.T) {
		e := newEnv(t)
		e.p.Index = unreachable{e.idx}
		if _, err := ingestBytes(e, ct[1].Data); !errors.Is(err, ingest.ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
		// The blob is kept for fsck (an orphan, never a dangling row).
		if b := e.blobs(t); len(b) != 1 {
			t.Fatalf("blobs = %v", b)
		}
	})
}
