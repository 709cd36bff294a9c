package archivetest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/archive"
)

// BenchPuts measures the durable-put rate of s: b.N puts of size bytes under fresh keys
// by writers concurrent writers, spread over 256 directories by number (each put fsyncs
// its directory alone) or, with second, in the directory of the current second (of 256)
// as ingest's keys are, so that concurrent puts share their directory fsyncs. It reports
// puts/s.
func BenchPuts(b *testing.B, s archive.Store, size, writers int, second bool) {
	data := bytes.Repeat([]byte("lumen!"), size/6)
	var next atomic.Int64
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				key := fmt.Sprintf("dicom/bench/%02x/%d.dcm", i%256, i)
				if second {
					key = fmt.Sprintf("dicom/bench/%02x/%d.dcm", byte(time.Now().Unix()), i)
				}
				if _, err := s.Put(context.Background(), key, bytes.NewReader(data), int64(len(data))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
}
