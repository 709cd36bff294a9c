package dicomweb

import (
	"context"
	"fmt"
	"html"
	"image"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/render"
)

// maxDocumentBytes caps the objects parsed whole for waveforms, reports and PDFs.
const maxDocumentBytes = 256 << 20

// SOP class families rendered without pixel data (SPEC-NOTES §F).
func isWaveform(class string) bool { return strings.HasPrefix(class, "1.2.840.10008.5.1.4.1.1.9.") }
func isSR(class string) bool       { return strings.HasPrefix(class, "1.2.840.10008.5.1.4.1.1.88.") }
func isPDF(class string) bool      { return class == "1.2.840.10008.5.1.4.1.1.104.1" }

// parseWhole reads and parses a whole object, keeping values up to maxDocumentBytes.
func (s *Service) parseWhole(ctx context.Context, in *index.Instance) (*dcm.File, error) {
	if in.Size > maxDocumentBytes {
		return nil, fmt.Errorf("%w: object of %d bytes is too large to render", render.ErrUnsupported, in.Size)
	}
	rc, _, err := s.Store.Get(ctx, in.BlobKey)
	if err != nil {
		return nil, storeFailed(err)
	}
	defer rc.Close()
	return dcm.Parse(rc, &dcm.Options{BulkThreshold: maxDocumentBytes, MaxRetained: maxDocumentBytes + 16<<20})
}

// waveformImage draws the first waveform group of an ECG or other waveform object on
// ECG paper (25 mm/s, 10 mm/mV, 4 px/mm).
func (s *Service) waveformImage(ctx context.Context, in *index.Instance) (image.Image, error) {
	f, err := s.parseWhole(ctx, in)
	if err != nil {
		return nil, err
	}
	ws, err := render.Waveforms(f.Dataset)
	if err != nil {
		return nil, err
	}
	return render.DrawECG(ws[0], 4), nil
}

// Structured reporting attributes (PS3.3 C.17.3).
var (
	tagContentSequence   = dcm.NewTag(0x0040, 0xA730)
	tagValueType         = dcm.NewTag(0x0040, 0xA040)
	tagConceptName       = dcm.NewTag(0x0040, 0xA043)
	tagTextValue         = dcm.NewTag(0x0040, 0xA160)
	tagConceptCode       = dcm.NewTag(0x0040, 0xA168)
	tagMeasuredValue     = dcm.NewTag(0x0040, 0xA300)
	tagNumericValue      = dcm.NewTag(0x0040, 0xA30A)
	tagUnits             = dcm.NewTag(0x0040, 0x08EA)
	tagPersonName        = dcm.NewTag(0x0040, 0xA123)
	tagDate              = dcm.NewTag(0x0040, 0xA121)
	tagTime              = dcm.NewTag(0x0040, 0xA122)
	tagDateTime          = dcm.NewTag(0x0040, 0xA120)
	tagUID               = dcm.NewTag(0x0040, 0xA124)
	tagCompletionFlag    = dcm.NewTag(0x0040, 0xA491)
	tagVerificationFlag  = dcm.NewTag(0x0040, 0xA493)
	tagEncapsulatedDoc   = dcm.NewTag(0x0042, 0x0011)
	tagCodeMeaningSR     = dcm.NewTag(0x0008, 0x0104)
	tagContentDate       = dcm.NewTag(0x0008, 0x0023)
	tagSeriesDescription = dcm.TagSeriesDescription
)

func codeMeaning(ds *dcm.Dataset, t dcm.Tag) string {
	if e := ds.Get(t); e != nil && len(e.Items) > 0 {
		return e.Items[0].Text(tagCodeMeaningSR)
	}
	return ""
}

// srHTML renders a structured report as a self-contained HTML page: the document
// title, its status, and the content tree as nested sections (no scripts, no external
// resources; every value escaped).
func srHTML(ds *dcm.Dataset) string {
	var b strings.Builder
	title := codeMeaning(ds, tagConceptName)
	if title == "" {
		title = "Structured report"
	}
	esc := html.EscapeString
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>%s</title>\n", esc(title))
	b.WriteString("<style>body{font-family:system-ui,sans-serif;max-width:50em;margin:1em auto;padding:0 1em;line-height:1.45;color:#111}" +
		"h1{font-size:1.4em}section{margin-left:1em;border-left:2px solid #ddd;padding-left:.8em}" +
		".name{font-weight:600}.meta{color:#555;font-size:.9em}</style></head><body>\n")
	fmt.Fprintf(&b, "<h1>%s</h1>\n", esc(title))
	fmt.Fprintf(&b, "<p class=\"meta\">%s · %s · %s %s</p>\n", esc(ds.Text(tagContentDate)), esc(ds.Text(tagSeriesDescription)),
		esc(strings.ToLower(ds.Text(tagCompletionFlag))), esc(strings.ToLower(ds.Text(tagVerificationFlag))))
	var walk func(items []*dcm.Dataset, depth int)
	walk = func(items []*dcm.Dataset, depth int) {
		for _, it := range items {
			name := codeMeaning(it, tagConceptName)
			var val string
			switch it.String(tagValueType) {
			case "TEXT":
				val = it.Text(tagTextValue)
			case "CODE":
				val = codeMeaning(it, tagConceptCode)
			case "NUM":
				if mv := it.Get(tagMeasuredValue); mv != nil && len(mv.Items) > 0 {
					val = mv.Items[0].Text(tagNumericValue) + " " + codeMeaning(mv.Items[0], tagUnits)
				}
			case "PNAME":
				val = strings.ReplaceAll(it.Text(tagPersonName), "^", " ")
			case "DATE":
				val = it.Text(tagDate)
			case "TIME":
				val = it.Text(tagTime)
			case "DATETIME":
				val = it.Text(tagDateTime)
			case "UIDREF":
				val = it.Text(tagUID)
			}
			b.WriteString("<section>")
			if name != "" {
				fmt.Fprintf(&b, "<span class=\"name\">%s</span>", esc(name))
				if val != "" {
					b.WriteString(": ")
				}
			}
			if val != "" {
				b.WriteString(strings.ReplaceAll(esc(val), "\n", "<br>"))
			}
			if cs := it.Get(tagContentSequence); cs != nil && depth < 32 {
				walk(cs.Items, depth+1)
			}
			b.WriteString("</section>\n")
		}
	}
	if cs := ds.Get(tagContentSequence); cs != nil {
		walk(cs.Items, 0)
	}
	b.WriteString("</body></html>\n")
	return b.String()
}

// document answers /rendered for reports (text/html) and encapsulated PDF
// (application/pdf, passed through), or 406 when the request does not accept that type
// (a report asked for as image/png is not an image). It returns false when in is
// neither.
func (s *Service) document(c echo.Context, in *index.Instance, r *renderRequest) (bool, error) {
	switch {
	case isSR(in.SOPClassUID) && !r.accepts("text/html"):
		return true, echo.NewHTTPError(http.StatusNotAcceptable, "a structured report is rendered as text/html only")
	case isPDF(in.SOPClassUID) && !r.accepts("application/pdf"):
		return true, echo.NewHTTPError(http.StatusNotAcceptable, "an encapsulated PDF is rendered as application/pdf only")
	case isSR(in.SOPClassUID):
		f, err := s.parseWhole(c.Request().Context(), in)
		if err != nil {
			return true, err
		}
		c.Response().Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		return true, c.HTML(http.StatusOK, srHTML(f.Dataset))
	case isPDF(in.SOPClassUID):
		f, err := s.parseWhole(c.Request().Context(), in)
		if err != nil {
			return true, err
		}
		e := f.Dataset.Get(tagEncapsulatedDoc)
		if e == nil || e.Value == nil {
			return true, echo.NewHTTPError(http.StatusNotFound, "the object holds no document")
		}
		doc := e.Value
		if n := len(doc); n > 0 && doc[n-1] == 0 { // padding to even length
			doc = doc[:n-1]
		}
		c.Response().Header().Set("Content-Disposition", "inline")
		return true, c.Blob(http.StatusOK, "application/pdf", doc)
	}
	return false, nil
}
