-- Undoing merges (issue 16). studies.merged_from names the merged-away patient record a
-- study came with: set by a merge for the studies it files under the survivor (kept when
-- the study came with an earlier merge, so that it names the record whose key the study
-- was filed under first), and by ingest for a study that arrives under a merged-away key.
-- An unmerge takes back the studies that came from the record it restores (or from the
-- records merged into it earlier); a move clears it. A plain number, not a foreign key:
-- merged records are never deleted, and ingest must not lock them through it. No index:
-- an unmerge reads the survivor's studies (studies_patient), and an index would slow
-- every merge. patient_events_other finds the merge event of a record. Additive: it runs
-- online, while older replicas keep serving (they leave merged_from empty, which only
-- means that an unmerge does not take those studies back).
ALTER TABLE studies ADD COLUMN merged_from BIGINT;
-- +statement
CREATE INDEX patient_events_other ON patient_events (other_fk, id) WHERE other_fk IS NOT NULL;
