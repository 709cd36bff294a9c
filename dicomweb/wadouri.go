package dicomweb

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/archive/dcm"
	"github.com/lumenpacs/lumen/index"
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
	if ct == "" {
		ct = "image/jpeg"
	}
	wantDICOM, wantImage := false, false
	for _, t := range strings.Split(ct, ",") {
		t = strings.ToLower(strings.TrimSpace(strings.SplitN(t, ";", 2)[0]))
		switch {
		case t == "application/dicom" || t == "*/*":
			wantDICOM = true
		case strings.HasPrefix(t, "image/"):
			wantImage = true
		}
	}
	if !wantDICOM {
		if wantImage {
			return echo.NewHTTPError(http.StatusNotImplemented, "rendered WADO-URI (image/*) is not implemented yet; use contentType=application/dicom")
		}
		return echo.NewHTTPError(http.StatusNotAcceptable, "contentType must be application/dicom")
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
	_, transcode, ok := outputSyntax(q.Get("transferSyntax"), in.TransferSyntaxUID)
	if !ok {
		return echo.NewHTTPError(http.StatusNotAcceptable, "the object is stored in transfer syntax "+in.TransferSyntaxUID+" and cannot be sent in "+q.Get("transferSyntax"))
	}
	rc, _, err := s.Store.Get(c.Request().Context(), in.BlobKey)
	if err != nil {
		return err
	}
	defer rc.Close()
	w := c.Response()
	w.Header().Set("Content-Type", "application/dicom")
	if !transcode {
		w.Header().Set("Content-Length", strconv.FormatInt(in.Size, 10))
	}
	w.WriteHeader(http.StatusOK)
	if err := s.writeInstance(c.Request().Context(), w, in, rc, transcode); err != nil {
		abort()
	}
	return nil
}
