package hl7

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/testdata/tools"
)

// pythonHL7 parses each message named on stdin ([{"path", "codec"}]) with python-hl7
// (Debian's python3-hl7, module hl7) and prints, for each, its segments: the ID, every
// field as repetitions of components of subcomponents (raw), and the same unescaped by
// python-hl7's Message.unescape. The bytes are decoded by Python's own codecs.
const pythonHL7 = `
import json, logging, sys
logging.disable(logging.CRITICAL)
import hl7

def norm(x, depth):
    if isinstance(x, str):
        for _ in range(depth):
            x = [x]
        return x
    return [norm(c, depth - 1) for c in x]

out = []
for item in json.load(sys.stdin):
    text = open(item["path"], "rb").read().decode(item["codec"])
    text = text.replace("\r\n", "\r") if "\r" in text else text.replace("\n", "\r")
    msg = hl7.parse(text)
    segs = []
    for seg in msg:
        fields = [norm(f, 3) for f in list(seg)[1:]]
        unesc = [[[[msg.unescape(s) for s in c] for c in r] for r in f] for f in fields]
        segs.append({"id": str(seg[0]), "fields": fields, "unescaped": unesc})
    out.append(segs)
json.dump(out, sys.stdout, ensure_ascii=False)
`

// pythonCodec names Python's codec for each character set of the samples.
var pythonCodec = map[string]string{
	"ASCII":         "utf-8",
	"UNICODE UTF-8": "utf-8",
	"8859/1":        "latin-1",
	"ISO IR87":      "iso2022_jp",
	"BIG-5":         "big5",
	"GB 18030-2000": "gb18030",
	"KS X 1001":     "euc_kr",
}

type pySegment struct {
	ID        string         `json:"id"`
	Fields    [][][][]string `json:"fields"`
	Unescaped [][][][]string `json:"unescaped"`
}

// TestPythonHL7 parses the well-formed samples with python-hl7, a real peer, and
// compares every segment, field, repetition, component and subcomponent, and the
// unescaped values where both implement the escapes (\F\ \S\ \T\ \R\ \E\).
func TestPythonHL7(t *testing.T) {
	py := tools.PythonWith(t, "hl7", "Debian's python3-hl7")
	type item struct {
		Path  string `json:"path"`
		Codec string `json:"codec"`
	}
	var items []item
	var msgs []*Message
	var names []string
	for _, s := range samples(t) {
		if s.Error != nil || (s.Python != nil && !*s.Python) {
			continue
		}
		codec, ok := pythonCodec[s.Charset]
		if !ok {
			t.Fatalf("%s: no Python codec for %s", s.Name, s.Charset)
		}
		m, err := Parse(s.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		abs, err := filepath.Abs(filepath.Join("testdata", s.Name+".hl7"))
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, item{abs, codec})
		msgs = append(msgs, m)
		names = append(names, s.Name)
	}
	in, err := json.Marshal(items)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", pythonHL7)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Env = append(os.Environ(), "PYTHONIOENCODING=utf-8")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python-hl7: %v\n%s", err, stderr.Bytes())
	}
	var got [][]pySegment
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python-hl7's answer: %v\n%.500s", err, out)
	}
	if len(got) != len(msgs) {
		t.Fatalf("python-hl7 answered %d messages for %d", len(got), len(msgs))
	}
	compared := 0
	for k, m := range msgs {
		segs := m.Segments()
		if len(got[k]) != len(segs) {
			t.Errorf("%s: python-hl7 reads %d segments, we read %d", names[k], len(got[k]), len(segs))
			continue
		}
		seen := map[string]int{}
		for i, seg := range segs {
			p := got[k][i]
			seen[seg.ID()]++
			if p.ID != seg.ID() {
				t.Errorf("%s: segment %d is %s for python-hl7, %s for us", names[k], i+1, p.ID, seg.ID())
				continue
			}
			ours := structure(seg)
			if !reflect.DeepEqual(ours, p.Fields) {
				t.Errorf("%s %s:\n python-hl7 %q\n ours       %q", names[k], seg.ID(), p.Fields, ours)
				continue
			}
			for f, reps := range ours {
				if seg.ID() == "MSH" && f < 2 {
					continue // MSH-1 and MSH-2 are not values
				}
				for r, comps := range reps {
					for c, subs := range comps {
						for s, raw := range subs {
							if !basicEscapes(raw, m.delims) || raw == Null {
								continue
							}
							loc := Location{Segment: seg.ID(), Seq: seen[seg.ID()], Field: f + 1, Rep: r + 1, Component: c + 1, Sub: s + 1}
							if want, have := p.Unescaped[f][r][c][s], m.At(loc).String(); want != have {
								t.Errorf("%s %s: python-hl7 unescapes %q, we read %q", names[k], loc, want, have)
							}
							compared++
						}
					}
				}
			}
		}
	}
	t.Logf("%d messages, %d values compared with python-hl7", len(msgs), compared)
}

// structure returns a segment's fields as python-hl7 nests them.
func structure(seg *Segment) [][][][]string {
	d := seg.m.delims
	var out [][][][]string
	for n := 1; n <= seg.NumFields(); n++ {
		v := seg.Field(n)
		if v.literal {
			out = append(out, [][][]string{{{v.raw}}})
			continue
		}
		var reps [][][]string
		for _, r := range strings.Split(v.raw, string(d.Repetition)) {
			var comps [][]string
			for _, c := range strings.Split(r, string(d.Component)) {
				comps = append(comps, strings.Split(c, string(d.Subcomponent)))
			}
			reps = append(reps, comps)
		}
		out = append(out, reps)
	}
	return out
}

// basicEscapes reports whether the only escape sequences of raw are the delimiter ones
// (\F\ \S\ \T\ \R\ \E\), all closed: there python-hl7 and this package must agree.
func basicEscapes(raw string, d Delimiters) bool {
	parts := strings.Split(raw, string(d.Escape))
	if len(parts)%2 == 0 {
		return false
	}
	for i := 1; i < len(parts); i += 2 {
		switch parts[i] {
		case "F", "S", "T", "R", "E":
		default:
			return false
		}
	}
	return true
}
