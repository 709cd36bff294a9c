package main

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/emr"
	"github.com/lumenpacs/lumen/httpkit/auth"
)

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
	case route == "/api/v1/patients/update":
		return "patient-update"
	case route == "/api/v1/patients/merge":
		return "patient-merge"
	case route == "/api/v1/patients/unmerge":
		return "patient-unmerge"
	case route == "/api/v1/patients/move-study":
		return "study-move"
	case route == "/api/v1/patients/move-series":
		return "series-move"
	case route == "/api/v1/patients/events":
		return "patient-events"
	case route == "/api/v1/rejections/restore":
		return "reject-restore"
	case route == "/api/v1/rejections/purge":
		return "reject-purge"
	case route == "/api/v1/rejections":
		if method == http.MethodPost {
			return "reject"
		}
		return "reject-read"
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

// httpActor says who made an HTTP request and how: the authenticated subject, the
// signed link the EMR guard admitted it on, or anonymous.
func httpActor(c echo.Context) (actor, via string) {
	if p, ok := auth.FromContext(c.Request().Context()); ok {
		return p.Subject, "http"
	}
	if id := emr.LinkTokenID(c); id != "" {
		return "link:" + id, "link"
	}
	return "anonymous", "http"
}
