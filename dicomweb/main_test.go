package dicomweb_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/archive/fs"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dicomweb"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/postgres"
	"github.com/lumenpacs/lumen/index/postgres/pgtest"
	"github.com/lumenpacs/lumen/index/sqlite"
	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// env is a running DICOMweb service on real backends.
type env struct {
	srv   *httptest.Server
	svc   *dicomweb.Service
	idx   index.Index
	store *fs.Store
	base  string // absolute URL of the service
}

var backends = []string{"sqlite", "postgres"}

func newEnv(t testing.TB, backend string, mod func(*dicomweb.Service)) *env {
	t.Helper()
	return newWrappedEnv(t, backend, mod, nil)
}

// newWrappedEnv is newEnv with the HTTP handler wrapped by wrap (nil: as it is), for
// benchmarks that time requests on the server's side.
func newWrappedEnv(t testing.TB, backend string, mod func(*dicomweb.Service), wrap func(http.Handler) http.Handler) *env {
	t.Helper()
	ctx := context.Background()
	st, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var idx index.Index
	switch backend {
	case "postgres":
		idx, err = postgres.Open(ctx, pgtest.Schema(t))
	default:
		idx, err = sqlite.Open(ctx, t.TempDir()+"/index.db")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	svc := &dicomweb.Service{Index: idx, Store: st, Ingest: &ingest.Pipeline{Store: st, Index: idx}}
	if mod != nil {
		mod(svc)
	}
	e := echo.New()
	svc.Register(e)
	e.HTTPErrorHandler = svc.ErrorHandler
	var h http.Handler = e
	if wrap != nil {
		h = wrap(e)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(svc.Wait)
	t.Cleanup(srv.Close)
	return &env{srv: srv, svc: svc, idx: idx, store: st, base: srv.URL + "/dicom-web"}
}

// stowBody builds a multipart/related body of application/dicom parts.
func stowBody(t testing.TB, parts ...[]byte) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		w, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(p)
	}
	mw.Close()
	return &buf, `multipart/related; type="application/dicom"; boundary=` + mw.Boundary()
}

func (e *env) do(t testing.TB, method, url string, body io.Reader, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// stow posts the objects and returns the status and the decoded response.
func (e *env) stow(t testing.TB, path string, objs ...[]byte) (int, map[string]any) {
	t.Helper()
	body, ct := stowBody(t, objs...)
	resp := e.do(t, http.MethodPost, e.base+path, body, "Content-Type", ct, "Accept", "application/dicom+json")
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("STOW response %d is not JSON: %s", resp.StatusCode, b)
		}
	}
	return resp.StatusCode, out
}

// getJSON GETs url and decodes a JSON array answer.
func (e *env) getJSON(t testing.TB, url string, header ...string) ([]map[string]any, *http.Response) {
	t.Helper()
	resp := e.do(t, http.MethodGet, url, nil, header...)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	var out []map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("GET %s: not a JSON array: %v\n%s", url, err, b)
	}
	return out, resp
}

// part is one part of a multipart response.
type part struct {
	header textproto.MIMEHeader
	body   []byte
}

// readParts reads a multipart/related response and checks its type parameter.
func readParts(t testing.TB, resp *http.Response, wantType string) []part {
	t.Helper()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/related" || params["type"] != wantType {
		t.Fatalf("Content-Type %q, want multipart/related; type=%q", resp.Header.Get("Content-Type"), wantType)
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	var out []part
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, part{p.Header, b})
	}
}

// value returns the first Value of a DICOM JSON attribute as a string.
func value(obj map[string]any, tag string) string {
	a, ok := obj[tag].(map[string]any)
	if !ok {
		return ""
	}
	v, ok := a["Value"].([]any)
	if !ok || len(v) == 0 {
		return ""
	}
	switch x := v[0].(type) {
	case string:
		return x
	case float64:
		return fmt.Sprint(x)
	case map[string]any:
		if s, ok := x["Alphabetic"].(string); ok {
			return s
		}
	}
	return fmt.Sprint(v[0])
}

func dcmtk(t testing.TB, tool string) string {
	t.Helper()
	return tools.DCMTK(t, tool)
}

// pixelFrames returns the stored bytes of each frame of a PS3.10 file.
func pixelFrames(t testing.TB, data []byte) (string, [][]byte) {
	t.Helper()
	f, err := dcm.Parse(bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	pl := f.PixelLayout()
	if pl == nil {
		t.Fatal("no pixel layout")
	}
	var frames [][]byte
	for i := 0; i < pl.NumberOfFrames; i++ {
		rs, err := pl.Frame(i)
		if err != nil {
			t.Fatal(err)
		}
		var b []byte
		for _, r := range rs {
			b = append(b, data[r.Offset:r.Offset+r.Length]...)
		}
		frames = append(frames, b)
	}
	return f.Meta.String(dcm.TagTransferSyntaxUID), frames
}
