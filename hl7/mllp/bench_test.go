package mllp

import (
	"bytes"
	"context"
	"testing"
)

// BenchmarkRoundTrip sends 1 KiB messages over one connection, each answered with
// itself once the handler returns (original mode: one message in flight): messages/s
// of MLLP alone, loopback TCP.
func BenchmarkRoundTrip(b *testing.B) {
	echo := HandlerFunc(func(_ context.Context, msg []byte, _ ConnInfo) []byte { return msg })
	addr := start(b, &Server{Handler: echo}, nil)
	c := dial(b, addr, nil)
	msg := append(adt("BENCH"), bytes.Repeat([]byte("NTE|1||x\r"), 100)...)[:1<<10]
	ctx := context.Background()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		ack, err := c.Send(ctx, msg)
		if err != nil {
			b.Fatal(err)
		}
		if len(ack) != len(msg) {
			b.Fatalf("echo of %d bytes", len(ack))
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
