package audit_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/indextest"
	"github.com/lumenpacs/lumen/service/audit"
)

// BenchmarkTrailSteady records one C-STORE-like record every 2 ms (500 a second, as
// small-instance ingest makes them) into a trail on SQLite: cpu-ms/record is the
// process's CPU per record, the batched writes included (after the last one, Flush).
func BenchmarkTrailSteady(b *testing.B) {
	x := audit.New(indextest.Open(b, "sqlite"), nil, quiet)
	defer x.Close()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	b.ResetTimer()
	cpu0 := processCPU(b)
	for i := 0; i < b.N; i++ {
		<-tick.C
		x.Record(context.Background(), index.AuditRecord{Actor: "ae:BENCH", Via: "dimse", Action: "store", Outcome: "ok",
			StudyInstanceUID: "1.2.826.0.1.3680043.10.1234.99.1", Remote: "127.0.0.1:40000", Detail: "C-STORE"})
	}
	x.Flush()
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/record")
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
