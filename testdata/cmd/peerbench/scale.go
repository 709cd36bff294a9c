package main

import (
	"context"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dimse"
)

// Instances per study of the -scale fill.
const scalePerStudy = 10

// runScale measures, for each index backend, the rate of `lumen import` and of C-STORE
// (storescu, 4 associations) of small instances into an empty index and into one that
// already holds c.scale instances filled by real ingest (lumen import of generated
// studies of 10 instances, 30 % as many patients as studies), then QIDO-RS and C-FIND
// latencies at that size.
func runScale(c *cfg) (*table, error) {
	t := newTable()
	t.cols, t.head = [2]string{"empty", "full"}, [3]string{"empty index", fmt.Sprintf("at %d instances", c.scale), "at scale ÷ empty"}
	probes := filepath.Join(c.work, "probe")
	log.Printf("writing 4 × %d probe instances", c.probe)
	for set := 0; set < 4; set++ {
		for i := 0; i < c.probe; i++ {
			if err := writeSmall(probes, fmt.Sprintf("p%d", set), i, 5_000_000+set*c.probe+i); err != nil {
				return nil, err
			}
		}
	}
	probe := func(set int) string { return filepath.Join(probes, fmt.Sprintf("p%d", set)) }
	probeDirs := func(set int) []string {
		var d []string
		for i := 0; i < 4; i++ {
			d = append(d, filepath.Join(probe(set), fmt.Sprint(i)))
		}
		return d
	}
	for _, be := range strings.Split(c.backends, ",") {
		k := &corpus{}
		if err := scaleBackend(c, t, k, be, probe, probeDirs); err != nil {
			return t, fmt.Errorf("%s: %w", be, err)
		}
	}
	return t, nil
}

func scaleBackend(c *cfg, t *table, k *corpus, be string, probe func(int) string, probeDirs func(int) []string) error {
	c.lumenIndex = ""
	if be == "postgres" {
		dsn, err := pgSchema(c.pgDSN)
		if err != nil {
			return err
		}
		defer exec.Command("psql", c.pgDSN, "-qc", "DROP SCHEMA IF EXISTS lumen_scale CASCADE").Run()
		// A deployment on PostgreSQL must choose its authentication; the benchmark runs on
		// loopback without (dev mode).
		c.lumenIndex = fmt.Sprintf("index:\n  backend: postgres\n  postgres:\n    dsn: %q\nauth:\n  mode: dev\n", dsn)
	}
	row := func(key, fig string, higher bool, target string) {
		t.def(be+key, fmt.Sprintf("%s: %s", be, fig), higher, "", target)
	}
	row("imp", "lumen import of 5 KB instances, inst/s", true, "at scale within 10 % of empty")
	row("cs", "C-STORE of 5 KB instances, 4 associations, inst/s", true, "at scale within 10 % of empty")
	conf := filepath.Join(c.work, "lumen.conf")
	// Empty: make the index (a server start runs the migrations), then the two rates.
	s, err := start(c, "lumen")
	if err != nil {
		return err
	}
	dir := s.dir
	s.stop()
	rate := func(key, when string, set int) error {
		n := float64(c.probe)
		if key == "imp" {
			t0 := time.Now()
			out, err := exec.Command(c.lumen, "import", "--config", conf, "--progress", "none", probe(set)).CombinedOutput()
			if err != nil {
				return fmt.Errorf("lumen import: %v: %s", err, tail(out))
			}
			t.add(when, be+key, n/time.Since(t0).Seconds())
			return nil
		}
		s, err := startOn(c, "lumen", dir)
		if err != nil {
			return err
		}
		defer s.stop()
		el, _, err := timed(s, func() error { return storescu(s, probeDirs(set)...) })
		if err != nil {
			return err
		}
		t.add(when, be+key, n/el.Seconds())
		return nil
	}
	if err := rate("imp", "empty", 0); err != nil {
		return err
	}
	if err := rate("cs", "empty", 1); err != nil {
		return err
	}
	// Fill by real ingest, in chunks of generated studies, each imported then deleted.
	studies := c.scale / scalePerStudy
	npat := max(1, studies*3/10)
	for i := 0; i < npat; i++ {
		k.patients = append(k.patients, fmt.Sprintf("Q%06d", i))
	}
	fill := filepath.Join(c.work, "fill")
	const chunk = 5000 // studies
	t0 := time.Now()
	for lo := 0; lo < studies; lo += chunk {
		os.RemoveAll(fill)
		for i := lo; i < min(lo+chunk, studies); i++ {
			uid, err := writeStudy(fill, "f", i, npat, scalePerStudy)
			if err != nil {
				return err
			}
			k.studyUIDs = append(k.studyUIDs, uid)
		}
		out, err := exec.Command(c.lumen, "import", "--config", conf, "--progress", "none", fill).CombinedOutput()
		if err != nil {
			return fmt.Errorf("lumen import (fill): %v: %s", err, tail(out))
		}
		log.Printf("%s: %d of %d instances (%s)", be, min(lo+chunk, studies)*scalePerStudy, c.scale, time.Since(t0).Round(time.Second))
	}
	os.RemoveAll(fill)
	k.queryCount = studies
	t.note("%s: filled with %d instances (%d studies, %d patients) by lumen import in %s", be, studies*scalePerStudy, studies, npat, time.Since(t0).Round(time.Second))
	if err := rate("imp", "full", 2); err != nil {
		return err
	}
	if err := rate("cs", "full", 3); err != nil {
		return err
	}
	// Queries at that size.
	s, err = startOn(c, "lumen", dir)
	if err != nil {
		return err
	}
	defer s.stop()
	r := rng(1)
	for _, sh := range shapes {
		var lat []float64
		for i := 0; i < max(c.queries, 100); i++ {
			d, _, err := get(s.web+"/studies?"+sh.q(k, r), "application/dicom+json")
			if err != nil {
				return fmt.Errorf("%s: %w", sh.name, err)
			}
			lat = append(lat, ms(d))
		}
		row(sh.key, fmt.Sprintf("QIDO %s, p95 ms", sh.name), false, "")
		t.add("full", be+sh.key, percentile(lat, 0.95))
	}
	var exact, first []float64
	for i := 0; i < 100; i++ {
		d, err := findAll(s, k.patients[r.IntN(len(k.patients))])
		if err != nil {
			return err
		}
		exact = append(exact, ms(d))
		if i%5 == 0 {
			d, err := firstPending(s)
			if err != nil {
				return err
			}
			first = append(first, ms(d))
		}
	}
	row("cfe", "C-FIND exact PatientID (all responses), p95 ms", false, "")
	t.add("full", be+"cfe", percentile(exact, 0.95))
	row("cff", "C-FIND PatientName=*, first pending response, p95 ms", false, "≤ 10 ms")
	t.add("full", be+"cff", percentile(first, 0.95))
	return nil
}

// pgSchema makes a fresh schema lumen_scale and returns a DSN that selects it.
func pgSchema(dsn string) (string, error) {
	out, err := exec.Command("psql", dsn, "-qc", "DROP SCHEMA IF EXISTS lumen_scale CASCADE; CREATE SCHEMA lumen_scale").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("psql: %v: %s", err, tail(out))
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("search_path", "lumen_scale")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// findAll sends a study-level C-FIND for one patient and returns the time to the final
// response.
func findAll(s *server, patientID string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := dimse.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", s.port), dimse.DialConfig{CallingAETitle: "BENCH", CalledAETitle: s.ae,
		Contexts: []dimse.ProposedContext{{AbstractSyntax: dimse.StudyRootFind, TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}}}})
	if err != nil {
		return 0, err
	}
	defer c.Release()
	q := &dcm.Dataset{}
	q.Set(dcm.NewString(dcm.TagQueryRetrieveLevel, "CS", "STUDY"))
	q.Set(dcm.NewString(dcm.TagPatientID, "LO", patientID))
	for _, tg := range []dcm.Tag{dcm.TagStudyInstanceUID, dcm.TagStudyDate, dcm.TagAccessionNumber, dcm.TagPatientName, dcm.TagModalitiesInStudy} {
		q.Set(dcm.NewElement(tg, dcm.DictVR(tg), nil))
	}
	b, err := q.Encode(dcm.ExplicitVRLittleEndian)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	st, err := c.Find(ctx, dimse.StudyRootFind, b, func([]byte) bool { return true })
	if err != nil {
		return 0, err
	}
	if st.Code != dimse.StatusSuccess {
		return 0, fmt.Errorf("C-FIND status 0x%04X", st.Code)
	}
	return time.Since(t0), nil
}
