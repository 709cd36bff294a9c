package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/archive/fs"
	"github.com/lumenpacs/lumen/dicomweb"
	"github.com/lumenpacs/lumen/dicomweb/admin"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/sqlite"
	"github.com/lumenpacs/lumen/service/audit"
	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// TestRejectionAPI: reject (the admin writes no KO: Lumen does), list, restore and purge
// over HTTP; a request without a reason is 400; each change is audited with its reason;
// QIDO no longer finds rejected instances.
func TestRejectionAPI(t *testing.T) {
	st, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	x, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	trail := audit.New(x, nil, nil)
	defer trail.Close()
	p := &ingest.Pipeline{Store: st, Index: x}
	e := echo.New()
	web := &dicomweb.Service{Index: x, Store: st, Ingest: p}
	e.HTTPErrorHandler = web.ErrorHandler
	// The actions the lead adds to cmd/lumen's httpAction.
	action := func(method, route string) string {
		switch route {
		case admin.RouteRestore:
			return "reject-restore"
		case admin.RoutePurge:
			return "reject-purge"
		case admin.RouteRejections:
			if method == http.MethodPost {
				return "reject"
			}
			return "reject-read"
		}
		return ""
	}
	e.Use(trail.HTTP(action, func(echo.Context) (string, string) { return "admin", "http" }))
	thumbs := &thumbDrops{}
	(&admin.Rejections{Ingest: p, Thumbnails: thumbs}).Register(e)
	srv := httptest.NewServer(e)
	defer srv.Close()

	ct, _ := gen.CTSeries(gen.Options{Seed: 81}, 3, 16, 16)
	for _, o := range ct {
		if _, err := p.IngestFile(context.Background(), strings.NewReader(string(o.Data)), int64(len(o.Data)), ingest.Source{Via: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	study := ct[0].StudyUID
	url := srv.URL + admin.RouteRejections
	for _, tc := range []struct {
		body string
		code int
	}{
		{`{"studyInstanceUID":"` + study + `","code":"113001"}`, 400},
		{`{"studyInstanceUID":"` + study + `","code":"113001","reason":"  "}`, 400},
		{`{"studyInstanceUID":"` + study + `","code":"113000","reason":"x"}`, 400},
		{`{"studyInstanceUID":"` + study + `","code":"113001","reason":"x","extra":1}`, 400},
		{`{"studyInstanceUID":"1.2.3.999","code":"113001","reason":"x"}`, 404},
	} {
		if code, b := post(t, url, tc.body); code != tc.code {
			t.Errorf("%s: %d %s", tc.body, code, b)
		}
	}
	code, b := post(t, url, `{"studyInstanceUID":"`+study+`","sopInstanceUIDs":["`+ct[1].SOPInstanceUID+`"],"code":"113037","reason":"wrong patient on the modality"}`)
	if code != http.StatusCreated {
		t.Fatalf("reject: %d %s", code, b)
	}
	var ans admin.RejectAnswer
	if err := json.Unmarshal(b, &ans); err != nil || len(ans.Rejected) != 1 || ans.Rejected[0].SOPInstanceUID != ct[1].SOPInstanceUID || ans.Rejected[0].Code != "113037" || !ans.Rejected[0].Received {
		t.Fatalf("answer %s, %v", b, err)
	}
	// QIDO finds the note and the two other instances, not the rejected one.
	r, err := x.Find(context.Background(), index.Query{Level: index.ImageLevel})
	if err != nil || len(r.Instances) != 3 {
		t.Fatalf("instances after rejection: %d, %v", len(r.Instances), err)
	}
	for _, in := range r.Instances {
		if in.SOPInstanceUID == ct[1].SOPInstanceUID {
			t.Fatal("rejected instance still found")
		}
	}
	code, b = do(t, http.MethodGet, url+"?study="+study)
	if code != 200 || !strings.Contains(string(b), ct[1].SOPInstanceUID) {
		t.Fatalf("list: %d %s", code, b)
	}
	if code, b := do(t, http.MethodGet, url+"?limit=0"); code != 400 {
		t.Fatalf("bad limit: %d %s", code, b)
	}
	// Restore without a reason, or naming nothing: 400; by note: back.
	if code, b := post(t, srv.URL+admin.RouteRestore, `{"note":"`+ans.Note+`"}`); code != 400 {
		t.Fatalf("restore without reason: %d %s", code, b)
	}
	if code, b := post(t, srv.URL+admin.RouteRestore, `{"reason":"x"}`); code != 400 {
		t.Fatalf("restore naming nothing: %d %s", code, b)
	}
	if code, b := post(t, srv.URL+admin.RouteRestore, `{"note":"`+ans.Note+`","reason":"it was the right patient"}`); code != 200 {
		t.Fatalf("restore: %d %s", code, b)
	}
	if _, err := x.Instance(context.Background(), ct[1].SOPInstanceUID); err != nil {
		t.Fatalf("restored instance: %v", err)
	}
	if code, b := post(t, srv.URL+admin.RouteRestore, `{"note":"`+ans.Note+`","reason":"again"}`); code != 404 {
		t.Fatalf("restore again: %d %s", code, b)
	}
	// Reject the whole study for good, then purge.
	code, b = post(t, url, `{"studyInstanceUID":"`+study+`","code":"113039","reason":"retention ended"}`)
	if code != http.StatusCreated {
		t.Fatalf("reject study: %d %s", code, b)
	}
	if err := json.Unmarshal(b, &ans); err != nil || len(ans.Rejected) != 3 {
		t.Fatalf("reject study answer %s", b)
	}
	code, b = post(t, srv.URL+admin.RoutePurge, `{"note":"`+ans.Note+`","reason":"retention ended"}`)
	if code != 200 || strings.Count(string(b), `"sopInstanceUID"`) != 3 {
		t.Fatalf("purge: %d %s", code, b)
	}
	for _, in := range ans.Rejected {
		if _, err := st.Stat(context.Background(), in.BlobKey); err == nil {
			t.Fatalf("purged blob %s remains", in.BlobKey)
		}
		if !slices.Contains(thumbs.sops, in.SOPInstanceUID) {
			t.Fatalf("the thumbnails of purged %s were not dropped (%v)", in.SOPInstanceUID, thumbs.sops)
		}
	}
	trail.Flush()
	recs, err := trail.Search(context.Background(), index.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, rec := range recs {
		seen = append(seen, rec.Action+" "+rec.Outcome+" "+rec.Detail)
	}
	all := strings.Join(seen, "\n")
	for _, want := range []string{
		`reject ok /api/v1/rejections reason: "wrong patient on the modality"`,
		`reject-restore ok /api/v1/rejections/restore reason: "it was the right patient"`,
		`reject-purge ok /api/v1/rejections/purge reason: "retention ended"`,
		`reject 400 /api/v1/rejections`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("audit lacks %q:\n%s", want, all)
		}
	}
}

// thumbDrops records the instances whose thumbnails are dropped.
type thumbDrops struct{ sops []string }

func (d *thumbDrops) DropThumbnails(_ context.Context, sop string) { d.sops = append(d.sops, sop) }
