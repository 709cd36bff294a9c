package ingest

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus collectors of the pipeline.
type Metrics struct {
	objects  *prometheus.CounterVec
	bytes    prometheus.Counter
	duration *prometheus.HistogramVec
	stages   *prometheus.HistogramVec
}

// NewMetrics creates the collectors and registers them with reg (if not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		objects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lumen_ingest_objects_total",
			Help: "Objects offered to the ingest pipeline, by outcome.",
		}, []string{"outcome"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lumen_ingest_bytes_total",
			Help: "Bytes of newly stored objects.",
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lumen_ingest_duration_seconds",
			Help:    "Time to ingest one object (stream, store, index), by outcome.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"outcome"}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lumen_ingest_stage_duration_seconds",
			Help:    "Latency of the durable steps of an ingest: store (from the end of the stream until the object is durable) and index (the transaction).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}, []string{"stage"}),
	}
	if reg != nil {
		reg.MustRegister(m.objects, m.bytes, m.duration, m.stages)
	}
	return m
}

// observeStage records the latency of one durable step (store, index).
func (m *Metrics) observeStage(stage string, start time.Time) {
	if m == nil {
		return
	}
	m.stages.WithLabelValues(stage).Observe(time.Since(start).Seconds())
}

func (m *Metrics) observe(res *Result, err error, start time.Time) {
	if m == nil {
		return
	}
	outcome := "error"
	switch {
	case res != nil:
		outcome = string(res.Outcome)
		if res.Outcome == Stored || res.Outcome == Replaced || res.Outcome == Quarantined {
			m.bytes.Add(float64(res.Size))
		}
	case errors.Is(err, ErrInvalid):
		outcome = "invalid"
	case errors.Is(err, ErrMismatch):
		outcome = "mismatch"
	case errors.Is(err, ErrDuplicate):
		outcome = "duplicate-rejected"
	case errors.Is(err, ErrConflict):
		outcome = "conflict"
	case errors.Is(err, ErrRejected):
		outcome = "rejected"
	case errors.Is(err, ErrUnavailable):
		outcome = "unavailable"
	}
	m.objects.WithLabelValues(outcome).Inc()
	m.duration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
}
