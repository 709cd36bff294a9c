package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/index/postgres/pgtest"
)

var familyNames = []string{"SMITH", "JOHNSON", "WILLIAMS", "BROWN", "JONES", "GARCIA", "MILLER", "DAVIS", "MÜLLER", "SCHMIDT", "SCHNEIDER", "FISCHER", "WEBER", "MEYER", "WAGNER", "BECKER", "SCHULZ", "HOFFMANN", "MARTIN", "BERNARD", "DUBOIS", "THOMAS", "ROBERT", "RICHARD", "PETIT", "DURAND", "LEROY", "MOREAU", "ROSSI", "RUSSO", "FERRARI", "ESPOSITO", "BIANCHI", "ROMANO", "COLOMBO", "RICCI", "NOVAK", "HORVAT", "KOWALSKI", "NOWAK"}
var givenNames = []string{"ANNA", "JOHN", "MARIA", "PETER", "LAURA", "PAUL", "SOPHIE", "DAVID", "EMMA", "LUCAS", "JÜRGEN", "CLARA", "MARC", "JULIA", "TOM"}
var modalities = []string{"CT", "MR", "CR", "US", "XA", "DX", "MG", "NM", "PT", "ECG"}

// loadStudies bulk-loads n studies (n/2 patients) straight into the index tables.
func loadStudies(b *testing.B, db *sql.DB, numbered bool, n int) {
	ph := func(k int) string {
		var p []string
		for i := 1; i <= k; i++ {
			if numbered {
				p = append(p, fmt.Sprintf("$%d", i))
			} else {
				p = append(p, "?")
			}
		}
		return strings.Join(p, ", ")
	}
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	pst, err := tx.Prepare(`INSERT INTO patients (id, patient_id, issuer, name, name_ci, name_fuzzy, birth_date, sex, num_studies, created_at) VALUES (` + ph(10) + `)`)
	if err != nil {
		b.Fatal(err)
	}
	sst, err := tx.Prepare(`INSERT INTO studies (id, patient_fk, study_uid, study_date, study_time, study_time_norm, accession, study_id, description, referring, referring_ci, referring_fuzzy, modalities, sop_classes, num_series, num_instances, created_at, updated_at) VALUES (` + ph(18) + `)`)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Now().UnixMilli()
	for p := 1; p <= n/2; p++ {
		name := familyNames[r.IntN(len(familyNames))] + "^" + givenNames[r.IntN(len(givenNames))]
		if _, err := pst.Exec(p, fmt.Sprintf("P%06d", p), "HOSP", name, strings.ToUpper(name), " "+strings.ReplaceAll(name, "^", " ")+" ", fmt.Sprintf("19%02d%02d%02d", 30+r.IntN(70), 1+r.IntN(12), 1+r.IntN(28)), []string{"F", "M"}[r.IntN(2)], 2, now); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)
	for s := 1; s <= n; s++ {
		d := start.AddDate(0, 0, r.IntN(4000))
		tm := fmt.Sprintf("%02d%02d%02d", 7+r.IntN(12), r.IntN(60), r.IntN(60))
		mod := modalities[r.IntN(len(modalities))]
		if _, err := sst.Exec(s, 1+(s-1)%(n/2), fmt.Sprintf("1.2.826.0.1.3680043.10.1234.9.%d", s), d.Format("20060102"), tm, tm+".000000", fmt.Sprintf("A%07d", s), fmt.Sprint(s), "Study "+mod, "", "", "", ","+mod+",", ",1.2.840.10008.5.1.4.1.1.2,", 1, 10, now, now); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkFindStudies measures C-FIND at STUDY level (Study Root, Lumen's SCU over
// loopback) on an index of 100,000 studies: a mix of patient ID, study date, patient
// name prefix, accession number and date range + modality queries. It reports p50 and
// p95 latency per query.
func BenchmarkFindStudies(b *testing.B) {
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
			loadStudies(b, db, be == "postgres", n)
			if be == "postgres" {
				db.Exec(`ANALYZE`)
			}
			c, err := dimse.Dial(context.Background(), s.addr.DIMSE, dimse.DialConfig{CalledAETitle: "LUMEN", Contexts: []dimse.ProposedContext{{AbstractSyntax: dimse.StudyRootFind, TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}}}})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Release()
			r := rand.New(rand.NewPCG(3, 4))
			query := func(i int) []byte {
				q := &dcm.Dataset{}
				q.Set(dcm.NewString(dcm.TagSpecificCharacterSet, "CS", "ISO_IR 192"))
				q.Set(dcm.NewString(dcm.TagQueryRetrieveLevel, "CS", "STUDY"))
				for _, t := range []dcm.Tag{dcm.TagStudyInstanceUID, dcm.TagStudyDate, dcm.TagStudyTime, dcm.TagAccessionNumber, dcm.TagModalitiesInStudy, dcm.TagPatientName, dcm.TagPatientID, dcm.TagNumberOfStudyRelatedInstances} {
					q.Set(dcm.NewElement(t, dcm.DictVR(t), nil))
				}
				d := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, r.IntN(4000))
				switch i % 5 {
				case 0:
					q.Set(dcm.NewString(dcm.TagPatientID, "LO", fmt.Sprintf("P%06d", 1+r.IntN(n/2))))
				case 1:
					q.Set(dcm.NewString(dcm.TagStudyDate, "DA", d.Format("20060102")))
				case 2:
					q.Set(dcm.NewString(dcm.TagPatientName, "PN", familyNames[r.IntN(len(familyNames))]+"^"+givenNames[r.IntN(len(givenNames))][:2]+"*"))
				case 3:
					q.Set(dcm.NewString(dcm.TagAccessionNumber, "SH", fmt.Sprintf("A%07d", 1+r.IntN(n))))
				case 4:
					q.Set(dcm.NewString(dcm.TagStudyDate, "DA", d.Format("20060102")+"-"+d.AddDate(0, 0, 7).Format("20060102")))
					q.Set(dcm.NewString(dcm.TagModalitiesInStudy, "CS", "CT"))
				}
				bq, _ := q.Encode(dcm.ExplicitVRLittleEndian)
				return bq
			}
			lat := make([]time.Duration, 0, b.N)
			matches := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				q := query(i)
				t0 := time.Now()
				st, err := c.Find(context.Background(), dimse.StudyRootFind, q, func([]byte) bool { matches++; return true })
				lat = append(lat, time.Since(t0))
				if err != nil || st.Code != dimse.StatusSuccess {
					b.Fatalf("find: %+v %v", st, err)
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
			b.ReportMetric(float64(matches)/float64(b.N), "matches/query")
		})
	}
}
