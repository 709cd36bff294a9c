package indextest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lumenpacs/lumen/index"
)

// BenchmarkPut measures Put of new instances into one series (existing after the
// first), one Put per instance, by 1 and 4 concurrent writers, each instance with a
// 3 KB metadata object like a CT header's. open returns an empty index that lives as
// long as b.
func BenchmarkPut(b *testing.B, open func(tb testing.TB) index.Index) {
	meta := []byte(`{"00080018":{"vr":"UI","Value":["X"]},"00081030":{"vr":"LO","Value":["` + strings.Repeat("d", 3000) + `"]}}`)
	for _, writers := range []int{1, 4} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			x := open(b)
			var next atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			for range writers {
				wg.Go(func() {
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						in := Inst(s1, "1.3.1", "CT", ip(1), fmt.Sprintf("1.4.1.%d", i), ctClass, ip(int(i)))
						in.Metadata = meta
						if err := x.Put(context.Background(), in); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
		})
	}
}
