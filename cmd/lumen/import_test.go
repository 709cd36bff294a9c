package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/archive/s3/miniotest"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/postgres/pgtest"
	"github.com/lumenpacs/lumen/index/sqlite"
	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// expectedCounts parses every DICOM file under dir and counts instances per series and
// series per study.
func expectedCounts(t *testing.T, dir string) (perSeries map[string]int, perStudy map[string]map[string]bool) {
	perSeries, perStudy = map[string]int{}, map[string]map[string]bool{}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		f, err := dcm.Parse(bytes.NewReader(b), nil)
		if err != nil {
			return nil
		}
		st, se := f.Dataset.String(dcm.TagStudyInstanceUID), f.Dataset.String(dcm.TagSeriesInstanceUID)
		perSeries[se]++
		if perStudy[st] == nil {
			perStudy[st] = map[string]bool{}
		}
		perStudy[st][se] = true
		return nil
	})
	return perSeries, perStudy
}

func TestImportCorpusTwice(t *testing.T) {
	src := t.TempDir()
	writeCorpus(t, src)
	data := t.TempDir()
	out, errOut, code := runCLI(t, "import", src, "--data-dir", data, "--progress", "lines", "--workers", "3")
	if code != 0 {
		t.Fatalf("import exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "imported:        45") || !strings.Contains(out, "failed:          0") {
		t.Fatalf("summary:\n%s", out)
	}
	perSeries, perStudy := expectedCounts(t, src)
	x, err := sqlite.Open(context.Background(), filepath.Join(data, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := x.Find(context.Background(), index.Query{Level: index.SeriesLevel})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Series) != len(perSeries) {
		t.Fatalf("%d series indexed, want %d", len(r.Series), len(perSeries))
	}
	for _, s := range r.Series {
		if s.NumberOfSeriesRelatedInstances != perSeries[s.SeriesInstanceUID] {
			t.Errorf("series %s: %d instances, want %d", s.SeriesInstanceUID, s.NumberOfSeriesRelatedInstances, perSeries[s.SeriesInstanceUID])
		}
		if s.NumberOfStudyRelatedSeries != len(perStudy[s.StudyInstanceUID]) {
			t.Errorf("study %s: %d series, want %d", s.StudyInstanceUID, s.NumberOfStudyRelatedSeries, len(perStudy[s.StudyInstanceUID]))
		}
	}
	rs, _ := x.Find(context.Background(), index.Query{Level: index.StudyLevel})
	if len(rs.Studies) != len(perStudy) {
		t.Fatalf("%d studies, want %d", len(rs.Studies), len(perStudy))
	}
	x.Close()
	// The second run writes nothing and says everything is already present.
	out, _, code = runCLI(t, "import", src, "--data-dir", data, "--progress", "none")
	if code != 0 || !strings.Contains(out, "already present: 45") || !strings.Contains(out, "imported:        0") {
		t.Fatalf("second import exit %d:\n%s", code, out)
	}
}

func TestImportBadInput(t *testing.T) {
	src := t.TempDir()
	ct, err := gen.CTSeries(gen.Options{Seed: 7}, 6, 32, 32)
	if err != nil {
		t.Fatal(err)
	}
	put := func(name string, b []byte) string {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	put("good1.dcm", ct[0].Data)
	put("good2.dcm", ct[1].Data)
	bad := map[string]string{} // path -> expected reason fragment
	bad[put("notes.txt", []byte("Findings: none. This is not a DICOM file."))] = "not a DICOM PS3.10 file"
	bad[put("truncated.dcm", ct[2].Data[:len(ct[2].Data)/2])] = "truncated"
	f, _ := dcm.Parse(bytes.NewReader(ct[3].Data), nil)
	noSOP := bytes.Clone(ct[3].Data)
	i := bytes.Index(noSOP[f.DatasetOffset:], []byte{0x08, 0x00, 0x18, 0x00, 'U', 'I'})
	noSOP[f.DatasetOffset+int64(i)+2] = 0x19
	bad[put("no-sop.dcm", noSOP)] = "SOPInstanceUID (0008,0018) is missing"
	sop := ct[4].SOPInstanceUID
	mismatch := bytes.Clone(ct[4].Data)
	j := bytes.Index(mismatch, []byte(sop))
	mismatch[j+len(sop)-1] ^= 1 // change the last digit in the meta group only
	bad[put("mismatch.dcm", mismatch)] = "MediaStorageSOPInstanceUID (0002,0003) differs"
	unreadable := filepath.Join(src, "unreadable.dcm")
	if os.Geteuid() == 0 {
		// root reads any file: a dangling link is the unreadable file here.
		os.Symlink(filepath.Join(src, "gone.dcm"), unreadable)
		bad[unreadable] = "cannot read"
	} else {
		put("unreadable.dcm", ct[5].Data)
		os.Chmod(unreadable, 0)
		bad[unreadable] = "cannot read"
	}
	data := t.TempDir()
	out, _, code := runCLI(t, "import", src, "--data-dir", data, "--progress", "none")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	for p, reason := range bad {
		found := false
		for _, l := range lines(out) {
			if strings.HasPrefix(strings.TrimSpace(l), p+": ") {
				found = true
				if !strings.Contains(l, reason) {
					t.Errorf("%s: reason %q lacks %q", p, l, reason)
				}
			}
		}
		if !found {
			t.Errorf("%s not reported:\n%s", p, out)
		}
	}
	if !strings.Contains(out, "imported:        2") || !strings.Contains(out, fmt.Sprintf("failed:          %d", len(bad))) {
		t.Fatalf("summary:\n%s", out)
	}
	// Nothing of the bad files was stored.
	n := 0
	filepath.Walk(filepath.Join(data, "blobs"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n++
		}
		return nil
	})
	if n != 2 {
		t.Fatalf("%d blobs stored, want 2", n)
	}
}

// checkConsistent asserts that no index row lacks its blob. Orphan blobs are allowed
// (a remote store may commit an object whose answer is lost in an outage): fsck repairs
// them, and afterwards the archive must be fully consistent.
func checkConsistent(t *testing.T, b *backends) {
	t.Helper()
	rep, err := b.pipeline.Check(context.Background(), ingest.CheckOptions{Grace: -time.Second, Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Dangling() != 0 {
		t.Fatalf("index rows without blobs: %+v", rep.Findings)
	}
	for _, f := range rep.Findings {
		if f.Action != "reindexed" && f.Action != "removed" {
			t.Fatalf("orphan not repaired: %+v", f)
		}
	}
	if len(rep.Findings) > 0 {
		t.Logf("fsck repaired %d orphan blobs", len(rep.Findings))
	}
	rep, err = b.pipeline.Check(context.Background(), ingest.CheckOptions{Grace: -time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 0 {
		t.Fatalf("inconsistent after repair: %+v", rep.Findings)
	}
}

func ctSeriesDir(t *testing.T, n int) string {
	src := t.TempDir()
	objs, err := gen.CTSeries(gen.Options{Seed: 33}, n, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.WriteCorpus(src, objs); err != nil {
		t.Fatal(err)
	}
	return src
}

// outageImport imports 40 files, cutting a backend off after 10; every failure must say
// storage is unavailable and name the part (what), the archive must stay consistent, and
// after restore a re-run must complete.
func outageImport(t *testing.T, b *backends, cut, restore func(), what string) {
	const n = 40
	src := ctSeriesDir(t, n)
	var once sync.Once
	im := &importer{p: b.pipeline, workers: 2, onDone: func(done int64) {
		if done == 10 {
			once.Do(cut)
		}
	}}
	sum := im.run(context.Background(), []string{src})
	if sum.Failed+sum.NotAttempted == 0 {
		t.Fatalf("no failure with the %s cut off: %+v", what, sum)
	}
	for _, f := range sum.Failures {
		if !strings.Contains(f.Reason, "storage unavailable") || !strings.Contains(f.Reason, what) {
			t.Fatalf("unclear reason for %s: %s", f.Path, f.Reason)
		}
	}
	var buf bytes.Buffer
	sum.Print(&buf)
	t.Logf("with the %s cut off:\n%s", what, buf.String())
	restore()
	checkConsistent(t, b)
	sum = im.run(context.Background(), []string{src})
	if sum.Failed != 0 || sum.NotAttempted != 0 || sum.Imported+sum.Present != n {
		t.Fatalf("re-run: %+v", sum)
	}
	checkConsistent(t, b)
}

func TestImportStoreUnavailable(t *testing.T) {
	srv := miniotest.Start(t)
	c := testConfig(t, t.TempDir())
	c.Store.Backend = "s3"
	sc := srv.Config(miniotest.BucketName())
	c.Store.S3.Endpoint, c.Store.S3.Bucket, c.Store.S3.AccessKey, c.Store.S3.SecretKey = sc.Endpoint, sc.Bucket, sc.AccessKey, sc.SecretKey
	b, err := openBackends(context.Background(), c, discardLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	outageImport(t, b, srv.Stop, func() { srv.Restart(t) }, "object store")
}

// tcpProxy forwards a loopback port to a target and can be cut and restored.
type tcpProxy struct {
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{target: target}
	p.start(t, "127.0.0.1:0")
	t.Cleanup(p.stop)
	return p
}

func (p *tcpProxy) start(t *testing.T, addr string) {
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
}

func (p *tcpProxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func TestImportIndexUnavailable(t *testing.T) {
	dsn := pgtest.Schema(t)
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		tools.Missing(t, "LUMEN_TEST_POSTGRES_DSN is not a postgres:// URL: cannot proxy it")
	}
	proxy := newProxy(t, u.Host)
	u.Host = proxy.addr
	c := testConfig(t, t.TempDir())
	c.Index.Backend, c.Index.Postgres.DSN = "postgres", u.String()
	b, err := openBackends(context.Background(), c, discardLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	outageImport(t, b, proxy.stop, func() { proxy.start(t, proxy.addr) }, "index")
}

func TestFsckCommand(t *testing.T) {
	data := t.TempDir()
	src := ctSeriesDir(t, 5)
	if out, _, code := runCLI(t, "import", src, "--data-dir", data, "--progress", "none"); code != 0 {
		t.Fatalf("import: %s", out)
	}
	// An orphan blob (a valid object nobody indexed) and a dangling row (a lost blob).
	extra, _ := gen.CTSeries(gen.Options{Seed: 99}, 1, 16, 16)
	orphan := ingest.NewBlobKey(time.Now())
	p := filepath.Join(data, "blobs", filepath.FromSlash(orphan))
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, extra[0].Data, 0o644)
	x, _ := sqlite.Open(context.Background(), filepath.Join(data, "index.db"))
	r, _ := x.Find(context.Background(), index.Query{Level: index.ImageLevel})
	lost := r.Instances[2]
	x.Close()
	os.Remove(filepath.Join(data, "blobs", filepath.FromSlash(lost.BlobKey)))

	out, _, code := runCLI(t, "fsck", "--data-dir", data, "--grace", "0")
	if code != 1 || !strings.Contains(out, "orphan-blob "+orphan) || !strings.Contains(out, "dangling-row "+lost.BlobKey+" sop="+lost.SOPInstanceUID) {
		t.Fatalf("fsck exit %d:\n%s", code, out)
	}
	out, _, code = runCLI(t, "fsck", "--data-dir", data, "--grace", "0", "--repair")
	if code != 0 || !strings.Contains(out, "-> reindexed") || !strings.Contains(out, "-> row-removed") {
		t.Fatalf("fsck --repair exit %d:\n%s", code, out)
	}
	out, _, code = runCLI(t, "fsck", "--data-dir", data, "--grace", "0")
	if code != 0 || !strings.Contains(out, "0 orphan blobs, 0 dangling rows") {
		t.Fatalf("fsck after repair exit %d:\n%s", code, out)
	}
	x, _ = sqlite.Open(context.Background(), filepath.Join(data, "index.db"))
	defer x.Close()
	if _, err := x.Instance(context.Background(), extra[0].SOPInstanceUID); err != nil {
		t.Fatalf("orphan not re-indexed: %v", err)
	}
}
