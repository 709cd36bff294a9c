package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/archive/s3/miniotest"
	"github.com/lumenpacs/lumen/dcm/codec/openjpeg"
	"github.com/lumenpacs/lumen/render/jpegenc"
	"github.com/lumenpacs/lumen/testdata/gen"
)

var lumenBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lumen-bin-")
	if err != nil {
		panic(err)
	}
	lumenBin = filepath.Join(dir, "lumen")
	args := []string{"build", "-o", lumenBin}
	if tags := buildTags(); tags != "" { // the binary has what the test binary has
		args = append(args, "-tags", tags)
	}
	if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building lumen: %v\n%s", err, out)
		os.Exit(2)
	}
	code := m.Run()
	miniotest.StopShared()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildTags are the build tags of the cgo bindings this test binary was built with.
func buildTags() string {
	var tags []string
	if openjpeg.Available {
		tags = append(tags, "openjpeg")
	}
	if jpegenc.LibJPEG {
		tags = append(tags, "libjpeg")
	}
	return strings.Join(tags, " ")
}

// runCLI runs the command in-process and returns stdout, stderr and the exit status.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRoot(&out, &errb)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	code := 0
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			code = ee.code
		} else {
			code = 2
			errb.WriteString(err.Error())
		}
	}
	return out.String(), errb.String(), code
}

// writeCorpus writes the generated corpus plus the suyashkumar/dicom samples under dir
// and returns the number of files.
func writeCorpus(t *testing.T, dir string) []gen.Object {
	t.Helper()
	objs, err := gen.Corpus(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.WriteCorpus(filepath.Join(dir, "generated"), objs); err != nil {
		t.Fatal(err)
	}
	samples, err := gen.ModuleSamplesDir()
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 6; i++ {
		b, err := os.ReadFile(filepath.Join(samples, fmt.Sprintf("%d.dcm", i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "samples"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "samples", fmt.Sprintf("%d.dcm", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return objs
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func lines(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }

// httpDo sends a request (with a bearer token when given, and header pairs) and returns
// the status and body.
func httpDo(t *testing.T, method, url, token string, body io.Reader, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
