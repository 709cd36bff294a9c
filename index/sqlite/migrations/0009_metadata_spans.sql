-- Corrections on the way out (issue 16): where the members a correction replaces lie in
-- instances.metadata ("ps,pe,ss,se": the members (0010,0010)…(0010,0040) and
-- (0020,000D)), so that serving the metadata of a corrected patient record reads only
-- them. Computed by the index at insert; NULL for rows indexed before (then a correction
-- scans the metadata). Additive: it runs online.
ALTER TABLE instances ADD COLUMN meta_spans TEXT;
