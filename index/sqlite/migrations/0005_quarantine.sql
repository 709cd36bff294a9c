-- Re-sent instances and the quarantine. content_digest is the digest of an instance's
-- data set content (dcm.ContentDigest), which other encodings of the same data set share,
-- so that a re-sent copy is recognised without re-reading the stored one; '' for rows
-- indexed before (ingest fills it in when it first needs it). quarantine holds the copies
-- kept aside: different content under a stored SOP Instance UID, or a served copy
-- replaced by a promotion. Additive: it runs online, while older replicas keep serving.
ALTER TABLE instances ADD COLUMN content_digest TEXT NOT NULL DEFAULT '';
-- +statement
CREATE TABLE quarantine (
	id INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: an ID names one copy for good
	received_at INTEGER NOT NULL,
	sop_uid TEXT NOT NULL,
	sop_class_uid TEXT NOT NULL DEFAULT '',
	study_uid TEXT NOT NULL DEFAULT '',
	series_uid TEXT NOT NULL DEFAULT '',
	patient_id TEXT NOT NULL DEFAULT '',
	issuer TEXT NOT NULL DEFAULT '',
	transfer_syntax TEXT NOT NULL DEFAULT '',
	source_ae TEXT NOT NULL DEFAULT '',
	via TEXT NOT NULL DEFAULT '',
	account TEXT NOT NULL DEFAULT '',
	remote TEXT NOT NULL DEFAULT '',
	reason TEXT NOT NULL DEFAULT '',
	blob_key TEXT NOT NULL UNIQUE,
	size INTEGER NOT NULL,
	sha256 TEXT NOT NULL,
	content_digest TEXT NOT NULL DEFAULT ''
);
-- +statement
CREATE INDEX quarantine_sop ON quarantine (sop_uid);
-- +statement
CREATE INDEX quarantine_study ON quarantine (study_uid);
