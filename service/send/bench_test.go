package send_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/archive/fs"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/service/send"
	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// BenchmarkSendStorescp sends a 150-instance 512×512 CT study (75 MiB, stored on the
// filesystem store, in the page cache) over one association to DCMTK's storescp
// --ignore (which announces a 16 KiB maximum PDU and stores nothing), as a C-MOVE's
// sub-operations go: MiB/s, and the CPU of this process (the sender) per MiB, the
// steadier figure on a busy machine.
func BenchmarkSendStorescp(b *testing.B) {
	storescp := tools.DCMTK(b, "storescp")
	st, err := fs.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	objs, err := gen.CTSeries(gen.Options{Seed: 41}, 150, 512, 512)
	if err != nil {
		b.Fatal(err)
	}
	var list []index.Instance
	var total int64
	for _, o := range objs {
		f, err := dcm.Parse(bytes.NewReader(o.Data), nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Put(ctx, o.SOPInstanceUID, bytes.NewReader(o.Data), int64(len(o.Data))); err != nil {
			b.Fatal(err)
		}
		in := index.Instance{BlobKey: o.SOPInstanceUID, TransferSyntaxUID: f.TransferSyntax, Size: int64(len(o.Data))}
		in.SOPClassUID, in.SOPInstanceUID = o.SOPClassUID, o.SOPInstanceUID
		list = append(list, in)
		total += int64(len(o.Data))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	scp := exec.Command(storescp, "--ignore", "-aet", "SINK", fmt.Sprint(port))
	scp.Env = append(os.Environ(), "TCP_NODELAY=1") // else DCMTK waits for delayed ACKs
	if err := scp.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { scp.Process.Kill(); scp.Wait() })
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			break
		}
		if i == 100 {
			b.Fatal("storescp does not listen")
		}
		time.Sleep(50 * time.Millisecond)
	}
	s := &send.Sender{Store: st}
	dst := send.Destination{AETitle: "SINK", Host: "127.0.0.1", Port: port}
	sendAll := func() {
		failed := 0
		err := s.Send(ctx, dst, list, send.Options{}, func(r send.Result) error {
			if r.Failed() {
				failed++
			}
			return nil
		})
		if err != nil || failed > 0 {
			b.Fatalf("%v, %d failed", err, failed)
		}
	}
	sendAll() // warm-up: the page cache, the pools
	b.ResetTimer()
	cpu0, t0 := tools.CPUTime(syscall.RUSAGE_SELF), time.Now()
	for range b.N {
		sendAll()
	}
	el, cpu := time.Since(t0), tools.CPUTime(syscall.RUSAGE_SELF)-cpu0
	mib := float64(total) * float64(b.N) / (1 << 20)
	b.ReportMetric(mib/el.Seconds(), "MiB/s")
	b.ReportMetric(float64(cpu.Microseconds())/1000/mib, "cpu-ms/MiB")
}
