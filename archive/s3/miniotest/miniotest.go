package miniotest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/archive/s3"
)

// InstallCommand builds the minio binary this package runs.
const InstallCommand = "go install github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"

const (
	// readyTimeout bounds the wait for a starting server.
	readyTimeout = 30 * time.Second
	// stopTimeout is how long a server has to exit after SIGTERM before it is killed.
	stopTimeout = 10 * time.Second
)

// Server is a running (or stopped) MinIO server.
type Server struct {
	// Endpoint is the S3 API address, "127.0.0.1:port".
	Endpoint string
	// AccessKey and SecretKey are the server's root credentials.
	AccessKey, SecretKey string

	bin     string
	dir     string // data lives in dir/data, TLS config in dir/certs
	console string // console address, "127.0.0.1:port"

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	log  *logBuffer
}

// Binary returns the path of the minio binary: $LUMEN_MINIO_BIN, else "minio" on PATH,
// else $GOPATH/bin/minio (GOPATH defaulting to ~/go).
func Binary() (string, error) {
	if p := os.Getenv("LUMEN_MINIO_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("LUMEN_MINIO_BIN: %w", err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", errors.New("minio not found: LUMEN_MINIO_BIN unset, not on PATH, and no GOPATH or home directory")
		}
		gopath = filepath.Join(home, "go")
	}
	// GOPATH may be a list; the go command installs into the first entry.
	gopath = filepath.SplitList(gopath)[0]
	p := filepath.Join(gopath, "bin", "minio")
	if st, err := os.Stat(p); err == nil && !st.IsDir() {
		return p, nil
	}
	return "", fmt.Errorf("minio not found: LUMEN_MINIO_BIN unset, not on PATH, and not at %s", p)
}

// binary finds minio or ends the test: fatally in CI or when LUMEN_MINIO_BIN names a
// missing file, as skipped otherwise.
func binary(t testing.TB) string {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		msg := fmt.Sprintf("miniotest: %v; `make tools` builds it (%s), or set LUMEN_MINIO_BIN", err, InstallCommand)
		// A binary named explicitly but missing is a mistake, not an absent tool.
		if os.Getenv("CI") == "true" || os.Getenv("LUMEN_MINIO_BIN") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

// Start starts a MinIO server for t and stops it, deleting its data, when t ends. If
// the minio binary is missing, t is skipped (or fails when CI=true).
func Start(t testing.TB) *Server {
	t.Helper()
	bin := binary(t)
	s, err := start(bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

var shared struct {
	mu  sync.Mutex
	srv *Server
	dir string
	err error
}

// Shared returns a server shared by every test in the binary, starting it on first use.
// It outlives the test that started it; call StopShared from TestMain after m.Run to
// stop it and delete its data:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		miniotest.StopShared()
//		os.Exit(code)
//	}
//
// Tests must not Stop or Restart the shared server, and should use their own buckets.
// If the minio binary is missing, t is skipped (or fails when CI=true).
func Shared(t testing.TB) *Server {
	t.Helper()
	bin := binary(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv == nil && shared.err == nil {
		dir, err := os.MkdirTemp("", "miniotest-")
		if err == nil {
			shared.dir = dir
			shared.srv, err = start(bin, dir)
		}
		shared.err = err
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.srv
}

// StopShared stops the shared server, if Shared started one, and deletes its data.
func StopShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil {
		shared.srv.Stop()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	shared.srv, shared.dir, shared.err = nil, "", nil
}

func start(bin, dir string) (*Server, error) {
	s := &Server{
		AccessKey: "lumen-" + randomHex(4),
		SecretKey: randomHex(20),
		bin:       bin,
		dir:       dir,
	}
	// A free port can be taken by someone else before minio binds it; try again then.
	var err error
	for range 5 {
		if s.Endpoint, err = freeAddr(); err != nil {
			return nil, err
		}
		if s.console, err = freeAddr(); err != nil {
			return nil, err
		}
		if err = s.launch(); err == nil {
			return s, nil
		}
		if !strings.Contains(err.Error(), "already in use") {
			break
		}
	}
	return nil, err
}

// freeAddr returns a loopback address with a port nobody listens on right now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("miniotest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// launch starts the process and waits until it serves requests.
func (s *Server) launch() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command(s.bin, "server", filepath.Join(s.dir, "data"),
		"--address", s.Endpoint,
		"--console-address", s.console,
		"--certs-dir", filepath.Join(s.dir, "certs"),
		"--quiet")
	cmd.Env = append(environ(),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CALLHOME_ENABLE=off",
	)
	log := &logBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("miniotest: start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	s.cmd, s.done, s.log = cmd, done, log
	if err := s.waitReady(done); err != nil {
		s.stopLocked()
		return fmt.Errorf("miniotest: minio on %s: %w\n%s", s.Endpoint, err, log.String())
	}
	return nil
}

// environ is the test's environment without MinIO settings that could change the
// server's behaviour.
func environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MINIO_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitReady polls the health endpoints until the server is live with its object layer
// initialised.
func (s *Server) waitReady(exited <-chan struct{}) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyTimeout)
	for {
		if ready(client, "http://"+s.Endpoint+"/minio/health/live") &&
			ready(client, "http://"+s.Endpoint+"/minio/health/ready") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v", readyTimeout)
		}
		select {
		case <-exited:
			return errors.New("exited during startup")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func ready(client *http.Client, url string) bool {
	resp, err := client.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	// While starting, the liveness check answers 200 but flags the server offline.
	return resp.StatusCode == http.StatusOK && resp.Header.Get("X-Minio-Server-Status") != "offline"
}

// Stop stops the server (SIGTERM, then SIGKILL after a grace period) and waits for it to
// exit, keeping its data for Restart. It does nothing if the server is not running. Use
// it to simulate the store going away in the middle of an operation.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.done:
	default:
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			s.cmd.Process.Kill()
		}
		select {
		case <-s.done:
		case <-time.After(stopTimeout):
			s.cmd.Process.Kill()
			<-s.done
		}
	}
	s.cmd, s.done = nil, nil
}

// Restart starts a stopped server again on the same address, credentials and data,
// stopping it first if it is running. It fails t if the server does not come up.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	var err error
	// The old process's port may linger briefly; retry a few times.
	for range 10 {
		if err = s.launch(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal(err)
}

// Running reports whether the server process is running.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Log returns what the server has printed (the tail, if it printed a lot).
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return ""
	}
	return s.log.String()
}

// Config returns a store configuration for bucket on this server. The bucket name must
// be a valid S3 bucket name; s3.New creates the bucket.
func (s *Server) Config(bucket string) s3.Config {
	return s3.Config{
		Endpoint:  s.Endpoint,
		Bucket:    bucket,
		Region:    "us-east-1",
		AccessKey: s.AccessKey,
		SecretKey: s.SecretKey,
	}
}

var bucketSeq struct {
	sync.Mutex
	n int
}

// BucketName returns a new valid bucket name, unique within the test binary and random
// across runs: "t-<counter>-<random hex>".
func BucketName() string {
	bucketSeq.Lock()
	bucketSeq.n++
	n := bucketSeq.n
	bucketSeq.Unlock()
	return "t-" + strconv.Itoa(n) + "-" + randomHex(6)
}

// NewStore returns a store on a new, empty bucket of this server. It fails t on error.
func (s *Server) NewStore(t testing.TB) *s3.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := s3.New(ctx, s.Config(BucketName()))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// logBuffer keeps the last 64 KiB written to it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

const maxLog = 64 << 10

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if l.buf.Len() > 2*maxLog {
		tail := append([]byte(nil), l.buf.Bytes()[l.buf.Len()-maxLog:]...)
		l.buf.Reset()
		l.buf.Write(tail)
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buf.Bytes()
	if len(b) > maxLog {
		b = b[len(b)-maxLog:]
	}
	return string(b)
}
