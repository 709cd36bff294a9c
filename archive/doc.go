// Package archive owns Lumen's bytes: the Store interface for blob storage and the
// errors its backends share.
//
// A Store knows nothing about DICOM. It keeps opaque objects under slash-separated keys
// and offers streamed put, whole and ranged get, stat, delete and list by prefix. The
// stored object for an instance is the received DICOM PS3.10 file, byte for byte
// (DESIGN.md §2.4). Backends live in sub-packages: fs (the embedded default) and s3
// (any S3-compatible service). The contract every backend meets is the suite in
// archive/archivetest.
package archive
