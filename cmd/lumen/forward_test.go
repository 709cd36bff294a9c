package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/testdata/gen"
)

// TestForward checks a forwarding rule: instances a modality stores are forwarded to
// the rule's destination, which is down at first; Lumen is restarted in the middle;
// once the destination is up, everything arrives byte-identical, and what came from
// elsewhere is not forwarded.
func TestForward(t *testing.T) {
	destAddr := freeAddr(t) // storescp starts there later
	_, dp, _ := net.SplitHostPort(destAddr)
	destPort, _ := strconv.Atoi(dp)
	dataDir := t.TempDir()
	config := func(c *Config) {
		c.DataDir = dataDir
		c.Store.FS.Dir, c.Index.SQLite.Path = filepath.Join(dataDir, "blobs"), filepath.Join(dataDir, "index.db")
		c.DIMSE.Peers = []PeerConfig{{AETitle: "DEST", Host: "127.0.0.1", Port: destPort}, {AETitle: "MODALITY"}}
		c.Forward = ForwardConfig{Rules: []ForwardRule{{CallingAE: "MODALITY", Destination: "DEST"}}, Retry: 100 * time.Millisecond, MaxAttempts: 1000}
	}
	s := startLumen(t, config)
	corpus, err := gen.Corpus(37)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var files []string
	want := map[string]string{}
	var other gen.Object
	for _, o := range corpus {
		if o.Modality != "CT" {
			other = o
			continue
		}
		p := filepath.Join(dir, o.SOPInstanceUID+".dcm")
		os.WriteFile(p, o.Data, 0o644)
		files = append(files, p)
		want[o.SOPInstanceUID], _ = storedDataSet(t, o.Data)
	}
	host, port, _ := net.SplitHostPort(s.addr.DIMSE)
	runDCMTK(t, "storescu", append([]string{"-aet", "MODALITY", "-aec", "LUMEN", host, port}, files...)...)
	stowAll(t, "http://"+s.addr.HTTP+"/dicom-web", []gen.Object{other}) // not from MODALITY
	time.Sleep(500 * time.Millisecond)                                  // forwards fail: DEST is down
	s.stop()

	// The destination comes up; Lumen restarts on the same data and forwards.
	_, destDir := storeSCPAt(t, destPort)
	startLumen(t, config)
	deadline := time.Now().Add(30 * time.Second)
	for len(must(os.ReadDir(destDir))) < len(files) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // anything more would arrive now
	got := received(t, destDir)
	if len(got) != len(files) {
		t.Fatalf("%d of %d instances forwarded", len(got), len(files))
	}
	for u, w := range want {
		if got[u][0] != w {
			t.Fatalf("%s altered or missing", u)
		}
	}
	if _, ok := got[other.SOPInstanceUID]; ok {
		t.Fatal("an instance stored by STOW-RS was forwarded")
	}
}
