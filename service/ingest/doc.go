// Package ingest is Lumen's one ingest pipeline, called by DIMSE C-STORE (PS3.4 Annex B),
// DICOMweb STOW-RS (PS3.18 §10.5) and the bulk importer.
//
// It accepts a PS3.10 file stream, or a bare data set stream with its transfer syntax and
// SOP class/instance (as DIMSE delivers it; the pipeline then writes the File Meta
// Information of PS3.10 §7.1 in front). In one pass it streams the bytes to the
// archive.Store while parsing the header (bulk data skipped, offsets kept) and hashing
// them; it validates the object, lets the store make the blob durable, and only then
// commits the index. If validation or indexing fails the blob is removed, so an index row
// never points at a missing blob; a crash between the two steps can leave an orphan blob,
// which Check (lumen fsck) finds and repairs.
//
// The pass hashes the bytes once, for the object digest of the stored object (BLAKE3-256;
// objdigest.go). An instance re-sent with the same bytes is recognised by that digest;
// one re-sent in another encoding, or with other File Meta Information, by the data
// set's content digest (dcm.ContentDigest), computed only then, from the stored copies
// (the received bytes), and recorded: a success with nothing written. Different content under a
// stored SOP Instance UID follows the DuplicatePolicy; under the default, Quarantine,
// it is acknowledged and kept aside (QuarantinePrefix, an index.QuarantineRecord), to be
// promoted or deleted by an administrator (Promote, DeleteQuarantined): nothing a sender
// sent is lost.
//
// StoreSCP is the Storage SCP (PS3.4 Annex B) over this pipeline, a dimse.StoreHandler;
// StoreStatus is the one place where ingest errors become C-STORE statuses (Table B.2-1).
//
// Importer is the bulk importer: it lists PS3.10 files and directories (ListFiles) and
// feeds them through the pipeline with parallel workers, skipping what is already
// stored, and sums up what became of each file (ImportSummary).
package ingest
