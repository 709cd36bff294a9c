package dicomweb

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/render"
	"github.com/lumenpacs/lumen/service/transcode"
)

// wadoURI implements WADO-URI (PS3.18 section 9) for contentType=application/dicom;
// the rendered content types come with the rendering resources.
func (s *Service) wadoURI(c echo.Context) error {
	q := c.QueryParams()
	if q.Get("requestType") != "WADO" {
		return echo.NewHTTPError(http.StatusBadRequest, "requestType=WADO is required")
	}
	uids := map[string]string{}
	for _, k := range []string{"studyUID", "seriesUID", "objectUID"} {
		v := q.Get(k)
		if v == "" {
			return echo.NewHTTPError(http.StatusBadRequest, k+" is required")
		}
		if !dcm.ValidUID(v) {
			return echo.NewHTTPError(http.StatusBadRequest, k+" is not a valid UID")
		}
		uids[k] = v
	}
	if strings.EqualFold(q.Get("anonymize"), "yes") {
		return echo.NewHTTPError(http.StatusNotImplemented, "anonymize=yes is not supported")
	}
	ct := q.Get("contentType")
	explicit := ct != ""
	if ct == "" {
		ct = "image/jpeg"
	}
	media := ""
	for _, t := range strings.Split(ct, ",") {
		t = strings.ToLower(strings.TrimSpace(strings.SplitN(t, ";", 2)[0]))
		switch t {
		case "application/dicom", "*/*":
			media = "application/dicom"
		case "image/jpeg", "image/*":
			media = "image/jpeg"
		case "image/png", "image/gif":
			media = t
		}
		if media != "" {
			break
		}
	}
	if media == "" {
		return echo.NewHTTPError(http.StatusNotAcceptable, "contentType must be application/dicom, image/jpeg, image/png or image/gif")
	}
	if media != "application/dicom" {
		return s.wadoURIRendered(c, uids, media, explicit)
	}
	if fr := q.Get("frameNumber"); fr != "" {
		return echo.NewHTTPError(http.StatusBadRequest, "frameNumber applies to rendered content types only")
	}
	in, err := s.Index.Instance(c.Request().Context(), uids["objectUID"])
	if errors.Is(err, index.ErrNotFound) || (err == nil && (in.StudyInstanceUID != uids["studyUID"] || in.SeriesInstanceUID != uids["seriesUID"])) {
		return echo.NewHTTPError(http.StatusNotFound, "no such object")
	}
	if err != nil {
		return err
	}
	ts, fallback, ok := outputSyntax(q.Get("transferSyntax"), in.TransferSyntaxUID)
	if !ok {
		return echo.NewHTTPError(http.StatusNotAcceptable, "the object is stored in transfer syntax "+in.TransferSyntaxUID+" and cannot be sent in "+q.Get("transferSyntax"))
	}
	conv, err := s.prepare(c.Request().Context(), in, ts, fallback)
	if errors.Is(err, transcode.ErrNoConversion) {
		return notAcceptable(err, in.TransferSyntaxUID, ts)
	}
	if err != nil {
		return err
	}
	defer conv.Close()
	w := c.Response()
	w.Header().Set("Content-Type", "application/dicom")
	if conv.Length >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(conv.Length, 10))
	}
	w.WriteHeader(http.StatusOK)
	b := newBody(w, conv.Length >= 0)
	defer b.release()
	if s.sendConverted(b, nil, in, conv) != nil {
		b.abort()
	}
	return nil
}

// wadoURIRendered answers WADO-URI for image content types (PS3.18 9.1.2.1): rows and
// columns are maxima (aspect kept), windowCenter/windowWidth a LINEAR window, frameNumber
// the frame (1-based, 400 when invalid), imageQuality the JPEG quality.
func (s *Service) wadoURIRendered(c echo.Context, uids map[string]string, media string, explicit bool) error {
	q := c.QueryParams()
	r := &renderRequest{media: media, explicit: explicit, quality: 90}
	posInt := func(name string, lo, hi int) (int, error) {
		v := q.Get(name)
		if v == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return 0, echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("%s must be an integer from %d to %d", name, lo, hi))
		}
		return n, nil
	}
	rows, err := posInt("rows", 1, 4096)
	if err != nil {
		return err
	}
	cols, err := posInt("columns", 1, 4096)
	if err != nil {
		return err
	}
	if rows > 0 || cols > 0 {
		r.vw, r.vh = cols, rows
		if r.vw == 0 {
			r.vw = 4096
		}
		if r.vh == 0 {
			r.vh = 4096
		}
	}
	if qv, err := posInt("imageQuality", 1, 100); err != nil {
		return err
	} else if qv > 0 {
		r.quality = qv
	}
	wc, ww := q.Get("windowCenter"), q.Get("windowWidth")
	if (wc == "") != (ww == "") {
		return echo.NewHTTPError(http.StatusBadRequest, "windowCenter and windowWidth go together")
	}
	if wc != "" {
		c0, err1 := strconv.ParseFloat(wc, 64)
		w0, err2 := strconv.ParseFloat(ww, 64)
		if err1 != nil || err2 != nil || w0 <= 0 || math.IsInf(c0, 0) || math.IsNaN(c0) || math.IsInf(w0, 0) || math.IsNaN(w0) {
			return echo.NewHTTPError(http.StatusBadRequest, "windowCenter and windowWidth must be numbers, windowWidth > 0")
		}
		r.window = &render.Window{Center: c0, Width: w0}
	}
	in, err := s.Index.Instance(c.Request().Context(), uids["objectUID"])
	if errors.Is(err, index.ErrNotFound) || (err == nil && (in.StudyInstanceUID != uids["studyUID"] || in.SeriesInstanceUID != uids["seriesUID"])) {
		return echo.NewHTTPError(http.StatusNotFound, "no such object")
	}
	if err != nil {
		return err
	}
	frame := 0
	if fr := q.Get("frameNumber"); fr != "" {
		n, err := strconv.Atoi(fr)
		if err != nil || n < 1 || n > max(in.NumberOfFrames, 1) {
			return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("frameNumber must be from 1 to %d", max(in.NumberOfFrames, 1)))
		}
		frame = n - 1
	}
	return s.renderedOrPlaceholder(c, in, frame, r, false)
}
