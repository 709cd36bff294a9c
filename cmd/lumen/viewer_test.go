package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/frame"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// rleWithCorruptFragment turns a native 16-bit single-frame object into RLE Lossless
// whose one fragment is broken: its header announces the two segments of 16-bit samples
// but the segments hold two bytes each, far fewer than the image's pixels. Every build
// has an RLE decoder, so the object is undecodable in every build, for a reason the
// decoder names.
func rleWithCorruptFragment(t *testing.T, o gen.Object) gen.Object {
	t.Helper()
	ds, err := dicom.Parse(bytes.NewReader(o.Data), int64(len(o.Data)), nil, dicom.SkipPixelData())
	if err != nil {
		t.Fatal(err)
	}
	frag := make([]byte, 68)
	binary.LittleEndian.PutUint32(frag[0:], 2)  // segments: high and low bytes
	binary.LittleEndian.PutUint32(frag[4:], 64) // segment 1
	binary.LittleEndian.PutUint32(frag[8:], 66) // segment 2
	copy(frag[64:], []byte{0x00, 0x12, 0x00, 0x34})
	ts, err := dicom.NewElement(tag.TransferSyntaxUID, []string{"1.2.840.10008.1.2.5"})
	if err != nil {
		t.Fatal(err)
	}
	pd, err := dicom.NewElement(tag.PixelData, dicom.PixelDataInfo{IsEncapsulated: true,
		Frames: []*frame.Frame{{Encapsulated: true, EncapsulatedData: frame.EncapsulatedFrame{Data: frag}}}})
	if err != nil {
		t.Fatal(err)
	}
	pd.RawValueRepresentation, pd.ValueLength = "OB", tag.VLUndefinedLength
	replaced := 0
	for i, e := range ds.Elements {
		switch e.Tag {
		case tag.TransferSyntaxUID:
			ds.Elements[i] = ts
			replaced++
		case tag.PixelData:
			ds.Elements[i] = pd
			replaced++
		}
	}
	if replaced != 2 {
		t.Fatalf("%s: transfer syntax or pixel data missing", o.Name)
	}
	var buf bytes.Buffer
	if err := dicom.Write(&buf, ds); err != nil {
		t.Fatal(err)
	}
	o.Data = buf.Bytes()
	return o
}

// viewerPage drives one page of the built-in viewer in the test's browser.
type viewerPage struct {
	t  *testing.T
	br *browser
}

func (p viewerPage) eval(js string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.br.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		p.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// wait polls js until it is true, for at most 20 s; on time-out it fails the test
// showing what show evaluates to.
func (p viewerPage) wait(what, js, show string) {
	p.t.Helper()
	if _, err := chromedp.Run(p.br.ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		p.t.Fatalf("waiting for %s: %v; the page shows %s", what, err, p.eval(show))
	}
}

func (p viewerPage) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.br.ctx, actions...); err != nil {
		p.t.Fatal(err)
	}
}

// visibleTools lists the toolbar controls a person sees, by label.
const visibleTools = `Array.from(document.querySelectorAll('.toolbar > *')).filter(e => e.offsetParent !== null).map(e => e.getAttribute('aria-label') || e.textContent).join('|')`

// TestViewer drives the built-in viewer in headless Chromium: the study list shows each
// study's patient as "FAMILY, Given Middle" (DICOM PN: only the alphabetic group, the
// prefix and suffix left out, missing components skipped) with Patient ID, birth date
// and sex; an ECG and an SR offer only the tools that apply to them (no window/level,
// no cine); and an image Lumen cannot render shows, in the viewport, the reason of the
// server's answer instead of a broken image.
func TestViewer(t *testing.T) {
	s := startLumen(t, nil)
	base := "http://" + s.addr.HTTP
	patients := []struct {
		p    gen.Patient
		name string // as the list shows it
	}{
		{gen.Patient{ID: "LUMEN-V0001", Issuer: "LUMEN-TEST", Name: "Müller^Jürgen", BirthDate: "19610203", Sex: "M"}, "MÜLLER, Jürgen"},
		{gen.Patient{ID: "LUMEN-V0002", Issuer: "LUMEN-TEST", Name: "Doe^John^Quincy^Dr.^Jr.", BirthDate: "19500704", Sex: "M"}, "DOE, John Quincy"},
		{gen.Patient{ID: "LUMEN-V0003", Issuer: "LUMEN-TEST", Name: "Yamada^Tarou=山田^太郎=やまだ^たろう", BirthDate: "19800101", Sex: "M"}, "YAMADA, Tarou"},
		{gen.Patient{ID: "LUMEN-V0004", Issuer: "LUMEN-TEST", Name: "Roe^^Ann", BirthDate: "19991231", Sex: "F"}, "ROE, Ann"},
		{gen.Patient{ID: "LUMEN-V0005", Issuer: "LUMEN-TEST", Name: "Solo", Sex: "O"}, "SOLO"},
	}
	series := func(o gen.Options, n int, desc string) gen.Options {
		o.SeriesNumber, o.SeriesDescription = n, desc
		return o
	}
	// The first patient's study: a CT series, an ECG, an SR and an RLE object with a
	// corrupted fragment. The others: one CT slice each.
	var objs []gen.Object
	var study string
	var ecg, sr, broken, ctSeries gen.Object
	for i, pt := range patients {
		opt := gen.Options{Seed: uint64(60 + i), Patient: pt.p, StudyDescription: "Viewer study " + pt.p.ID,
			AccessionNumber: fmt.Sprintf("VW%04d", i+1), StudyDate: fmt.Sprintf("202501%02d", i+1)}
		n := 1
		if i == 0 {
			n = 3
		}
		cts, err := gen.CTSeries(series(opt, 1, "CT"), n, 64, 64)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, cts...)
		if i > 0 {
			continue
		}
		study, ctSeries = cts[0].StudyUID, cts[0]
		if ecg, err = gen.ECG12Lead(series(opt, 2, "ECG")); err != nil {
			t.Fatal(err)
		}
		if sr, err = gen.BasicTextSR(series(opt, 3, "Report")); err != nil {
			t.Fatal(err)
		}
		bad, err := gen.CTSeries(series(opt, 4, "Broken"), 1, 64, 64)
		if err != nil {
			t.Fatal(err)
		}
		broken = rleWithCorruptFragment(t, bad[0])
		objs = append(objs, ecg, sr, broken)
	}
	stowAll(t, base+"/dicom-web", objs)

	br := newBrowser(t, base, 3*time.Minute)
	openSeries := func(p viewerPage, o gen.Object) {
		p.t.Helper()
		p.do(chromedp.Click(chromedp.CSS(`.series button[data-series="` + o.SeriesUID + `"]`)))
	}
	const imageShown = `(() => { const v = document.querySelector('.viewport'); const i = v && v.querySelector('img'); return !!v && v.dataset.series === '%s' && v.dataset.kind === '%s' && !i.hidden && i.complete && i.naturalWidth > 0; })()`
	const viewportText = `(document.querySelector('.viewport') || {}).innerText || '(no viewport)'`

	t.Run("tools by kind", func(t *testing.T) {
		p := viewerPage{t: t, br: br}
		p.do(chromedp.Navigate(base + "/viewer/studies/" + study))
		p.wait("the CT", fmt.Sprintf(imageShown, ctSeries.SeriesUID, "image"), visibleTools)
		if got, want := p.eval(visibleTools), "Window/level|Pan|Zoom|Window preset|Reset|▶ Play|Previous image|Next image"; got != want {
			t.Errorf("CT tools %q, want %q", got, want)
		}
		openSeries(p, ecg)
		p.wait("the ECG", fmt.Sprintf(imageShown, ecg.SeriesUID, "waveform"), visibleTools)
		if img, err := chromedp.Run(br.ctx, chromedp.FullScreenshot(100)); err == nil {
			shot("viewer-ecg-tools.png", img)
		}
		if got, want := p.eval(visibleTools), "Pan|Zoom|Reset"; got != want {
			t.Errorf("ECG tools %q, want %q (no window/level, no cine)", got, want)
		}
		if got := p.eval(`document.querySelector('.toolbar [aria-pressed=true]').textContent`); got != "Pan" {
			t.Errorf("ECG: the active tool is %q, want Pan", got)
		}
		// Space (cine) does nothing on an ECG.
		p.do(chromedp.Focus(chromedp.CSS(`.viewport`)), chromedp.KeyEvent(" "))
		if got := p.eval(`String(!!window.lumenViewer.playing)`); got != "false" {
			t.Errorf("ECG: space started a cine")
		}
		openSeries(p, sr)
		p.wait("the SR", `(() => { const v = document.querySelector('.viewport'); return v.dataset.kind === 'document' && !!v.querySelector('iframe'); })()`, visibleTools)
		if got := p.eval(visibleTools); got != "" {
			t.Errorf("SR tools %q, want none", got)
		}
		// Back to the CT: every tool again, window/level active.
		openSeries(p, ctSeries)
		p.wait("the CT again", fmt.Sprintf(imageShown, ctSeries.SeriesUID, "image"), visibleTools)
		if got, want := p.eval(visibleTools), "Window/level|Pan|Zoom|Window preset|Reset|▶ Play|Previous image|Next image"; got != want {
			t.Errorf("CT tools after the SR %q, want %q", got, want)
		}
		if got := p.eval(`document.querySelector('.toolbar [aria-pressed=true]').textContent`); got != "Window/level" {
			t.Errorf("CT: the active tool is %q, want Window/level", got)
		}
	})

	t.Run("study list", func(t *testing.T) {
		p := viewerPage{t: t, br: br}
		p.do(chromedp.Navigate(base+"/viewer/"), chromedp.WaitVisible(chromedp.CSS(`table.studies`)))
		p.wait("the study list", fmt.Sprintf(`document.querySelectorAll('table.studies tbody a').length === %d`, len(patients)), `document.querySelector('table.studies').innerText`)
		if img, err := chromedp.Run(br.ctx, chromedp.FullScreenshot(100)); err == nil {
			shot("viewer-study-list.png", img)
		}
		var rows []struct {
			Cell, Name, ID, Birth, Sex, Desc string
		}
		js := `JSON.stringify(Array.from(document.querySelectorAll('table.studies tbody tr')).map(r => {
			const q = s => { const e = r.cells[1].querySelector(s); return e ? e.textContent : '(none)'; };
			return {Cell: r.cells[1].textContent, Name: q('.name'), ID: q('.pid'), Birth: q('.birth'), Sex: q('.sex'), Desc: r.cells[2].textContent};
		}))`
		if err := json.Unmarshal([]byte(p.eval(js)), &rows); err != nil {
			t.Fatal(err)
		}
		for _, pt := range patients {
			desc := "Viewer study " + pt.p.ID
			found := false
			for _, r := range rows {
				if r.Desc != desc {
					continue
				}
				found = true
				birth := "(none)" // no birth date: nothing shown
				if d := pt.p.BirthDate; d != "" {
					birth = d[:4] + "-" + d[4:6] + "-" + d[6:]
				}
				if r.Name != pt.name || r.ID != pt.p.ID || r.Birth != birth || r.Sex != pt.p.Sex {
					t.Errorf("%s (%q): the list shows name %q, ID %q, birth date %q, sex %q (cell %q); want %q, %q, %q, %q",
						pt.p.ID, pt.p.Name, r.Name, r.ID, r.Birth, r.Sex, r.Cell, pt.name, pt.p.ID, birth, pt.p.Sex)
				}
			}
			if !found {
				t.Errorf("no row for %s", desc)
			}
		}
		// The study page names the patient the same way.
		p.do(chromedp.Navigate(base + "/viewer/studies/" + study))
		p.wait("the study header", `(document.querySelector('header .sub') || {}).textContent !== undefined && document.querySelector('header .sub').textContent !== ''`, `document.querySelector('header').innerText`)
		if got := p.eval(`document.querySelector('header .sub').textContent`); !strings.HasPrefix(got, patients[0].name+" · "+patients[0].p.ID) {
			t.Errorf("study header %q, want it to start with %q", got, patients[0].name+" · "+patients[0].p.ID)
		}
	})

	t.Run("unrenderable image", func(t *testing.T) {
		p := viewerPage{t: t, br: br}
		// The server's reason for this object.
		resp, err := http.Get(base + "/dicom-web/studies/" + study + "/series/" + broken.SeriesUID + "/instances/" + broken.SOPInstanceUID + "/frames/1/rendered")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var answer struct{ Error string }
		if json.Unmarshal(b, &answer); resp.StatusCode < 400 || answer.Error == "" {
			t.Fatalf("the corrupted object rendered: %d %.200s", resp.StatusCode, b)
		}
		br.setQuiet(true) // the refusals below are what the test provokes
		defer br.setQuiet(false)
		p.do(chromedp.Navigate(base + "/viewer/studies/" + study))
		p.wait("the CT", fmt.Sprintf(imageShown, ctSeries.SeriesUID, "image"), viewportText)
		openSeries(p, broken)
		p.wait("the reason in the viewport", fmt.Sprintf(`(() => { const v = document.querySelector('.viewport'); return v.dataset.series === %q && v.innerText.includes(%q); })()`, broken.SeriesUID, answer.Error), viewportText)
		if img, err := chromedp.Run(br.ctx, chromedp.Screenshot(chromedp.CSS(`.viewport`))); err == nil {
			shot("viewer-unrenderable.png", img)
		}
		if got := p.eval(`(() => { const i = document.querySelector('.viewport img'); return String(i.hidden || getComputedStyle(i).display === 'none'); })()`); got != "true" {
			t.Errorf("the broken image is still shown")
		}
		// Another series: the picture again, the message gone.
		openSeries(p, ctSeries)
		p.wait("the CT again", fmt.Sprintf(imageShown, ctSeries.SeriesUID, "image"), viewportText)
		if got := p.eval(viewportText); strings.Contains(got, answer.Error) {
			t.Errorf("the reason stays in the viewport over the CT: %q", got)
		}
	})

	br.check(t, true)
}
