package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dicomweb"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/emr"
	"github.com/lumenpacs/lumen/httpkit/auth"
	"github.com/lumenpacs/lumen/index"
)

// auditor writes the audit trail (index.Auditor) off the request path: records are
// queued and written by one goroutine in batches, one transaction each, so that audited
// requests (every QIDO, WADO and thumbnail) do not each wait for a durable write. A
// write that fails is logged, and the action it records is not undone. Searching
// flushes the queue first, and close writes what is left.
type auditor struct {
	a      index.Auditor
	syslog *syslogSender // nil: no export
	log    *slog.Logger
	queue  chan auditItem // nil: no audit table
	done   chan struct{}
	mu     sync.RWMutex // closed is set under the write lock; senders hold the read lock
	closed bool
}

// auditItem is a record to write, or (flushed set) a request to be told when every
// record queued before it is written.
type auditItem struct {
	r       index.AuditRecord
	flushed chan struct{}
}

func newAuditor(idx index.Index, log *slog.Logger) *auditor {
	x := &auditor{log: log}
	if a, ok := idx.(index.Auditor); ok {
		x.a, x.queue, x.done = a, make(chan auditItem, 4096), make(chan struct{})
		go x.run()
	}
	return x
}

// run writes queued records in batches of at most 500.
func (x *auditor) run() {
	defer close(x.done)
	for it := range x.queue {
		var batch []*index.AuditRecord
		var waiters []chan struct{}
		add := func(it auditItem) {
			if it.flushed != nil {
				waiters = append(waiters, it.flushed)
			} else {
				batch = append(batch, &it.r)
			}
		}
		add(it)
	more:
		for len(batch) < 500 {
			select {
			case it, ok := <-x.queue:
				if !ok {
					break more
				}
				add(it)
			default:
				break more
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := x.a.Audit(ctx, batch...); err != nil {
			x.log.Warn("audit: records not written", "records", len(batch), "err", err)
		}
		cancel()
		for _, w := range waiters {
			close(w)
		}
	}
}

func (x *auditor) record(_ context.Context, r index.AuditRecord) {
	if x == nil {
		return
	}
	boundAudit(&r)
	if r.At.IsZero() {
		r.At = time.Now()
	}
	if x.syslog != nil {
		x.syslog.enqueue(r)
	}
	x.send(auditItem{r: r}) // blocks only when 4,096 records wait: back-pressure, no loss
}

// send queues an item unless the auditor is closed (a request still running after a
// failed start-up, say): then the item is dropped.
func (x *auditor) send(it auditItem) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.queue == nil || x.closed {
		return false
	}
	x.queue <- it
	return true
}

// flush waits until every record queued so far is written.
func (x *auditor) flush() {
	if x == nil {
		return
	}
	ch := make(chan struct{})
	if x.send(auditItem{flushed: ch}) {
		<-ch
	}
}

// close writes what is queued and stops; no record may be made after it.
func (x *auditor) close() {
	if x == nil || x.queue == nil {
		return
	}
	x.mu.Lock()
	if !x.closed {
		x.closed = true
		close(x.queue)
	}
	x.mu.Unlock()
	<-x.done
}

// Bounds of the values of an audit record: what a request names is the caller's to
// choose, and an unauthenticated caller must not be able to write megabytes per row.
// UIDs are at most 64 characters (PS3.5 9.1), IDs (LO) 64, AE titles 16.
const (
	maxAuditUID    = 64
	maxAuditID     = 64
	maxAuditActor  = 128
	maxAuditRemote = 64
	maxAuditDetail = 256
)

// boundAudit truncates a record's values to their bounds and, when it cut any, says so
// in Detail (which fields, and how long they were).
func boundAudit(r *index.AuditRecord) {
	var cut []string
	for _, f := range []struct {
		name string
		v    *string
		max  int
	}{
		{"study", &r.StudyInstanceUID, maxAuditUID}, {"patient", &r.PatientID, maxAuditID}, {"issuer", &r.IssuerOfPatientID, maxAuditID},
		{"actor", &r.Actor, maxAuditActor}, {"remote", &r.Remote, maxAuditRemote}, {"detail", &r.Detail, maxAuditDetail},
	} {
		if len(*f.v) > f.max {
			cut = append(cut, fmt.Sprintf("%s %d bytes", f.name, len(*f.v)))
			*f.v = strings.ToValidUTF8((*f.v)[:f.max], "")
		}
	}
	if len(cut) > 0 {
		note := " [truncated: " + strings.Join(cut, ", ") + "]"
		r.Detail = strings.ToValidUTF8(r.Detail[:min(len(r.Detail), maxAuditDetail-len(note))], "") + note
	}
}

// auditSkipKey marks a request that is not audited one by one: refused by the
// per-address limit before it was looked at (counted in lumen_http_refused_total).
const auditSkipKey = "lumen.audit.skip"

// dimse records a DIMSE action of an association.
func (x *auditor) dimse(ctx context.Context, as *dimse.AssociationInfo, action, op string, st dimse.Status, study, patient, issuer string) {
	outcome := "ok"
	if st.Code != dimse.StatusSuccess {
		outcome = fmt.Sprintf("0x%04X", st.Code)
	}
	remote := ""
	if as.RemoteAddr != nil {
		remote = as.RemoteAddr.String()
	}
	x.record(ctx, index.AuditRecord{Actor: "ae:" + as.CallingAETitle, Via: "dimse", Action: action, Outcome: outcome,
		StudyInstanceUID: study, PatientID: patient, IssuerOfPatientID: issuer, Remote: remote, Detail: op})
}

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
func httpAudit(x *auditor) echo.MiddlewareFunc {
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
			x.record(c.Request().Context(), r)
			return err
		}
	}
}

// auditSearch answers GET /api/v1/audit (admin): the records matching actor, action,
// study, patient, from, to (RFC 3339) and limit, newest first.
func auditSearch(x *auditor) echo.HandlerFunc {
	return func(c echo.Context) error {
		if x.a == nil {
			return echo.NewHTTPError(http.StatusNotImplemented, "the index keeps no audit trail")
		}
		x.flush() // what was done before this search is in its answer
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
		list, err := x.a.FindAudit(c.Request().Context(), q)
		if err != nil {
			return err
		}
		if list == nil {
			list = []index.AuditRecord{}
		}
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.JSON(http.StatusOK, list)
	}
}
