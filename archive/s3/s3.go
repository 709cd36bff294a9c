package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/lumenpacs/lumen/archive"
)

const (
	// DefaultPartSize is the multipart part size used when Config.PartSize is zero.
	DefaultPartSize = 16 << 20
	// MinPartSize is the smallest part size S3 accepts for all but the last part.
	MinPartSize = 5 << 20
	// MaxPartSize is the largest part size S3 accepts.
	MaxPartSize = 5 << 30

	// maxParts is the most parts a multipart upload may have.
	maxParts = 10_000
	// maxObjectSize is the largest object S3 stores (5 TiB).
	maxObjectSize = 5 << 40
	// abortTimeout bounds the abort of a failed multipart upload.
	abortTimeout = 30 * time.Second
)

// Config configures a Store.
type Config struct {
	// Endpoint is the service's host and optional port, such as "s3.amazonaws.com",
	// "s3.eu-central-1.amazonaws.com" or "minio.internal:9000". Required. An "https://"
	// or "http://" scheme may be given instead of setting UseTLS; it must then agree with
	// UseTLS ("http://" with UseTLS set is an error).
	Endpoint string
	// Bucket is the bucket holding the objects. Required. New creates it if missing.
	Bucket string
	// Region is the bucket's region. Empty lets the client ask the service (and creates
	// a missing bucket in the service's default region, us-east-1 on AWS and MinIO).
	Region string
	// AccessKey and SecretKey are the static credentials. When both are empty the
	// credentials come from the environment (AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY, or MINIO_ROOT_USER and MINIO_ROOT_PASSWORD), then the AWS
	// shared credentials file, then the EC2/ECS instance role; if none is found requests
	// are anonymous.
	AccessKey, SecretKey string
	// UseTLS selects HTTPS. The zero value is plain HTTP, suitable only for a service on
	// a trusted network or loopback.
	UseTLS bool
	// Prefix, if set, is prepended to every key inside the bucket, followed by a slash,
	// so several stores can share a bucket: with Prefix "lumen", key "a/b" is the S3
	// object "lumen/a/b". Leading and trailing slashes are ignored; the rest must be a
	// valid key (see archive.ValidateKey). Keys returned by List are relative to it.
	Prefix string
	// PartSize is the multipart part size in bytes and the most a Put holds in memory.
	// Zero means DefaultPartSize (16 MiB); otherwise it must be between MinPartSize
	// (5 MiB) and MaxPartSize (5 GiB). Objects that fit in one part are sent with a
	// single PUT.
	PartSize uint64
}

// Store is an archive.Store keeping objects in an S3 bucket. It is safe for concurrent
// use.
type Store struct {
	core     minio.Core
	bucket   string
	prefix   string // "" or ending in "/"
	partSize int64
}

var _ archive.Store = (*Store)(nil)

// New connects to the service described by cfg and creates the bucket if it does not
// exist. A bucket created concurrently by someone else with the same credentials is
// fine.
func New(ctx context.Context, cfg Config) (*Store, error) {
	endpoint, secure, err := parseEndpoint(cfg.Endpoint, cfg.UseTLS)
	if err != nil {
		return nil, fmt.Errorf("archive/s3: %w", err)
	}
	if cfg.Bucket == "" {
		return nil, errors.New("archive/s3: no bucket configured")
	}
	if err := s3utils.CheckValidBucketNameStrict(cfg.Bucket); err != nil {
		return nil, fmt.Errorf("archive/s3: bucket %q: %w", cfg.Bucket, err)
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		if err := archive.ValidateKey(prefix); err != nil {
			return nil, fmt.Errorf("archive/s3: prefix: %w", err)
		}
		prefix += "/"
	}
	partSize := int64(DefaultPartSize)
	if cfg.PartSize != 0 {
		if cfg.PartSize < MinPartSize || cfg.PartSize > MaxPartSize {
			return nil, fmt.Errorf("archive/s3: part size %d outside [%d, %d]", cfg.PartSize, MinPartSize, MaxPartSize)
		}
		partSize = int64(cfg.PartSize)
	}
	var creds *credentials.Credentials
	switch {
	case cfg.AccessKey != "" && cfg.SecretKey != "":
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")
	case cfg.AccessKey == "" && cfg.SecretKey == "":
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.EnvMinio{},
			&credentials.FileAWSCredentials{},
			&credentials.IAM{},
		})
	default:
		return nil, errors.New("archive/s3: access key and secret key must be given together")
	}
	client, err := minio.New(endpoint, &minio.Options{
		Creds:  creds,
		Secure: secure,
		Region: cfg.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("archive/s3: %w", err)
	}
	s := &Store{
		core:     minio.Core{Client: client},
		bucket:   cfg.Bucket,
		prefix:   prefix,
		partSize: partSize,
	}
	if err := s.ensureBucket(ctx, cfg.Region); err != nil {
		return nil, err
	}
	return s, nil
}

func parseEndpoint(endpoint string, useTLS bool) (string, bool, error) {
	if endpoint == "" {
		return "", false, errors.New("no endpoint configured")
	}
	if rest, ok := strings.CutPrefix(endpoint, "https://"); ok {
		endpoint, useTLS = rest, true
	} else if rest, ok := strings.CutPrefix(endpoint, "http://"); ok {
		if useTLS {
			return "", false, fmt.Errorf("endpoint %q is plain HTTP but UseTLS is set", endpoint)
		}
		endpoint = rest
	}
	endpoint = strings.TrimSuffix(endpoint, "/")
	if endpoint == "" || strings.ContainsAny(endpoint, "/?#") {
		return "", false, fmt.Errorf("endpoint %q is not a host[:port]", endpoint)
	}
	return endpoint, useTLS, nil
}

func (s *Store) ensureBucket(ctx context.Context, region string) error {
	ok, err := s.core.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("archive/s3: bucket %s: %w", s.bucket, err)
	}
	if ok {
		return nil
	}
	err = s.core.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: region})
	if err == nil {
		return nil
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		switch er.Code {
		case "BucketAlreadyOwnedByYou":
			return nil
		case "BucketAlreadyExists":
			// Another creator won the race; it is fine if the bucket is ours to use.
			if ok, err2 := s.core.BucketExists(ctx, s.bucket); err2 == nil && ok {
				return nil
			}
		}
	}
	return fmt.Errorf("archive/s3: create bucket %s: %w", s.bucket, err)
}

// Bucket returns the bucket the store keeps its objects in.
func (s *Store) Bucket() string { return s.bucket }

// maxNameLen is the longest object name S3 accepts, in bytes.
const maxNameLen = 1024

// checkKey validates key with archive.ValidateKey and against what S3 requires of object
// names: valid UTF-8 and at most 1024 bytes, the prefix included.
func (s *Store) checkKey(key string) error {
	if err := archive.ValidateKey(key); err != nil {
		return err
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: %q is not valid UTF-8", archive.ErrInvalidKey, key)
	}
	if len(s.prefix)+len(key) > maxNameLen {
		return fmt.Errorf("%w: %.40q... is longer than S3's %d bytes", archive.ErrInvalidKey, key, maxNameLen)
	}
	return nil
}

// object returns the S3 object name for a key.
func (s *Store) object(key string) string { return s.prefix + key }

// info converts the service's description of the object under key.
func info(key string, oi minio.ObjectInfo) archive.ObjectInfo {
	return archive.ObjectInfo{Key: key, Size: oi.Size, ModTime: modTime(oi.LastModified)}
}

func modTime(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

// errorCode returns the S3 error code in err, or "".
func errorCode(err error) string {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return er.Code
	}
	return ""
}

func isNotFound(err error) bool {
	switch errorCode(err) {
	case "NoSuchKey", "NotFound", "NoSuchVersion":
		return true
	}
	return false
}

func isInvalidRange(err error) bool {
	var er minio.ErrorResponse
	return errors.As(err, &er) && (er.Code == "InvalidRange" || er.StatusCode == 416)
}

// fail wraps err for operation op on key, mapping a missing object to
// archive.ErrNotFound.
func fail(op, key string, err error) error {
	if isNotFound(err) {
		err = archive.ErrNotFound
	}
	return fmt.Errorf("archive/s3: %s %s: %w", op, key, err)
}

// Get implements archive.Store. It makes a single GET request, so a missing key is
// reported by Get itself.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, archive.ObjectInfo, error) {
	if err := s.checkKey(key); err != nil {
		return nil, archive.ObjectInfo{}, fail("get", key, err)
	}
	body, oi, _, err := s.core.GetObject(ctx, s.bucket, s.object(key), minio.GetObjectOptions{})
	if err != nil {
		return nil, archive.ObjectInfo{}, fail("get", key, err)
	}
	return body, info(key, oi), nil
}

// rangeBody is a ranged view of a response body.
type rangeBody struct {
	io.Reader
	io.Closer
}

// GetRange implements archive.Store. It makes a single ranged GET request, plus a Stat
// when the service rejects the range (to tell an empty object from a bad offset) or
// when length is 0.
func (s *Store) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := s.checkKey(key); err != nil {
		return nil, fail("get", key, err)
	}
	if offset < 0 || length < -1 {
		return nil, fmt.Errorf("archive/s3: get %s [%d,%d]: %w", key, offset, length, archive.ErrInvalidRange)
	}
	if length == 0 {
		// An empty range cannot be expressed as an HTTP range; check the offset only.
		oi, err := s.core.StatObject(ctx, s.bucket, s.object(key), minio.StatObjectOptions{})
		if err != nil {
			return nil, fail("get", key, err)
		}
		if _, err := archive.ClampRange(oi.Size, offset, length); err != nil {
			return nil, fmt.Errorf("archive/s3: get %s [%d,%d]: %w", key, offset, length, err)
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	if offset == 0 && length == -1 {
		// The whole object; a plain GET also works for an empty object.
		rc, _, err := s.Get(ctx, key)
		return rc, err
	}
	var opts minio.GetObjectOptions
	if length == -1 || length-1 > math.MaxInt64-offset {
		opts.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	} else {
		opts.Set("Range", fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
	}
	body, oi, hdr, err := s.core.GetObject(ctx, s.bucket, s.object(key), opts)
	if err != nil {
		if !isInvalidRange(err) {
			return nil, fail("get", key, err)
		}
		// S3 rejects every range of an empty object, but reading it from 0 is fine.
		st, serr := s.core.StatObject(ctx, s.bucket, s.object(key), minio.StatObjectOptions{})
		if serr == nil && st.Size == 0 && offset == 0 {
			return io.NopCloser(strings.NewReader("")), nil
		}
		if isNotFound(serr) {
			return nil, fail("get", key, serr)
		}
		return nil, fmt.Errorf("archive/s3: get %s [%d,%d]: %w", key, offset, length, archive.ErrInvalidRange)
	}
	start, ok := contentRangeStart(hdr.Get("Content-Range"))
	if !ok {
		// The service ignored the range and sent the whole object: cut it here.
		n, err := archive.ClampRange(oi.Size, offset, length)
		if err != nil {
			body.Close()
			return nil, fmt.Errorf("archive/s3: get %s [%d,%d]: %w", key, offset, length, err)
		}
		if _, err := io.CopyN(io.Discard, body, offset); err != nil {
			body.Close()
			return nil, fmt.Errorf("archive/s3: get %s: %w", key, err)
		}
		return rangeBody{io.LimitReader(body, n), body}, nil
	}
	if start != offset {
		body.Close()
		return nil, fmt.Errorf("archive/s3: get %s: service returned a range starting at %d, not %d", key, start, offset)
	}
	if length == -1 {
		return body, nil
	}
	return rangeBody{io.LimitReader(body, length), body}, nil
}

// contentRangeStart parses the first byte position of a "bytes first-last/size"
// Content-Range header.
func contentRangeStart(h string) (int64, bool) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(first), 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// Stat implements archive.Store.
func (s *Store) Stat(ctx context.Context, key string) (archive.ObjectInfo, error) {
	if err := s.checkKey(key); err != nil {
		return archive.ObjectInfo{}, fail("stat", key, err)
	}
	oi, err := s.core.StatObject(ctx, s.bucket, s.object(key), minio.StatObjectOptions{})
	if err != nil {
		return archive.ObjectInfo{}, fail("stat", key, err)
	}
	return info(key, oi), nil
}

// Delete implements archive.Store. S3 reports success for deleting a missing object, so
// Delete first checks that the object exists; of two concurrent deletes of one object
// both may succeed.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.checkKey(key); err != nil {
		return fail("delete", key, err)
	}
	if _, err := s.core.StatObject(ctx, s.bucket, s.object(key), minio.StatObjectOptions{}); err != nil {
		return fail("delete", key, err)
	}
	if err := s.core.RemoveObject(ctx, s.bucket, s.object(key), minio.RemoveObjectOptions{}); err != nil {
		return fail("delete", key, err)
	}
	return nil
}

// List implements archive.Store. Objects in the bucket whose names are not valid keys
// (such as the "folder/" markers some consoles create) are skipped.
func (s *Store) List(ctx context.Context, prefix string) iter.Seq2[archive.ObjectInfo, error] {
	return func(yield func(archive.ObjectInfo, error) bool) {
		fail := func(err error) {
			yield(archive.ObjectInfo{}, fmt.Errorf("archive/s3: list %s: %w", prefix, err))
		}
		if err := ctx.Err(); err != nil {
			fail(err)
			return
		}
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		fetchOwner := false
		objects := s.core.ListObjectsIter(lctx, s.bucket, minio.ListObjectsOptions{
			Prefix:     s.prefix + prefix,
			Recursive:  true,
			FetchOwner: &fetchOwner,
		})
		for oi := range objects {
			if oi.Err != nil {
				fail(oi.Err)
				return
			}
			key, ok := strings.CutPrefix(oi.Key, s.prefix)
			if !ok || archive.ValidateKey(key) != nil {
				continue
			}
			if !yield(info(key, oi), nil) {
				return
			}
		}
		// The client ends a listing silently when its context is done.
		if err := ctx.Err(); err != nil {
			fail(err)
		}
	}
}

// Ping implements archive.Store: the bucket must exist and be accessible.
func (s *Store) Ping(ctx context.Context) error {
	ok, err := s.core.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("archive/s3: ping: %w", err)
	}
	if !ok {
		return fmt.Errorf("archive/s3: ping: bucket %s does not exist", s.bucket)
	}
	return nil
}
