package sqlite_test

import (
	"testing"

	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/indextest"
)

// BenchmarkMergePatients measures MergePatients of a patient with 1,000 studies into
// another, at 1,000, 20,000 and 100,000 instances (indextest.BenchmarkMerge): the cost
// must not depend on the number of instances (issue 16: < 50 ms).
func BenchmarkMergePatients(b *testing.B) {
	indextest.BenchmarkMerge(b, func(tb testing.TB) index.Index { return indextest.Open(tb, "sqlite") })
}

// BenchmarkPut measures indexing new instances, one Put each (indextest.BenchmarkPut).
func BenchmarkPut(b *testing.B) {
	indextest.BenchmarkPut(b, func(tb testing.TB) index.Index { return indextest.Open(tb, "sqlite") })
}
