// Package s3 implements archive.Store on the Amazon S3 API, so Lumen can keep its objects
// in any S3-compatible service: MinIO, AWS S3, Ceph RGW and others.
//
// Every key is stored as one S3 object in a single bucket, optionally below a key prefix
// (Config.Prefix), so several archives can share a bucket. New creates the bucket if it
// does not exist yet. Besides archive.ValidateKey, keys must be valid UTF-8 and at most
// 1024 bytes long including the prefix, as S3 requires; other keys are
// archive.ErrInvalidKey.
//
// # Puts
//
// A put reads at most one part (Config.PartSize, 16 MiB by default) into memory at a
// time. An object that fits in one part, whether its size was given or found by reading
// to the end, is sent with a single PUT request once it has been read completely; a
// larger one is sent as a multipart upload, one part at a time, and committed only after
// the reader reached its end with the declared size. S3 never shows a partial object, so
// if the reader fails, returns fewer or more bytes than declared, or the context ends,
// nothing becomes visible under the key and any previous object stays in place. The parts
// of a failed multipart upload are aborted; if even the abort fails (the service being
// unreachable), they stay invisible but take space until a bucket lifecycle rule
// (AbortIncompleteMultipartUpload) removes them, which is recommended on production
// buckets.
//
// With an unknown size (-1) an object may have at most 10,000 parts, so its size is
// limited to 10,000 × PartSize (156 GiB with the default). With a known size the part size
// (and the memory a Put holds) is raised as needed to fit, up to the S3 limit of 5 TiB per
// object.
//
// # Reads
//
// Get and GetRange send their request before returning, so a missing key or bad range
// is reported by the call itself; the returned reader streams the response body and
// fails if ctx ends before it has been read.
//
// # Times
//
// S3 reports modification times to the second in HTTP headers but to the millisecond in
// listings; every ObjectInfo this package returns carries the server's time truncated to
// whole seconds, in UTC, so Put, Get, Stat and List agree on an object's ModTime.
package s3
