package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/zeebo/blake3"
)

// run measures the machine, then both servers round by round, and returns the table.
func run(c *cfg) (*table, error) {
	t := newTable()
	defineRows(t)
	log.Printf("writing the corpus under %s", c.work)
	k, err := makeCorpus(c, filepath.Join(c.work, "corpus"))
	if err != nil {
		return nil, err
	}
	servers := []string{"lumen", "orthanc"}
	if c.baseline != "" {
		servers[1] = "baseline"
		t.cols, t.head = [2]string{"baseline", "lumen"}, [3]string{"baseline", "Lumen", "Lumen's lead"}
	}
	if c.lumenOnly {
		servers = servers[:1]
	}
	sink := exec.Command("storescp", "--ignore", "-aet", "SINK", fmt.Sprint(sinkPort))
	if err := sink.Start(); err != nil {
		return nil, fmt.Errorf("storescp: %w", err)
	}
	defer func() { sink.Process.Kill(); sink.Wait() }()
	for r := 0; r < c.rounds; r++ {
		measure := measureLimits
		if c.retrieval {
			measure = func(c *cfg, t *table) error { return retrievalLimits(c, t, k) }
		}
		if err := measure(c, t); err != nil {
			return t, err
		}
		order := servers
		if r%2 == 1 && len(servers) == 2 {
			order = []string{servers[1], servers[0]}
		}
		for _, name := range order {
			log.Printf("round %d: %s", r+1, name)
			round := roundBytes
			if c.retrieval {
				round = roundRetrieval
			}
			if err := round(c, t, k, name); err != nil {
				return t, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	if c.studies > 0 && !c.retrieval {
		if err := queries(c, t, k, servers); err != nil {
			return t, err
		}
	}
	return t, nil
}

func defineRows(t *table) {
	t.def("store1", "C-STORE 512² CT, 1 association, inst/s", true, "puts1", "")
	t.def("store4", "C-STORE 512² CT, 4 associations, inst/s", true, "puts4", "≥ 60 % of the 4-writer limit, ≥ 2× Orthanc")
	t.def("storecpu", "server CPU per 512² CT instance (C-STORE, 4 assoc.), ms", false, "putcpu", "≤ 1.5 ms")
	t.def("stow4", "STOW-RS 512² CT, 4 clients, inst/s", true, "puts4", "≥ 60 % of the 4-writer limit, ≥ 2× Orthanc")
	t.def("stowcpu", "server CPU per 512² CT instance (STOW-RS), ms", false, "putcpu", "≤ 1.5 ms")
	t.def("wado1", "WADO-RS one CT study, MiB/s", true, "loop1", "≥ 2,000 MiB/s")
	t.def("wado4", "WADO-RS 4 CT studies in parallel, MiB/s", true, "loop4", "≥ 2,500 MiB/s")
	t.def("rendct", "/rendered CT 512² JPEG, p50 ms", false, "", "≤ 3 ms")
	t.def("rendus", "/rendered US RGB 640×480 frame JPEG, p50 ms", false, "", "≤ 5 ms")
	t.def("cmove", "C-MOVE one CT study to storescp, MiB/s", true, "loop1", "report")
	t.def("cget", "C-GET one CT study to getscu, MiB/s", true, "loop1", "report")
	t.def("wado1cpu", "server CPU per MiB, WADO-RS one CT study, ms", false, "", "")
	t.def("wado4cpu", "server CPU per MiB, WADO-RS 4 CT studies in parallel, ms", false, "", "")
	t.def("cmovecpu", "server CPU per MiB, C-MOVE to storescp, ms", false, "", "")
	t.def("cgetcpu", "server CPU per MiB, C-GET to getscu, ms", false, "", "")
	t.def("small4", "C-STORE 5 KB instances, 4 associations, inst/s", true, "", "≥ 2× Orthanc")
	t.def("small4nagle", "C-STORE 5 KB instances, 4 associations, senders with Nagle's algorithm on (storescu's default), inst/s", true, "", "")
	t.def("smallcpu", "server CPU per 5 KB instance, ms", false, "smallputcpu", "≤ 1.0 ms")
	t.def("rss", "peak RSS over a round, MB", false, "", "")
}

// measureLimits measures the machine once per round, between the servers' runs.
func measureLimits(c *cfg, t *table) error {
	d := filepath.Join(c.work, "limits")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	for _, w := range []int{1, 4} {
		v, cpu, err := durablePuts(d, w, 512<<10, 3*time.Second)
		if err != nil {
			return err
		}
		t.addLimit(fmt.Sprintf("puts%d", w), fmt.Sprintf("durable 512 KiB puts, %d writer(s), puts/s", w), v)
		if w == 4 {
			t.addLimit("putcpu", "CPU per durable 512 KiB put, 4 writers, ms", cpu)
		}
	}
	if _, cpu, err := durablePuts(d, 4, 5<<10, time.Second); err != nil {
		return err
	} else {
		t.addLimit("smallputcpu", "CPU per durable 5 KB put, 4 writers, ms", cpu)
	}
	for _, n := range []int{1, 4} {
		v, err := loopback(n, 2*time.Second)
		if err != nil {
			return err
		}
		t.addLimit(fmt.Sprintf("loop%d", n), fmt.Sprintf("loopback TCP, %d connection(s), MiB/s", n), v)
	}
	t.addLimit("sha", "SHA-256 one core, MiB/s", hashRate(sha256.New(), time.Second))
	t.addLimit("b3", "BLAKE3 one core (Lumen's object digest), MiB/s", hashRate(blake3.New(), time.Second))
	return nil
}

// timed runs fn on a server and returns the elapsed time and the server CPU it caused
// (background work included: the CPU time is read once it has settled).
func timed(s *server, fn func() error) (time.Duration, time.Duration, error) {
	c0 := s.cpu()
	t0 := time.Now()
	err := fn()
	el := time.Since(t0)
	return el, s.settledCPU() - c0, err
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// storescu sends the files under each directory on its own association, all at once.
func storescu(s *server, dirs ...string) error { return storescuNagle(s, false, dirs...) }

// storescuNagle is storescu, the senders leaving Nagle's algorithm on when nagle is set.
func storescuNagle(s *server, nagle bool, dirs ...string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(dirs))
	for i, d := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = dcmtkNagle(context.Background(), nagle, "storescu", "-aet", "BENCH", "-aec", s.ae, "127.0.0.1", fmt.Sprint(s.port), "+sd", "+r", d)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// roundBytes runs one round of the figures where bytes and pixels decide.
func roundBytes(c *cfg, t *table, k *corpus, name string) error {
	n := 4 * c.ctPerStudy
	var peak int64
	// C-STORE, 1 association.
	s, err := start(c, name)
	if err != nil {
		return err
	}
	el, _, err := timed(s, func() error { return storescu(s, filepath.Join(k.dir, "ct")) })
	peak = max(peak, s.peakRSS())
	s.stop()
	if err != nil {
		return err
	}
	t.add(name, "store1", float64(n)/el.Seconds())

	// C-STORE, 4 associations; then the retrieval figures on what it stored.
	if s, err = start(c, name); err != nil {
		return err
	}
	defer s.stop()
	el, cpu, err := timed(s, func() error { return storescu(s, k.ctDir(0), k.ctDir(1), k.ctDir(2), k.ctDir(3)) })
	if err != nil {
		return err
	}
	t.add(name, "store4", float64(n)/el.Seconds())
	t.add(name, "storecpu", ms(cpu)/float64(n))
	if err := storescu(s, filepath.Join(k.dir, "us")); err != nil {
		return err
	}
	if err := retrievals(c, t, k, s); err != nil {
		return err
	}
	peak = max(peak, s.peakRSS())
	s.stop()

	// STOW-RS, 4 clients.
	if s, err = start(c, name); err != nil {
		return err
	}
	el, cpu, err = timed(s, func() error {
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = stow(s.web, k.ctDir(i), 50) }()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
		return nil
	})
	peak = max(peak, s.peakRSS())
	s.stop()
	if err != nil {
		return err
	}
	t.add(name, "stow4", float64(n)/el.Seconds())
	t.add(name, "stowcpu", ms(cpu)/float64(n))

	// Small instances, 4 associations.
	if s, err = start(c, name); err != nil {
		return err
	}
	el, cpu, err = timed(s, func() error { return storescu(s, k.smallDir(0), k.smallDir(1), k.smallDir(2), k.smallDir(3)) })
	peak = max(peak, s.peakRSS())
	s.stop()
	if err != nil {
		return err
	}
	t.add(name, "small4", float64(k.small)/el.Seconds())
	t.add(name, "smallcpu", ms(cpu)/float64(k.small))

	// The same from senders that leave Nagle's algorithm on, as DCMTK does by default.
	if s, err = start(c, name); err != nil {
		return err
	}
	el, _, err = timed(s, func() error {
		return storescuNagle(s, true, k.smallDir(0), k.smallDir(1), k.smallDir(2), k.smallDir(3))
	})
	peak = max(peak, s.peakRSS())
	s.stop()
	if err != nil {
		return err
	}
	t.add(name, "small4nagle", float64(k.small)/el.Seconds())
	t.add(name, "rss", float64(peak)/1e6)
	return nil
}

// retrievals measures WADO-RS, /rendered, C-MOVE and C-GET on a server holding the CT
// studies and the ultrasound cine.
func retrievals(c *cfg, t *table, k *corpus, s *server) error {
	const mib = 1 << 20
	reps := 1
	if c.retrieval {
		reps = max(1, c.repeat)
	}
	for rep := 0; rep < reps; rep++ {
		if err := retrieveWeb(t, k, s); err != nil {
			return err
		}
	}
	if !c.retrieval {
		rendered(t, k, s)
	}
	// C-MOVE to storescp and C-GET to getscu, study 2, storing nothing. The server CPU
	// per MiB is read after the server has settled.
	study := k.ct[2][0].study
	for rep := 0; rep < reps; rep++ {
		el, cpu, err := timed(s, func() error {
			return dcmtk(context.Background(), "movescu", "-S", "-aet", "BENCH", "-aec", s.ae, "-aem", "SINK", "-k", "QueryRetrieveLevel=STUDY",
				"-k", "StudyInstanceUID="+study, "127.0.0.1", fmt.Sprint(s.port))
		})
		if err != nil {
			t.note("%s: C-MOVE: %v", s.name, err)
			break
		}
		t.add(s.name, "cmove", float64(k.ctBytes[2])/mib/el.Seconds())
		t.add(s.name, "cmovecpu", ms(cpu)/(float64(k.ctBytes[2])/mib))
	}
	for rep := 0; rep < reps; rep++ {
		el, cpu, err := timed(s, func() error {
			return dcmtk(context.Background(), "getscu", "-S", "-aet", "BENCH", "-aec", s.ae, "--ignore", "-k", "QueryRetrieveLevel=STUDY",
				"-k", "StudyInstanceUID="+study, "127.0.0.1", fmt.Sprint(s.port))
		})
		if err != nil {
			t.note("%s: C-GET: %v", s.name, err)
			break
		}
		t.add(s.name, "cget", float64(k.ctBytes[2])/mib/el.Seconds())
		t.add(s.name, "cgetcpu", ms(cpu)/(float64(k.ctBytes[2])/mib))
	}
	return nil
}

// retrieveWeb measures WADO-RS of one study (warmed once, then the median of 3) and of
// 4 studies in parallel (the median of 3), and the server CPU per MiB of each.
func retrieveWeb(t *table, k *corpus, s *server) error {
	const mib = 1 << 20
	var one []float64
	var oneBytes int64
	c0 := s.cpu()
	for i := 0; i < 4; i++ {
		t0 := time.Now()
		b, parts, err := retrieve(s.web + "/studies/" + k.ct[0][0].study)
		if err != nil {
			return err
		}
		if parts != len(k.ct[0]) {
			return fmt.Errorf("WADO-RS: %d parts, %d instances stored", parts, len(k.ct[0]))
		}
		if i > 0 {
			one = append(one, float64(b)/mib/time.Since(t0).Seconds())
		}
		oneBytes += b
	}
	t.add(s.name, "wado1", median(one))
	t.add(s.name, "wado1cpu", ms(s.settledCPU()-c0)/(float64(oneBytes)/mib))
	var four []float64
	var fourBytes int64
	c0 = s.cpu()
	for rep := 0; rep < 3; rep++ {
		var wg sync.WaitGroup
		var total int64
		var mu sync.Mutex
		var ferr error
		t0 := time.Now()
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, parts, err := retrieve(s.web + "/studies/" + k.ct[i][0].study)
				mu.Lock()
				defer mu.Unlock()
				total += b
				if err == nil && parts != len(k.ct[i]) {
					err = fmt.Errorf("WADO-RS: %d parts, %d instances stored", parts, len(k.ct[i]))
				}
				if err != nil {
					ferr = err
				}
			}()
		}
		wg.Wait()
		if ferr != nil {
			return ferr
		}
		four = append(four, float64(total)/mib/time.Since(t0).Seconds())
		fourBytes += total
	}
	t.add(s.name, "wado4", median(four))
	t.add(s.name, "wado4cpu", ms(s.settledCPU()-c0)/(float64(fourBytes)/mib))
	return nil
}

// rendered measures /rendered of CT slices of study 1 as JPEG, each slice once, and of
// ultrasound frames.
func rendered(t *table, k *corpus, s *server) {
	var lat []float64
	for i, r := range k.ct[1] {
		if i >= 60 {
			break
		}
		d, _, err := get(s.web+r.path()+"/rendered", "image/jpeg")
		if err != nil {
			t.note("%s: /rendered CT: %v", s.name, err)
			lat = nil
			break
		}
		lat = append(lat, ms(d))
	}
	if len(lat) > 0 {
		t.add(s.name, "rendct", percentile(lat, 0.5))
	}
	lat = nil
	for i := 0; i < 60; i++ {
		d, _, err := get(fmt.Sprintf("%s%s/frames/%d/rendered", s.web, k.us.path(), 1+i%k.usFrames), "image/jpeg")
		if err != nil {
			t.note("%s: /rendered US frame: %v", s.name, err)
			lat = nil
			break
		}
		lat = append(lat, ms(d))
	}
	if len(lat) > 0 {
		t.add(s.name, "rendus", percentile(lat, 0.5))
	}
}

// rng draws the query parameters; seeded, so both servers get the same queries.
func rng(round int) *rand.Rand { return rand.New(rand.NewPCG(uint64(round), 17)) }
