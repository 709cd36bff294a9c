package dicomweb

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/httpkit/auth"
	"github.com/lumenpacs/lumen/httpkit/httplimit"
	"github.com/lumenpacs/lumen/service/ingest"
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
	case errors.Is(err, ingest.ErrRejected):
		return reasonProcessingFailure, false // IHE IOCM: rejected, not accepted again
	case errors.Is(err, ingest.ErrUnavailable):
		return reasonOutOfResources, true
	}
	return reasonProcessingFailure, true
}

// stowReadBuffer is the read buffer under the multipart reader of a STOW-RS body.
const stowReadBuffer = 256 << 10

// maxWarnings caps the per-part Warning headers of one STOW-RS response.
const maxWarnings = 20

// stow implements STOW-RS (PS3.18 10.5): a multipart/related body of application/dicom
// parts, each streamed into the ingest pipeline as it arrives. A body over
// MaxUploadBytes or with more than MaxSTOWParts parts is not read further: the answer
// is 413 Payload Too Large when nothing was stored, else 202 Accepted with what was
// stored and a Warning naming the limit. At most MaxFailures FailedSOPSequence items
// and maxWarnings per-part Warnings are kept; the rest are counted. A part accepted
// with a warning (ingest.Result.Warnings: kept in quarantine because its SOP Instance
// UID is stored with other content, or zero padding after its data set) is listed in
// ReferencedSOPSequence as stored, with a Warning header saying so, and the answer is
// 202 Accepted (PS3.18 10.5.3: stored, with warnings). Such parts carry no
// WarningReason (0008,1196): none of its codes (B000 coercion, B006 elements
// discarded, B007 SOP class mismatch) says what happened.
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
	// mime/multipart reads through a 4 KiB buffer of its own: under it, a larger one
	// turns the body's many small reads into few large ones (system calls, TLS records).
	mr := multipart.NewReader(bufio.NewReaderSize(body, stowReadBuffer), boundary)
	root := s.root(c)

	maxParts, maxFails := orDefault(s.MaxSTOWParts, DefaultMaxSTOWParts), orDefault(s.MaxFailures, DefaultMaxFailures)
	resp := &dcm.Dataset{}
	var refs, fails []*dcm.Dataset
	failCount := 0 // fails holds the first maxFails of them
	fail := func(it *dcm.Dataset) {
		if failCount++; failCount <= maxFails {
			fails = append(fails, it)
		}
	}
	var warnings []string
	moreWarnings := 0 // beyond maxWarnings: counted, not kept
	warn := func(w string) {
		if len(warnings) < maxWarnings {
			warnings = append(warnings, w)
		} else {
			moreWarnings++
		}
	}
	studies := map[string]bool{}
	serverFailures := 0
	warned := 0 // parts stored with a warning (kept in quarantine, padding): 202
	src := ingest.Source{Via: "stow", StudyInstanceUID: study, Remote: c.RealIP()}
	if p, ok := auth.FromContext(req.Context()); ok {
		src.Account = p.Subject
	}
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
		if n > maxParts {
			bodyErr = echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("this server takes at most %d parts in one request (dicomweb.max_stow_parts); the parts after part %d were not read", maxParts, maxParts))
			break
		}
		if ct := part.Header.Get("Content-Type"); ct != "" {
			if pt, _, err := mime.ParseMediaType(ct); err != nil || pt != "application/dicom" {
				fail(failedItem("", "", reasonCannotUnderstand))
				warn(fmt.Sprintf("part %d: media type %q is not application/dicom", n, ct))
				continue
			}
		}
		res, err := s.Ingest.IngestFile(req.Context(), part, -1, src)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) || errors.Is(err, httplimit.ErrUploadTooSlow) || errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ingest.ErrInvalid) {
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
			fail(failedItem(class, inst, code))
			warn(fmt.Sprintf("part %d: %s", n, reason))
			continue
		}
		studies[res.StudyInstanceUID] = true
		if len(res.Warnings) > 0 {
			warned++
			for _, w := range res.Warnings {
				warn(fmt.Sprintf("part %d: %s", n, w))
			}
		}
		it := &dcm.Dataset{}
		it.Set(dcm.NewString(dcm.TagReferencedSOPClassUID, "UI", res.SOPClassUID))
		it.Set(dcm.NewString(dcm.TagReferencedSOPInstanceUID, "UI", res.SOPInstanceUID))
		it.Set(dcm.NewString(dcm.TagRetrieveURL, "UR", root+"/studies/"+res.StudyInstanceUID+"/series/"+res.SeriesInstanceUID+"/instances/"+res.SOPInstanceUID))
		refs = append(refs, it)
	}
	if moreWarnings > 0 {
		warnings = append(warnings, fmt.Sprintf("%d more warnings about failed or accepted parts are not listed", moreWarnings))
	}
	if failCount > len(fails) {
		warnings = append(warnings, fmt.Sprintf("%d more failed parts are not listed in FailedSOPSequence, which holds at most %d (dicomweb.max_failures)", failCount-len(fails), maxFails))
	}
	if bodyErr != nil && len(refs) == 0 {
		for _, w := range warnings {
			addWarning(c, w)
		}
		return bodyErr
	}
	if bodyErr == nil && len(refs) == 0 && failCount == 0 {
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
	case len(refs) == 0 && serverFailures == failCount:
		status = http.StatusServiceUnavailable
	case len(refs) == 0:
		status = http.StatusConflict
	case failCount > 0 || bodyErr != nil || warned > 0:
		status = http.StatusAccepted
	}
	for _, w := range warnings {
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
	if errors.Is(err, httplimit.ErrUploadTooSlow) {
		return echo.NewHTTPError(http.StatusRequestTimeout, fmt.Sprintf("the body arrived too slowly (in part %d; http.min_upload_rate); later parts were not read", n))
	}
	return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("malformed multipart body at part %d: a boundary or part header is missing or the body ended before the closing boundary", n))
}
