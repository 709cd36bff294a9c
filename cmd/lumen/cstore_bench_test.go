package main

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/index/postgres/pgtest"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// BenchmarkCStore measures C-STORE over loopback into a running Lumen (in-process
// server, Lumen's SCU as the client) with 512 KB CT instances, 1 and 4 associations.
// allocs/op counts both sides (client and server run in the benchmark process).
func BenchmarkCStore(b *testing.B) {
	objs, err := gen.CTSeries(gen.Options{Seed: 555}, 1, 512, 512)
	if err != nil {
		b.Fatal(err)
	}
	f, _ := dcm.Parse(bytes.NewReader(objs[0].Data), nil)
	tpl := objs[0].Data[f.DatasetOffset:]
	sop := objs[0].SOPInstanceUID
	at := bytes.Index(tpl, []byte(sop))
	for _, be := range []string{"fs+sqlite", "fs+postgres"} {
		for _, assocs := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/associations=%d", be, assocs), func(b *testing.B) {
				s := startLumen(b, func(c *Config) {
					if be == "fs+postgres" {
						c.Index.Backend, c.Index.Postgres.DSN = "postgres", pgtest.Schema(b)
					}
				})
				clients := make([]*dimse.Client, assocs)
				for i := range clients {
					c, err := dimse.Dial(context.Background(), s.addr.DIMSE, dimse.DialConfig{CalledAETitle: "LUMEN", Contexts: []dimse.ProposedContext{{AbstractSyntax: objs[0].SOPClassUID, TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}}}})
					if err != nil {
						b.Fatal(err)
					}
					clients[i] = c
				}
				var next atomic.Int64
				b.SetBytes(int64(len(tpl)))
				b.ReportAllocs()
				b.ResetTimer()
				var wg sync.WaitGroup
				errs := make(chan error, assocs)
				for _, c := range clients {
					wg.Add(1)
					go func() {
						defer wg.Done()
						buf := bytes.Clone(tpl)
						for {
							n := next.Add(1) - 1
							if n >= int64(b.N) {
								return
							}
							uid := fmt.Sprintf("%s%010d", sop[:len(sop)-10], n)
							copy(buf[at:], uid)
							st, err := c.Store(context.Background(), objs[0].SOPClassUID, uid, dimse.ExplicitVRLittleEndian, bytes.NewReader(buf))
							if err == nil && st.Code != dimse.StatusSuccess {
								err = fmt.Errorf("status 0x%04X %s", st.Code, st.ErrorComment)
							}
							if err != nil {
								errs <- err
								return
							}
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				close(errs)
				for err := range errs {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "instances/s")
				for _, c := range clients {
					c.Release()
				}
			})
		}
	}
}
