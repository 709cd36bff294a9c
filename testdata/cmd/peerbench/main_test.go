package main

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRetrieveCountsParts: the parts of a multipart answer are counted whatever the
// reads cut, including a delimiter split across two reads.
func TestRetrieveCountsParts(t *testing.T) {
	for _, size := range []int{0, 1, 1<<20 - 10, 1 << 20, 3<<20 + 5} {
		const parts = 7
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", `multipart/related; type="application/dicom"; boundary=xyzzy`)
			for i := 0; i < parts; i++ {
				fmt.Fprintf(w, "--xyzzy\r\nContent-Type: application/dicom\r\n\r\n%s\r\n", strings.Repeat("a", size))
			}
			fmt.Fprint(w, "--xyzzy--\r\n")
		}))
		n, got, err := retrieve(srv.URL)
		srv.Close()
		if err != nil || got != parts || n < int64(parts*size) {
			t.Errorf("part size %d: %d bytes, %d parts, %v; want %d parts", size, n, got, err, parts)
		}
	}
}

func TestMedianPercentile(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing is not NaN")
	}
	v := make([]float64, 100)
	for i := range v {
		v[i] = float64(100 - i)
	}
	if p := percentile(v, 0.95); p != 95 {
		t.Errorf("p95 = %v", p)
	}
	if p := percentile(v, 0.5); p != 50 {
		t.Errorf("p50 = %v", p)
	}
}
