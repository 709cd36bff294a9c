// Package fs is the embedded default archive.Store: objects are files under a root
// directory.
//
// A put writes a temporary file in the destination directory, fsyncs it, renames it into
// place and fsyncs the directory (and any directory it had to create), so a reader never
// sees a partial object and an acknowledged object survives a crash. Keys map to paths
// directly; callers choose keys with fan-out directories (Lumen's ingest uses
// dicom/xx/yy/<id>) so no directory grows without bound.
//
// A put cut short by a crash or a kill leaves its temporary file (".tmp-*", never listed
// or read) behind; StaleTemps finds old ones and RemoveTemp removes them, which
// ingest.Check (lumen fsck and the start-up check) does.
//
// Open takes Options for Linux: AnonymousTemps writes each object to an anonymous file
// (O_TMPFILE) that is named (linkat) once fsynced, so a put cut short leaves nothing
// behind; DirectWrites writes the objects' bytes with direct I/O (O_DIRECT), past the
// page cache. lumen serve uses both.
package fs
