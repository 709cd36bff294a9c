package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dicomweb/admin"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// datasetBytes returns the data set of a PS3.10 file (what follows its meta information).
func datasetBytes(t *testing.T, file []byte) []byte {
	t.Helper()
	f, err := dcm.Parse(bytes.NewReader(file), nil)
	if err != nil {
		t.Fatal(err)
	}
	return file[f.DatasetOffset:]
}

// TestResentInstances: the same CT sent by storescu from two AE titles in explicit and
// implicit VR, imported with lumen import and sent with lumen store, is acknowledged
// each time and stored once. A different object under the same SOP Instance UID is
// acknowledged too (storescu, lumen store, lumen import, STOW-RS with a Warning); the
// first copy stays the served one, byte for byte; the different copies are listed by
// the quarantine API, fetched byte for byte, promoted and deleted, each action audited
// under its own route; fsck finds the store consistent.
func TestResentInstances(t *testing.T) {
	s := startLumen(t, nil) // the default duplicate policy: quarantine
	h, p := splitAddr(s.addr.DIMSE)
	base := "http://" + s.addr.HTTP
	ct, err := gen.CTSeries(gen.Options{Seed: 141}, 1, 32, 32)
	if err != nil {
		t.Fatal(err)
	}
	o := ct[0]
	dir := t.TempDir()
	orig := filepath.Join(dir, "ct.dcm")
	os.WriteFile(orig, o.Data, 0o644)
	impl := filepath.Join(dir, "ct-implicit.dcm")
	if out, err := exec.Command(dcmtkTool(t, "dcmconv"), "+ti", orig, impl).CombinedOutput(); err != nil {
		t.Fatalf("dcmconv: %v\n%s", err, out)
	}
	for _, c := range []struct{ ae, ts, file string }{
		{"CT_ONE", "-xe", orig},
		{"ROUTER_TWO", "-xi", orig},
		{"ROUTER_TWO", "-xe", impl},
		{"CT_ONE", "-xi", impl},
	} {
		runDCMTK(t, "storescu", "-aet", c.ae, "-aec", "LUMEN", c.ts, h, p, c.file)
	}
	if out, errOut, code := runCLI(t, "import", impl, orig, "--data-dir", s.c.DataDir, "--progress", "none"); code != 0 || !strings.Contains(out, "already present: 2") {
		t.Fatalf("lumen import: exit %d\n%s%s", code, out, errOut)
	}
	if out, _, code := runCLI(t, "store", "LUMEN@"+s.addr.DIMSE, impl, orig, "--aet", "LUMEN_CLI"); code != 0 || !strings.Contains(out, "store: 2 sent, 0 failed") {
		t.Fatalf("lumen store: exit %d\n%s", code, out)
	}
	wado := func() []byte {
		t.Helper()
		code, body := httpDo(t, "GET", base+"/wado?requestType=WADO&contentType=application/dicom&studyUID="+o.StudyUID+"&seriesUID="+o.SeriesUID+"&objectUID="+o.SOPInstanceUID, "", nil)
		if code != 200 {
			t.Fatalf("WADO-URI: %d %.200s", code, body)
		}
		return []byte(body)
	}
	first := wado()
	if !bytes.Equal(datasetBytes(t, first), datasetBytes(t, o.Data)) {
		t.Fatal("the served copy is not the data set sent first")
	}

	// Different objects with the same SOP Instance UID: acknowledged by storescu, lumen
	// store, lumen import and STOW-RS, and the first copy is still the one served.
	other := bytes.Clone(o.Data)
	other[len(other)-1] ^= 0xFF
	diff := filepath.Join(dir, "ct-other.dcm")
	os.WriteFile(diff, other, 0o644)
	runDCMTK(t, "storescu", "-aet", "CT_ONE", "-aec", "LUMEN", "-xe", h, p, diff)
	if out, _, code := runCLI(t, "store", "LUMEN@"+s.addr.DIMSE, diff, "--aet", "LUMEN_CLI"); code != 0 {
		t.Fatalf("lumen store of a different object: exit %d\n%s", code, out)
	}
	if out, errOut, code := runCLI(t, "import", diff, "--data-dir", s.c.DataDir, "--progress", "none"); code != 0 || !strings.Contains(out, "quarantined:     1") {
		t.Fatalf("lumen import of a different object: exit %d\n%s%s", code, out, errOut)
	}
	third := bytes.Clone(o.Data)
	third[len(third)-2] ^= 0xFF
	if code, _, warn := stowOne(t, base+"/dicom-web", third, ""); code != http.StatusAccepted || !strings.Contains(warn, "quarantine") {
		t.Fatalf("STOW-RS of a different object: %d %s", code, warn)
	}
	if !bytes.Equal(wado(), first) {
		t.Fatal("the served copy changed")
	}

	// The quarantine API of the server (admin; authentication is off here).
	api := struct{ URL string }{base}
	code, body := httpDo(t, "GET", api.URL+"/api/v1/quarantine", "", nil)
	var list []admin.Record
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != 2 {
		t.Fatalf("quarantine list: %d %s", code, body)
	}
	stowed, stored := list[0], list[1] // newest first
	if stowed.Via != "stow" || stored.Via != "dimse" || stored.CallingAE != "CT_ONE" || stowed.SOPInstanceUID != o.SOPInstanceUID || stored.SOPInstanceUID != o.SOPInstanceUID {
		t.Fatalf("records: %+v", list)
	}
	if _, body := httpDo(t, "GET", api.URL+stowed.File, "", nil); !bytes.Equal([]byte(body), third) {
		t.Fatal("the STOW-RS copy is not kept byte for byte")
	}
	if _, body := httpDo(t, "GET", api.URL+stored.File, "", nil); !bytes.Equal(datasetBytes(t, []byte(body)), datasetBytes(t, other)) {
		t.Fatal("the storescu copy's data set is not kept byte for byte")
	}
	// Promote the STOW-RS copy: it is served, and the first copy is quarantined in turn.
	code, body = httpDo(t, "POST", fmt.Sprintf("%s/api/v1/quarantine/%d/promote", api.URL, stowed.ID), "", nil)
	var pa admin.PromoteAnswer
	if code != 200 || json.Unmarshal([]byte(body), &pa) != nil || pa.Demoted == nil {
		t.Fatalf("promote: %d %s", code, body)
	}
	if !bytes.Equal(wado(), third) {
		t.Fatal("the promoted copy is not served")
	}
	if _, body := httpDo(t, "GET", api.URL+pa.Demoted.File, "", nil); !bytes.Equal([]byte(body), first) {
		t.Fatal("the demoted first copy is not kept byte for byte")
	}
	if code, body := httpDo(t, "DELETE", fmt.Sprintf("%s/api/v1/quarantine/%d", api.URL, stored.ID), "", nil); code != 200 {
		t.Fatalf("delete: %d %s", code, body)
	}
	var recs []index.AuditRecord
	if code, body := httpDo(t, "GET", base+"/api/v1/audit?limit=1000", "", nil); code != 200 || json.Unmarshal([]byte(body), &recs) != nil {
		t.Fatalf("audit search: %d %.200s", code, body)
	}
	seen := map[string]string{}
	for _, r := range recs {
		if r.Outcome == "ok" && r.StudyInstanceUID == o.StudyUID || r.Detail == admin.RouteList {
			seen[r.Detail] = r.Action
		}
	}
	for _, route := range []string{admin.RouteList, admin.RouteFile, admin.RoutePromote, admin.RouteRecord} {
		if _, ok := seen[route]; !ok {
			t.Errorf("no audit record of %s: %v", route, seen)
		}
	}
	s.stop()
	if out, _, code := runCLI(t, "fsck", "--data-dir", s.c.DataDir, "--grace", "0"); code != 0 || !strings.Contains(out, "0 orphan blobs, 0 dangling rows") {
		t.Fatalf("fsck: exit %d\n%s", code, out)
	}
	x, err := openIndex(context.Background(), s.c, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if c, _ := x.Counts(context.Background()); c.Instances != 1 {
		t.Fatalf("counts = %+v", c)
	}
	if q, _ := x.Quarantined(context.Background(), index.QuarantineQuery{}); len(q) != 1 || q[0].ID != pa.Demoted.ID {
		t.Fatalf("quarantine at the end: %+v", q)
	}
}
