package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/httpkit/auth"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/service/audit"
)

// Route patterns of the patient identity API, as echo (and so the audit trail) names
// them. Patients are named in the JSON body ({"id", "issuer"}), never in the path: a
// Patient ID may hold '/' and any other character of its VR (LO).
const (
	RoutePatientUpdate  = "/api/v1/patients/update"      // POST: create a record or update its demographics
	RoutePatientMerge   = "/api/v1/patients/merge"       // POST: merge one record into another
	RoutePatientUnmerge = "/api/v1/patients/unmerge"     // POST: undo a merge
	RouteStudyMove      = "/api/v1/patients/move-study"  // POST: file a study under another record
	RouteSeriesMove     = "/api/v1/patients/move-series" // POST: move a series into another study
	RoutePatientEvents  = "/api/v1/patients/events"      // GET: the patient events, paged by after
)

// Limits of the identity API.
const (
	// MaxReason is the longest reason accepted, in characters.
	MaxReason = 1024
	// DefaultEventsLimit is the number of events a page holds when the request names
	// no limit; at most MaxEventsLimit may be asked for.
	DefaultEventsLimit = 100
	MaxEventsLimit     = 1000
	maxIdentityBody    = 1 << 16
)

// Identity serves the patient identity API: demographic updates, merges and their
// undo, and moves of a study or series to another patient (wrong-patient corrections),
// each with a reason that is recorded with the patient event and in the audit trail;
// and the patient events for administrators. Set Index; the zero Logger is
// slog.Default().
type Identity struct {
	// Index holds the patient records.
	Index index.Identity
	// Logger receives operational messages (no patient data above Debug).
	Logger *slog.Logger
}

// Register adds the routes to e. The caller's middleware authenticates, authorizes
// (admin role) and audits them.
func (h *Identity) Register(e *echo.Echo) {
	e.POST(RoutePatientUpdate, h.update)
	e.POST(RoutePatientMerge, h.merge)
	e.POST(RoutePatientUnmerge, h.unmerge)
	e.POST(RouteStudyMove, h.moveStudy)
	e.POST(RouteSeriesMove, h.moveSeries)
	e.GET(RoutePatientEvents, h.events)
}

func (h *Identity) log() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}

// PatientRef names a patient record: PatientID (0010,0020) and IssuerOfPatientID
// (0010,0021), compared exactly ("" is no issuer).
type PatientRef struct {
	ID     string `json:"id"`
	Issuer string `json:"issuer"`
}

func (p PatientRef) key() index.PatientKey { return index.PatientKey{ID: p.ID, Issuer: p.Issuer} }

func ref(k index.PatientKey) *PatientRef {
	if k == (index.PatientKey{}) {
		return nil
	}
	return &PatientRef{ID: k.ID, Issuer: k.Issuer}
}

// UpdateRequest is the body of POST /api/v1/patients/update. A field left out (or
// null) is kept, "" deletes the value, any other value replaces it; at least one of
// name, birthDate and sex must be given. An unknown patient is created.
type UpdateRequest struct {
	Patient PatientRef `json:"patient"`
	// Name is PatientName in DICOM PN form (Family^Given^Middle^Prefix^Suffix, up to
	// three '='-separated groups of at most 64 characters).
	Name *string `json:"name"`
	// BirthDate is PatientBirthDate, YYYYMMDD.
	BirthDate *string `json:"birthDate"`
	// Sex is PatientSex: M, F or O.
	Sex    *string `json:"sex"`
	Reason string  `json:"reason"`
}

// MergeRequest is the body of POST /api/v1/patients/merge: merged is merged into
// survivor (its studies are filed under survivor; its key is not used any more).
type MergeRequest struct {
	Survivor PatientRef `json:"survivor"`
	Merged   PatientRef `json:"merged"`
	Reason   string     `json:"reason"`
}

// UnmergeRequest is the body of POST /api/v1/patients/unmerge: the merge of merged
// is undone.
type UnmergeRequest struct {
	Merged PatientRef `json:"merged"`
	Reason string     `json:"reason"`
}

// MoveStudyRequest is the body of POST /api/v1/patients/move-study.
type MoveStudyRequest struct {
	StudyInstanceUID string     `json:"studyInstanceUID"`
	To               PatientRef `json:"to"`
	Reason           string     `json:"reason"`
}

// MoveSeriesRequest is the body of POST /api/v1/patients/move-series: the series goes
// into the existing study toStudyInstanceUID.
type MoveSeriesRequest struct {
	SeriesInstanceUID  string `json:"seriesInstanceUID"`
	ToStudyInstanceUID string `json:"toStudyInstanceUID"`
	Reason             string `json:"reason"`
}

// IdentityAnswer is the JSON answer of an identity action that was applied.
type IdentityAnswer struct {
	// Action is "update", "merge", "unmerge", "move-study" or "move-series".
	Action string `json:"action"`
	// Created reports that an update created the record.
	Created bool `json:"created,omitempty"`
	// Patient is the record updated, the survivor of a merge, the record a merge was
	// undone from, or the record a study was moved to; Other the merged record.
	Patient *PatientRef `json:"patient,omitempty"`
	Other   *PatientRef `json:"other,omitempty"`
	// StudyInstanceUID is the study moved, or the study a series was moved into.
	StudyInstanceUID  string `json:"studyInstanceUID,omitempty"`
	SeriesInstanceUID string `json:"seriesInstanceUID,omitempty"`
}

// Event is the JSON form of a patient event (index.PatientEvent).
type Event struct {
	ID        int64       `json:"id"`
	At        time.Time   `json:"at"`
	Kind      string      `json:"kind"`
	Patient   *PatientRef `json:"patient,omitempty"`
	Other     *PatientRef `json:"other,omitempty"`
	Fields    []string    `json:"fields,omitempty"`
	Study     string      `json:"studyInstanceUID,omitempty"`
	FromStudy string      `json:"fromStudyInstanceUID,omitempty"`
	Series    string      `json:"seriesInstanceUID,omitempty"`
	Instances []string    `json:"sopInstanceUIDs,omitempty"`
	Reason    string      `json:"reason,omitempty"`
	Source    string      `json:"source"`
	Actor     string      `json:"actor"`
}

// decode reads a JSON body into v: unknown fields and trailing data are refused, so
// that a misspelt field is not silently ignored.
func decode(c echo.Context, v any, shape string) error {
	return decodeMax(c, v, shape, maxIdentityBody)
}

// decodeMax is decode for bodies of at most max bytes.
func decodeMax(c echo.Context, v any, shape string, max int64) error {
	dec := json.NewDecoder(io.LimitReader(c.Request().Body, max))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "the body must be JSON: "+shape+" ("+jsonProblem(err)+")")
	}
	if dec.More() {
		return echo.NewHTTPError(http.StatusBadRequest, "the body must be one JSON object: "+shape)
	}
	return nil
}

// jsonProblem says what is wrong with a body, without echoing its values.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("%s must be a %s", te.Field, te.Type)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "empty or cut short"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "not JSON"
}

// badChars reports a character the DICOM VRs of names and identifiers (LO, PN) do not
// allow: a control character or a backslash (the value delimiter).
func badChars(s string) bool {
	return !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r == '\\' || unicode.IsControl(r) })
}

// checkPatient checks a patient reference named what: ID and issuer are LO (at most 64
// characters); the ID must not be empty.
func checkPatient(p *PatientRef, what string) error {
	p.ID, p.Issuer = strings.TrimSpace(p.ID), strings.TrimSpace(p.Issuer)
	switch {
	case p.ID == "":
		return echo.NewHTTPError(http.StatusBadRequest, what+".id (PatientID) is required")
	case utf8.RuneCountInString(p.ID) > 64 || badChars(p.ID):
		return echo.NewHTTPError(http.StatusBadRequest, what+".id (PatientID, LO) must be at most 64 characters, without backslash or control characters")
	case utf8.RuneCountInString(p.Issuer) > 64 || badChars(p.Issuer):
		return echo.NewHTTPError(http.StatusBadRequest, what+".issuer (IssuerOfPatientID, LO) must be at most 64 characters, without backslash or control characters")
	}
	return nil
}

// checkReason checks the required reason.
func checkReason(r *string) error {
	*r = strings.TrimSpace(*r)
	switch {
	case *r == "":
		return echo.NewHTTPError(http.StatusBadRequest, "reason is required: say why the change is made (it is recorded in the audit trail)")
	case utf8.RuneCountInString(*r) > MaxReason || badChars(strings.ReplaceAll(*r, `\`, "/")):
		return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("reason must be one line of at most %d characters", MaxReason))
	}
	return nil
}

func checkUID(uid, what string) error {
	if !dcm.ValidUID(uid) {
		return echo.NewHTTPError(http.StatusBadRequest, what+" must be a UID (digits and dots, at most 64 characters)")
	}
	return nil
}

// checkName checks a PN value: at most three component groups of at most five
// components, each group at most 64 characters.
func checkName(s string) error {
	groups := strings.Split(s, "=")
	ok := len(groups) <= 3 && !badChars(s)
	for _, g := range groups {
		if utf8.RuneCountInString(g) > 64 || strings.Count(g, "^") > 4 {
			ok = false
		}
	}
	if !ok {
		return echo.NewHTTPError(http.StatusBadRequest, "name must be a DICOM PN: up to 3 '='-separated groups of up to 5 '^'-separated components, at most 64 characters each group, no backslash or control characters")
	}
	return nil
}

// change returns the index.Change of an admin request.
func change(c echo.Context, reason string) index.Change {
	ch := index.Change{Source: "admin", Actor: "anonymous", Reason: reason}
	if p, ok := auth.FromContext(c.Request().Context()); ok {
		ch.Actor = p.Subject
	}
	return ch
}

// auditAs tells the audit middleware the patient a request acts on, and puts what
// else it names (detail: "key=value" pairs) and the reason in the record's Detail.
func auditAs(c echo.Context, p *PatientRef, study, detail, reason string) {
	if p != nil {
		c.Set(audit.PatientKey, p.key())
	}
	if study != "" {
		c.Set(audit.StudyKey, study)
	}
	d := strings.TrimSpace(detail + " reason=" + strconv.Quote(reason))
	c.Set(audit.DetailKey, d)
}

// keyText is a patient key in the audit detail: ID^^^issuer (the CX form PS3.15 uses).
func keyText(p PatientRef) string {
	if p.Issuer == "" {
		return strconv.Quote(p.ID)
	}
	return strconv.Quote(p.ID + "^^^" + p.Issuer)
}

// identityError maps an index error to an HTTP answer.
func (h *Identity) identityError(c echo.Context, err error) error {
	msg := err.Error()
	for _, s := range []error{index.ErrNotFound, index.ErrMerged, index.ErrConflict} {
		msg = strings.TrimSuffix(msg, ": "+s.Error())
	}
	for strings.HasPrefix(msg, "index: ") {
		msg = strings.TrimPrefix(msg, "index: ")
	}
	switch {
	case errors.Is(err, index.ErrNotFound):
		return echo.NewHTTPError(http.StatusNotFound, msg+": not found")
	case errors.Is(err, index.ErrMerged):
		return echo.NewHTTPError(http.StatusConflict, msg+": the patient record was merged into another one; use the surviving record")
	case errors.Is(err, index.ErrConflict):
		return echo.NewHTTPError(http.StatusConflict, msg)
	case errors.Is(err, context.Canceled):
		return err
	}
	h.log().Warn("admin: identity request failed", "path", c.Path(), "err", err)
	return echo.NewHTTPError(http.StatusServiceUnavailable, "the archive could not answer; try again")
}

// update answers POST /api/v1/patients/update: 201 with the answer when the record was
// created, 200 when it was updated.
func (h *Identity) update(c echo.Context) error {
	var req UpdateRequest
	if err := decode(c, &req, `{"patient": {"id", "issuer"}, "name", "birthDate", "sex", "reason"}`); err != nil {
		return err
	}
	if err := checkPatient(&req.Patient, "patient"); err != nil {
		return err
	}
	auditAs(c, &req.Patient, "", "", req.Reason)
	if err := checkReason(&req.Reason); err != nil {
		return err
	}
	var fields []string
	d := index.Demographics{Name: req.Name, BirthDate: req.BirthDate, Sex: req.Sex}
	if d.Name != nil {
		*d.Name = strings.TrimSpace(*d.Name)
		if err := checkName(*d.Name); err != nil {
			return err
		}
		fields = append(fields, "name")
	}
	if d.BirthDate != nil {
		v := strings.TrimSpace(*d.BirthDate)
		if _, err := time.Parse("20060102", v); v != "" && (len(v) != 8 || err != nil) {
			return echo.NewHTTPError(http.StatusBadRequest, "birthDate must be a date YYYYMMDD (DICOM DA), or \"\" to delete it")
		}
		d.BirthDate = &v
		fields = append(fields, "birthDate")
	}
	if d.Sex != nil {
		v := strings.TrimSpace(*d.Sex)
		switch v {
		case "", "M", "F", "O":
		default:
			return echo.NewHTTPError(http.StatusBadRequest, `sex must be M, F or O (DICOM PatientSex), or "" to delete it`)
		}
		d.Sex = &v
		fields = append(fields, "sex")
	}
	if len(fields) == 0 {
		return echo.NewHTTPError(http.StatusBadRequest, "nothing to update: give name, birthDate or sex")
	}
	auditAs(c, &req.Patient, "", "fields="+strings.Join(fields, ","), req.Reason)
	created, err := h.Index.UpdatePatient(c.Request().Context(), req.Patient.key(), d, change(c, req.Reason))
	if err != nil {
		return h.identityError(c, err)
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	return c.JSON(code, IdentityAnswer{Action: "update", Created: created, Patient: &req.Patient})
}

// known checks that the record of p exists (404 otherwise), and returns whether it is
// merged away.
func (h *Identity) known(c echo.Context, p PatientRef, what string) (bool, error) {
	_, merged, err := h.Index.ResolvePatient(c.Request().Context(), p.key())
	if errors.Is(err, index.ErrNotFound) {
		return false, echo.NewHTTPError(http.StatusNotFound, what+" "+strconv.Quote(p.ID)+" is not a known patient record")
	}
	if err != nil {
		return false, h.identityError(c, err)
	}
	return merged, nil
}

// merge answers POST /api/v1/patients/merge. Both records must exist (an unknown one is
// 404, although HL7 treats those cases otherwise); a merge already done is answered 200.
func (h *Identity) merge(c echo.Context) error {
	var req MergeRequest
	if err := decode(c, &req, `{"survivor": {"id", "issuer"}, "merged": {"id", "issuer"}, "reason"}`); err != nil {
		return err
	}
	if err := checkPatient(&req.Survivor, "survivor"); err != nil {
		return err
	}
	if err := checkPatient(&req.Merged, "merged"); err != nil {
		return err
	}
	auditAs(c, &req.Survivor, "", "merged="+keyText(req.Merged), req.Reason)
	if err := checkReason(&req.Reason); err != nil {
		return err
	}
	if req.Survivor == req.Merged {
		return echo.NewHTTPError(http.StatusBadRequest, "survivor and merged name the same patient record")
	}
	if _, err := h.known(c, req.Merged, "merged"); err != nil {
		return err
	}
	if merged, err := h.known(c, req.Survivor, "survivor"); err != nil {
		return err
	} else if merged {
		return echo.NewHTTPError(http.StatusConflict, "the survivor record was merged into another one; merge into the surviving record")
	}
	if err := h.Index.MergePatients(c.Request().Context(), req.Survivor.key(), req.Merged.key(), change(c, req.Reason)); err != nil {
		return h.identityError(c, err)
	}
	return c.JSON(http.StatusOK, IdentityAnswer{Action: "merge", Patient: &req.Survivor, Other: &req.Merged})
}

// unmerge answers POST /api/v1/patients/unmerge.
func (h *Identity) unmerge(c echo.Context) error {
	var req UnmergeRequest
	if err := decode(c, &req, `{"merged": {"id", "issuer"}, "reason"}`); err != nil {
		return err
	}
	if err := checkPatient(&req.Merged, "merged"); err != nil {
		return err
	}
	auditAs(c, &req.Merged, "", "", req.Reason)
	if err := checkReason(&req.Reason); err != nil {
		return err
	}
	ctx := c.Request().Context()
	survivor, _, err := h.Index.ResolvePatient(ctx, req.Merged.key())
	if err != nil {
		return h.identityError(c, err)
	}
	if err := h.Index.UnmergePatient(ctx, req.Merged.key(), change(c, req.Reason)); err != nil {
		return h.identityError(c, err)
	}
	return c.JSON(http.StatusOK, IdentityAnswer{Action: "unmerge", Patient: ref(survivor), Other: &req.Merged})
}

// moveStudy answers POST /api/v1/patients/move-study.
func (h *Identity) moveStudy(c echo.Context) error {
	var req MoveStudyRequest
	if err := decode(c, &req, `{"studyInstanceUID", "to": {"id", "issuer"}, "reason"}`); err != nil {
		return err
	}
	if err := checkUID(req.StudyInstanceUID, "studyInstanceUID"); err != nil {
		return err
	}
	if err := checkPatient(&req.To, "to"); err != nil {
		return err
	}
	auditAs(c, &req.To, req.StudyInstanceUID, "", req.Reason)
	if err := checkReason(&req.Reason); err != nil {
		return err
	}
	if err := h.Index.MoveStudy(c.Request().Context(), req.StudyInstanceUID, req.To.key(), change(c, req.Reason)); err != nil {
		return h.identityError(c, err)
	}
	return c.JSON(http.StatusOK, IdentityAnswer{Action: "move-study", Patient: &req.To, StudyInstanceUID: req.StudyInstanceUID})
}

// moveSeries answers POST /api/v1/patients/move-series.
func (h *Identity) moveSeries(c echo.Context) error {
	var req MoveSeriesRequest
	if err := decode(c, &req, `{"seriesInstanceUID", "toStudyInstanceUID", "reason"}`); err != nil {
		return err
	}
	if err := checkUID(req.SeriesInstanceUID, "seriesInstanceUID"); err != nil {
		return err
	}
	if err := checkUID(req.ToStudyInstanceUID, "toStudyInstanceUID"); err != nil {
		return err
	}
	auditAs(c, nil, req.ToStudyInstanceUID, "series="+req.SeriesInstanceUID, req.Reason)
	if err := checkReason(&req.Reason); err != nil {
		return err
	}
	if err := h.Index.MoveSeries(c.Request().Context(), req.SeriesInstanceUID, req.ToStudyInstanceUID, change(c, req.Reason)); err != nil {
		return h.identityError(c, err)
	}
	return c.JSON(http.StatusOK, IdentityAnswer{Action: "move-series", StudyInstanceUID: req.ToStudyInstanceUID, SeriesInstanceUID: req.SeriesInstanceUID})
}

// events answers GET /api/v1/patients/events?after=&limit=: the events with an ID above
// after (default 0), oldest first; the next page is asked for with the last ID read.
func (h *Identity) events(c echo.Context) error {
	var after int64
	limit := DefaultEventsLimit
	if s := c.QueryParam("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return echo.NewHTTPError(http.StatusBadRequest, "after must be an event ID (a non-negative integer)")
		}
		after = n
	}
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxEventsLimit {
			return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("limit must be from 1 to %d", MaxEventsLimit))
		}
		limit = n
	}
	list, err := h.Index.PatientEvents(c.Request().Context(), after, limit)
	if err != nil {
		return h.identityError(c, err)
	}
	out := make([]Event, 0, len(list))
	for _, e := range list {
		out = append(out, Event{ID: e.ID, At: e.At.UTC(), Kind: e.Kind, Patient: ref(e.Patient), Other: ref(e.Other), Fields: e.Fields,
			Study: e.Study, FromStudy: e.FromStudy, Series: e.Series, Instances: e.Instances, Reason: e.Reason, Source: e.Source, Actor: e.Actor})
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, out)
}
