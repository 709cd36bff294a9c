package admin

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/service/audit"
)

// Audit serves GET /api/v1/audit (admin): the audit records matching actor, action,
// study, patient, from, to (RFC 3339) and limit, newest first.
type Audit struct {
	Trail *audit.Trail
}

// Register adds the route to e.
func (a *Audit) Register(e *echo.Echo) { e.GET("/api/v1/audit", a.search) }

func (a *Audit) search(c echo.Context) error {
	x := a.Trail
	q := index.AuditQuery{Actor: c.QueryParam("actor"), Action: c.QueryParam("action"), StudyInstanceUID: c.QueryParam("study"), PatientID: c.QueryParam("patient")}
	for _, t := range []struct {
		name string
		v    *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if s := c.QueryParam(t.name); s != "" {
			v, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return echo.NewHTTPError(http.StatusBadRequest, t.name+" must be an RFC 3339 time")
			}
			*t.v = v
		}
	}
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return echo.NewHTTPError(http.StatusBadRequest, "limit must be from 1 to 1000")
		}
		q.Limit = n
	}
	list, err := x.Search(c.Request().Context(), q)
	if errors.Is(err, audit.ErrNoTrail) {
		return echo.NewHTTPError(http.StatusNotImplemented, "the index keeps no audit trail")
	}
	if err != nil {
		return err
	}
	if list == nil {
		list = []index.AuditRecord{}
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, list)
}
