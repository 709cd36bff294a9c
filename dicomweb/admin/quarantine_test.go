package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/archive/fs"
	"github.com/lumenpacs/lumen/dicomweb"
	"github.com/lumenpacs/lumen/dicomweb/admin"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/sqlite"
	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/lumenpacs/lumen/testdata/gen"
)

func do(t *testing.T, method, url string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestQuarantineAPI: list, fetch (byte for byte), promote and delete through HTTP, and
// precise answers to bad requests.
func TestQuarantineAPI(t *testing.T) {
	st, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	x, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	p := &ingest.Pipeline{Store: st, Index: x}
	e := echo.New()
	web := &dicomweb.Service{Index: x, Store: st, Ingest: p}
	e.HTTPErrorHandler = web.ErrorHandler
	(&admin.Quarantine{Ingest: p}).Register(e)
	srv := httptest.NewServer(e)
	defer srv.Close()

	ct, _ := gen.CTSeries(gen.Options{Seed: 71}, 1, 16, 16)
	first := ct[0].Data
	second := bytes.Clone(first)
	second[len(second)-1] ^= 1
	for _, b := range [][]byte{first, second} {
		if _, err := p.IngestFile(context.Background(), bytes.NewReader(b), int64(len(b)), ingest.Source{Via: "stow", Account: "uploader"}); err != nil {
			t.Fatal(err)
		}
	}
	code, body := do(t, "GET", srv.URL+admin.RouteList)
	var list []admin.Record
	if code != 200 || json.Unmarshal(body, &list) != nil || len(list) != 1 {
		t.Fatalf("list: %d %s", code, body)
	}
	r := list[0]
	if r.SOPInstanceUID != ct[0].SOPInstanceUID || r.Account != "uploader" || r.Via != "stow" || r.File != fmt.Sprintf("/api/v1/quarantine/%d/file", r.ID) {
		t.Fatalf("record = %+v", r)
	}
	if code, body := do(t, "GET", srv.URL+r.File); code != 200 || !bytes.Equal(body, second) {
		t.Fatalf("file: %d, %d bytes", code, len(body))
	}
	if code, body := do(t, "GET", fmt.Sprintf("%s/api/v1/quarantine/%d", srv.URL, r.ID)); code != 200 || !bytes.Contains(body, []byte(r.BlobKey)) {
		t.Fatalf("record: %d %s", code, body)
	}
	code, body = do(t, "POST", fmt.Sprintf("%s/api/v1/quarantine/%d/promote", srv.URL, r.ID))
	var pa admin.PromoteAnswer
	if code != 200 || json.Unmarshal(body, &pa) != nil || pa.Promoted.ID != r.ID || pa.Demoted == nil {
		t.Fatalf("promote: %d %s", code, body)
	}
	if code, body := do(t, "GET", srv.URL+pa.Demoted.File); code != 200 || !bytes.Equal(body, first) {
		t.Fatalf("demoted file: %d", code)
	}
	inst, _ := x.Instance(context.Background(), ct[0].SOPInstanceUID)
	if inst.BlobKey != r.BlobKey {
		t.Fatalf("served %s, want %s", inst.BlobKey, r.BlobKey)
	}
	if code, body := do(t, "DELETE", fmt.Sprintf("%s/api/v1/quarantine/%d", srv.URL, pa.Demoted.ID)); code != 200 || !bytes.Contains(body, []byte(pa.Demoted.BlobKey)) {
		t.Fatalf("delete: %d %s", code, body)
	}
	if list, _ := p.Quarantined(context.Background(), index.QuarantineQuery{}); len(list) != 0 {
		t.Fatalf("after delete: %+v", list)
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/api/v1/quarantine/x", 400},
		{"GET", "/api/v1/quarantine/0", 400},
		{"GET", "/api/v1/quarantine/99", 404},
		{"GET", "/api/v1/quarantine/99/file", 404},
		{"POST", fmt.Sprintf("/api/v1/quarantine/%d/promote", r.ID), 404},
		{"DELETE", fmt.Sprintf("/api/v1/quarantine/%d", pa.Demoted.ID), 404},
		{"GET", "/api/v1/quarantine?limit=0", 400},
		{"GET", "/api/v1/quarantine?limit=1001", 400},
		{"GET", "/api/v1/quarantine?before=x", 400},
	} {
		if code, body := do(t, c.method, srv.URL+c.path); code != c.want || !bytes.Contains(body, []byte(`"error"`)) {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, code, body, c.want)
		}
	}
}
