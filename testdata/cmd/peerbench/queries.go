package main

import (
	"context"
	"fmt"
	"log"
	"math/rand/v2"
	"net/url"
	"sync"
	"time"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dimse"
)

// shape is one QIDO-RS query form; q draws its query string.
type shape struct {
	key, name string
	q         func(k *corpus, r *rand.Rand) string
}

var shapes = []shape{
	{"qpid", "exact PatientID", func(k *corpus, r *rand.Rand) string {
		return "PatientID=" + k.patients[r.IntN(len(k.patients))] + "&limit=101"
	}},
	{"quid", "exact StudyInstanceUID", func(k *corpus, r *rand.Rand) string {
		return "StudyInstanceUID=" + k.studyUIDs[r.IntN(len(k.studyUIDs))]
	}},
	{"qsmi", "PatientName=SMI* limit=101", func(*corpus, *rand.Rand) string { return "PatientName=SMI*&limit=101" }},
	{"qsdc", "PatientName=S* + 1-year StudyDate + ModalitiesInStudy=CT, limit=101", func(_ *corpus, r *rand.Rand) string {
		y := 2015 + r.IntN(10)
		return fmt.Sprintf("PatientName=S*&StudyDate=%d0101-%d1231&ModalitiesInStudy=CT&limit=101", y, y)
	}},
	{"q6m", "6-month StudyDate range, limit=101", func(_ *corpus, r *rand.Rand) string {
		d := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, r.IntN(100), 0)
		return "StudyDate=" + d.Format("20060102") + "-" + d.AddDate(0, 6, 0).Format("20060102") + "&limit=101"
	}},
	{"qohif", "OHIF study list (limit=101, offset=0)", func(*corpus, *rand.Rand) string {
		return "limit=101&offset=0&fuzzymatching=false&includefield=" + url.QueryEscape("00081030,00080060")
	}},
	{"qohif2", "OHIF study list, page 11 (offset=1010)", func(*corpus, *rand.Rand) string {
		return "limit=101&offset=1010&fuzzymatching=false&includefield=" + url.QueryEscape("00081030,00080060")
	}},
}

// queries fills each server with the query corpus by real ingest and measures the
// QIDO-RS shapes, 8 concurrent clients and the first C-FIND pending response.
func queries(c *cfg, t *table, k *corpus, servers []string) error {
	dirs := []string{k.queryDir(0), k.queryDir(1), k.queryDir(2), k.queryDir(3)}
	for _, sh := range shapes {
		t.def(sh.key+"50", fmt.Sprintf("QIDO %s at %d studies, p50 ms", sh.name, k.queryCount), false, "", "")
		t.def(sh.key+"95", fmt.Sprintf("QIDO %s at %d studies, p95 ms", sh.name, k.queryCount), false, "", "≤ 10 ms")
	}
	t.def("q8rps", fmt.Sprintf("QIDO, 8 concurrent clients (all shapes) at %d studies, req/s", k.queryCount), true, "", "≥ 500")
	t.def("q8p99", "QIDO, 8 concurrent clients, p99 ms", false, "", "")
	t.def("cfind", fmt.Sprintf("C-FIND PatientName=* (%d matches), first pending response, p50 ms", k.queryCount), false, "", "≤ 10 ms")
	t.def("fill", fmt.Sprintf("C-STORE 5 KB, 4 associations, filling 0→%d studies, inst/s", k.queryCount), true, "", "")

	running := map[string]*server{}
	defer func() {
		for _, s := range running {
			s.stop()
		}
	}()
	for _, name := range servers {
		s, err := start(c, name)
		if err != nil {
			return err
		}
		running[name] = s
		log.Printf("filling %s with %d studies", name, k.queryCount)
		el, _, err := timed(s, func() error { return storescu(s, dirs...) })
		if err != nil {
			return err
		}
		t.add(name, "fill", float64(k.queryCount)/el.Seconds())
	}
	for r := 0; r < c.rounds; r++ {
		order := servers
		if r%2 == 1 && len(servers) == 2 {
			order = []string{servers[1], servers[0]}
		}
		for _, name := range order {
			log.Printf("query round %d: %s", r+1, name)
			if err := queryRound(c, t, k, running[name], r); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	return nil
}

func queryRound(c *cfg, t *table, k *corpus, s *server, round int) error {
	r := rng(round)
	for _, sh := range shapes {
		var lat []float64
		for i := 0; i < c.queries; i++ {
			d, _, err := get(s.web+"/studies?"+sh.q(k, r), "application/dicom+json")
			if err != nil {
				return fmt.Errorf("%s: %w", sh.name, err)
			}
			lat = append(lat, ms(d))
		}
		t.add(s.name, sh.key+"50", percentile(lat, 0.5))
		t.add(s.name, sh.key+"95", percentile(lat, 0.95))
	}
	// 8 clients, each drawing shapes at random, for 10 s.
	var mu sync.Mutex
	var lat []float64
	var ferr error
	var wg sync.WaitGroup
	deadline := time.Now().Add(10 * time.Second)
	t0 := time.Now()
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(rr *rand.Rand) {
			defer wg.Done()
			for time.Now().Before(deadline) {
				mu.Lock()
				sh := shapes[rr.IntN(len(shapes))]
				q := sh.q(k, rr)
				mu.Unlock()
				d, _, err := get(s.web+"/studies?"+q, "application/dicom+json")
				mu.Lock()
				if err != nil {
					ferr = err
				}
				lat = append(lat, ms(d))
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}(rand.New(rand.NewPCG(uint64(round), uint64(w))))
	}
	wg.Wait()
	if ferr != nil {
		return ferr
	}
	t.add(s.name, "q8rps", float64(len(lat))/time.Since(t0).Seconds())
	t.add(s.name, "q8p99", percentile(lat, 0.99))

	var first []float64
	for i := 0; i < 5; i++ {
		d, err := firstPending(s)
		if err != nil {
			t.note("%s: C-FIND: %v", s.name, err)
			break
		}
		first = append(first, ms(d))
	}
	if len(first) > 0 {
		t.add(s.name, "cfind", percentile(first, 0.5))
	}
	return nil
}

// firstPending sends a study-level C-FIND matching every patient and returns the time
// to the first pending response; it then cancels (C-CANCEL) and reads the rest.
func firstPending(s *server) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := dimse.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", s.port), dimse.DialConfig{CallingAETitle: "BENCH", CalledAETitle: s.ae,
		Contexts: []dimse.ProposedContext{{AbstractSyntax: dimse.StudyRootFind, TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}}}})
	if err != nil {
		return 0, err
	}
	q := &dcm.Dataset{}
	q.Set(dcm.NewString(dcm.TagQueryRetrieveLevel, "CS", "STUDY"))
	q.Set(dcm.NewString(dcm.TagPatientName, "PN", "*"))
	for _, tg := range []dcm.Tag{dcm.TagStudyInstanceUID, dcm.TagStudyDate, dcm.TagAccessionNumber, dcm.TagPatientID, dcm.TagModalitiesInStudy} {
		q.Set(dcm.NewElement(tg, dcm.DictVR(tg), nil))
	}
	b, err := q.Encode(dcm.ExplicitVRLittleEndian)
	if err != nil {
		c.Abort()
		return 0, err
	}
	var d time.Duration
	t0 := time.Now()
	st, err := c.Find(ctx, dimse.StudyRootFind, b, func([]byte) bool {
		if d == 0 {
			d = time.Since(t0)
		}
		return false
	})
	if err != nil {
		c.Abort()
		return 0, err
	}
	c.Release()
	if d == 0 {
		return 0, fmt.Errorf("no pending response (status 0x%04X)", st.Code)
	}
	return d, nil
}
