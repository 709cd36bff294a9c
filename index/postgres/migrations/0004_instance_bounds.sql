-- Instance-level QIDO-RS answers its default attributes from the index alone:
-- BitsAllocated joins Rows and Columns, filled in from the stored metadata of the
-- instances indexed before (jsonb refuses the escape \u0000, which the metadata may hold
-- inside strings: it is swapped for another; metadata that is not JSON counts as none).
-- metadata_omitted says what was left out of the bounded metadata ('' when nothing
-- was). Additive: it runs online, while older replicas keep serving (their rows get the
-- defaults).
ALTER TABLE instances ADD COLUMN bits_allocated INTEGER NOT NULL DEFAULT 0;
-- +statement
ALTER TABLE instances ADD COLUMN metadata_omitted TEXT NOT NULL DEFAULT '';
-- +statement
CREATE FUNCTION lumen_0004_bits(m text) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	RETURN COALESCE((replace(m, '\u0000', '\ufffd')::jsonb -> '00280100' -> 'Value' ->> 0)::integer, 0);
EXCEPTION WHEN others THEN
	RETURN 0;
END
$$;
-- +statement
UPDATE instances SET bits_allocated = lumen_0004_bits(metadata) WHERE strpos(metadata, '"00280100"') > 0;
-- +statement
DROP FUNCTION lumen_0004_bits(text);
