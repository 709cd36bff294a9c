-- Audit trail: one row per audited action (store, query, retrieve, delete, send, commit,
-- link minting and use), appended only; searched by the admin API. Additive: it runs
-- online, while older replicas keep serving.
CREATE TABLE audit (
	id INTEGER PRIMARY KEY,
	at INTEGER NOT NULL,
	actor TEXT NOT NULL,
	via TEXT NOT NULL,
	action TEXT NOT NULL,
	outcome TEXT NOT NULL,
	study_uid TEXT NOT NULL DEFAULT '',
	patient_id TEXT NOT NULL DEFAULT '',
	issuer TEXT NOT NULL DEFAULT '',
	remote TEXT NOT NULL DEFAULT '',
	detail TEXT NOT NULL DEFAULT ''
);
-- +statement
CREATE INDEX audit_at ON audit (at);
-- +statement
CREATE INDEX audit_study ON audit (study_uid, at);
-- +statement
CREATE INDEX audit_patient ON audit (patient_id, at);
