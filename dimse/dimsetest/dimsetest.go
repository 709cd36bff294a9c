package dimsetest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/dimse"
)

// Serve runs srv on a loopback port until the test ends (then shuts it down, waiting up
// to 10 s for its associations) and returns the port.
func Serve(t testing.TB, srv *dimse.Server) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return ln.Addr().(*net.TCPAddr).Port
}
