package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/suyashkumar/dicom"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	err := run([]string{"-out", dir, "-ct", "3", "-rows", "16", "-cols", "24",
		"-large-frames", "4", "-large-rows", "8", "-large-cols", "8"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// 39 corpus instances, 3 benchmark CT slices, large.dcm.
	if len(files) != 43 {
		t.Errorf("wrote %d files, want 43:\n%s", len(files), out.String())
	}
	for _, f := range []string{"bench-ct/ct-001.dcm", "bench-ct/ct-003.dcm", "large.dcm"} {
		if _, err := dicom.ParseFile(filepath.Join(dir, f), nil); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if !strings.Contains(out.String(), "corpus: 39 instances") {
		t.Errorf("unexpected output:\n%s", out.String())
	}
}

func TestRunNeedsOut(t *testing.T) {
	if err := run(nil, &bytes.Buffer{}); err == nil {
		t.Error("no error without -out")
	}
}
