// Package admin serves Lumen's administrative HTTP API for the ingest quarantine: the
// copies that arrived under a SOP Instance UID already stored with other content (the
// duplicate policy "quarantine" of service/ingest), and the served copies that a
// promotion replaced. It lists them, returns their stored bytes, promotes one to be the
// served copy (the copy served until then is quarantined in turn) and deletes them.
//
// It holds no service logic: every action is an service/ingest.Pipeline method. The
// routes are under /api/, which the server's authorization rule reserves to the admin
// role; each action has its own route pattern, so that the audit trail (which records
// HTTP actions by route) tells them apart.
package admin
