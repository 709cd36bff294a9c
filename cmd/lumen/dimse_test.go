package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lumenpacs/lumen/archive/fs"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/index/sqlite"
	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// lumenServer runs serve in-process on loopback ports until stop is called.
type lumenServer struct {
	c    *Config
	addr listening
	stop func()
}

func startLumen(t testing.TB, mutate func(*Config)) *lumenServer {
	t.Helper()
	return startLumenLogged(t, mutate, discardLogger())
}

// startLumenLogged is startLumen with the server's log going to log.
func startLumenLogged(t testing.TB, mutate func(*Config), log *slog.Logger) *lumenServer {
	t.Helper()
	c := testConfig(t, t.TempDir())
	c.HTTP.Addr, c.DIMSE.Addr = "127.0.0.1:0", "127.0.0.1:0"
	c.Fsck.OnStart = false
	c.Auth.Mode = "dev" // tests on PostgreSQL or S3 run without authentication unless they set it
	if mutate != nil {
		mutate(c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan listening, 1)
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, c, log, ready) }()
	var addr listening
	select {
	case addr = <-ready:
	case err := <-errc:
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &lumenServer{c: c, addr: addr, stop: stop}
}

func dcmtkTool(t *testing.T, tool string) string {
	t.Helper()
	return tools.DCMTK(t, tool)
}

func runDCMTK(t *testing.T, tool string, args ...string) string {
	t.Helper()
	cmd := exec.Command(dcmtkTool(t, tool), args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "E: ") {
		t.Fatalf("%s %v: %v\n%s", tool, args, err, out)
	}
	return string(out)
}

// datasetJSON returns the DICOM JSON of a PS3.10 file's data set, pixel data VR
// normalised (implicit VR transfers make it OW).
func datasetJSON(t *testing.T, b []byte) []byte {
	t.Helper()
	f, err := dcm.Parse(bytes.NewReader(b), nil)
	if err != nil {
		t.Fatal(err)
	}
	js, _, _ := f.Dataset.JSON(nil)
	return bytes.ReplaceAll(js, []byte(`"7FE00010":{"vr":"OB"`), []byte(`"7FE00010":{"vr":"OW"`))
}

// checkStored verifies that every expected object is indexed and that its stored bytes
// re-parse to the same data set.
func checkStored(t *testing.T, c *Config, want map[string][]byte) {
	t.Helper()
	x, err := sqlite.Open(context.Background(), c.Index.SQLite.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	st, err := fs.New(c.Store.FS.Dir)
	if err != nil {
		t.Fatal(err)
	}
	cnt, _ := x.Counts(context.Background())
	if cnt.Instances != int64(len(want)) {
		t.Fatalf("%d instances indexed, want %d", cnt.Instances, len(want))
	}
	for uid, file := range want {
		inst, err := x.Instance(context.Background(), uid)
		if err != nil {
			t.Fatalf("%s not indexed: %v", uid, err)
		}
		rc, _, err := st.Get(context.Background(), inst.BlobKey)
		if err != nil {
			t.Fatal(err)
		}
		stored, _ := io.ReadAll(rc)
		rc.Close()
		if got, exp := datasetJSON(t, stored), datasetJSON(t, file); !bytes.Equal(got, exp) {
			t.Fatalf("%s: stored data set differs from the sent one", uid)
		}
	}
}

func TestStoreSCUCorpus(t *testing.T) {
	objs, err := gen.Corpus(1)
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	if err := gen.WriteCorpus(src, objs); err != nil {
		t.Fatal(err)
	}
	var files []string
	want := map[string][]byte{}
	for _, o := range objs {
		files = append(files, filepath.Join(src, o.Name))
		want[o.SOPInstanceUID] = o.Data
	}
	store := func(t *testing.T, s *lumenServer, parallel int, opts []string, files []string) {
		h, p := splitAddr(s.addr.DIMSE)
		var wg sync.WaitGroup
		per := (len(files) + parallel - 1) / parallel
		for i := 0; i < len(files); i += per {
			part := files[i:min(i+per, len(files))]
			wg.Add(1)
			go func() {
				defer wg.Done()
				args := append(append([]string{"-aet", "MODALITY", "-aec", "LUMEN", "-nh"}, opts...), h, p)
				runDCMTK(t, "storescu", append(args, part...)...)
			}()
		}
		wg.Wait()
	}
	t.Run("explicit LE, one association", func(t *testing.T) {
		s := startLumen(t, nil)
		store(t, s, 1, []string{"-xe"}, files)
		s.stop()
		checkStored(t, s.c, want)
	})
	t.Run("implicit LE, 4 associations", func(t *testing.T) {
		s := startLumen(t, nil)
		store(t, s, 4, []string{"-xi"}, files)
		s.stop()
		checkStored(t, s.c, want)
	})
	t.Run("explicit BE", func(t *testing.T) {
		s := startLumen(t, func(c *Config) {
			c.DIMSE.TransferSyntaxes = []string{"1.2.840.10008.1.2.2", "1.2.840.10008.1.2"}
		})
		store(t, s, 1, []string{"-xb"}, files)
		s.stop()
		checkStored(t, s.c, want)
	})
	t.Run("JPEG lossless, 4 associations", func(t *testing.T) {
		cjpeg := dcmtkTool(t, "dcmcjpeg")
		dir := t.TempDir()
		var jfiles []string
		jwant := map[string][]byte{}
		for _, o := range objs {
			if o.Modality == "SR" || o.Modality == "ECG" {
				continue
			}
			out := filepath.Join(dir, fmt.Sprintf("%s.dcm", o.SOPInstanceUID))
			if b, err := exec.Command(cjpeg, filepath.Join(src, o.Name), out).CombinedOutput(); err != nil {
				t.Fatalf("dcmcjpeg %s: %v\n%s", o.Name, err, b)
			}
			jfiles = append(jfiles, out)
			b, _ := os.ReadFile(out)
			jwant[o.SOPInstanceUID] = b
		}
		s := startLumen(t, nil)
		store(t, s, 4, []string{"-xs"}, jfiles)
		s.stop()
		checkStored(t, s.c, jwant)
		// Stored as sent: the transfer syntax is JPEG Lossless SV1.
		x, _ := sqlite.Open(context.Background(), s.c.Index.SQLite.Path)
		defer x.Close()
		for uid := range jwant {
			inst, _ := x.Instance(context.Background(), uid)
			if inst.TransferSyntaxUID != "1.2.840.10008.1.2.4.70" {
				t.Fatalf("%s stored as %s", uid, inst.TransferSyntaxUID)
			}
		}
	})
}

func splitAddr(a string) (string, string) {
	i := strings.LastIndex(a, ":")
	return a[:i], a[i+1:]
}

func TestEchoAndStoreCommands(t *testing.T) {
	s := startLumen(t, func(c *Config) { c.DIMSE.CheckCalledAE = true })
	out, _, code := runCLI(t, "echo", "LUMEN@"+s.addr.DIMSE)
	if code != 0 || !strings.Contains(out, "success") {
		t.Fatalf("lumen echo: %d %s", code, out)
	}
	if _, errOut, code := runCLI(t, "echo", "OTHER@"+s.addr.DIMSE); code == 0 || !strings.Contains(errOut, "called AE title not recognized") {
		t.Fatalf("lumen echo to a wrong AE: %d %s", code, errOut)
	}
	src := t.TempDir()
	objs, _ := gen.Corpus(2)
	gen.WriteCorpus(src, objs)
	os.WriteFile(filepath.Join(src, "notes.txt"), []byte("not dicom"), 0o644)
	out, _, code = runCLI(t, "store", "LUMEN@"+s.addr.DIMSE, src)
	if code != 1 || !strings.Contains(out, fmt.Sprintf("store: %d sent, 1 failed", len(objs))) || !strings.Contains(out, "notes.txt: not a DICOM PS3.10 file") {
		t.Fatalf("lumen store: %d\n%s", code, out)
	}
	s.stop()
	want := map[string][]byte{}
	for _, o := range objs {
		want[o.SOPInstanceUID] = o.Data
	}
	checkStored(t, s.c, want)
}

// TestStoreMismatchStatus sends a data set whose SOP Instance UID differs from the
// command's: the answer is 0xA900 and nothing is stored.
func TestStoreMismatchStatus(t *testing.T) {
	s := startLumen(t, nil)
	ct, _ := gen.CTSeries(gen.Options{Seed: 12}, 1, 32, 32)
	f, _ := dcm.Parse(bytes.NewReader(ct[0].Data), nil)
	c, err := dimse.Dial(context.Background(), s.addr.DIMSE, dimse.DialConfig{CalledAETitle: "LUMEN", Contexts: []dimse.ProposedContext{{AbstractSyntax: ct[0].SOPClassUID, TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}}}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Store(context.Background(), ct[0].SOPClassUID, "1.2.3.999", dimse.ExplicitVRLittleEndian, bytes.NewReader(ct[0].Data[f.DatasetOffset:]))
	if err != nil || st.Code != dimse.StatusDataSetMismatch || !strings.Contains(st.ErrorComment, "SOPInstanceUID") {
		t.Fatalf("status = %+v, %v", st, err)
	}
	// Another SOP class than the data set's.
	c.Release()
	c, _ = dimse.Dial(context.Background(), s.addr.DIMSE, dimse.DialConfig{CalledAETitle: "LUMEN", Contexts: []dimse.ProposedContext{{AbstractSyntax: "1.2.840.10008.5.1.4.1.1.4", TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}}}})
	st, err = c.Store(context.Background(), "1.2.840.10008.5.1.4.1.1.4", ct[0].SOPInstanceUID, dimse.ExplicitVRLittleEndian, bytes.NewReader(ct[0].Data[f.DatasetOffset:]))
	if err != nil || st.Code != dimse.StatusDataSetMismatch {
		t.Fatalf("status = %+v, %v", st, err)
	}
	c.Release()
	s.stop()
	checkStored(t, s.c, map[string][]byte{})
}
