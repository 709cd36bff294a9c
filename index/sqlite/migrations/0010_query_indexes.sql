-- Queries whose cost follows the page, not the matches (issue 17). A page of a study
-- query with patient keys or an offset reads its ids first, in the order of the answer,
-- from indexes alone, then the rows of that page (sqlindex.DB.Find):
-- studies_by_date walks the studies newest first and holds what the walk filters on
-- besides the date (the patient, for the patient keys; ModalitiesInStudy), so that a
-- study the filters drop is never read; studies_by_patient gives a patient's studies in
-- the same order, for queries that start from a few patients (a patient ID, a rare
-- name). They replace studies_date and studies_patient, which they cover. Additive for
-- older replicas (they use the new indexes as they used the old); building them locks
-- the studies table for writes for the duration (a quarter of a second at 100,000
-- studies and 50,000 patients).
CREATE INDEX studies_by_date ON studies (study_date DESC, study_time_norm DESC, id DESC, patient_fk, modalities);
-- +statement
DROP INDEX studies_date;
-- +statement
CREATE INDEX studies_by_patient ON studies (patient_fk, study_date DESC, study_time_norm DESC, id DESC);
-- +statement
DROP INDEX studies_patient;
