package main

import (
	"context"
	"encoding/json"
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

// fillState records a finished fill, so that a run with the same -work directory can
// measure again on the same index without filling it again.
type fillState struct {
	Instances, Studies, Patients int
	Took                         string
	StudyUIDs                    []string
	// NextProbe numbers the next probe instance: each measurement's instances are new to
	// the kept index too.
	NextProbe int
}

// runScale measures, for each index backend, the rate of `lumen import` and of C-STORE
// (storescu, 4 associations) of small instances into an empty index and into one that
// already holds c.scale instances filled by real ingest (lumen import of generated
// studies of 10 instances, 30 % as many patients as studies), alternating the two over
// -scale-rounds rounds, then QIDO-RS and C-FIND latencies at that size.
func runScale(c *cfg) (*table, error) {
	t := newTable()
	t.cols, t.head = [2]string{"empty", "full"}, [3]string{"empty index", fmt.Sprintf("at %d instances", c.scale), "at scale ÷ empty"}
	for _, be := range strings.Split(c.backends, ",") {
		if err := scaleBackend(c, t, be); err != nil {
			return t, fmt.Errorf("%s: %w", be, err)
		}
	}
	return t, nil
}

// scaleIndex returns Lumen's configuration for backend be: for SQLite no index section (the
// data directory holds it), PostgreSQL in schema (made afresh when fresh is set).
//
// Both turn off the start-up check: it lists the blobs of the last two days, which after
// the fill are all of them, and would run through the first minute of every measurement.
// The figures are those of a server in its steady state.
func scaleIndex(c *cfg, be, schema string, fresh bool) (string, error) {
	const noCheck = "fsck:\n  on_start: false\n"
	if be != "postgres" {
		return noCheck, nil
	}
	dsn, err := pgSchema(c.pgDSN, schema, fresh)
	if err != nil {
		return "", err
	}
	// A deployment on PostgreSQL must choose its authentication; the benchmark runs on
	// loopback without (dev mode).
	return noCheck + fmt.Sprintf("index:\n  backend: postgres\n  postgres:\n    dsn: %q\nauth:\n  mode: dev\n", dsn), nil
}

func scaleBackend(c *cfg, t *table, be string) error {
	k := &corpus{}
	full, empty := filepath.Join(c.work, "scale-"+be), filepath.Join(c.work, "scale-"+be+"-empty")
	stateFile := full + ".fill.json"
	var st fillState
	reuse := false
	if b, err := os.ReadFile(stateFile); err == nil && json.Unmarshal(b, &st) == nil && st.Instances >= c.scale {
		reuse = true
	}
	fullIndex, err := scaleIndex(c, be, "lumen_scale", !reuse)
	if err != nil {
		return err
	}
	if !c.keep && be == "postgres" {
		defer psql(c.pgDSN, "DROP SCHEMA IF EXISTS lumen_scale CASCADE; DROP SCHEMA IF EXISTS lumen_scale_empty CASCADE")
	}
	row := func(key, fig string, higher bool, target string) {
		t.def(be+key, fmt.Sprintf("%s: %s", be, fig), higher, "", target)
	}
	row("imp", "lumen import of 5 KB instances, inst/s", true, "at scale within 10 % of empty")
	row("cs", "C-STORE of 5 KB instances, 4 associations, inst/s", true, "at scale within 10 % of empty")
	conf := filepath.Join(c.work, "lumen.conf")
	// prepare writes Lumen's configuration for data directory dir and index idx, and
	// runs the migrations (a server start does).
	prepare := func(dir, idx string) error {
		c.lumenIndex = idx
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		s, err := startOn(c, "lumen", dir)
		if err != nil {
			return err
		}
		s.stop()
		return nil
	}
	// Fill by real ingest, in chunks of generated studies, each imported then deleted.
	if !reuse {
		if err := os.RemoveAll(full); err != nil {
			return err
		}
		if err := prepare(full, fullIndex); err != nil {
			return err
		}
		studies := c.scale / scalePerStudy
		st = fillState{Studies: studies, Patients: max(1, studies*3/10)}
		fill := filepath.Join(c.work, "fill")
		const chunk = 5000 // studies
		t0 := time.Now()
		for lo := 0; lo < studies; lo += chunk {
			os.RemoveAll(fill)
			for i := lo; i < min(lo+chunk, studies); i++ {
				uid, err := writeStudy(fill, "f", i, st.Patients, scalePerStudy)
				if err != nil {
					return err
				}
				st.StudyUIDs = append(st.StudyUIDs, uid)
			}
			out, err := exec.Command(c.lumen, "import", "--config", conf, "--progress", "none", fill).CombinedOutput()
			if err != nil {
				return fmt.Errorf("lumen import (fill): %v: %s", err, tail(out))
			}
			log.Printf("%s: %d of %d instances (%s)", be, min(lo+chunk, studies)*scalePerStudy, c.scale, time.Since(t0).Round(time.Second))
		}
		os.RemoveAll(fill)
		st.Instances, st.Took = studies*scalePerStudy, time.Since(t0).Round(time.Second).String()
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		if err := os.WriteFile(stateFile, b, 0o644); err != nil {
			return err
		}
		t.note("%s: filled with %d instances (%d studies, %d patients) by lumen import in %s", be, st.Instances, st.Studies, st.Patients, st.Took)
	} else {
		t.note("%s: the index of an earlier run (%s), filled with %d instances (%d studies, %d patients) by lumen import in %s", be, stateFile, st.Instances, st.Studies, st.Patients, st.Took)
	}
	for i := 0; i < st.Patients; i++ {
		k.patients = append(k.patients, fmt.Sprintf("Q%06d", i))
	}
	k.studyUIDs, k.queryCount = st.StudyUIDs, st.Studies

	// The rates: every measurement sends probe instances never sent before (new studies
	// of new patients), into a fresh empty index or into the full one, alternating.
	probes := filepath.Join(c.work, "probe")
	st.NextProbe = max(st.NextProbe, 5_000_000)
	rate := func(key, when, dir, idx string) error {
		if err := removeSettled(probes); err != nil {
			return err
		}
		next := st.NextProbe
		for i := 0; i < c.probe; i++ {
			if err := writeSmall(probes, "p", next+i, next+i); err != nil {
				return err
			}
		}
		st.NextProbe += c.probe
		if b, err := json.Marshal(st); err != nil {
			return err
		} else if err := os.WriteFile(stateFile, b, 0o644); err != nil {
			return err
		}
		// The probes stay until the next measurement removes them (removeSettled).
		n := float64(c.probe)
		c.lumenIndex = idx
		if key == "imp" {
			if err := prepare(dir, idx); err != nil {
				return err
			}
			t0 := time.Now()
			out, err := exec.Command(c.lumen, "import", "--config", conf, "--progress", "none", filepath.Join(probes, "p")).CombinedOutput()
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
		var dirs []string
		for i := 0; i < 4; i++ {
			dirs = append(dirs, filepath.Join(probes, "p", fmt.Sprint(i)))
		}
		el, _, err := timed(s, func() error { return storescu(s, dirs...) })
		if err != nil {
			return err
		}
		t.add(when, be+key, n/el.Seconds())
		return nil
	}
	measureEmpty := func(key string) error {
		if err := removeSettled(empty); err != nil {
			return err
		}
		idx, err := scaleIndex(c, be, "lumen_scale_empty", true)
		if err != nil {
			return err
		}
		return rate(key, "empty", empty, idx)
	}
	for r := 0; r < c.scaleRounds; r++ {
		for _, key := range []string{"imp", "cs"} {
			steps := []func() error{func() error { return measureEmpty(key) }, func() error { return rate(key, "full", full, fullIndex) }}
			if r%2 == 1 {
				steps[0], steps[1] = steps[1], steps[0]
			}
			for _, step := range steps {
				if err := step(); err != nil {
					return err
				}
			}
		}
		log.Printf("%s: rates, round %d of %d", be, r+1, c.scaleRounds)
	}
	os.RemoveAll(empty)
	os.RemoveAll(probes)

	// Queries at that size. On PostgreSQL, what autovacuum does in a default deployment
	// (statistics, and the visibility map that index-only scans need) is done first:
	// where it is off, as on the benchmark machines, the plans are those of an empty
	// database (docs/operations.md).
	if be == "postgres" {
		if err := psql(c.pgDSN, "VACUUM ANALYZE lumen_scale.patients, lumen_scale.studies, lumen_scale.series, lumen_scale.instances"); err != nil {
			return err
		}
		t.note("postgres: VACUUM ANALYZE of the index tables before the queries, as autovacuum would have done")
	}
	c.lumenIndex = fullIndex
	s, err := startOn(c, "lumen", full)
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

// psql runs the statements sql on the database dsn.
func psql(dsn, sql string) error {
	if out, err := exec.Command("psql", dsn, "-qc", sql).CombinedOutput(); err != nil {
		return fmt.Errorf("psql %q: %v: %s", sql, err, tail(out))
	}
	return nil
}

// pgSchema returns a DSN that selects schema; when fresh is set the schema is dropped and
// made again first.
func pgSchema(dsn, schema string, fresh bool) (string, error) {
	sql := "CREATE SCHEMA IF NOT EXISTS " + schema
	if fresh {
		sql = "DROP SCHEMA IF EXISTS " + schema + " CASCADE; CREATE SCHEMA " + schema
	}
	if err := psql(dsn, sql); err != nil {
		return "", err
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("search_path", schema)
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
