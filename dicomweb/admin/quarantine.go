package admin

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dicomweb"
	"github.com/lumenpacs/lumen/httpkit/auth"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/service/ingest"
)

// Route patterns of the quarantine API, as echo (and so the audit trail) names them.
const (
	RouteList    = "/api/v1/quarantine"             // GET: list records
	RouteRecord  = "/api/v1/quarantine/:id"         // GET: one record; DELETE: delete it
	RouteFile    = "/api/v1/quarantine/:id/file"    // GET: the stored bytes (application/dicom)
	RoutePromote = "/api/v1/quarantine/:id/promote" // POST: make it the served copy
)

// DefaultListLimit is the number of records a list answers when the request names no
// limit; at most index.MaxQuarantineList may be asked for.
const DefaultListLimit = 100

// Quarantine serves the quarantine API. Set Ingest; the zero Logger is slog.Default().
type Quarantine struct {
	// Ingest is the pipeline whose quarantine is served.
	Ingest *ingest.Pipeline
	// Logger receives operational messages (no patient data above Debug).
	Logger *slog.Logger
}

// Register adds the routes to e. The caller's middleware authenticates, authorizes
// (admin role) and audits them.
func (q *Quarantine) Register(e *echo.Echo) {
	e.GET(RouteList, q.list)
	e.GET(RouteRecord, q.get)
	e.GET(RouteFile, q.file)
	e.POST(RoutePromote, q.promote)
	e.DELETE(RouteRecord, q.delete)
}

func (q *Quarantine) log() *slog.Logger {
	if q.Logger != nil {
		return q.Logger
	}
	return slog.Default()
}

// Record is the JSON form of a quarantine record.
type Record struct {
	ID                int64     `json:"id"`
	ReceivedAt        time.Time `json:"receivedAt"`
	SOPInstanceUID    string    `json:"sopInstanceUID"`
	SOPClassUID       string    `json:"sopClassUID"`
	StudyInstanceUID  string    `json:"studyInstanceUID"`
	SeriesInstanceUID string    `json:"seriesInstanceUID"`
	PatientID         string    `json:"patientID"`
	IssuerOfPatientID string    `json:"issuerOfPatientID"`
	TransferSyntaxUID string    `json:"transferSyntaxUID"`
	// CallingAE, Via, Account and Remote say who sent the copy, as far as known.
	CallingAE string `json:"callingAE"`
	Via       string `json:"via"`
	Account   string `json:"account"`
	Remote    string `json:"remote"`
	// Reason says why the copy is in quarantine.
	Reason  string `json:"reason"`
	BlobKey string `json:"blobKey"`
	Size    int64  `json:"size"`
	// Digest is the digest of the copy's bytes: "b3:" and a BLAKE3-256 in hex, or a
	// SHA-256 in hex without a prefix for records written before BLAKE3 replaced it.
	Digest        string `json:"digest"`
	ContentDigest string `json:"contentDigest"`
	// File is the path of the stored bytes (GET).
	File string `json:"file"`
}

func record(r *index.QuarantineRecord) *Record {
	if r == nil {
		return nil
	}
	return &Record{ID: r.ID, ReceivedAt: r.ReceivedAt.UTC(), SOPInstanceUID: r.SOPInstanceUID, SOPClassUID: r.SOPClassUID,
		StudyInstanceUID: r.StudyInstanceUID, SeriesInstanceUID: r.SeriesInstanceUID, PatientID: r.PatientID, IssuerOfPatientID: r.IssuerOfPatientID,
		TransferSyntaxUID: r.TransferSyntaxUID, CallingAE: r.SourceAE, Via: r.Via, Account: r.Account, Remote: r.Remote, Reason: r.Reason,
		BlobKey: r.BlobKey, Size: r.Size, Digest: r.Digest, ContentDigest: r.ContentDigest, File: fmt.Sprintf("/api/v1/quarantine/%d/file", r.ID)}
}

// PromoteAnswer is the JSON answer of a promotion.
type PromoteAnswer struct {
	// Promoted is the record of the copy now served (no longer in quarantine).
	Promoted *Record `json:"promoted"`
	// Demoted is the new record of the copy served until then, or null.
	Demoted *Record `json:"demoted"`
}

// httpError maps an ingest error to an HTTP answer.
func (q *Quarantine) httpError(c echo.Context, err error) error {
	reason := err.Error()
	var ie *ingest.Error
	if errors.As(err, &ie) {
		reason = ie.Reason
	}
	switch {
	case errors.Is(err, ingest.ErrNotFound):
		return echo.NewHTTPError(http.StatusNotFound, reason)
	case errors.Is(err, ingest.ErrNotAuthorized):
		return echo.NewHTTPError(http.StatusForbidden, reason)
	case errors.Is(err, ingest.ErrConflict):
		return echo.NewHTTPError(http.StatusConflict, reason)
	case errors.Is(err, ingest.ErrInvalid), errors.Is(err, ingest.ErrMismatch):
		return echo.NewHTTPError(http.StatusUnprocessableEntity, "the quarantined copy cannot be indexed: "+reason)
	}
	q.log().Warn("admin: quarantine request failed", "path", c.Path(), "err", err)
	return echo.NewHTTPError(http.StatusServiceUnavailable, "the archive could not answer; try again")
}

// id parses the :id parameter.
func id(c echo.Context) (int64, error) {
	n, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || n <= 0 {
		return 0, echo.NewHTTPError(http.StatusBadRequest, "the quarantine record ID must be a positive integer")
	}
	return n, nil
}

// by names the caller of an action.
func by(c echo.Context) ingest.Source {
	s := ingest.Source{Remote: c.RealIP()}
	if p, ok := auth.FromContext(c.Request().Context()); ok {
		s.Account = p.Subject
	}
	return s
}

// list answers GET /api/v1/quarantine: records newest first, filtered by sop and study,
// paged with before (the smallest ID of the previous page) and limit.
func (q *Quarantine) list(c echo.Context) error {
	query := index.QuarantineQuery{SOPInstanceUID: c.QueryParam("sop"), StudyInstanceUID: c.QueryParam("study"), Limit: DefaultListLimit}
	if s := c.QueryParam("before"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return echo.NewHTTPError(http.StatusBadRequest, "before must be a positive record ID")
		}
		query.Before = n
	}
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > index.MaxQuarantineList {
			return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("limit must be from 1 to %d", index.MaxQuarantineList))
		}
		query.Limit = n
	}
	list, err := q.Ingest.Quarantined(c.Request().Context(), query)
	if err != nil {
		return q.httpError(c, err)
	}
	out := make([]*Record, 0, len(list))
	for i := range list {
		out = append(out, record(&list[i]))
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, out)
}

// get answers GET /api/v1/quarantine/{id}.
func (q *Quarantine) get(c echo.Context) error {
	n, err := id(c)
	if err != nil {
		return err
	}
	rec, err := q.Ingest.QuarantinedByID(c.Request().Context(), n)
	if err != nil {
		return q.httpError(c, err)
	}
	c.Set(dicomweb.AuditStudyKey, rec.StudyInstanceUID)
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, record(rec))
}

// file answers GET /api/v1/quarantine/{id}/file: the stored bytes, as received.
func (q *Quarantine) file(c echo.Context) error {
	n, err := id(c)
	if err != nil {
		return err
	}
	rc, rec, info, err := q.Ingest.OpenQuarantined(c.Request().Context(), n)
	if err != nil {
		return q.httpError(c, err)
	}
	defer rc.Close()
	c.Set(dicomweb.AuditStudyKey, rec.StudyInstanceUID)
	h := c.Response().Header()
	h.Set("Content-Type", "application/dicom")
	h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="quarantine-%d.dcm"`, rec.ID))
	h.Set("Cache-Control", "no-store")
	c.Response().WriteHeader(http.StatusOK)
	if c.Request().Method == http.MethodHead {
		return nil
	}
	if _, err := io.Copy(c.Response(), rc); err != nil {
		q.log().Warn("admin: quarantined copy not sent whole", "id", rec.ID, "err", err)
	}
	return nil
}

// promote answers POST /api/v1/quarantine/{id}/promote.
func (q *Quarantine) promote(c echo.Context) error {
	n, err := id(c)
	if err != nil {
		return err
	}
	res, err := q.Ingest.Promote(c.Request().Context(), n, by(c))
	if err != nil {
		return q.httpError(c, err)
	}
	c.Set(dicomweb.AuditStudyKey, res.Instance.StudyInstanceUID)
	return c.JSON(http.StatusOK, PromoteAnswer{Promoted: record(res.Promoted), Demoted: record(res.Demoted)})
}

// delete answers DELETE /api/v1/quarantine/{id} with the deleted record.
func (q *Quarantine) delete(c echo.Context) error {
	n, err := id(c)
	if err != nil {
		return err
	}
	rec, err := q.Ingest.DeleteQuarantined(c.Request().Context(), n, by(c))
	if err != nil {
		return q.httpError(c, err)
	}
	c.Set(dicomweb.AuditStudyKey, rec.StudyInstanceUID)
	return c.JSON(http.StatusOK, record(rec))
}
