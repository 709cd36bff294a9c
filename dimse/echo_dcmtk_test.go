package dimse

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/testdata/tools"
)

func dcmtk(t testing.TB, tool string) string {
	t.Helper()
	return tools.DCMTK(t, tool)
}

// recorder is a StoreHandler that keeps what it received.
type recorder struct {
	mu       sync.Mutex
	received map[string][]byte // SOP Instance UID -> data set bytes
	reqs     map[string]*StoreRequest
	status   Status
	delay    time.Duration
}

func (r *recorder) HandleStore(ctx context.Context, req *StoreRequest, data io.Reader) Status {
	b, err := io.ReadAll(data)
	if err != nil {
		return Status{StatusOutOfResources, "read failed"}
	}
	if r.delay > 0 {
		time.Sleep(r.delay)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.received == nil {
		r.received, r.reqs = map[string][]byte{}, map[string]*StoreRequest{}
	}
	r.received[req.SOPInstanceUID] = b
	r.reqs[req.SOPInstanceUID] = req
	return r.status
}

// snapshot returns copies of what was received, under the lock.
func (r *recorder) snapshot() (map[string][]byte, map[string]*StoreRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	data, reqs := map[string][]byte{}, map[string]*StoreRequest{}
	for k, v := range r.received {
		data[k], reqs[k] = v, r.reqs[k]
	}
	return data, reqs
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.received)
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// startServer serves s on a loopback port until the test ends.
func startServer(t testing.TB, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if s.Logger == nil {
		s.Logger = testLogger(t)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if err := <-errc; err != ErrServerClosed {
			t.Errorf("Serve returned %v", err)
		}
	})
	return ln.Addr().String()
}

func hostPort(addr string) (string, string) {
	h, p, _ := net.SplitHostPort(addr)
	return h, p
}

func runTool(t *testing.T, tool string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(dcmtk(t, tool), args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestEchoSCU(t *testing.T) {
	s := &Server{AETitle: "LUMEN", Policy: Policy{CheckCalledAE: true}}
	h, p := hostPort(startServer(t, s))
	if out, err := runTool(t, "echoscu", "-aet", "MODALITY", "-aec", "LUMEN", h, p); err != nil {
		t.Fatalf("echoscu: %v\n%s", err, out)
	}
	out, err := runTool(t, "echoscu", "-aet", "MODALITY", "-aec", "WRONG", h, p)
	if err == nil || !strings.Contains(out, "Called AE Title Not Recognized") {
		t.Fatalf("echoscu to a wrong called AE: %v\n%s", err, out)
	}
	// Unknown calling AE with the production policy.
	s2 := &Server{AETitle: "LUMEN", Policy: Policy{CheckCalledAE: true, RejectUnknownCallingAE: true, Peers: []Peer{{AETitle: "CT1", Services: []string{ServiceEcho}}}}}
	h, p = hostPort(startServer(t, s2))
	out, err = runTool(t, "echoscu", "-aet", "STRANGER", "-aec", "LUMEN", h, p)
	if err == nil || !strings.Contains(out, "Calling AE Title Not Recognized") {
		t.Fatalf("echoscu from an unknown AE: %v\n%s", err, out)
	}
	if out, err := runTool(t, "echoscu", "-aet", "CT1", "-aec", "LUMEN", h, p); err != nil {
		t.Fatalf("echoscu from a known AE: %v\n%s", err, out)
	}
}

var execCommand = exec.Command
