// Package admin serves Lumen's administrative HTTP API under /api/v1/: the audit trail
// search (GET /api/v1/audit, the admin role), sending to a known DICOM peer (POST
// /api/v1/send, the send role; one NDJSON line per instance), and the ingest quarantine:
// the copies that arrived under a SOP Instance UID already stored with other content (the
// duplicate policy "quarantine" of service/ingest), and the served copies that a
// promotion replaced. It lists them, returns their stored bytes, promotes one to be the
// served copy (the copy served until then is quarantined in turn) and deletes them.
// It also serves IHE IOCM rejections (/api/v1/rejections): it rejects instances by
// writing a rejection note (a Key Object Selection document) that is stored through the
// ingest pipeline like a received one, lists the rejected instances, restores them and
// purges them; every change needs a reason, which the audit record keeps.
//
// The patient identity API (the admin role, under /api/v1/patients/) updates a patient
// record's demographics, merges two records, undoes a merge, files a study under another
// record and moves a series into another study (wrong-patient corrections), each with a
// required reason, recorded with the patient event (index.Identity) and in the audit
// trail; and it lists the patient events. Patients are named in the JSON body, never in
// the path (a Patient ID may hold '/').
//
// It holds no service logic: every action is a method of a service package
// (service/ingest.Pipeline, service/send, service/audit) or of the index (index.Identity). The routes are under /api/,
// which the server's authorization rule reserves to the admin role (send excepted); each
// action has its own route pattern, so that the audit trail (which records HTTP actions
// by route) tells them apart.
package admin
