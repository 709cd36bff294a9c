package dicomweb

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/archive/dcm"
	"github.com/lumenpacs/lumen/archive/ingest"
)

// FailureReason values (PS3.18 Table 10.5.3-3 and the C-STORE statuses of PS3.4 B.2.3).
const (
	reasonProcessingFailure = 0x0110
	reasonDuplicate         = 0x0111 // PS3.7 C.5.8 "Duplicate SOP Instance"
	reasonNotAuthorized     = 0x0124 // PS3.7 C.5 "Refused: Not Authorized"
	reasonOutOfResources    = 0xA700
	reasonMismatch          = 0xA900
	reasonCannotUnderstand  = 0xC000
)

// failureReason maps an ingest error to a FailureReason; serverSide is true when the
// archive, not the instance, failed.
func failureReason(err error) (code uint16, serverSide bool) {
	switch {
	case errors.Is(err, ingest.ErrInvalid):
		return reasonCannotUnderstand, false
	case errors.Is(err, ingest.ErrMismatch):
		return reasonMismatch, false
	case errors.Is(err, ingest.ErrDuplicate):
		return reasonDuplicate, false
	case errors.Is(err, ingest.ErrConflict):
		return reasonProcessingFailure, false
	case errors.Is(err, ingest.ErrNotAuthorized):
		return reasonNotAuthorized, false
	case errors.Is(err, ingest.ErrUnavailable):
		return reasonOutOfResources, true
	}
	return reasonProcessingFailure, true
}

// maxWarnings caps the Warning headers of one STOW-RS response.
const maxWarnings = 20

// stow implements STOW-RS (PS3.18 10.5): a multipart/related body of application/dicom
// parts, each streamed into the ingest pipeline as it arrives.
func (s *Service) stow(c echo.Context) error {
	study, _, _, err := uidParams(c)
	if err != nil {
		return err
	}
	req := c.Request()
	mt, params, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/related" {
		return echo.NewHTTPError(http.StatusUnsupportedMediaType, `STOW-RS takes Content-Type: multipart/related; type="application/dicom"; boundary=...`)
	}
	if t := strings.ToLower(params["type"]); t != "" && t != "application/dicom" {
		return echo.NewHTTPError(http.StatusUnsupportedMediaType, "multipart/related type "+t+" is not supported; send application/dicom parts")
	}
	boundary := params["boundary"]
	if boundary == "" {
		return echo.NewHTTPError(http.StatusBadRequest, "the multipart/related Content-Type has no boundary parameter")
	}
	limit := s.MaxUploadBytes
	if limit <= 0 {
		limit = DefaultMaxUploadBytes
	}
	if req.ContentLength > limit {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("the body (%d bytes) exceeds the upload limit of %d bytes", req.ContentLength, limit))
	}
	body := http.MaxBytesReader(c.Response(), req.Body, limit)
	mr := multipart.NewReader(body, boundary)
	root := s.root(c)

	resp := &dcm.Dataset{}
	var refs, fails []*dcm.Dataset
	var warnings []string
	studies := map[string]bool{}
	serverFailures := 0
	var bodyErr *echo.HTTPError
	for n := 1; ; n++ {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			bodyErr = bodyError(err, n, limit)
			break
		}
		if ct := part.Header.Get("Content-Type"); ct != "" {
			if pt, _, err := mime.ParseMediaType(ct); err != nil || pt != "application/dicom" {
				fails = append(fails, failedItem("", "", reasonCannotUnderstand))
				warnings = append(warnings, fmt.Sprintf("part %d: media type %q is not application/dicom", n, ct))
				continue
			}
		}
		res, err := s.Ingest.IngestFile(req.Context(), part, -1, ingest.Source{Via: "stow", StudyInstanceUID: study})
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) || errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ingest.ErrInvalid) {
				bodyErr = bodyError(err, n, limit)
				break
			}
			code, server := failureReason(err)
			if server {
				serverFailures++
				s.log().Warn("dicomweb: stow: instance not stored", "part", n, "err", err)
			}
			var ie *ingest.Error
			class, inst, reason := "", "", "not stored"
			if errors.As(err, &ie) {
				class, inst, reason = ie.SOPClassUID, ie.SOPInstanceUID, ie.Reason
			}
			fails = append(fails, failedItem(class, inst, code))
			warnings = append(warnings, fmt.Sprintf("part %d: %s", n, reason))
			continue
		}
		studies[res.StudyInstanceUID] = true
		it := &dcm.Dataset{}
		it.Set(dcm.NewString(dcm.TagReferencedSOPClassUID, "UI", res.SOPClassUID))
		it.Set(dcm.NewString(dcm.TagReferencedSOPInstanceUID, "UI", res.SOPInstanceUID))
		it.Set(dcm.NewString(dcm.TagRetrieveURL, "UR", root+"/studies/"+res.StudyInstanceUID+"/series/"+res.SeriesInstanceUID+"/instances/"+res.SOPInstanceUID))
		refs = append(refs, it)
	}
	if bodyErr != nil && len(refs) == 0 {
		return bodyErr
	}
	if bodyErr == nil && len(refs) == 0 && len(fails) == 0 {
		return echo.NewHTTPError(http.StatusBadRequest, "the multipart body has no parts")
	}
	if bodyErr != nil {
		warnings = append(warnings, fmt.Sprint(bodyErr.Message))
	}
	switch {
	case study != "":
		resp.Set(dcm.NewString(dcm.TagRetrieveURL, "UR", root+"/studies/"+study))
	case len(studies) == 1:
		for st := range studies {
			resp.Set(dcm.NewString(dcm.TagRetrieveURL, "UR", root+"/studies/"+st))
			c.Set(AuditStudyKey, st)
		}
	}
	if len(fails) > 0 {
		resp.Set(dcm.NewSequence(dcm.TagFailedSOPSequence, fails...))
	}
	if len(refs) > 0 {
		resp.Set(dcm.NewSequence(dcm.TagReferencedSOPSequence, refs...))
	}
	status := http.StatusOK
	switch {
	case len(refs) == 0 && serverFailures == len(fails):
		status = http.StatusServiceUnavailable
	case len(refs) == 0:
		status = http.StatusConflict
	case len(fails) > 0 || bodyErr != nil:
		status = http.StatusAccepted
	}
	for i, w := range warnings {
		if i == maxWarnings {
			addWarning(c, fmt.Sprintf("%d more failures not listed", len(warnings)-i))
			break
		}
		addWarning(c, w)
	}
	js, _, err := resp.JSON(nil)
	if err != nil {
		return err
	}
	return c.Blob(status, "application/dicom+json", js)
}

func failedItem(class, inst string, reason uint16) *dcm.Dataset {
	it := &dcm.Dataset{}
	if class != "" {
		it.Set(dcm.NewString(dcm.TagReferencedSOPClassUID, "UI", class))
	}
	if inst != "" {
		it.Set(dcm.NewString(dcm.TagReferencedSOPInstanceUID, "UI", inst))
	}
	it.Set(dcm.NewUS(dcm.TagFailureReason, reason))
	return it
}

// bodyError describes a request body that ended wrongly at part n.
func bodyError(err error, n int, limit int64) *echo.HTTPError {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("the body exceeds the upload limit of %d bytes (in part %d); later parts were not read", limit, n))
	}
	return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("malformed multipart body at part %d: a boundary or part header is missing or the body ended before the closing boundary", n))
}
