-- Instance-level QIDO-RS answers its default attributes from the index alone:
-- BitsAllocated joins Rows and Columns, filled in from the stored metadata of the
-- instances indexed before. metadata_omitted says what was left out of the bounded
-- metadata ('' when nothing was). Additive: it runs online, while older replicas keep
-- serving (their rows get the defaults).
ALTER TABLE instances ADD COLUMN bits_allocated INTEGER NOT NULL DEFAULT 0;
-- +statement
ALTER TABLE instances ADD COLUMN metadata_omitted TEXT NOT NULL DEFAULT '';
-- +statement
UPDATE instances SET bits_allocated = json_extract(metadata, '$."00280100".Value[0]')
WHERE instr(metadata, '"00280100"') > 0 AND json_valid(metadata)
	AND json_type(metadata, '$."00280100".Value[0]') = 'integer';
