package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/index/postgres"
	"github.com/lumenpacs/lumen/index/postgres/pgtest"
	"github.com/lumenpacs/lumen/index/sqlite"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// loadInstances gives each of the n studies loaded by loadStudies one series of per
// instances (ids follow the study ids), with multi-row inserts.
func loadInstances(b *testing.B, db *sql.DB, numbered bool, n, per int) {
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UnixMilli()
	batch := func(table, cols string, ncol int, rows [][]any) {
		var sb strings.Builder
		var args []any
		sb.WriteString("INSERT INTO " + table + " (" + cols + ") VALUES ")
		k := 1
		for i, r := range rows {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteByte('(')
			for j := range r {
				if j > 0 {
					sb.WriteByte(',')
				}
				if numbered {
					fmt.Fprintf(&sb, "$%d", k)
				} else {
					sb.WriteByte('?')
				}
				k++
			}
			sb.WriteByte(')')
			args = append(args, r...)
		}
		if _, err := tx.Exec(sb.String(), args...); err != nil {
			b.Fatal(err)
		}
	}
	var rows [][]any
	for s := 1; s <= n; s++ {
		rows = append(rows, []any{s, s, fmt.Sprintf("1.2.826.0.1.3680043.10.1234.8.%d", s), "CT", 1, "Series", per, now, now})
		if len(rows) == 500 || s == n {
			batch("series", "id, study_fk, series_uid, modality, series_number, description, num_instances, created_at, updated_at", 9, rows)
			rows = rows[:0]
		}
	}
	id := 0
	for s := 1; s <= n; s++ {
		for i := 1; i <= per; i++ {
			id++
			uid := fmt.Sprintf("1.2.826.0.1.3680043.10.1234.7.%d.%d", s, i)
			rows = append(rows, []any{id, s, uid, "1.2.840.10008.5.1.4.1.1.2", i, "1.2.840.10008.1.2.1", 1, 512, 512, "k/" + uid, 524288, "0", `{"00080018":{"vr":"UI","Value":["` + uid + `"]}}`, now})
			if len(rows) == 1000 {
				batch("instances", "id, series_fk, sop_uid, sop_class_uid, instance_number, transfer_syntax, num_frames, rows_, cols, blob_key, size, sha256, metadata, received_at", 14, rows)
				rows = rows[:0]
			}
		}
	}
	if len(rows) > 0 {
		batch("instances", "id, series_fk, sop_uid, sop_class_uid, instance_number, transfer_syntax, num_frames, rows_, cols, blob_key, size, sha256, metadata, received_at", 14, rows)
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}

// openLoaded starts Lumen on a fresh index of the backend holding n studies with per
// instances each (direct SQL), returning the server and the index's SQL handle closer.
func openLoaded(b *testing.B, be string, n, per int) *lumenServer {
	s := startLumen(b, func(c *Config) {
		if be == "postgres" {
			c.Index.Backend, c.Index.Postgres.DSN = "postgres", pgtest.Schema(b)
		}
		c.DIMSE.Addr = ""
	})
	db := indexSQL(b, s, be)
	t0 := time.Now()
	if n > 0 {
		loadStudies(b, db, be == "postgres", n)
		loadInstances(b, db, be == "postgres", n, per)
	}
	if be == "postgres" {
		db.Exec(`ANALYZE`)
	}
	b.Logf("%s: loaded %d studies, %d instances in %v", be, n, n*per, time.Since(t0).Round(time.Second))
	return s
}

// indexSQL opens a second handle on the index of a running server (closed with b).
func indexSQL(b *testing.B, s *lumenServer, be string) *sql.DB {
	if be == "postgres" {
		x, err := postgres.Open(context.Background(), s.c.Index.Postgres.DSN)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { x.Close() })
		return x.SQL()
	}
	x, err := sqlite.Open(context.Background(), s.c.Index.SQLite.Path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { x.Close() })
	return x.SQL()
}

// percentiles reports the p50 and p95 of latencies as metrics named prefix+"p50-ms" and
// prefix+"p95-ms".
func percentiles(b *testing.B, lat []time.Duration, prefix string) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, prefix+"p50-ms")
	b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, prefix+"p95-ms")
}

func httpGet(b *testing.B, u string, accept string) (int, int) {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	return resp.StatusCode, int(n)
}

// BenchmarkQIDOStudyList measures the OHIF study-list query (limit=101, includefield,
// PatientName wildcard and StudyDate range; every fifth query without filters, the
// list OHIF opens with) on an index of 100,000 studies / 1,000,000 instances
// (LUMEN_BENCH_STUDIES overrides the study count). Reports p50/p95 latency.
func BenchmarkQIDOStudyList(b *testing.B) {
	n := 100_000
	if v := os.Getenv("LUMEN_BENCH_STUDIES"); v != "" {
		fmt.Sscan(v, &n)
	}
	for _, be := range []string{"sqlite", "postgres"} {
		b.Run(be, func(b *testing.B) {
			s := openLoaded(b, be, n, 10)
			base := "http://" + s.addr.HTTP + "/dicom-web/studies?limit=101&offset=0&fuzzymatching=false&includefield=00081030%2C00080060"
			r := rand.New(rand.NewPCG(5, 6))
			lat := make([]time.Duration, 0, b.N)
			bytesOut := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				u := base
				if i%5 != 0 {
					d := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, r.IntN(3600))
					u += "&PatientName=" + url.QueryEscape(familyNames[r.IntN(len(familyNames))][:3]+"*") + "&StudyDate=" + d.Format("20060102") + "-" + d.AddDate(1, 0, 0).Format("20060102")
				}
				t0 := time.Now()
				_, nb := httpGet(b, u, "application/dicom+json")
				lat = append(lat, time.Since(t0))
				bytesOut += nb
			}
			b.StopTimer()
			percentiles(b, lat, "")
			b.ReportMetric(float64(bytesOut)/float64(b.N)/1000, "kB/answer")
		})
	}
}

// BenchmarkSeriesMetadata measures WADO-RS /series/{uid}/metadata for a series of
// 1,000 CT instances stored through STOW-RS, as stored and with its patient record
// corrected (an HL7 A08: every instance's metadata then carries the record's values,
// index.Instance.CorrectMetadata), and the QIDO-RS instance list of that series with
// includefield=all (read from the same metadata). Reports p50/p95 latency.
func BenchmarkSeriesMetadata(b *testing.B) {
	for _, run := range []struct{ be, patient string }{{"sqlite", "stored"}, {"sqlite", "corrected"}, {"postgres", "stored"}, {"postgres", "corrected"}} {
		be := run.be
		b.Run(be+"/"+run.patient, func(b *testing.B) {
			s := openLoaded(b, be, 0, 0)
			objs, err := gen.CTSeries(gen.Options{Seed: 77}, 1000, 64, 64)
			if err != nil {
				b.Fatal(err)
			}
			base := "http://" + s.addr.HTTP + "/dicom-web"
			for i := 0; i < len(objs); i += 100 {
				var buf bytes.Buffer
				mw := multipart.NewWriter(&buf)
				for _, o := range objs[i:min(i+100, len(objs))] {
					w, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
					w.Write(o.Data)
				}
				mw.Close()
				resp, err := http.Post(base+"/studies", `multipart/related; type="application/dicom"; boundary=`+mw.Boundary(), &buf)
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("STOW: %v %v", resp, err)
				}
				resp.Body.Close()
			}
			if run.patient == "corrected" {
				db := indexSQL(b, s, be)
				q := `UPDATE patients SET name = 'Corrected^Name^Q', updated_at = 1`
				if _, err := db.Exec(q); err != nil {
					b.Fatal(err)
				}
			}
			series := base + "/studies/" + objs[0].StudyUID + "/series/" + objs[0].SeriesUID
			lat := make([]time.Duration, 0, b.N)
			qlat := make([]time.Duration, 0, b.N)
			size := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				_, size = httpGet(b, series+"/metadata", "application/dicom+json")
				t1 := time.Now()
				httpGet(b, series+"/instances?includefield=all", "application/dicom+json")
				lat, qlat = append(lat, t1.Sub(t0)), append(qlat, time.Since(t1))
			}
			b.StopTimer()
			percentiles(b, lat, "")
			percentiles(b, qlat, "qido-")
			b.ReportMetric(float64(size)/1e6, "MB/answer")
		})
	}
}
