package mllp

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/testdata/tools"
)

// TestMLLPSend serves a real HL7 sender: Debian's python3-hl7 mllp_send sends three
// messages on one connection, each after the acknowledgement of the one before.
func TestMLLPSend(t *testing.T) {
	mllpSend := tools.MLLPSend(t)
	rec := &recorder{}
	addr := start(t, &Server{Handler: rec, Logger: testLogger(t)}, nil)
	_, port, _ := strings.Cut(addr, ":")

	// --loose reads messages with LF line ends, each starting with MSH|^~\&|.
	want := []string{"MSG00001", "MSG00002", "MSG00003"}
	var file bytes.Buffer
	for _, id := range want {
		file.Write(bytes.ReplaceAll(adt(id), []byte("\r"), []byte("\n")))
	}
	path := filepath.Join(t.TempDir(), "adt.hl7")
	if err := os.WriteFile(path, file.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, mllpSend, "--port", port, "--loose", "--file", path, "127.0.0.1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mllp_send: %v\n%s", err, stderr.Bytes())
	}
	if got := strings.Join(rec.ids(), ","); got != strings.Join(want, ",") {
		t.Fatalf("the server saw %q, want %q", got, want)
	}
	// mllp_send prints each acknowledgement as it received it, framing included.
	re := regexp.MustCompile(`\x0b[^\x1c]*MSA\|AA\|([^\r|]*)[^\x1c]*\x1c\r`)
	var printed []string
	for _, m := range re.FindAllSubmatch(out, -1) {
		printed = append(printed, string(m[1]))
	}
	if strings.Join(printed, ",") != strings.Join(want, ",") {
		t.Fatalf("mllp_send printed acknowledgements of %q, want %q; output:\n%s", printed, want, strconv.Quote(string(out)))
	}
}
