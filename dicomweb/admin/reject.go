package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dicomweb"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/service/audit"
	"github.com/lumenpacs/lumen/service/ingest"
)

// Route patterns of the rejection API (IHE IOCM), as echo (and so the audit trail)
// names them.
const (
	RouteRejections = "/api/v1/rejections"         // GET: list; POST: reject (writes and stores a rejection note)
	RouteRestore    = "/api/v1/rejections/restore" // POST: end rejections
	RoutePurge      = "/api/v1/rejections/purge"   // POST: delete rejected instances for good
)

// maxRejectBody bounds the JSON body of a rejection request: room for
// ingest.MaxRejectionRefs SOP Instance UIDs.
const maxRejectBody = 1 << 20

// maxAuditReason bounds the reason words added to the audit record.
const maxAuditReason = 256

// Rejections serves the rejection API. Set Ingest; the zero Logger is slog.Default().
type Rejections struct {
	// Ingest is the pipeline whose index keeps the rejections; rejection notes are
	// stored through it.
	Ingest *ingest.Pipeline
	// Thumbnails, when set, drops the cached renderings of purged instances.
	Thumbnails interface {
		DropThumbnails(ctx context.Context, sopUID string)
	}
	// Logger receives operational messages (no patient data above Debug).
	Logger *slog.Logger
}

// Register adds the routes to e. The caller's middleware authenticates, authorizes
// (admin role) and audits them.
func (r *Rejections) Register(e *echo.Echo) {
	e.GET(RouteRejections, r.list)
	e.POST(RouteRejections, r.reject)
	e.POST(RouteRestore, r.restore)
	e.POST(RoutePurge, r.purge)
}

func (r *Rejections) log() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// RejectRequest is the JSON body of POST /api/v1/rejections.
type RejectRequest struct {
	// Study names the study; Series, when set, one series of it; SOPInstanceUIDs, when
	// set, the instances (of that series or study). Without them every instance of the
	// series or study is rejected (Key Object Selection documents excepted).
	Study           string   `json:"studyInstanceUID"`
	Series          string   `json:"seriesInstanceUID,omitempty"`
	SOPInstanceUIDs []string `json:"sopInstanceUIDs,omitempty"`
	// Code is the rejection code (PS3.16 CID 7010): 113001, 113037, 113038 or 113039.
	Code string `json:"code"`
	// Reason says why, in words (required): the note's Key Object Description, the
	// events' and the audit record's reason.
	Reason string `json:"reason"`
}

// ChangeRequest is the JSON body of POST /api/v1/rejections/restore and .../purge: the
// rejections named by SOP Instance UID and by rejection note, and why (required).
type ChangeRequest struct {
	SOPInstanceUIDs []string `json:"sopInstanceUIDs,omitempty"`
	Note            string   `json:"note,omitempty"`
	Reason          string   `json:"reason"`
}

// Rejected is the JSON form of a rejection.
type Rejected struct {
	ID                int64  `json:"id"`
	SOPInstanceUID    string `json:"sopInstanceUID"`
	SOPClassUID       string `json:"sopClassUID"`
	StudyInstanceUID  string `json:"studyInstanceUID"`
	SeriesInstanceUID string `json:"seriesInstanceUID"`
	PatientID         string `json:"patientID"`
	IssuerOfPatientID string `json:"issuerOfPatientID"`
	// Code is the rejection code and CodeMeaning its meaning; Note the rejection note's
	// SOP Instance UID.
	Code        string `json:"code"`
	CodeMeaning string `json:"codeMeaning"`
	Note        string `json:"note"`
	// Received is false for an instance rejected before it arrived (no stored object).
	Received   bool       `json:"received"`
	BlobKey    string     `json:"blobKey,omitempty"`
	Size       int64      `json:"size,omitempty"`
	ReceivedAt *time.Time `json:"receivedAt,omitempty"`
	RejectedAt time.Time  `json:"rejectedAt"`
	Source     string     `json:"source"`
	Actor      string     `json:"actor"`
}

func rejected(r *index.Rejection) Rejected {
	out := Rejected{ID: r.ID, SOPInstanceUID: r.SOPInstanceUID, SOPClassUID: r.SOPClassUID, StudyInstanceUID: r.StudyInstanceUID, SeriesInstanceUID: r.SeriesInstanceUID,
		PatientID: r.Patient.ID, IssuerOfPatientID: r.Patient.Issuer, Code: r.Reason, CodeMeaning: index.RejectionCodes[r.Reason], Note: r.NoteUID,
		Received: r.BlobKey != "", BlobKey: r.BlobKey, Size: r.Size, RejectedAt: r.RejectedAt.UTC(), Source: r.Source, Actor: r.Actor}
	if !r.ReceivedAt.IsZero() {
		t := r.ReceivedAt.UTC()
		out.ReceivedAt = &t
	}
	return out
}

func rejectedList(list []index.Rejection) []Rejected {
	out := make([]Rejected, 0, len(list))
	for i := range list {
		out = append(out, rejected(&list[i]))
	}
	return out
}

// RejectAnswer is the JSON answer of a rejection: the note Lumen wrote and stored, and
// the instances it rejected (those rejected already are not listed again).
type RejectAnswer struct {
	Note     string     `json:"note"`
	Series   string     `json:"noteSeriesInstanceUID"`
	Rejected []Rejected `json:"rejected"`
}

// httpError maps an ingest error to an HTTP answer.
func (r *Rejections) httpError(c echo.Context, err error) error {
	reason := err.Error()
	var ie *ingest.Error
	if errors.As(err, &ie) {
		reason = ie.Reason
	}
	switch {
	case errors.Is(err, ingest.ErrInvalid), errors.Is(err, ingest.ErrMismatch):
		return echo.NewHTTPError(http.StatusBadRequest, reason)
	case errors.Is(err, ingest.ErrNotFound):
		return echo.NewHTTPError(http.StatusNotFound, reason)
	case errors.Is(err, ingest.ErrNotAuthorized):
		return echo.NewHTTPError(http.StatusForbidden, reason)
	case errors.Is(err, ingest.ErrConflict), errors.Is(err, ingest.ErrDuplicate), errors.Is(err, ingest.ErrRejected):
		return echo.NewHTTPError(http.StatusConflict, reason)
	}
	r.log().Warn("admin: rejection request failed", "path", c.Path(), "err", err)
	return echo.NewHTTPError(http.StatusServiceUnavailable, "the archive could not answer; try again")
}

// decodeWithReason reads a JSON body into v (decode) and checks its reason
// (checkReason), which the audit record keeps with the route.
func decodeWithReason(c echo.Context, v any, shape string, reason *string) error {
	if err := decodeMax(c, v, shape, maxRejectBody); err != nil {
		return err
	}
	if err := checkReason(reason); err != nil {
		return err
	}
	why := *reason
	if len(why) > maxAuditReason {
		why = why[:maxAuditReason]
	}
	c.Set(audit.DetailKey, "reason: "+strconv.Quote(why))
	return nil
}

// list answers GET /api/v1/rejections: rejections newest first, filtered by study, note
// and sop, paged with before (the smallest ID of the previous page) and limit.
func (r *Rejections) list(c echo.Context) error {
	q := index.RejectedQuery{StudyInstanceUID: c.QueryParam("study"), NoteUID: c.QueryParam("note"), SOPInstanceUID: c.QueryParam("sop"), Limit: DefaultListLimit}
	if s := c.QueryParam("before"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return echo.NewHTTPError(http.StatusBadRequest, "before must be a positive rejection ID")
		}
		q.Before = n
	}
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > index.MaxRejectedList {
			return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("limit must be from 1 to %d", index.MaxRejectedList))
		}
		q.Limit = n
	}
	list, err := r.Ingest.Rejected(c.Request().Context(), q)
	if err != nil {
		return r.httpError(c, err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, rejectedList(list))
}

// reject answers POST /api/v1/rejections: Lumen writes a rejection note (a Key Object
// Selection document) and stores it through the ingest pipeline, as a received one.
func (r *Rejections) reject(c echo.Context) error {
	var req RejectRequest
	if err := decodeWithReason(c, &req, `{"studyInstanceUID", "seriesInstanceUID", "sopInstanceUIDs", "code", "reason"}`, &req.Reason); err != nil {
		return err
	}
	if req.Study == "" {
		return echo.NewHTTPError(http.StatusBadRequest, "studyInstanceUID is required")
	}
	if index.RejectionCodes[req.Code] == "" {
		return echo.NewHTTPError(http.StatusBadRequest, "code must be a rejection code of PS3.16 CID 7010: 113001, 113037, 113038 or 113039")
	}
	c.Set(dicomweb.AuditStudyKey, req.Study)
	ctx := c.Request().Context()
	res, err := r.Ingest.Reject(ctx, ingest.RejectionRequest{
		StudyInstanceUID: req.Study, SeriesInstanceUID: req.Series, SOPInstanceUIDs: req.SOPInstanceUIDs,
		Reason: req.Code, Description: req.Reason,
	}, by(c))
	if err != nil {
		return r.httpError(c, err)
	}
	list, err := r.Ingest.Rejected(index.Unscoped(ctx), index.RejectedQuery{NoteUID: res.SOPInstanceUID})
	if err != nil {
		return r.httpError(c, err)
	}
	return c.JSON(http.StatusCreated, RejectAnswer{Note: res.SOPInstanceUID, Series: res.SeriesInstanceUID, Rejected: rejectedList(list)})
}

// restore answers POST /api/v1/rejections/restore with the rejections ended.
func (r *Rejections) restore(c echo.Context) error {
	var req ChangeRequest
	if err := decodeWithReason(c, &req, `{"sopInstanceUIDs", "note", "reason"}`, &req.Reason); err != nil {
		return err
	}
	if len(req.SOPInstanceUIDs) == 0 && req.Note == "" {
		return echo.NewHTTPError(http.StatusBadRequest, "name the rejections: sopInstanceUIDs, note, or both")
	}
	list, err := r.Ingest.Restore(c.Request().Context(), req.SOPInstanceUIDs, req.Note, req.Reason, by(c))
	if err != nil {
		return r.httpError(c, err)
	}
	setStudy(c, list)
	return c.JSON(http.StatusOK, rejectedList(list))
}

// purge answers POST /api/v1/rejections/purge with the rejections whose instances were
// deleted (rows, then blobs).
func (r *Rejections) purge(c echo.Context) error {
	var req ChangeRequest
	if err := decodeWithReason(c, &req, `{"sopInstanceUIDs", "note", "reason"}`, &req.Reason); err != nil {
		return err
	}
	if len(req.SOPInstanceUIDs) == 0 && req.Note == "" {
		return echo.NewHTTPError(http.StatusBadRequest, "name the rejections: sopInstanceUIDs, note, or both")
	}
	list, err := r.Ingest.Purge(c.Request().Context(), req.SOPInstanceUIDs, req.Note, req.Reason, by(c))
	if err != nil {
		return r.httpError(c, err)
	}
	if r.Thumbnails != nil {
		for _, rec := range list {
			r.Thumbnails.DropThumbnails(c.Request().Context(), rec.SOPInstanceUID)
		}
	}
	setStudy(c, list)
	return c.JSON(http.StatusOK, rejectedList(list))
}

// setStudy names the study of a change in the audit record when it concerns one study.
func setStudy(c echo.Context, list []index.Rejection) {
	if len(list) == 0 {
		return
	}
	for _, r := range list[1:] {
		if r.StudyInstanceUID != list[0].StudyInstanceUID {
			return
		}
	}
	c.Set(dicomweb.AuditStudyKey, list[0].StudyInstanceUID)
}
