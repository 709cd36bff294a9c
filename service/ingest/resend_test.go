package ingest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// dcmconv converts a PS3.10 file with DCMTK's dcmconv and the given options.
func dcmconv(t *testing.T, in []byte, opts ...string) []byte {
	t.Helper()
	bin := tools.DCMTK(t, "dcmconv")
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "out.dcm")
	if err := os.WriteFile(src, in, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, append(opts, src, dst)...).CombinedOutput(); err != nil {
		t.Fatalf("dcmconv %v: %v\n%s", opts, err, out)
	}
	b, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dataset splits a PS3.10 file into its transfer syntax and bare data set.
func dataset(t *testing.T, file []byte) (string, []byte) {
	t.Helper()
	f, err := dcm.Parse(bytes.NewReader(file), nil)
	if err != nil {
		t.Fatal(err)
	}
	return f.TransferSyntax, file[f.DatasetOffset:]
}

func (e *env) stored(t *testing.T, key string) []byte {
	t.Helper()
	rc, _, err := e.store.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestResentInstance: the same instance sent again, from another AE title, in another
// encoding (implicit or explicit VR, big endian, deflated, with or without group lengths,
// sequences of defined or undefined length, with a trailing padding element), as a file
// or as a bare data set, is a success with nothing written, and the first copy stays.
func TestResentInstance(t *testing.T) {
	ct, err := gen.CTSeries(gen.Options{Seed: 41}, 1, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	sr, err := gen.BasicTextSR(gen.Options{Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []gen.Object{ct[0], sr} {
		t.Run(o.Modality, func(t *testing.T) {
			e := newEnv(t)
			first, err := e.p.IngestFile(context.Background(), bytes.NewReader(o.Data), int64(len(o.Data)), ingest.Source{Via: "stow"})
			if err != nil || first.Outcome != ingest.Stored {
				t.Fatalf("first: %+v, %v", first, err)
			}
			variants := map[string][]byte{
				"same file":         o.Data,
				"implicit VR":       dcmconv(t, o.Data, "+ti"),
				"explicit VR again": dcmconv(t, dcmconv(t, o.Data, "+ti"), "+te"),
				"big endian":        dcmconv(t, o.Data, "+tb"),
				"deflated":          dcmconv(t, o.Data, "+td"),
				"group lengths":     dcmconv(t, o.Data, "+g"),
				"undefined lengths": dcmconv(t, o.Data, "-e", "+ti"),
				"trailing padding":  dcmconv(t, o.Data, "+p", "256", "0"),
			}
			for name, file := range variants {
				res, err := e.p.IngestFile(context.Background(), bytes.NewReader(file), int64(len(file)), ingest.Source{Via: "import"})
				if err != nil || res.Outcome != ingest.AlreadyStored || res.BlobKey != first.BlobKey {
					t.Fatalf("%s as a file: %+v, %v", name, res, err)
				}
				ts, ds := dataset(t, file)
				if ts == dcm.DeflatedExplicitVRLittleEndian {
					continue // DIMSE carries it too, but dataset() cannot cut a deflated body
				}
				for _, ae := range []string{"CT_ONE", "ROUTER_TWO"} {
					res, err = e.p.IngestDataset(context.Background(), bytes.NewReader(ds),
						ingest.DatasetInfo{TransferSyntaxUID: ts, SOPClassUID: o.SOPClassUID, SOPInstanceUID: o.SOPInstanceUID},
						ingest.Source{Via: "dimse", CallingAE: ae})
					if err != nil || res.Outcome != ingest.AlreadyStored || res.BlobKey != first.BlobKey {
						t.Fatalf("%s from %s: %+v, %v", name, ae, res, err)
					}
				}
			}
			if blobs := e.blobs(t); len(blobs) != 1 {
				t.Fatalf("blobs = %v", blobs)
			}
			if !bytes.Equal(e.stored(t, first.BlobKey), o.Data) {
				t.Fatal("the first copy changed")
			}
		})
	}
}

// TestDifferentContentKept: a different object under a stored SOP Instance UID is
// acknowledged under the default policy; the first copy stays the served one and the
// second is kept too.
func TestDifferentContentKept(t *testing.T) {
	mr, err := gen.MRSeries(gen.Options{Seed: 43}, 1, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	second := bytes.Clone(mr[0].Data)
	second[len(second)-1] ^= 0xFF
	e := newEnv(t)
	if _, err := ingestBytes(e, mr[0].Data); err != nil {
		t.Fatal(err)
	}
	if _, err := ingestBytes(e, second); err != nil {
		t.Fatalf("second copy: %v", err)
	}
	inst, err := e.idx.Instance(context.Background(), mr[0].SOPInstanceUID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.stored(t, inst.BlobKey), mr[0].Data) {
		t.Fatal("the served copy is not the first")
	}
	found := false
	for _, k := range e.blobs(t) {
		if k != inst.BlobKey && bytes.Equal(e.stored(t, k), second) {
			found = true
		}
	}
	if !found {
		t.Fatalf("the second copy was not kept: %v", e.blobs(t))
	}
}

// TestRefusalSaysItOnce: the reject policy's error names the problem once.
func TestRefusalSaysItOnce(t *testing.T) {
	mr, _ := gen.MRSeries(gen.Options{Seed: 44}, 1, 16, 16)
	second := bytes.Clone(mr[0].Data)
	second[len(second)-1] ^= 0xFF
	e := newEnv(t)
	e.p.Duplicates = ingest.Reject
	if _, err := ingestBytes(e, mr[0].Data); err != nil {
		t.Fatal(err)
	}
	_, err := ingestBytes(e, second)
	if !errors.Is(err, ingest.ErrDuplicate) {
		t.Fatalf("err = %v", err)
	}
	if n := strings.Count(err.Error(), "different content"); n != 1 {
		t.Fatalf("%q says it %d times", err.Error(), n)
	}
}

// mergedCommit commits the record under another patient (as if a patient merge moved
// the study between the write and its answer) and then reports a broken connection.
type mergedCommit struct{ index.Index }

func (m mergedCommit) Put(ctx context.Context, in *index.Instance) error {
	moved := *in
	moved.PatientID = "MERGED-ELSEWHERE"
	if err := m.Index.Put(ctx, &moved); err != nil {
		return err
	}
	return errors.New("driver: bad connection")
}

// TestScopedBookkeeping: settling an index write of unknown outcome is not limited to the
// caller's patient scope: a row that committed keeps its blob even when the caller's
// scope no longer sees it.
func TestScopedBookkeeping(t *testing.T) {
	ct, _ := gen.CTSeries(gen.Options{Seed: 45}, 1, 16, 16)
	e := newEnv(t)
	e.p.Index = mergedCommit{e.idx}
	p := gen.DefaultPatient
	ctx := index.WithScope(context.Background(), index.Scope{Patient: &index.PatientKey{ID: p.ID, Issuer: p.Issuer}})
	_, err := e.p.IngestFile(ctx, bytes.NewReader(ct[0].Data), int64(len(ct[0].Data)), ingest.Source{Via: "stow"})
	if err != nil {
		t.Logf("ingest: %v", err)
	}
	inst, err := e.idx.Instance(context.Background(), ct[0].SOPInstanceUID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Stat(context.Background(), inst.BlobKey); err != nil {
		t.Fatalf("the committed row lost its blob: %v", err)
	}
}

// TestZeroPadding: zero bytes after a complete data set are tolerated (stored as
// received); anything else after the zeros is still refused.
func TestZeroPadding(t *testing.T) {
	ct, _ := gen.CTSeries(gen.Options{Seed: 46}, 2, 16, 16)
	padded := append(bytes.Clone(ct[0].Data), make([]byte, 301)...)
	e := newEnv(t)
	res, err := ingestBytes(e, padded)
	if err != nil {
		t.Fatalf("zero-padded file: %v", err)
	}
	if !bytes.Equal(e.stored(t, res.BlobKey), padded) {
		t.Fatal("not stored as received")
	}
	// The same data set without the padding is the same instance.
	if res, err := ingestBytes(e, ct[0].Data); err != nil || res.Outcome != ingest.AlreadyStored {
		t.Fatalf("unpadded: %+v, %v", res, err)
	}
	// Zeros, then data: refused.
	bad := append(append(bytes.Clone(ct[1].Data), make([]byte, 16)...), 1, 2, 3, 4)
	if _, err := ingestBytes(e, bad); !errors.Is(err, ingest.ErrInvalid) {
		t.Fatalf("zeros then data: %v", err)
	}
	// pydicom's MR_small_padded.dcm (a Data Set Trailing Padding element) is stored.
	b, err := os.ReadFile("/usr/lib/python3/dist-packages/pydicom/data/test_files/MR_small_padded.dcm")
	if err != nil {
		tools.Missing(t, "python3-pydicom's test files are not installed: "+err.Error())
	}
	if _, err := ingestBytes(e, b); err != nil {
		t.Fatalf("MR_small_padded.dcm: %v", err)
	}
}
