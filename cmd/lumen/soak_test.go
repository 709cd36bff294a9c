//go:build soak

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/service/transcode"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// soakRoot prefixes the SOP Instance UIDs the soak test makes up.
const soakRoot = "1.2.826.0.1.3680043.10.1234.77."

// soakToken is the legitimate clients' API token.
const soakToken = "soak-secret"

// rssKB reads a process's resident set size (VmRSS) in KiB.
func rssKB(pid int) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// TestSoak (make soak: built only with the tag soak, so make test never compiles it)
// runs a lumen serve process, with authentication on, under 32 concurrent DICOM
// associations storing new instances and echoing and 64 concurrent HTTP clients querying,
// retrieving and rendering, for LUMEN_SOAK_DURATION (default 2 minutes), while an
// attacker on other loopback addresses holds idle TCP connections to the DICOM port,
// idle associations under the storing peer's AE title, slow STOW uploads and half-open
// HTTP connections, and floods the HTTP port with unauthenticated requests (see
// soakAttack). Every legitimate operation must succeed, and the server's resident memory
// at the end may exceed its level after the first quarter by at most 256 MiB.
func TestSoak(t *testing.T) {
	duration := 2 * time.Minute
	if v := os.Getenv("LUMEN_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		duration = d
	}
	dir := t.TempDir()
	httpAddr, dimseAddr := freeAddr(t), freeAddr(t)
	// The storing modality is a configured peer on 127.0.0.1; check_host is off, so the
	// attacker's associations under its AE title from elsewhere are admitted, and only
	// the limits per (AE, address) and the places reserved for peers keep it out.
	config := filepath.Join(dir, "lumen.yaml")
	if err := os.WriteFile(config, []byte(`
auth:
  mode: "on"
  rate_limit: 0 # the 64 clients share one service account, far above any one user's pace
  tokens:
    - name: soak
      sha256: "`+digest(soakToken)+`"
      roles: [read, write]
dimse:
  reject_unknown_calling_ae: true
  allow_unauthenticated: true
  max_associations: 96
  reserved_for_peers: 40
  max_associations_per_ae: 48
  peers:
    - ae_title: SOAK
      host: 127.0.0.1
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(lumenBin, "serve", "--config", config, "--data-dir", dir, "--http-addr", httpAddr, "--dimse-addr", dimseAddr, "--log-level", "warn")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", dimseAddr); err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatalf("lumen did not start:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	base := "http://" + httpAddr + "/dicom-web"

	// Material: a corpus to query and render, and CT slices to store over and over.
	corpus, err := gen.Corpus(47)
	if err != nil {
		t.Fatal(err)
	}
	stowAll(t, base, corpus, soakToken)
	slices, err := gen.CTSeries(gen.Options{Seed: 48}, 64, 128, 128)
	if err != nil {
		t.Fatal(err)
	}
	type payload struct {
		class, uid, ts string
		data           []byte
	}
	var stores []payload
	for _, o := range slices {
		r := bytes.NewReader(o.Data)
		ts, err := transcode.SkipMeta(r)
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, payload{o.SOPClassUID, o.SOPInstanceUID, ts, o.Data[len(o.Data)-r.Len():]})
	}
	var urls []string
	for _, o := range corpus {
		inst := base + "/studies/" + o.StudyUID + "/series/" + o.SeriesUID + "/instances/" + o.SOPInstanceUID
		urls = append(urls, base+"/studies?PatientID="+o.PatientID, base+"/studies/"+o.StudyUID+"/metadata", inst+"/thumbnail", inst)
		if o.NumberOfFrames > 0 {
			urls = append(urls, inst+"/rendered?accept=image/png")
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var storesDone, httpDone, failures, seq atomic.Int64
	var failMu sync.Mutex
	var firstFailures []string
	fail := func(f string, args ...any) {
		failures.Add(1)
		failMu.Lock()
		if len(firstFailures) < 10 {
			firstFailures = append(firstFailures, fmt.Sprintf(f, args...))
		}
		failMu.Unlock()
	}
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for ctx.Err() == nil {
				// Operations run to completion (op has no deadline); the loop stops at ctx's.
				op := context.Background()
				c, err := dimse.Dial(op, dimseAddr, dimse.DialConfig{CallingAETitle: "SOAK", CalledAETitle: "LUMEN",
					Contexts: []dimse.ProposedContext{{AbstractSyntax: dimse.VerificationSOPClass, TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}},
						{AbstractSyntax: stores[0].class, TransferSyntaxes: []string{stores[0].ts}}}})
				if err != nil {
					fail("association %d: %v", i, err)
					return
				}
				for n := 0; n < 50 && ctx.Err() == nil; n++ {
					p := stores[(i+n)%len(stores)]
					// A new instance each time: the SOP Instance UID rewritten in place
					// (same length), as a modality sends new images.
					uid := fmt.Sprintf("%s%0*d", soakRoot, len(p.uid)-len(soakRoot), seq.Add(1))
					data := bytes.Replace(p.data, []byte(p.uid), []byte(uid), 1)
					st, err := c.Store(op, p.class, uid, p.ts, bytes.NewReader(data))
					if err != nil || st.Code != dimse.StatusSuccess {
						fail("C-STORE: %v 0x%04X %s", err, st.Code, st.ErrorComment)
						break
					}
					storesDone.Add(1)
					if n%10 == 0 {
						if st, err := c.Echo(op); err != nil || st.Code != dimse.StatusSuccess {
							fail("C-ECHO: %v", err)
						}
					}
				}
				c.Release()
			}
		}(i)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for n := i; ctx.Err() == nil; n++ {
				req, _ := http.NewRequest(http.MethodGet, urls[n%len(urls)], nil)
				req.Header.Set("Accept", `multipart/related; type="application/dicom"; transfer-syntax=*, application/dicom+json, image/*`)
				req.Header.Set("Authorization", "Bearer "+soakToken)
				resp, err := client.Do(req)
				if err != nil {
					fail("GET %s: %v", urls[n%len(urls)], err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 400 {
					fail("GET %s: %d", urls[n%len(urls)], resp.StatusCode)
				}
				httpDone.Add(1)
			}
		}(i)
	}
	var attack *soakAttacker
	if os.Getenv("LUMEN_SOAK_ATTACK") != "off" { // off: the same load without the attacker, for comparison
		attack = soakAttack(ctx, t, httpAddr, dimseAddr, &wg)
	}
	// Memory: sampled every second; the level after the first quarter is the baseline.
	pid := cmd.Process.Pid
	start := time.Now()
	var baseline, peak, last int
	for ctx.Err() == nil {
		time.Sleep(time.Second)
		last = rssKB(pid)
		peak = max(peak, last)
		if baseline == 0 && time.Since(start) >= duration/4 {
			baseline = last
		}
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	t.Logf("soak %s: %d C-STOREs (%.0f/s) on 32 associations, %d HTTP requests (%.0f/s) from 64 clients, %d failures",
		duration, storesDone.Load(), float64(storesDone.Load())/elapsed, httpDone.Load(), float64(httpDone.Load())/elapsed, failures.Load())
	t.Logf("server RSS: %d MiB after the first quarter, %d MiB at the end, peak %d MiB", baseline/1024, last/1024, peak/1024)
	if attack != nil {
		t.Logf("attacker: %s", attack.report())
	}
	_, m := httpDo(t, http.MethodGet, "http://"+httpAddr+"/metrics", "", nil)
	for _, l := range strings.Split(m, "\n") {
		if strings.HasPrefix(l, "lumen_http_connections_refused_total") || strings.HasPrefix(l, "lumen_http_uploads_refused_total") || strings.HasPrefix(l, "lumen_http_refused_total") {
			t.Logf("server: %s", l)
		}
	}
	if attack != nil && !attack.engaged() {
		t.Errorf("the attack did not engage: %s", attack.report())
	}
	if failures.Load() > 0 {
		t.Errorf("%d operations failed, first: %v", failures.Load(), firstFailures)
	}
	if last > baseline+256*1024 {
		t.Errorf("memory grew from %d MiB to %d MiB (bound: +256 MiB)", baseline/1024, last/1024)
	}
	if storesDone.Load() == 0 || httpDone.Load() == 0 {
		t.Error("no work was done")
	}
}
