package dicomweb_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// npmDir installs the locked npm packages of testdata/node once per lock file into the
// user cache and returns that directory, with the test scripts copied in.
func npmDir(t *testing.T) string {
	t.Helper()
	tools.Require(t, "node", "Node.js")
	npm := tools.Require(t, "npm", "Node.js")
	lock, err := os.ReadFile("testdata/node/package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "lumen-tests", "node-"+hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir("testdata/node")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("testdata/node", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err != nil {
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci (the npm registry must be reachable): %v\n%s", err, out)
		}
	}
	return dir
}

// TestDicomwebClient runs the dicomweb-client package (the client OHIF builds on) under
// Node against Lumen: store, search, series metadata, frames and instance retrieval.
func TestDicomwebClient(t *testing.T) {
	dir := npmDir(t)
	objs, err := gen.CTSeries(gen.Options{Seed: 31}, 6, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	args := []string{"client.cjs", ""}
	sizes := map[string]int{}
	for _, o := range objs {
		p := filepath.Join(src, o.SOPInstanceUID+".dcm")
		if err := os.WriteFile(p, o.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
		sizes[o.SOPInstanceUID] = len(o.Data)
	}
	for _, be := range backends {
		t.Run(be, func(t *testing.T) {
			e := newEnv(t, be, nil)
			args[1] = e.base
			cmd := exec.Command("node", args...)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("node client.cjs: %v\n%s", err, out)
			}
			var got struct {
				Stored                               string
				Studies, Series, Metadata, Instances int
				Rows, Columns, BitsAllocated, Frames int
				FrameBytes, InstanceBytes            int
				SOP                                  string
				StudyName                            map[string]string
			}
			if err := json.Unmarshal([]byte(strings.TrimSpace(string(out))), &got); err != nil {
				t.Fatalf("client output: %v\n%s", err, out)
			}
			if got.Stored != "ok" || got.Studies != 1 || got.Series != 1 || got.Metadata != len(objs) || got.Instances != len(objs) {
				t.Fatalf("client saw %+v", got)
			}
			if got.Rows != 64 || got.Columns != 64 || got.BitsAllocated != 16 || got.Frames != 1 || got.FrameBytes != 64*64*2 {
				t.Fatalf("frames: %+v", got)
			}
			if got.InstanceBytes != sizes[got.SOP] || got.StudyName["Alphabetic"] == "" {
				t.Fatalf("instance %s: %d bytes, want %d; name %v", got.SOP, got.InstanceBytes, sizes[got.SOP], got.StudyName)
			}
		})
	}
}
