-- Work queue (thumbnails after a study changes, later forwarding): one row per (kind, key),
-- re-armed by later changes, claimed with a lease so any replica can do the work once.
CREATE TABLE jobs (
	id INTEGER PRIMARY KEY,
	kind TEXT NOT NULL,
	key TEXT NOT NULL,
	not_before INTEGER NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	claimed_by TEXT NOT NULL DEFAULT '',
	claimed_until INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	UNIQUE (kind, key)
);
-- +statement
CREATE INDEX jobs_due ON jobs (kind, not_before);
