package metrics

import (
	"time"

	"github.com/lumenpacs/lumen/hl7/mllp"
	"github.com/prometheus/client_golang/prometheus"
)

// hl7Events and hl7Acks are the label values of the HL7 metrics: the events Lumen
// handles (others, and messages that are not ADT or do not parse, are "other"), and
// the acknowledgement codes (HL7 Table 0008; "none" when no ACK could be read).
var (
	hl7Events = []string{"A01", "A04", "A05", "A08", "A28", "A31", "A34", "A36", "A40", "A47"}
	hl7Acks   = []string{"AA", "AE", "AR"}
)

// HL7 exports the HL7 listener: lumen_hl7_message_duration_seconds, the messages
// answered by event and acknowledgement code (the returned function observes one), and
// the listener's connection counters (mllp.Stats, read at scrape time): connections
// active and served, refused by reason, frames over the size limit, framing errors and
// handler panics.
func HL7(reg prometheus.Registerer, stats func() mllp.Stats) func(event, ack string, d time.Duration) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "lumen_hl7_message_duration_seconds", Help: "HL7 messages answered, by event and acknowledgement code.", Buckets: latencyBuckets,
	}, []string{"event", "ack"})
	reg.MustRegister(h)
	gauge := func(name, help string, f func(mllp.Stats) float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(stats()) }))
	}
	counter := func(name, help string, labels prometheus.Labels, f func(mllp.Stats) uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(f(stats())) }))
	}
	gauge("lumen_hl7_connections", "HL7 (MLLP) connections being served.", func(s mllp.Stats) float64 { return float64(s.Active) })
	counter("lumen_hl7_connections_total", "HL7 (MLLP) connections served.", nil, func(s mllp.Stats) uint64 { return s.Accepted })
	refused := "HL7 (MLLP) connections refused, by reason."
	counter("lumen_hl7_connections_refused_total", refused, prometheus.Labels{"reason": "host"}, func(s mllp.Stats) uint64 { return s.RefusedAllow })
	counter("lumen_hl7_connections_refused_total", refused, prometheus.Labels{"reason": "max_conns"}, func(s mllp.Stats) uint64 { return s.RefusedMax })
	counter("lumen_hl7_connections_refused_total", refused, prometheus.Labels{"reason": "max_conns_per_host"}, func(s mllp.Stats) uint64 { return s.RefusedPerHost })
	counter("lumen_hl7_frames_too_large_total", "HL7 frames over hl7.max_message_bytes (answered AR 207).", nil, func(s mllp.Stats) uint64 { return s.TooLarge })
	counter("lumen_hl7_framing_errors_total", "HL7 connections closed on a framing error.", nil, func(s mllp.Stats) uint64 { return s.FramingErrors })
	counter("lumen_hl7_handler_panics_total", "HL7 handler panics (the connection was closed).", nil, func(s mllp.Stats) uint64 { return s.Panics })
	return func(event, ack string, d time.Duration) {
		if ack == "" {
			ack = "none"
		} else {
			ack = oneOf(ack, hl7Acks)
		}
		h.WithLabelValues(oneOf(event, hl7Events), ack).Observe(d.Seconds())
	}
}
