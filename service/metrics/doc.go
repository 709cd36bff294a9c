// Package metrics exports the archive's Prometheus metrics (the text exposition format
// served at /metrics): HTTP requests by method, route pattern and status; DIMSE
// operations by operation and final status (PS3.7 status codes); the depth of the index's
// work queue by kind; the HTTP connection and upload limits. Label values come from fixed
// sets only, so that no peer can mint time series. Recover turns a handler's panic into a
// 500 that is measured and audited like any answer.
package metrics
