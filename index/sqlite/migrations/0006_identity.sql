-- Patients as records the index owns (issue 16). merged_into links a merged-away record
-- to its survivor (never a chain: merges re-point earlier links); updated_at is set when
-- an identity operation (update, merge, change of identifier) touched the record, and
-- such records are kept when their last study goes. patient_events logs every such
-- change in the transaction that makes it (the change feed reads it in id order); its
-- keys are plain numbers, not foreign keys, so that the log outlives the rows.
-- hl7_messages makes ADT processing exactly-once: the control ID of each applied message
-- and the ACK sent for it. Additive: it runs online, while older replicas keep serving.
ALTER TABLE patients ADD COLUMN merged_into INTEGER REFERENCES patients (id);
-- +statement
ALTER TABLE patients ADD COLUMN updated_at INTEGER;
-- +statement
CREATE INDEX patients_merged_into ON patients (merged_into) WHERE merged_into IS NOT NULL;
-- +statement
CREATE TABLE patient_events (
	id INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: readers resume after an id
	at INTEGER NOT NULL,
	kind TEXT NOT NULL,
	patient_fk INTEGER NOT NULL,
	other_fk INTEGER,
	detail TEXT NOT NULL DEFAULT '{}',
	source TEXT NOT NULL DEFAULT '',
	actor TEXT NOT NULL DEFAULT ''
);
-- +statement
CREATE INDEX patient_events_patient ON patient_events (patient_fk, id);
-- +statement
CREATE TABLE hl7_messages (
	sending_application TEXT NOT NULL,
	sending_facility TEXT NOT NULL,
	control_id TEXT NOT NULL,
	received_at INTEGER NOT NULL,
	ack BLOB,
	PRIMARY KEY (sending_facility, sending_application, control_id)
);
