package main

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dicomweb"
	"github.com/lumenpacs/lumen/emr"
	"github.com/lumenpacs/lumen/httpkit/auth"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/service/audit"
)

// auditSkipKey marks a request that is not audited one by one: refused by the
// per-address limit before it was looked at (counted in lumen_http_refused_total).
const auditSkipKey = "lumen.audit.skip"

// httpAction says which action an HTTP request is, from its route pattern and method
// ("": not audited: health, metrics, static files).
func httpAction(method, route string) string {
	switch {
	case route == "" || route == "/healthz" || route == "/readyz" || route == "/metrics" || strings.HasPrefix(route, "/viewer") || route == "/fhir/metadata":
		return ""
	case route == "/emr/v1/links":
		return "link-mint"
	case route == "/api/v1/send":
		return "send"
	case strings.HasPrefix(route, "/api/v1/audit"):
		return "audit-search"
	case strings.HasPrefix(route, "/api/v1/quarantine"):
		switch method {
		case http.MethodPost:
			return "quarantine-promote"
		case http.MethodDelete:
			return "quarantine-delete"
		}
		return "quarantine-read"
	case method == http.MethodDelete:
		return "delete"
	case method == http.MethodPost || method == http.MethodPut:
		return "store"
	case method == http.MethodOptions:
		return ""
	case strings.HasSuffix(route, "/studies") || strings.HasSuffix(route, "/series") || strings.HasSuffix(route, "/instances") ||
		route == "/fhir/ImagingStudy" || strings.HasSuffix(route, "/chart"):
		return "query"
	}
	return "retrieve"
}

// httpAudit is middleware writing one audit record per audited HTTP request, once it
// is answered: the actor (authenticated subject, signed link, or anonymous), the action,
// the study and patient it names, the outcome, the remote address and the route.
func httpAudit(x *audit.Trail) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			err := next(c)
			action := httpAction(c.Request().Method, c.Path())
			if skip, _ := c.Get(auditSkipKey).(bool); action == "" || skip {
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
			r := index.AuditRecord{Actor: "anonymous", Via: "http", Action: action, Outcome: outcome, Remote: c.RealIP(), Detail: c.Path()}
			if p, ok := auth.FromContext(c.Request().Context()); ok {
				r.Actor = p.Subject
			} else if id := emr.LinkTokenID(c); id != "" {
				r.Actor, r.Via = "link:"+id, "link"
			}
			q := c.Request().URL.Query()
			stowed, _ := c.Get(dicomweb.AuditStudyKey).(string)
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
			x.Record(c.Request().Context(), r)
			return err
		}
	}
}
