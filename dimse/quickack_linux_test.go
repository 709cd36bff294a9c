//go:build linux

package dimse

import (
	"bufio"
	"crypto/tls"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/testdata/gen"
)

// delayedACKs reads the kernel's count of acknowledgements sent late by the delayed-ACK
// timer (TcpExt DelayedACKs in /proc/net/netstat).
func delayedACKs(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/net/netstat")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "TcpExt:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		for i, n := range names {
			if n == "DelayedACKs" && i < len(fields) {
				v, err := strconv.ParseInt(fields[i], 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatal("no TcpExt DelayedACKs in /proc/net/netstat")
	return 0
}

// A sender that leaves Nagle's algorithm on (DCMTK's storescu with TCP_NODELAY=0 in its
// environment, as many modalities' stacks are) holds each small PDU until what it sent
// before is acknowledged. The server acknowledges each read at once, so no instance
// waits for the kernel's delayed-ACK timer (40 ms or more each on Linux): the count of
// acknowledgements that timer sent stays far below one per instance. Without the
// quick acknowledgements, it grows by one per instance.
func TestStoreSCUWithNagle(t *testing.T) {
	const n = 200
	objs, err := gen.CTSeries(gen.Options{Seed: 7}, n, 40, 40) // about 5 KB each
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFiles(t, dir, objs)
	rec := &recorder{}
	h, p := hostPort(startServer(t, &Server{StoreHandler: rec}))
	cmd := exec.Command(dcmtk(t, "storescu"), "-aet", "MODALITY", "-aec", "LUMEN", "-nh", "+sd", "+r", h, p, dir)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=0")
	before, start := delayedACKs(t), time.Now()
	out, err := cmd.CombinedOutput()
	late, took := delayedACKs(t)-before, time.Since(start)
	if err != nil || strings.Contains(string(out), "E: ") {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	if rec.count() != n {
		t.Fatalf("received %d of %d", rec.count(), n)
	}
	// The counter is the whole network namespace's: other tests running meanwhile may
	// add their own. So the verdict also asks that the waits showed, each instance
	// waiting 40 ms or more without quick acknowledgements (9 s for 200 here, 0.2–0.3 s
	// with them).
	if late >= n/4 && took >= n*10*time.Millisecond {
		t.Fatalf("%d acknowledgements waited for the delayed-ACK timer while %d instances were stored, in %v: the server does not acknowledge at once", late, n, took)
	}
	t.Logf("%d delayed acknowledgements for %d instances, in %v", late, n, took)
}

// quickAcker finds the TCP connection under DICOM TLS, and leaves other connections
// (net.Pipe here) to be read as they are.
func TestQuickAckerConnections(t *testing.T) {
	c, peer := connPair(t, "tcp")
	defer c.Close()
	defer peer.Close()
	if quickAcker(c) == nil {
		t.Fatal("no quick acknowledgements on a TCP connection")
	}
	ack := quickAcker(tls.Client(c, &tls.Config{InsecureSkipVerify: true}))
	if ack == nil {
		t.Fatal("no quick acknowledgements under TLS")
	}
	ack()
	p1, p2 := connPair(t, "pipe")
	defer p1.Close()
	defer p2.Close()
	if quickAcker(p1) != nil {
		t.Fatal("quick acknowledgements for a connection that is not TCP")
	}
	if r := pduReader(p1); r != io.Reader(p1) {
		t.Fatalf("pduReader of a pipe is %T, want the pipe itself", r)
	}
}
