package dimse

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// writeFiles writes objects to dir and returns the paths.
func writeFiles(t *testing.T, dir string, objs []gen.Object) []string {
	t.Helper()
	if err := gen.WriteCorpus(dir, objs); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		out = append(out, filepath.Join(dir, o.Name))
	}
	return out
}

func TestStoreSCUTransferSyntaxes(t *testing.T) {
	objs, err := gen.Corpus(1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := writeFiles(t, dir, objs)
	byUID := map[string]gen.Object{}
	for _, o := range objs {
		byUID[o.SOPInstanceUID] = o
	}
	cases := []struct {
		name     string
		args     []string
		accepted []string
		wantTS   string
	}{
		{"explicit LE", []string{"-xe"}, nil, ExplicitVRLittleEndian},
		{"explicit LE preferred", []string{"-xb"}, nil, ExplicitVRLittleEndian},
		{"implicit LE", []string{"-xi"}, nil, ImplicitVRLittleEndian},
		{"explicit BE", []string{"-xb"}, []string{ExplicitVRBigEndian, ImplicitVRLittleEndian}, ExplicitVRBigEndian},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{}
			h, p := hostPort(startServer(t, &Server{StoreHandler: rec, TransferSyntaxes: c.accepted}))
			args := append([]string{"-aet", "MODALITY", "-aec", "LUMEN", "-nh"}, c.args...)
			args = append(append(args, h, p), files...)
			if out, err := runTool(t, "storescu", args...); err != nil || strings.Contains(out, "E: ") {
				t.Fatalf("storescu: %v\n%s", err, out)
			}
			if rec.count() != len(objs) {
				t.Fatalf("received %d of %d", rec.count(), len(objs))
			}
			received, reqs := rec.snapshot()
			for uid, data := range received {
				req := reqs[uid]
				if req.TransferSyntaxUID != c.wantTS {
					t.Fatalf("transfer syntax %s, want %s", req.TransferSyntaxUID, c.wantTS)
				}
				if req.Association.CallingAETitle != "MODALITY" || req.SOPClassUID != byUID[uid].SOPClassUID {
					t.Fatalf("request = %+v", req)
				}
				f, err := dcm.ParseDataset(bytes.NewReader(data), req.TransferSyntaxUID, 0, nil)
				if err != nil {
					t.Fatalf("%s: received data set does not parse: %v", uid, err)
				}
				if f.Dataset.String(dcm.TagSOPInstanceUID) != uid {
					t.Fatalf("data set SOP Instance UID %q, want %q", f.Dataset.String(dcm.TagSOPInstanceUID), uid)
				}
				// The same data set arrived, whatever its encoding.
				orig, _ := dcm.Parse(bytes.NewReader(byUID[uid].Data), nil)
				want, _, _ := orig.Dataset.JSON(nil)
				got, _, _ := f.Dataset.JSON(nil)
				// Pixel data is OW in implicit VR (PS3.5 §A.1) whatever it was in the file.
				norm := func(b []byte) []byte {
					return bytes.ReplaceAll(b, []byte(`"7FE00010":{"vr":"OB"`), []byte(`"7FE00010":{"vr":"OW"`))
				}
				if !bytes.Equal(norm(got), norm(want)) {
					t.Fatalf("%s: received data set differs from the file's:\n%s\n%s", uid, got, want)
				}
			}
		})
	}
}

func TestStoreSCUCompressedAndParallel(t *testing.T) {
	cjpeg := dcmtk(t, "dcmcjpeg")
	ct, err := gen.CTSeries(gen.Options{Seed: 4}, 8, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := writeFiles(t, dir, ct)
	var jpeg []string
	for i, f := range files {
		out := filepath.Join(dir, fmt.Sprintf("jpeg-%d.dcm", i))
		if b, err := runToolPath(cjpeg, f, out); err != nil {
			t.Fatalf("dcmcjpeg: %v\n%s", err, b)
		}
		jpeg = append(jpeg, out)
	}
	rec := &recorder{}
	h, p := hostPort(startServer(t, &Server{StoreHandler: rec}))
	// Four parallel associations, each proposing the JPEG Lossless SV1 syntax of the files.
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := append([]string{"-aet", fmt.Sprintf("SCU%d", i), "-aec", "LUMEN", "-nh", h, p}, jpeg[2*i:2*i+2]...)
			out, err := runTool(t, "storescu", append([]string{"-xs"}, args...)...)
			if err != nil || strings.Contains(out, "E: ") {
				errs <- fmt.Sprintf("storescu %d: %v\n%s", i, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if rec.count() != 8 {
		t.Fatalf("received %d of 8", rec.count())
	}
	received, reqs := rec.snapshot()
	for uid, req := range reqs {
		if req.TransferSyntaxUID != "1.2.840.10008.1.2.4.70" {
			t.Fatalf("%s stored as %s, want JPEG Lossless SV1 as sent", uid, req.TransferSyntaxUID)
		}
		f, err := dcm.ParseDataset(bytes.NewReader(received[uid]), req.TransferSyntaxUID, 0, nil)
		if err != nil || f.Dataset.Get(dcm.TagPixelData) == nil || len(f.Dataset.Get(dcm.TagPixelData).Fragments) < 2 {
			t.Fatalf("%s: compressed data set not received intact: %v", uid, err)
		}
	}
}

func runToolPath(tool string, args ...string) ([]byte, error) {
	cmd := execCommand(tool, args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	return cmd.CombinedOutput()
}
