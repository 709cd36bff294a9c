package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// ohifVersion is the prebuilt OHIF Viewer (npm @ohif/app) the browser test runs.
const ohifVersion = "3.13.2"

// ohifDist returns the dist/ directory of @ohif/app, fetched once into the user cache
// with npm pack.
func ohifDist(t *testing.T) string {
	t.Helper()
	npm := tools.Require(t, "npm", "Node.js")
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	root := filepath.Join(cache, "lumen-tests", "ohif-"+ohifVersion)
	dist := filepath.Join(root, "package", "dist")
	if _, err := os.Stat(filepath.Join(dist, "index.html")); err == nil {
		return dist
	}
	tmp, err := os.MkdirTemp(filepath.Dir(root), "ohif-download-")
	if err != nil {
		if err := os.MkdirAll(filepath.Dir(root), 0o755); err != nil {
			t.Fatal(err)
		}
		if tmp, err = os.MkdirTemp(filepath.Dir(root), "ohif-download-"); err != nil {
			t.Fatal(err)
		}
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command(npm, "pack", "@ohif/app@"+ohifVersion, "--pack-destination", tmp, "--loglevel=error")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm pack @ohif/app (the npm registry must be reachable): %v\n%s", err, out)
	}
	tgz := filepath.Join(tmp, "ohif-app-"+ohifVersion+".tgz")
	if err := extractTgz(tgz, filepath.Join(tmp, "x")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(root)
	if err := os.Rename(filepath.Join(tmp, "x"), root); err != nil {
		t.Fatal(err)
	}
	return dist
}

// extractTgz unpacks the regular files of an npm tarball under dir.
func extractTgz(file, dir string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(h.Name)
		if h.Typeflag != tar.TypeReg || !filepath.IsLocal(name) {
			continue
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		out, err := os.Create(p)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, tr); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
	}
}

// ohifConfig points OHIF's DICOMweb data source at Lumen.
func ohifConfig(dicomweb, wado string) string {
	return fmt.Sprintf(`window.config = {
  routerBasename: '/',
  extensions: [],
  modes: [],
  customizationService: {},
  showStudyList: true,
  maxNumberOfWebWorkers: 2,
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: false,
  showLoadingIndicator: true,
  defaultDataSourceName: 'lumen',
  dataSources: [{
    namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
    sourceName: 'lumen',
    configuration: {
      friendlyName: 'Lumen',
      name: 'lumen',
      wadoUriRoot: %[2]q,
      qidoRoot: %[1]q,
      wadoRoot: %[1]q,
      qidoSupportsIncludeField: true,
      imageRendering: 'wadors',
      thumbnailRendering: 'wadors',
      enableStudyLazyLoad: true,
      supportsFuzzyMatching: true,
      supportsWildcard: true,
      staticWado: false,
      singlepart: 'bulkdata,video',
      omitQuotationForMultipartRequest: true,
    },
  }],
};
`, dicomweb, wado)
}

// serveOHIF serves the OHIF dist on its own loopback origin, as a single-page app.
func serveOHIF(t *testing.T, dist, config string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	files := http.FileServer(http.Dir(dist))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/app-config.js" {
			w.Header().Set("Content-Type", "text/javascript")
			io.WriteString(w, config)
			return
		}
		if st, err := os.Stat(filepath.Join(dist, filepath.FromSlash(filepath.Clean("/"+r.URL.Path)))); err != nil || st.IsDir() {
			http.ServeFile(w, r, filepath.Join(dist, "index.html"))
			return
		}
		files.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// stowAll posts objects to Lumen's STOW-RS in one request (with a bearer token, when
// given).
func stowAll(t testing.TB, base string, objs []gen.Object, token ...string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, o := range objs {
		w, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
		w.Write(o.Data)
	}
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, base+"/studies", &buf)
	req.Header.Set("Content-Type", `multipart/related; type="application/dicom"; boundary=`+mw.Boundary())
	if len(token) > 0 {
		req.Header.Set("Authorization", "Bearer "+token[0])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("STOW: %d %s", resp.StatusCode, b)
	}
}

// brightFraction is the share of pixels in the central half of a PNG that are not
// background black (the image area of a viewport; overlays sit at the edges).
func brightFraction(b []byte) (float64, error) {
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	r := img.Bounds()
	x0, x1 := r.Min.X+r.Dx()/4, r.Max.X-r.Dx()/4
	y0, y1 := r.Min.Y+r.Dy()/4, r.Max.Y-r.Dy()/4
	lum := func(x, y int) int {
		cr, cg, cb, _ := img.At(x, y).RGBA()
		return int((cr + cg + cb) / 3 >> 8)
	}
	bright, edges, total := 0, 0, 0
	for y := y0; y < y1; y += 2 {
		for x := x0; x < x1; x += 2 {
			l := lum(x, y)
			if l > 25 {
				bright++
			}
			if d := l - lum(x+1, y); d > 40 || d < -40 {
				edges++
			}
			total++
		}
	}
	if total == 0 {
		return 0, nil
	}
	// Pixels decoded with the wrong transfer syntax look like noise: sharp changes
	// between most neighbours. The synthetic images are smooth shapes.
	if float64(edges)/float64(total) > 0.2 {
		return 0, fmt.Errorf("the viewport looks like noise (%d of %d pixels are sharp edges)", edges, total)
	}
	return float64(bright) / float64(total), nil
}

var _ image.Image // image decoders are registered by image/png

// TestOHIF serves the prebuilt OHIF Viewer against a running Lumen and drives it in
// headless Chromium: the study list shows the stored studies, and a CT study and a
// multi-frame XA study are drawn in the viewer. Console errors, uncaught exceptions and
// failed requests to Lumen fail the test.
func TestOHIF(t *testing.T) {
	dist := ohifDist(t)
	s := startLumen(t, nil)
	lumen := "http://" + s.addr.HTTP
	corpus, err := gen.Corpus(42)
	if err != nil {
		t.Fatal(err)
	}
	stowAll(t, lumen+"/dicom-web", corpus)
	var ctStudy, xaStudy string
	for _, o := range corpus {
		switch o.Modality {
		case "CT":
			ctStudy = o.StudyUID
		case "XA":
			xaStudy = o.StudyUID
		}
	}
	ohif := serveOHIF(t, dist, ohifConfig(lumen+"/dicom-web", lumen+"/wado"))

	br := newBrowser(t, lumen, 3*time.Minute, chromedp.WindowSize(1400, 900),
		chromedp.Flag("use-angle", "swiftshader"), chromedp.Flag("enable-unsafe-swiftshader", true))
	ctx := br.ctx

	// The study list.
	err = chromedp.Do(ctx, chromedp.Navigate(ohif+"/"),
		chromedp.WaitVisible(`//*[contains(text(), "Coronary angiography")]`))
	if err != nil {
		t.Fatalf("study list: %v", err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatalf("study list text: %v", err)
	}
	for _, want := range []string{"CT Thorax", "MR Schädel", "Coronary angiography", "LUM0001", "Müller"} {
		if !strings.Contains(text, want) {
			t.Errorf("study list lacks %q", want)
		}
	}
	if list, err := chromedp.Run(ctx, chromedp.FullScreenshot(80)); err == nil {
		shot("ohif-study-list.jpg", list)
	}

	// The viewer draws a CT study and a multi-frame XA study.
	for _, st := range []struct{ name, uid string }{{"ct", ctStudy}, {"xa", xaStudy}} {
		if err := chromedp.Do(ctx, chromedp.Navigate(ohif+"/viewer?StudyInstanceUIDs="+st.uid),
			chromedp.WaitVisible(chromedp.CSS(`canvas.cornerstone-canvas`))); err != nil {
			t.Fatalf("%s viewer: %v", st.name, err)
		}
		var frac float64
		var img []byte
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if img, err = chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(`canvas.cornerstone-canvas`))); err != nil {
				t.Fatalf("%s screenshot: %v", st.name, err)
			}
			if frac, err = brightFraction(img); err != nil {
				shot("ohif-"+st.name+".png", img)
				t.Fatalf("%s: %v", st.name, err)
			}
			if frac > 0.10 {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		shot("ohif-"+st.name+".png", img)
		if frac <= 0.10 {
			t.Errorf("%s: the viewport stayed dark (%.3f of pixels bright)", st.name, frac)
		}
	}
	br.check(t, false)
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return ""
	}
	s := d.Text
	if d.Exception != nil {
		s += " " + d.Exception.Description
	}
	return s
}
