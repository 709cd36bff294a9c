package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// framingPage serves, on its own loopback origin, a page that frames src.
func framingPage(t *testing.T, ln net.Listener, src string) string {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, `<!doctype html><title>EMR</title><h1>EMR chart</h1><iframe id="lumen" src="`+src+`" width="900" height="600"></iframe>`)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// TestEMRWidget drives the chart widget and the built-in viewer in headless Chromium,
// opened by a patient link for a patient with CT, MR, XA cine with ECG, and echo
// studies: the tabs hold the right studies, every thumbnail loads, keyboard navigation
// works, a click opens the viewer, scrolling changes the slice, the cine plays at its
// frame rate, the ECG tracing shows, screenshots are not blank, the widget loads no
// third-party resource and fits a narrow screen, and it may be framed by an allowed
// origin but not by another. Console errors and failed requests fail the test.
func TestEMRWidget(t *testing.T) {
	allowedLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	otherLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	allowedOrigin := "http://" + allowedLn.Addr().String()
	e := startEMR(t, func(c *Config) { c.EMR.FrameAncestors = []string{allowedOrigin} })
	code, link := e.mint(t, mintSecret, map[string]any{"scope": "patient", "patientID": chartPatient.ID, "issuerOfPatientID": chartPatient.Issuer})
	if code != http.StatusCreated {
		t.Fatalf("mint: %d", code)
	}

	br := newBrowser(t, e.base, 2*time.Minute)
	ctx := br.ctx
	eval := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	wait := func(what, js string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(time.Until(deadline))))
			if err == nil {
				return
			}
			// A navigation replaced the page while polling ("Execution context was
			// destroyed", or "Inspected target navigated or closed"): poll the new one.
			navigated := strings.Contains(err.Error(), "context") || strings.Contains(err.Error(), "navigated")
			if !navigated || time.Now().After(deadline) {
				t.Fatalf("waiting for %s (%s): %v", what, js, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	nonBlank := func(name, sel string, min float64) {
		t.Helper()
		img, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("%s screenshot: %v", name, err)
		}
		shot(name+".png", img)
		frac, err := brightFraction(img)
		if err != nil || frac < min {
			t.Fatalf("%s: %.3f of the picture is bright (%v)", name, frac, err)
		}
	}
	const allLoaded = `Array.from(document.querySelectorAll('img')).filter(i => i.offsetParent !== null).every(i => i.complete && i.naturalWidth > 0)`

	// The widget: Radiology open with CT and MR, Cardiology holding XA and echo.
	if err := chromedp.Do(ctx, chromedp.Navigate(link.ChartURL), chromedp.WaitVisible(chromedp.CSS(`[role=tablist]`))); err != nil {
		t.Fatalf("widget: %v", err)
	}
	wait("radiology thumbnails", allLoaded)
	if got := eval(`Array.from(document.querySelectorAll('[role=tab]')).map(t => t.textContent + ':' + t.getAttribute('aria-selected')).join('|')`); got != "Radiology (2):true|Cardiology (2):false" {
		t.Fatalf("tabs: %s", got)
	}
	panel := func(name string) string {
		return eval(`Array.from(document.querySelectorAll('#panel-` + name + ` .card .desc')).map(d => d.textContent).join('|')`)
	}
	if r, c := panel("radiology"), panel("cardiology"); r != "MR Knee|CT Abdomen" || c != "Echocardiography|Coronary angiography" {
		t.Fatalf("panels: radiology %q, cardiology %q", r, c)
	}
	if alts := eval(`Array.from(document.querySelectorAll('img')).map(i => i.alt).filter(a => !a).length + ''`); alts != "0" {
		t.Fatalf("%s images without alt text", alts)
	}
	nonBlank("widget-ct-thumbnail", `#panel-radiology li:nth-child(2) img`, 0.05)
	// Keyboard: ArrowRight moves to Cardiology and shows its panel.
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS(`#tab-radiology`)), chromedp.KeyEvent(kb.ArrowRight)); err != nil {
		t.Fatal(err)
	}
	wait("cardiology tab", `document.getElementById('tab-cardiology').getAttribute('aria-selected') === 'true' && !document.getElementById('panel-cardiology').hidden && document.activeElement.id === 'tab-cardiology'`)
	wait("cardiology thumbnails", allLoaded)
	if badges := eval(`Array.from(document.querySelectorAll('#panel-cardiology .badge')).map(b => b.textContent).join('|')`); badges != "Cine ▶|Cine ▶ · ECG" {
		t.Fatalf("cardiology badges %q", badges)
	}
	if full, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		shot("widget.png", full)
	}
	// Narrow screens: no horizontal scrolling.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(320, 640)); err != nil {
		t.Fatal(err)
	}
	if w := eval(`document.documentElement.scrollWidth + '/' + document.documentElement.clientWidth`); strings.Split(w, "/")[0] != strings.Split(w, "/")[1] {
		t.Fatalf("at 320 px the widget scrolls sideways: %s", w)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1200, 900)); err != nil {
		t.Fatal(err)
	}

	// A click on the XA card opens the viewer: cine at the recorded rate, then the ECG.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#panel-cardiology li:nth-child(2) a`))); err != nil {
		t.Fatal(err)
	}
	wait("the XA cine in the viewer", `(() => { const v = document.querySelector('.viewport'); const i = v && v.querySelector('img'); return v && v.dataset.count === '12' && i.complete && i.naturalWidth > 0; })()`)
	nonBlank("viewer-xa", `.viewport`, 0.05)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.Search(`//button[contains(., "Play")]`))); err != nil {
		t.Fatal(err)
	}
	wait("the cine playing", `window.lumenViewer.playing && window.lumenViewer.played >= 8`)
	if fps, _ := strconv.ParseFloat(eval(`String(window.lumenViewer.fps)`), 64); fps < 14.9 || fps > 15.1 {
		t.Errorf("cine at %g fps, want 15 (FrameTime 66.67 ms)", fps)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.Search(`//button[contains(., "Pause")]`))); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`.series button:nth-child(2)`))); err != nil {
		t.Fatal(err)
	}
	wait("the ECG tracing", `(() => { const v = document.querySelector('.viewport'); const i = v.querySelector('img'); return v.dataset.kind === 'waveform' && i.complete && i.naturalWidth > 500; })()`)
	nonBlank("viewer-ecg", `.viewport`, 0.3)

	// The CT study: scrolling changes the slice.
	if err := chromedp.Do(ctx, chromedp.Navigate(link.ChartURL), chromedp.WaitVisible(chromedp.CSS(`#panel-radiology`)),
		chromedp.Click(chromedp.CSS(`#panel-radiology li:nth-child(2) a`))); err != nil {
		t.Fatal(err)
	}
	loaded := `(() => { const v = document.querySelector('.viewport'); const i = v && v.querySelector('img'); return v && v.dataset.count === '6' && v.dataset.index === '%s' && i.complete && i.naturalWidth > 0 && i.src.indexOf('%s') > 0; })()`
	wait("the CT in the viewer", fmt.Sprintf(loaded, "0", "frames/1/"))
	first := eval(`document.querySelector('.viewport img').src`)
	nonBlank("viewer-ct-1", `.viewport`, 0.05)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('.viewport').dispatchEvent(new WheelEvent('wheel', {deltaY: 120, bubbles: true, cancelable: true}))`)); err != nil {
		t.Fatal(err)
	}
	wait("slice 2", fmt.Sprintf(loaded, "1", "frames/1/"))
	if second := eval(`document.querySelector('.viewport img').src`); second == first {
		t.Fatal("scrolling did not change the image")
	}
	nonBlank("viewer-ct-2", `.viewport`, 0.05)

	// The viewer's study list, opened with the patient link: the patient's four studies.
	if err := chromedp.Do(ctx, chromedp.Navigate(link.ViewerURL), chromedp.WaitVisible(chromedp.CSS(`table.studies`))); err != nil {
		t.Fatal(err)
	}
	wait("the study list", `document.querySelectorAll('table.studies tbody a').length === 4`)
	if got := eval(`Array.from(document.querySelectorAll('table.studies tbody tr')).map(r => r.cells[2].textContent).join('|')`); got != "Echocardiography|Coronary angiography|MR Knee|CT Abdomen" {
		t.Fatalf("study list %q", got)
	}

	// Framing: allowed from the configured origin, refused from another.
	frameURL := func(pageURL string) (string, string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(pageURL), chromedp.WaitReady(chromedp.CSS(`#lumen`))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		tree, err := chromedp.Call(ctx, page.GetFrameTree, cdp.Empty{})
		if err != nil {
			t.Fatal(err)
		}
		if len(tree.FrameTree.ChildFrames) != 1 {
			t.Fatalf("%d frames", len(tree.FrameTree.ChildFrames))
		}
		f := tree.FrameTree.ChildFrames[0].Frame
		return f.URL, f.UnreachableURL
	}
	u, unreachable := frameURL(framingPage(t, allowedLn, link.ChartURL))
	if u != link.ChartURL || unreachable != "" {
		t.Errorf("framed by the allowed origin: the frame shows %q (unreachable %q)", u, unreachable)
	}
	br.setQuiet(true)
	u, unreachable = frameURL(framingPage(t, otherLn, link.ChartURL))
	// Chromium replaces a frame refused by frame-ancestors with its error page.
	if !strings.HasPrefix(u, "chrome-error:") || unreachable != link.ChartURL {
		t.Errorf("framed by an origin not allowed: the frame shows %q (unreachable %q)", u, unreachable)
	}

	br.check(t, true)
}
