package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/index/postgres/pgtest"
)

// queryShape is one kind of QIDO-RS study query: its query string (after
// /dicom-web/studies?), drawn afresh for each request.
type queryShape struct {
	name  string
	query func(r *rand.Rand, n int) string
}

// ohifStudyList is what OHIF's study list sends with every query.
const ohifStudyList = "fuzzymatching=false&includefield=00081030%2C00080060"

// benchDate is a random day of the loaded studies' dates (loadStudies: 2015-01-01 and
// the 4,000 days after it).
func benchDate(r *rand.Rand, span int) time.Time {
	return time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, r.IntN(4000-span))
}

// queryShapes are the QIDO-RS study queries of BenchmarkQueryShapes, each with
// limit ≤ 101 (the exact keys answer one or two studies).
var queryShapes = []queryShape{
	{"PatientID", func(r *rand.Rand, n int) string {
		return fmt.Sprintf("PatientID=P%06d&limit=101&", 1+r.IntN(n/2)) + ohifStudyList
	}},
	{"StudyInstanceUID", func(r *rand.Rand, n int) string {
		return fmt.Sprintf("StudyInstanceUID=1.2.826.0.1.3680043.10.1234.9.%d&limit=101&", 1+r.IntN(n)) + ohifStudyList
	}},
	// A family name's first three letters, as a person types them (SMI*, SCH*, ...):
	// 1/40 to 3/40 of the studies.
	{"PatientName=XYZ*", func(r *rand.Rand, n int) string {
		return "PatientName=" + url.QueryEscape(familyNames[r.IntN(len(familyNames))][:3]+"*") + "&limit=101&" + ohifStudyList
	}},
	// S* (a tenth of the patients), one year, CT (a tenth of the studies).
	{"PatientName=S*+year+CT", func(r *rand.Rand, n int) string {
		d := benchDate(r, 366)
		return "PatientName=S*&StudyDate=" + d.Format("20060102") + "-" + d.AddDate(1, 0, 0).Format("20060102") + "&ModalitiesInStudy=CT&limit=101&" + ohifStudyList
	}},
	{"StudyDate=6months", func(r *rand.Rand, n int) string {
		d := benchDate(r, 183)
		return "StudyDate=" + d.Format("20060102") + "-" + d.AddDate(0, 6, 0).Format("20060102") + "&limit=101&" + ohifStudyList
	}},
	{"OHIF-list", func(r *rand.Rand, n int) string { return "limit=101&offset=0&" + ohifStudyList }},
	{"OHIF-list-offset=1010", func(r *rand.Rand, n int) string { return "limit=101&offset=1010&" + ohifStudyList }},
}

// qidoGet runs one QIDO-RS query and returns the number of results in the answer.
func qidoGet(tb testing.TB, client *http.Client, u string) int {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept", "application/dicom+json")
	resp, err := client.Do(req)
	if err != nil {
		tb.Error(err)
		return 0
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Errorf("GET %s: %d %v", u, resp.StatusCode, err)
		return 0
	}
	return bytes.Count(body, []byte(`"00081190"`)) // RetrieveURL: one per result
}

// BenchmarkQueryShapes measures the study queries whose cost should follow the page,
// not the matches, on an index of 100,000 studies / 50,000 patients (loadStudies; one
// one-instance series each, loadInstances; LUMEN_BENCH_STUDIES overrides the count),
// on each index backend (PostgreSQL vacuumed and analysed after the load):
//
//   - each QIDO-RS shape of queryShapes, one request at a time: p50, p95, CPU per
//     request (server and client, in this process) and results per answer;
//   - concurrent8: 8 clients at once, the shapes in turn: requests/s and p99;
//   - cfind-first: C-FIND at STUDY level with PatientName=* (every study matches):
//     the time to the first pending response, after which the client cancels
//     (C-CANCEL), and the time to the final response.
//
// go test -run '^$' -bench QueryShapes -benchtime 300x ./cmd/lumen
func BenchmarkQueryShapes(b *testing.B) {
	n := 100_000
	if v := os.Getenv("LUMEN_BENCH_STUDIES"); v != "" {
		fmt.Sscan(v, &n)
	}
	for _, be := range []string{"sqlite", "postgres"} {
		b.Run(be, func(b *testing.B) {
			s := startLumen(b, func(c *Config) {
				if be == "postgres" {
					c.Index.Backend, c.Index.Postgres.DSN = "postgres", pgtest.Schema(b)
				}
			})
			db := indexSQL(b, s, be)
			t0 := time.Now()
			loadStudies(b, db, be == "postgres", n)
			loadInstances(b, db, be == "postgres", n, 1)
			if be == "postgres" {
				// The state autovacuum leaves a freshly loaded table in within minutes
				// (statistics, and the visibility map that index-only scans read);
				// LUMEN_BENCH_NO_VACUUM=1 measures it before, with statistics only.
				q := `VACUUM ANALYZE patients, studies, series, instances`
				if os.Getenv("LUMEN_BENCH_NO_VACUUM") == "1" {
					q = `ANALYZE`
				}
				if _, err := db.Exec(q); err != nil {
					b.Fatal(err)
				}
			}
			b.Logf("%s: loaded %d studies in %v", be, n, time.Since(t0).Round(time.Second))
			base := "http://" + s.addr.HTTP + "/dicom-web/studies?"
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
			defer client.CloseIdleConnections()
			for _, sh := range queryShapes {
				b.Run(sh.name, func(b *testing.B) {
					r := rand.New(rand.NewPCG(7, 8))
					lat := make([]time.Duration, 0, b.N)
					results := 0
					cpu0 := cpuTime(b, syscall.RUSAGE_SELF)
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						u := base + sh.query(r, n)
						t0 := time.Now()
						results += qidoGet(b, client, u)
						lat = append(lat, time.Since(t0))
					}
					b.StopTimer()
					percentiles(b, lat, "")
					b.ReportMetric(float64((cpuTime(b, syscall.RUSAGE_SELF)-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
					b.ReportMetric(float64(results)/float64(b.N), "results/answer")
				})
			}
			b.Run("concurrent8", func(b *testing.B) {
				const clients = 8
				var mu sync.Mutex
				lat := make([]time.Duration, 0, b.N)
				next := make(chan int)
				go func() {
					for i := 0; i < b.N; i++ {
						next <- i
					}
					close(next)
				}()
				cpu0 := cpuTime(b, syscall.RUSAGE_SELF)
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for c := 0; c < clients; c++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						r := rand.New(rand.NewPCG(9, uint64(c)))
						var mine []time.Duration
						for i := range next {
							u := base + queryShapes[i%len(queryShapes)].query(r, n)
							t0 := time.Now()
							qidoGet(b, client, u)
							mine = append(mine, time.Since(t0))
						}
						mu.Lock()
						lat = append(lat, mine...)
						mu.Unlock()
					}()
				}
				wg.Wait()
				wall := time.Since(start)
				b.StopTimer()
				slices.Sort(lat)
				b.ReportMetric(float64(b.N)/wall.Seconds(), "req/s")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64((cpuTime(b, syscall.RUSAGE_SELF)-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
			})
			b.Run("cfind-first", func(b *testing.B) {
				c, err := dimse.Dial(context.Background(), s.addr.DIMSE, dimse.DialConfig{CalledAETitle: "LUMEN", Contexts: []dimse.ProposedContext{{AbstractSyntax: dimse.StudyRootFind, TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}}}})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Release()
				q := &dcm.Dataset{}
				q.Set(dcm.NewString(dcm.TagSpecificCharacterSet, "CS", "ISO_IR 192"))
				q.Set(dcm.NewString(dcm.TagQueryRetrieveLevel, "CS", "STUDY"))
				for _, t := range []dcm.Tag{dcm.TagStudyInstanceUID, dcm.TagStudyDate, dcm.TagStudyTime, dcm.TagAccessionNumber, dcm.TagModalitiesInStudy, dcm.TagPatientID, dcm.TagNumberOfStudyRelatedInstances} {
					q.Set(dcm.NewElement(t, dcm.DictVR(t), nil))
				}
				q.Set(dcm.NewString(dcm.TagPatientName, "PN", "*"))
				id, _ := q.Encode(dcm.ExplicitVRLittleEndian)
				first := make([]time.Duration, 0, b.N)
				final := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					var t1 time.Duration
					t0 := time.Now()
					st, err := c.Find(context.Background(), dimse.StudyRootFind, id, func([]byte) bool {
						t1 = time.Since(t0)
						return false // cancel after the first match
					})
					final = append(final, time.Since(t0))
					if err != nil || st.Code != dimse.StatusCancel && st.Code != dimse.StatusSuccess || t1 == 0 {
						b.Fatalf("find: %+v %v (first after %v)", st, err, t1)
					}
					first = append(first, t1)
				}
				b.StopTimer()
				percentiles(b, first, "first-")
				percentiles(b, final, "final-")
			})
		})
	}
}
