package indextest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/index"
)

// BenchmarkPut measures Put of new instances into one series (existing after the
// first), one Put per instance, by 1 and 4 concurrent writers, each instance with a
// 3 KB metadata object like a CT header's; and (studies/writers=N) of one-instance
// studies, each of a patient of its own. cpu-ms/put is the process's CPU per Put
// (getrusage), the driver's work included. open returns an empty index that lives as
// long as b.
func BenchmarkPut(b *testing.B, open func(tb testing.TB) index.Index) {
	meta := []byte(`{"00080018":{"vr":"UI","Value":["X"]},"00081030":{"vr":"LO","Value":["` + strings.Repeat("d", 3000) + `"]}}`)
	for _, shape := range []string{"", "studies/"} {
		for _, writers := range []int{1, 4} {
			b.Run(fmt.Sprintf("%swriters=%d", shape, writers), func(b *testing.B) {
				benchPut(b, open(b), meta, writers, shape != "")
			})
		}
	}
}

// benchPut is one sub-benchmark of BenchmarkPut.
func benchPut(b *testing.B, x index.Index, meta []byte, writers int, studies bool) {
	var next atomic.Int64
	// As ingest's: a request's context, which can end.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ResetTimer()
	cpu0 := processCPU(b)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				in := Inst(s1, "1.3.1", "CT", ip(1), fmt.Sprintf("1.4.1.%d", i), ctClass, ip(int(i)))
				if studies {
					st := s1
					st.p.id = fmt.Sprintf("PB%d", i)
					st.uid, st.acc = fmt.Sprintf("1.2.9.%d", i), fmt.Sprintf("AB%d", i)
					in = Inst(st, fmt.Sprintf("1.3.9.%d", i), "CT", ip(1), fmt.Sprintf("1.4.1.%d", i), ctClass, ip(1))
				}
				in.Metadata = meta
				if err := x.Put(ctx, in); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/put")
}

// processCPU is the user + system CPU time of the process so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
