-- IHE IOCM rejection (issue 16). A rejected instance's row leaves the instances table, so
-- that every query and retrieve surface stops seeing it without filtering, and is kept
-- here, keyed by SOP Instance UID, until it is restored or purged: the reason (the CID
-- 7010 code of the rejection note), the note's SOP Instance UID, where it was filed, and
-- its stored object (blob_key NULL: rejected before it was received). Additive: it runs
-- online, while older replicas keep serving.
CREATE TABLE rejections (
	id INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: the list pages on it
	sop_uid TEXT NOT NULL UNIQUE,
	sop_class_uid TEXT NOT NULL DEFAULT '',
	study_uid TEXT NOT NULL,
	series_uid TEXT NOT NULL DEFAULT '',
	patient_id TEXT NOT NULL DEFAULT '',
	issuer TEXT NOT NULL DEFAULT '',
	reason TEXT NOT NULL,
	note_uid TEXT NOT NULL,
	blob_key TEXT UNIQUE,
	size INTEGER NOT NULL DEFAULT 0,
	sha256 TEXT NOT NULL DEFAULT '',
	content_digest TEXT NOT NULL DEFAULT '',
	source_ae TEXT NOT NULL DEFAULT '',
	received_at INTEGER,
	rejected_at INTEGER NOT NULL,
	source TEXT NOT NULL DEFAULT '',
	actor TEXT NOT NULL DEFAULT ''
);
-- +statement
CREATE INDEX rejections_study ON rejections (study_uid);
-- +statement
CREATE INDEX rejections_note ON rejections (note_uid);
