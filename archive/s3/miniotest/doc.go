// Package miniotest runs a real MinIO server for tests of S3-backed code.
//
// Start launches a private server for one test (or benchmark) and stops it when the test
// ends; Shared returns one server for the whole test binary, to be stopped from TestMain
// with StopShared. Servers listen on loopback only, keep their data in a temporary
// directory and use generated credentials.
//
// The minio binary is found through the LUMEN_MINIO_BIN environment variable, then
// "minio" on PATH, then $GOPATH/bin/minio. When none exists the test is skipped, or
// fails when the CI environment variable is "true" (or LUMEN_MINIO_BIN names a missing
// file). `make tools` builds the binary.
package miniotest
