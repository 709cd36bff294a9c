package hl7

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkParseA08 parses the A08 sample (UTF-8, escapes, eight segments) and reads a
// few demographics, as the ADT handler will. The target is 1,000 ADT
// messages/s end to end; the parser is a small part of that.
func BenchmarkParseA08(b *testing.B) {
	msg, err := os.ReadFile(filepath.Join("testdata", "adt_a08_v251.hl7"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := Parse(msg)
		if err != nil {
			b.Fatal(err)
		}
		if m.Get("PID-3.1").String() == "" || m.Get("PID-5.1").String() == "" || m.Get("PID-7").String() == "" || m.Event() != "A08" {
			b.Fatal("values missing")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkAckA08 builds and encodes the ACK of the A08 sample.
func BenchmarkAckA08(b *testing.B) {
	msg, err := os.ReadFile(filepath.Join("testdata", "adt_a08_v251.hl7"))
	if err != nil {
		b.Fatal(err)
	}
	m, err := Parse(msg)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		_ = Ack(m, AA, nil, "ACK1", now).Encode()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
