package emr

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/httpkit/csp"
)

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"join": strings.Join,
	// alt is the text alternative of a study's thumbnail: the study thumbnail is the
	// first image series (a cine's representative frame), else the ECG tracing.
	"alt": func(s ChartStudy) string {
		what := "Image"
		switch {
		case contains(s.Kinds, "cine"):
			what = "Frame of a cine loop"
		case contains(s.Kinds, "ecg"):
			what = "ECG tracing"
		case contains(s.Kinds, "report"):
			what = "Report"
		}
		desc := s.Description
		if desc == "" {
			desc = strings.Join(s.Modalities, ", ") + " study"
		}
		if s.Date != "" {
			desc += " of " + s.Date
		}
		return what + " from " + desc
	},
	// badge marks the studies that are not plain images.
	"badge": func(s ChartStudy) string {
		var b []string
		if contains(s.Kinds, "cine") {
			b = append(b, "Cine ▶")
		}
		if contains(s.Kinds, "ecg") {
			b = append(b, "ECG")
		}
		if contains(s.Kinds, "report") {
			b = append(b, "Report")
		}
		return strings.Join(b, " · ")
	},
}).ParseFS(templateFS, "templates/*.html"))

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// render writes a template as an HTML page with the security headers.
func (s *Service) render(c echo.Context, code int, name string, data map[string]any) error {
	n := csp.Nonce()
	data["Nonce"] = n
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		return err
	}
	csp.Headers(c.Response().Header(), s.FrameAncestors, n)
	return c.HTMLBlob(code, b.Bytes())
}

// page answers with a short page a clinician can read (errors, expired links).
func (s *Service) page(c echo.Context, code int, title, text string) error {
	return s.render(c, code, "page", map[string]any{"Title": title, "Text": text})
}

// tab is one service line of the widget.
type tab struct {
	Name, Label string
	Selected    bool
	Studies     []ChartStudy
}

// chartWidget answers GET /emr/v1/patients/{patientID}/chart: the embeddable widget.
func (s *Service) chartWidget(c echo.Context) error {
	selected := strings.ToLower(c.QueryParam("service"))
	ch, err := s.chart(c, true)
	var me *mergedError
	if errors.As(err, &me) {
		link := ""
		if me.survivor != nil {
			link = chartPath(*me.survivor, "chart")
		}
		return s.mergedPage(c, me, link)
	}
	if err != nil {
		if he, ok := err.(*echo.HTTPError); ok {
			msg, _ := he.Message.(string)
			return s.page(c, he.Code, "The chart cannot be shown", msg)
		}
		s.log().Warn("emr: chart widget failed", "err", err)
		return s.page(c, http.StatusServiceUnavailable, "The images cannot be listed right now", "The archive could not answer. Try again in a moment.")
	}
	tabs := []*tab{{Name: Radiology, Label: "Radiology"}, {Name: Cardiology, Label: "Cardiology"}}
	for _, st := range ch.Studies {
		for _, t := range tabs {
			if t.Name == st.ServiceLine {
				t.Studies = append(t.Studies, st)
			}
		}
	}
	switch {
	case selected == Cardiology || selected == "" && len(tabs[0].Studies) == 0 && len(tabs[1].Studies) > 0:
		tabs[1].Selected = true
	default:
		tabs[0].Selected = true
	}
	return s.render(c, http.StatusOK, "chart", map[string]any{"Title": "Imaging", "Tabs": tabs})
}
