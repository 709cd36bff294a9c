package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/httpkit/httplimit"
	"github.com/lumenpacs/lumen/index"
	"github.com/prometheus/client_golang/prometheus"
)

// latencyBuckets span 0.5 ms to about 65 s.
var latencyBuckets = prometheus.ExponentialBuckets(0.0005, 2, 18)

// Label values come from fixed sets only: a peer must not be able to mint time series
// (each new label value is a series kept until restart). The method and the DIMSE
// operation are the peer's to choose, so unknown ones are "other"; the route is the
// pattern (never the path: it may carry UIDs and patient IDs) or "unmatched"; the codes
// are Lumen's own.
var (
	httpMethods     = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"}
	dimseOperations = []string{"C-STORE", "C-FIND", "C-MOVE", "C-GET", "C-ECHO", "N-ACTION", "N-EVENT-REPORT"}
)

// oneOf returns v when known lists it, else "other".
func oneOf(v string, known []string) string {
	if slices.Contains(known, v) {
		return v
	}
	return "other"
}

// HTTP is middleware recording each HTTP request's duration by method, route
// pattern and status code.
func HTTP(reg prometheus.Registerer) echo.MiddlewareFunc {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "lumen_http_request_duration_seconds", Help: "HTTP requests, by method, route pattern and status code.", Buckets: latencyBuckets,
	}, []string{"method", "route", "code"})
	reg.MustRegister(h)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			code := c.Response().Status
			var he *echo.HTTPError
			if err != nil && errors.As(err, &he) {
				code = he.Code
			} else if err != nil && !c.Response().Committed {
				code = 500 // answered by the error handler
			}
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			if code < 100 || code > 599 {
				code = 500
			}
			h.WithLabelValues(oneOf(c.Request().Method, httpMethods), route, fmt.Sprint(code)).Observe(time.Since(start).Seconds())
			return err
		}
	}
}

// DIMSE returns the observer of DIMSE operations: durations by operation and
// final status.
func DIMSE(reg prometheus.Registerer) func(string, time.Duration, uint16) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "lumen_dimse_operation_duration_seconds", Help: "DIMSE operations answered, by operation and final status.", Buckets: latencyBuckets,
	}, []string{"operation", "status"})
	reg.MustRegister(h)
	return func(op string, d time.Duration, status uint16) {
		h.WithLabelValues(oneOf(op, dimseOperations), fmt.Sprintf("0x%04X", status)).Observe(d.Seconds())
	}
}

// Queue exports the depth of the index's work queue by kind, read at scrape time,
// when idx counts its jobs (the SQL indexes do).
func Queue(reg prometheus.Registerer, idx any) {
	q, ok := idx.(interface {
		JobCounts(ctx context.Context) (map[string]int, error)
	})
	if !ok {
		return
	}
	for _, kind := range []string{index.JobThumbnails, index.JobForward} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "lumen_queue_jobs", Help: "Jobs queued in the index, by kind.", ConstLabels: prometheus.Labels{"kind": kind},
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := q.JobCounts(ctx)
			if err != nil {
				return -1
			}
			return float64(n[kind])
		}))
	}
}

// Recover is middleware turning a handler's panic into 500 (logged with its stack;
// never request data), so that the request is answered, measured and audited, and the
// server goes on serving. A panic is a bug: the log line says where.
func Recover(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					if r == http.ErrAbortHandler {
						panic(r) // net/http's way to abort a response: not ours to swallow
					}
					log.Error("http: handler panic; answered 500", "route", c.Path(), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
					err = echo.NewHTTPError(http.StatusInternalServerError, "internal error")
				}
			}()
			return next(c)
		}
	}
}

// Limits exports the HTTP connection and upload limits' state: open
// connections, bodies being received, and what the limits refused, by reason.
func Limits(reg prometheus.Registerer, lim *httplimit.Limiter) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lumen_http_connections_open", Help: "Open HTTP connections."},
			func() float64 { return float64(lim.Stats().Conns) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lumen_http_uploads_in_progress", Help: "HTTP request bodies being received."},
			func() float64 { return float64(lim.Stats().Uploads) }))
	for _, m := range []struct {
		name, help, reason string
		n                  func(httplimit.Stats) uint64
	}{
		{"lumen_http_connections_refused_total", "HTTP connections closed by the connection limits, by reason.", "per_address", func(s httplimit.Stats) uint64 { return s.ConnsRefusedPerAddr }},
		{"lumen_http_connections_refused_total", "HTTP connections closed by the connection limits, by reason.", "overall", func(s httplimit.Stats) uint64 { return s.ConnsRefusedOverall }},
		{"lumen_http_connections_refused_total", "HTTP connections closed by the connection limits, by reason.", "evicted", func(s httplimit.Stats) uint64 { return s.ConnsEvicted }},
		{"lumen_http_uploads_refused_total", "HTTP request bodies refused or cut by the upload limits, by reason.", "per_address", func(s httplimit.Stats) uint64 { return s.UploadsRefusedPerAddr }},
		{"lumen_http_uploads_refused_total", "HTTP request bodies refused or cut by the upload limits, by reason.", "overall", func(s httplimit.Stats) uint64 { return s.UploadsRefusedOverall }},
		{"lumen_http_uploads_refused_total", "HTTP request bodies refused or cut by the upload limits, by reason.", "too_slow", func(s httplimit.Stats) uint64 { return s.UploadsTooSlow }},
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: m.name, Help: m.help, ConstLabels: prometheus.Labels{"reason": m.reason}},
			func() float64 { return float64(m.n(lim.Stats())) }))
	}
}

// Ready answers a readiness probe (/readyz): a JSON object naming each check "ok" or
// its error, 200 when every check passed within 3 s, 503 otherwise.
func Ready(checks map[string]func(context.Context) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
		defer cancel()
		status := map[string]string{}
		code := http.StatusOK
		for name, check := range checks {
			status[name] = "ok"
			if err := check(ctx); err != nil {
				status[name], code = err.Error(), http.StatusServiceUnavailable
			}
		}
		return c.JSON(code, status)
	}
}
