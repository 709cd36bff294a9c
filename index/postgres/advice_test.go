package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/index/postgres/pgtest"
)

func TestAdvice(t *testing.T) {
	for _, tc := range []struct {
		autovacuum, trackCounts string
		want                    bool
	}{
		{"on", "on", false},
		{"off", "on", true},
		{"on", "off", true},
		{"off", "off", true},
	} {
		got := advice(tc.autovacuum, tc.trackCounts)
		if (len(got) > 0) != tc.want || tc.want && !strings.Contains(got[0], "VACUUM ANALYZE") {
			t.Errorf("advice(%q, %q) = %q", tc.autovacuum, tc.trackCounts, got)
		}
	}
}

// TestAdviceReadsTheServer checks Advice against the settings of the test server.
func TestAdviceReadsTheServer(t *testing.T) {
	ctx := context.Background()
	x, err := Open(ctx, pgtest.Schema(t))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	var autovacuum, trackCounts string
	if err := x.SQL().QueryRowContext(ctx, `SHOW autovacuum`).Scan(&autovacuum); err != nil {
		t.Fatal(err)
	}
	if err := x.SQL().QueryRowContext(ctx, `SHOW track_counts`).Scan(&trackCounts); err != nil {
		t.Fatal(err)
	}
	got, err := Advice(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	if want := autovacuum != "on" || trackCounts != "on"; (len(got) > 0) != want {
		t.Errorf("autovacuum %s, track_counts %s: Advice = %q", autovacuum, trackCounts, got)
	}
}
