CREATE TABLE patients (
	id INTEGER PRIMARY KEY,
	patient_id TEXT NOT NULL,
	issuer TEXT NOT NULL DEFAULT '',
	name TEXT NOT NULL DEFAULT '',
	name_ci TEXT NOT NULL DEFAULT '',
	name_fuzzy TEXT NOT NULL DEFAULT '',
	birth_date TEXT NOT NULL DEFAULT '',
	sex TEXT NOT NULL DEFAULT '',
	num_studies INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	UNIQUE (patient_id, issuer)
);
-- +statement
CREATE INDEX patients_name_ci ON patients (name_ci);
-- +statement
CREATE TABLE studies (
	id INTEGER PRIMARY KEY,
	patient_fk INTEGER NOT NULL REFERENCES patients (id),
	study_uid TEXT NOT NULL UNIQUE,
	study_date TEXT NOT NULL DEFAULT '',
	study_time TEXT NOT NULL DEFAULT '',
	study_time_norm TEXT NOT NULL DEFAULT '',
	accession TEXT NOT NULL DEFAULT '',
	study_id TEXT NOT NULL DEFAULT '',
	description TEXT NOT NULL DEFAULT '',
	referring TEXT NOT NULL DEFAULT '',
	referring_ci TEXT NOT NULL DEFAULT '',
	referring_fuzzy TEXT NOT NULL DEFAULT '',
	modalities TEXT NOT NULL DEFAULT ',',
	sop_classes TEXT NOT NULL DEFAULT ',',
	num_series INTEGER NOT NULL DEFAULT 0,
	num_instances INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
-- +statement
CREATE INDEX studies_patient ON studies (patient_fk);
-- +statement
CREATE INDEX studies_date ON studies (study_date DESC, study_time_norm DESC, id DESC);
-- +statement
CREATE INDEX studies_accession ON studies (accession);
-- +statement
CREATE TABLE series (
	id INTEGER PRIMARY KEY,
	study_fk INTEGER NOT NULL REFERENCES studies (id),
	series_uid TEXT NOT NULL UNIQUE,
	modality TEXT NOT NULL DEFAULT '',
	series_number INTEGER,
	description TEXT NOT NULL DEFAULT '',
	body_part TEXT NOT NULL DEFAULT '',
	series_date TEXT NOT NULL DEFAULT '',
	series_time TEXT NOT NULL DEFAULT '',
	num_instances INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
-- +statement
CREATE INDEX series_study ON series (study_fk, series_number);
-- +statement
CREATE TABLE instances (
	id INTEGER PRIMARY KEY,
	series_fk INTEGER NOT NULL REFERENCES series (id),
	sop_uid TEXT NOT NULL UNIQUE,
	sop_class_uid TEXT NOT NULL DEFAULT '',
	instance_number INTEGER,
	transfer_syntax TEXT NOT NULL DEFAULT '',
	num_frames INTEGER NOT NULL DEFAULT 0,
	rows_ INTEGER NOT NULL DEFAULT 0,
	cols INTEGER NOT NULL DEFAULT 0,
	blob_key TEXT NOT NULL UNIQUE,
	size INTEGER NOT NULL,
	sha256 TEXT NOT NULL,
	metadata TEXT NOT NULL,
	pixel_layout TEXT,
	bulk TEXT,
	source_ae TEXT NOT NULL DEFAULT '',
	received_at INTEGER NOT NULL
);
-- +statement
CREATE INDEX instances_series ON instances (series_fk, instance_number);
