package dimse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/testdata/gen"
)

func ctContexts() []ProposedContext {
	return []ProposedContext{
		{VerificationSOPClass, []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian}},
		{"1.2.840.10008.5.1.4.1.1.2", []string{ExplicitVRLittleEndian}},
	}
}

func TestClientAgainstServer(t *testing.T) {
	rec := &recorder{}
	addr := startServer(t, &Server{StoreHandler: rec, Policy: Policy{CheckCalledAE: true}})
	ctx := context.Background()
	c, err := Dial(ctx, addr, DialConfig{CallingAETitle: "LUMENSCU", CalledAETitle: "LUMEN", Contexts: ctContexts(), MaxPDULength: 16384})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.Echo(ctx); err != nil || st.Code != StatusSuccess {
		t.Fatalf("Echo = %+v, %v", st, err)
	}
	ct, _ := gen.CTSeries(gen.Options{Seed: 8}, 3, 64, 64)
	for _, o := range ct {
		f, _ := dcm.Parse(bytes.NewReader(o.Data), nil)
		st, err := c.Store(ctx, o.SOPClassUID, o.SOPInstanceUID, ExplicitVRLittleEndian, bytes.NewReader(o.Data[f.DatasetOffset:]))
		if err != nil || st.Code != StatusSuccess {
			t.Fatalf("Store = %+v, %v", st, err)
		}
		if got, _ := rec.snapshot(); !bytes.Equal(got[o.SOPInstanceUID], o.Data[f.DatasetOffset:]) {
			t.Fatal("received bytes differ")
		}
	}
	if _, err := c.Store(ctx, "1.2.840.10008.5.1.4.1.1.4", "1.2.3", ExplicitVRLittleEndian, bytes.NewReader(nil)); !errors.Is(err, ErrNoContext) {
		t.Fatalf("Store on an unproposed class = %v", err)
	}
	if err := c.Release(); err != nil {
		t.Fatal(err)
	}
	// Rejections are typed.
	_, err = Dial(ctx, addr, DialConfig{CalledAETitle: "NOTLUMEN", Contexts: ctContexts()})
	var rj *RejectedError
	if !errors.As(err, &rj) || rj.Reason != RJReasonCalledAENotRecognized {
		t.Fatalf("Dial with a wrong called AE = %v", err)
	}
}

// TestClientAgainstStorescp stores with Lumen's SCU to DCMTK's storescp.
func TestClientAgainstStorescp(t *testing.T) {
	storescp := dcmtk(t, "storescp")
	dir := t.TempDir()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	cmd := exec.Command(storescp, "-aet", "STORESCP", "-od", dir, "+xa", port)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	ctx := context.Background()
	var c *Client
	var err error
	for range 50 {
		c, err = Dial(ctx, "127.0.0.1:"+port, DialConfig{CalledAETitle: "STORESCP", Contexts: ctContexts()})
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.Echo(ctx); err != nil || st.Code != StatusSuccess {
		t.Fatalf("Echo = %+v, %v", st, err)
	}
	ct, _ := gen.CTSeries(gen.Options{Seed: 9}, 2, 128, 128)
	for _, o := range ct {
		f, _ := dcm.Parse(bytes.NewReader(o.Data), nil)
		st, err := c.Store(ctx, o.SOPClassUID, o.SOPInstanceUID, ExplicitVRLittleEndian, bytes.NewReader(o.Data[f.DatasetOffset:]))
		if err != nil || st.Code != StatusSuccess {
			t.Fatalf("Store = %+v, %v", st, err)
		}
	}
	if err := c.Release(); err != nil {
		t.Fatal(err)
	}
	for _, o := range ct {
		b, err := os.ReadFile(filepath.Join(dir, "CT."+o.SOPInstanceUID))
		if err != nil {
			t.Fatalf("storescp did not write %s: %v", o.SOPInstanceUID, err)
		}
		got, _ := dcm.Parse(bytes.NewReader(b), nil)
		orig, _ := dcm.Parse(bytes.NewReader(o.Data), nil)
		gj, _, _ := got.Dataset.JSON(nil)
		oj, _, _ := orig.Dataset.JSON(nil)
		if !bytes.Equal(gj, oj) {
			t.Fatalf("storescp received a different data set for %s", o.SOPInstanceUID)
		}
	}
}

func mustSR(t testing.TB) []byte {
	o, err := gen.BasicTextSR(gen.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	return o.Data
}
