package dicomweb_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// TestDicomwebClient runs the dicomweb-client package (the client OHIF builds on) under
// Node against Lumen: store, search, series metadata, frames and instance retrieval.
func TestDicomwebClient(t *testing.T) {
	dir := tools.NPM(t, "testdata/node")
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
