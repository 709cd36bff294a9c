package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/archive/fs"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index/sqlite"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// startBinary runs `lumen serve` on dataDir and waits until the DICOM port answers.
func startBinary(t *testing.T, dataDir, dimseAddr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(lumenBin, "serve", "--data-dir", dataDir, "--http-addr", "127.0.0.1:0", "--dimse-addr", dimseAddr)
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if c, err := net.Dial("tcp", dimseAddr); err == nil {
			c.Close()
			return cmd
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	t.Fatal("lumen did not start listening")
	return nil
}

// TestCrashSafety stores with storescu, kills Lumen with SIGKILL mid-stream, restarts
// it, runs fsck, and checks that every instance storescu saw acknowledged is present
// and retrievable, and that no index row lacks its blob.
func TestCrashSafety(t *testing.T) {
	storescu := dcmtkTool(t, "storescu")
	objs, err := gen.CTSeries(gen.Options{Seed: 77}, 300, 128, 128)
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	if err := gen.WriteCorpus(src, objs); err != nil {
		t.Fatal(err)
	}
	byPath := map[string]gen.Object{}
	var files []string
	for _, o := range objs {
		p := filepath.Join(src, o.Name)
		byPath[p] = o
		files = append(files, p)
	}
	data := t.TempDir()
	addr := freeAddr(t)
	lumen := startBinary(t, data, addr)
	h, p := splitAddr(addr)
	sc := exec.Command(storescu, append([]string{"-v", "-aet", "MODALITY", "-aec", "LUMEN", "-nh", h, p}, files...)...)
	sc.Env = append(os.Environ(), "TCP_NODELAY=1")
	out, _ := sc.StdoutPipe()
	sc.Stderr = sc.Stdout
	if err := sc.Start(); err != nil {
		t.Fatal(err)
	}
	// Follow storescu's log: which file is being sent, which got a success response.
	acked := map[string]bool{}
	var current string
	sent := 0
	killed := false
	scan := bufio.NewScanner(out)
	for scan.Scan() {
		line := scan.Text()
		if f, ok := strings.CutPrefix(line, "I: Sending file: "); ok {
			current = f
			sent++
			if sent == 120 && !killed {
				lumen.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		}
		if strings.Contains(line, "Received Store Response (Success)") && current != "" {
			acked[current] = true
		}
	}
	sc.Wait()
	lumen.Wait()
	if !killed || len(acked) < 50 || len(acked) >= len(files) {
		t.Fatalf("killed=%v after %d acknowledged of %d", killed, len(acked), len(files))
	}
	// Restart (the start-up check runs) and stop it again, then fsck.
	lumen = startBinary(t, data, addr)
	lumen.Process.Signal(syscall.SIGTERM)
	lumen.Wait()
	fsckOut, _, code := runCLI(t, "fsck", "--data-dir", data, "--grace", "0", "--repair")
	if code != 0 {
		t.Fatalf("fsck --repair exit %d:\n%s", code, fsckOut)
	}
	if strings.Contains(fsckOut, "dangling-row") {
		t.Fatalf("index rows without blobs after the crash:\n%s", fsckOut)
	}
	x, err := sqlite.Open(context.Background(), filepath.Join(data, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	st, _ := fs.New(filepath.Join(data, "blobs"))
	for path := range acked {
		o := byPath[path]
		inst, err := x.Instance(context.Background(), o.SOPInstanceUID)
		if err != nil {
			t.Fatalf("acknowledged instance %s lost: %v", o.SOPInstanceUID, err)
		}
		rc, _, err := st.Get(context.Background(), inst.BlobKey)
		if err != nil {
			t.Fatalf("acknowledged instance %s has no blob: %v", o.SOPInstanceUID, err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		f, err := dcm.Parse(bytes.NewReader(b), nil)
		if err != nil || f.Dataset.String(dcm.TagSOPInstanceUID) != o.SOPInstanceUID {
			t.Fatalf("acknowledged instance %s not retrievable: %v", o.SOPInstanceUID, err)
		}
	}
	t.Logf("killed after %d files sent; %d acknowledged, all present; fsck:\n%s", sent, len(acked), fsckOut)
}
