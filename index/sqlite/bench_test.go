package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/indextest"
	"github.com/lumenpacs/lumen/index/sqlite"
)

// BenchmarkMergePatients measures MergePatients of a patient with 1,000 studies into
// another, at 1 and 20 instances per study: the cost must not depend on the number of
// instances (issue 16: < 50 ms). Each iteration merges the previous survivor into a new
// record, so every merge moves the 1,000 studies (and one more per earlier merge).
func BenchmarkMergePatients(b *testing.B) {
	for _, per := range []int{1, 20} {
		b.Run(fmt.Sprintf("studies=1000/instances=%d", 1000*per), func(b *testing.B) {
			c := context.Background()
			x, err := sqlite.Open(c, filepath.Join(b.TempDir(), "index.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer x.Close()
			key := func(i int) index.PatientKey { return index.PatientKey{ID: fmt.Sprintf("P%d", i), Issuer: "HOSP"} }
			indextest.MergeBenchFixture(b, x, key(0), key(1), 1000, per)
			b.ResetTimer()
			for i := 1; i <= b.N; i++ {
				if i > 1 {
					b.StopTimer()
					if _, err := x.UpdatePatient(c, key(i), index.Demographics{}, index.Change{}); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				if err := x.MergePatients(c, key(i), key(i-1), index.Change{Source: "bench"}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/merge")
		})
	}
}
