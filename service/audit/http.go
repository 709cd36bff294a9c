package audit

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/index"
)

// Keys of the echo context by which the surfaces tell the HTTP middleware about a request.
const (
	// StudyKey holds the UID of the one study a request stored instances of (STOW-RS).
	StudyKey = "lumen.audit.study"
	// SkipKey marks a request that is not audited one by one: refused by the
	// per-address limit before it was looked at (counted in lumen_http_refused_total).
	SkipKey = "lumen.audit.skip"
	// PatientKey holds the index.PatientKey a request acts on when neither its route nor
	// its query names it (the admin identity API names patients in the request body).
	PatientKey = "lumen.audit.patient"
	// DetailKey holds text the record's Detail gets after the route pattern: what an
	// administrative action named besides its study and patient, and the reason given.
	DetailKey = "lumen.audit.detail"
)

// HTTP is middleware writing one audit record per audited HTTP request, once it is
// answered: the actor (actor says who, and via how: "http" or "link"), the action
// (action maps the method and route pattern to it; "" is not audited), the study and
// patient the request names, the outcome, the remote address and the route. A request
// whose context holds SkipKey is not audited; one holding StudyKey names that study,
// PatientKey that patient, and DetailKey is added to the Detail.
func (x *Trail) HTTP(action func(method, route string) string, actor func(echo.Context) (actor, via string)) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			err := next(c)
			action := action(c.Request().Method, c.Path())
			if skip, _ := c.Get(SkipKey).(bool); action == "" || skip {
				return err
			}
			code := c.Response().Status
			if he, ok := err.(*echo.HTTPError); ok {
				code = he.Code
			} else if err != nil && !c.Response().Committed {
				code = http.StatusInternalServerError
			}
			outcome := "ok"
			if code >= 400 {
				outcome = strconv.Itoa(code)
			}
			r := index.AuditRecord{Action: action, Outcome: outcome, Remote: c.RealIP(), Detail: c.Path()}
			r.Actor, r.Via = actor(c)
			q := c.Request().URL.Query()
			stowed, _ := c.Get(StudyKey).(string)
			for _, v := range []string{c.Param("study"), stowed, q.Get("studyUID"), q.Get("StudyInstanceUID"), q.Get("0020000D")} {
				if v != "" {
					r.StudyInstanceUID = v
					break
				}
			}
			if id := c.Param("id"); strings.HasPrefix(c.Path(), "/fhir/ImagingStudy/") {
				r.StudyInstanceUID = id
			}
			if p := c.Param("patient"); p != "" {
				r.PatientID, r.IssuerOfPatientID = p, q.Get("issuer")
			} else if p := q.Get("PatientID") + q.Get("00100020"); p != "" {
				r.PatientID, r.IssuerOfPatientID = p, q.Get("IssuerOfPatientID")+q.Get("00100021")
			}
			if k, ok := c.Get(PatientKey).(index.PatientKey); ok && r.PatientID == "" {
				r.PatientID, r.IssuerOfPatientID = k.ID, k.Issuer
			}
			if d, _ := c.Get(DetailKey).(string); d != "" {
				r.Detail += " " + d
			}
			x.Record(c.Request().Context(), r)
			return err
		}
	}
}
