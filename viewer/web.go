package viewer

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/httpkit/csp"
)

//go:embed assets
var assets embed.FS

// Viewer serves the built-in viewer under /viewer.
type Viewer struct {
	// DICOMwebBase is the path of the DICOMweb service (default "/dicom-web").
	DICOMwebBase string
	// FrameAncestors are the origins allowed to frame the viewer besides Lumen's own.
	FrameAncestors []string
}

var shell = template.Must(template.New("shell").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>Lumen viewer</title>
<link rel="stylesheet" href="/viewer/assets/app.css">
<script src="/viewer/assets/app.js" defer></script>
</head>
<body data-dicomweb="{{.}}">
<noscript>The Lumen viewer needs JavaScript.</noscript>
</body>
</html>
`))

// Register adds the viewer's routes to e.
func (v *Viewer) Register(e *echo.Echo) {
	base := v.DICOMwebBase
	if base == "" {
		base = "/dicom-web"
	}
	base = "/" + strings.Trim(base, "/")
	var page bytes.Buffer
	shell.Execute(&page, base)
	index := func(c echo.Context) error {
		csp.Headers(c.Response().Header(), v.FrameAncestors, "")
		return c.HTMLBlob(http.StatusOK, page.Bytes())
	}
	e.GET("/viewer", func(c echo.Context) error {
		u := "/viewer/"
		if q := c.Request().URL.RawQuery; q != "" {
			u += "?" + q
		}
		return c.Redirect(http.StatusFound, u)
	})
	e.GET("/viewer/", index)
	e.GET("/viewer/studies/:study", index)
	sub, _ := fs.Sub(assets, "assets")
	files := http.StripPrefix("/viewer/assets/", http.FileServer(http.FS(sub)))
	e.GET("/viewer/assets/*", func(c echo.Context) error {
		csp.Headers(c.Response().Header(), v.FrameAncestors, "")
		c.Response().Header().Set("Cache-Control", "public, max-age=300")
		files.ServeHTTP(c.Response(), c.Request())
		return nil
	})
}
