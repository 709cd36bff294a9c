package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// row is one figure of the table.
type row struct {
	key, figure string
	higher      bool   // higher is better
	limit       string // key of the machine limit it is measured against, if any
	target      string
}

// table collects per-round samples by server and figure and prints medians.
type table struct {
	rows    []row
	samples map[string]map[string][]float64 // server → key → samples
	limits  map[string][]float64
	limitNm map[string]string
	notes   []string
	// cols are the two sample sets compared, and head the table's header for them and
	// for the ratio of the second to the first.
	cols [2]string
	head [3]string
}

func newTable() *table {
	return &table{samples: map[string]map[string][]float64{}, limits: map[string][]float64{}, limitNm: map[string]string{},
		cols: [2]string{"orthanc", "lumen"}, head: [3]string{"Orthanc", "Lumen", "Lumen's lead"}}
}

func (t *table) def(key, figure string, higher bool, limit, target string) {
	t.rows = append(t.rows, row{key, figure, higher, limit, target})
}

func (t *table) add(server, key string, v float64) {
	if t.samples[server] == nil {
		t.samples[server] = map[string][]float64{}
	}
	t.samples[server][key] = append(t.samples[server][key], v)
}

func (t *table) addLimit(key, name string, v float64) {
	t.limits[key] = append(t.limits[key], v)
	t.limitNm[key] = name
}

func (t *table) note(format string, a ...any) { t.notes = append(t.notes, fmt.Sprintf(format, a...)) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// print writes the machine's limits, then one line per figure: Orthanc, Lumen, Lumen's
// advantage (× better, whichever direction is better), Lumen's share of the limit (for
// a cost, such as CPU per instance, the share of Lumen's figure that the machine's own
// floor takes) and the target.
func (t *table) print(w io.Writer) {
	if len(t.limits) > 0 {
		fmt.Fprintln(w, "\n| machine limit | median | samples |")
		fmt.Fprintln(w, "|---|---|---|")
	}
	var lk []string
	for k := range t.limits {
		lk = append(lk, k)
	}
	sort.Strings(lk)
	for _, k := range lk {
		fmt.Fprintf(w, "| %s | %s | %s |\n", t.limitNm[k], num(median(t.limits[k])), samplesText(t.limits[k]))
	}
	fmt.Fprintf(w, "\n| figure | %s | %s | %s | share of limit | target |\n", t.head[0], t.head[1], t.head[2])
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, r := range t.rows {
		o, l := median(t.samples[t.cols[0]][r.key]), median(t.samples[t.cols[1]][r.key])
		if math.IsNaN(o) && math.IsNaN(l) {
			continue
		}
		lead := "–"
		if !math.IsNaN(o) && !math.IsNaN(l) && o > 0 && l > 0 {
			if r.higher {
				lead = fmt.Sprintf("%.2f×", l/o)
			} else {
				lead = fmt.Sprintf("%.2f×", o/l)
			}
		}
		share := "–"
		if r.limit != "" && !math.IsNaN(l) {
			switch lim := median(t.limits[r.limit]); {
			case lim > 0 && r.higher:
				share = fmt.Sprintf("%.0f %% of %s", 100*l/lim, t.limitNm[r.limit])
			case lim > 0 && l > 0:
				// A cost: the part of Lumen's that the machine alone takes.
				share = fmt.Sprintf("floor %s (%.0f %%): %s", num(lim), 100*lim/l, t.limitNm[r.limit])
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", r.figure, num(o), num(l), lead, share, r.target)
	}
	for _, n := range t.notes {
		fmt.Fprintln(w, "- "+n)
	}
}

func samplesText(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = num(x)
	}
	return strings.Join(s, ", ")
}

// percentile of sorted-or-not latencies in ms.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}
