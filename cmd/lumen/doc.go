// Command lumen is the Lumen DICOM archive: one binary for the server and the
// administrator's commands.
//
//	lumen serve          run the archive (HTTP: health, readiness, metrics)
//	lumen import PATH... load DICOM PS3.10 files and directories into the archive
//	lumen fsck           find and repair blobs without index rows and rows without blobs
//	lumen healthcheck    probe a running server's /healthz (for container health checks)
//	lumen version        print the version
//
// Configuration comes from a YAML file (--config or LUMEN_CONFIG), environment variables
// (LUMEN_ + the upper-cased key with dots as underscores) and flags, in increasing order of
// precedence; docs/configuration.md lists every key. With no configuration Lumen runs on
// ./data with the filesystem store and SQLite.
package main
