package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/lumenpacs/lumen/archive"
)

// errTooLong reports a reader yielding more bytes than the size given to Put.
var errTooLong = errors.New("reader yields more bytes than declared")

// Put implements archive.Store.
//
// It holds at most one part in memory (see Config.PartSize). An object of up to one part
// is sent with a single PUT once it has been read to the end; a larger one is sent as a
// multipart upload and committed only once r reached its end with the declared size.
// If r fails, yields a different number of bytes than size (when size is not -1), or
// ctx ends, Put returns an error, the upload is aborted and nothing becomes visible
// under key.
//
// The returned ModTime is the service's, read back after the upload; should that read
// fail, or show that a concurrent put already replaced the object, it is the local
// clock's.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (archive.ObjectInfo, error) {
	if err := s.checkKey(key); err != nil {
		return archive.ObjectInfo{}, fail("put", key, err)
	}
	if size < -1 {
		return archive.ObjectInfo{}, fmt.Errorf("archive/s3: put %s: invalid size %d", key, size)
	}
	if err := ctx.Err(); err != nil {
		return archive.ObjectInfo{}, fail("put", key, err)
	}
	obj := s.object(key)
	etag, n, err := s.upload(ctx, obj, r, size)
	if err != nil {
		return archive.ObjectInfo{}, fail("put", key, err)
	}
	mt := modTime(time.Now())
	if oi, err := s.core.StatObject(ctx, s.bucket, obj, minio.StatObjectOptions{}); err == nil && oi.ETag == etag && oi.Size == n {
		mt = modTime(oi.LastModified)
	}
	return archive.ObjectInfo{Key: key, Size: n, ModTime: mt}, nil
}

// partSizeFor returns the part size for an object of the given size (-1 if unknown):
// the configured one, raised if needed so that the object fits in maxParts parts.
func (s *Store) partSizeFor(size int64) (int64, error) {
	if size > maxObjectSize {
		return 0, fmt.Errorf("size %d exceeds the S3 limit of %d bytes", size, int64(maxObjectSize))
	}
	ps := s.partSize
	if need := (size + maxParts - 1) / maxParts; need > ps {
		const mib = 1 << 20
		ps = (need + mib - 1) / mib * mib
	}
	return ps, nil
}

// upload sends everything read from r as object obj and returns its ETag and size.
func (s *Store) upload(ctx context.Context, obj string, r io.Reader, size int64) (etag string, n int64, err error) {
	partSize, err := s.partSizeFor(size)
	if err != nil {
		return "", 0, err
	}
	src := &peekReader{ctx: ctx, r: r}
	var buf []byte
	if size >= 0 {
		buf = make([]byte, 0, min(size, partSize))
	}
	var (
		uploadID string
		parts    []minio.CompletePart
	)
	defer func() {
		if err != nil && uploadID != "" {
			s.abort(ctx, obj, uploadID)
		}
	}()
	for {
		limit := partSize
		if size >= 0 {
			limit = min(partSize, size-n)
		}
		var eof bool
		buf, eof, err = readPart(src, buf[:0], limit)
		if err != nil {
			return "", 0, err
		}
		// Whether this part is the last decides between one PUT and a multipart upload,
		// and whether to complete the upload; it is known without looking ahead only
		// when the declared size has not been reached yet.
		if !eof && (size < 0 || n+int64(len(buf)) == size) {
			more, err := src.more()
			if err != nil {
				return "", 0, err
			}
			eof = !more
		}
		n += int64(len(buf))
		if size >= 0 {
			if eof && n < size {
				return "", 0, fmt.Errorf("read %d bytes, expected %d: %w", n, size, io.ErrUnexpectedEOF)
			}
			if !eof && n == size {
				return "", 0, fmt.Errorf("%w (%d)", errTooLong, size)
			}
		}
		if eof && uploadID == "" {
			// The whole object is in buf: one atomic PUT.
			if err := ctx.Err(); err != nil {
				return "", 0, err
			}
			ui, err := s.core.PutObject(ctx, s.bucket, obj, bytes.NewReader(buf), int64(len(buf)), "", "", minio.PutObjectOptions{})
			if err != nil {
				return "", 0, err
			}
			return ui.ETag, n, nil
		}
		if uploadID == "" {
			if uploadID, err = s.core.NewMultipartUpload(ctx, s.bucket, obj, minio.PutObjectOptions{}); err != nil {
				return "", 0, err
			}
		}
		if len(parts) == maxParts {
			return "", 0, fmt.Errorf("object larger than %d parts of %d bytes; give its size or raise PartSize", maxParts, partSize)
		}
		num := len(parts) + 1
		p, err := s.core.PutObjectPart(ctx, s.bucket, obj, uploadID, num, bytes.NewReader(buf), int64(len(buf)), minio.PutObjectPartOptions{})
		if err != nil {
			return "", 0, fmt.Errorf("part %d: %w", num, err)
		}
		parts = append(parts, minio.CompletePart{PartNumber: num, ETag: p.ETag})
		if eof {
			if err := ctx.Err(); err != nil {
				return "", 0, err
			}
			ui, err := s.core.CompleteMultipartUpload(ctx, s.bucket, obj, uploadID, parts, minio.PutObjectOptions{})
			if err != nil {
				return "", 0, err
			}
			return ui.ETag, n, nil
		}
	}
}

// abort discards a failed multipart upload. Its parts were never visible, but they take
// space until aborted. When ctx is still live Put waits for the abort; when ctx has
// ended the caller is not kept waiting and the abort runs in the background.
func (s *Store) abort(ctx context.Context, obj, uploadID string) {
	run := func() {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		_ = s.core.AbortMultipartUpload(actx, s.bucket, obj, uploadID)
	}
	if ctx.Err() != nil {
		go run()
		return
	}
	run()
}

// readPart appends to buf what r yields until buf holds limit bytes or r ends, growing
// buf as needed. eof reports that r ended (it may still have ended exactly at limit).
func readPart(r io.Reader, buf []byte, limit int64) (_ []byte, eof bool, err error) {
	for int64(len(buf)) < limit {
		if len(buf) == cap(buf) {
			nc := min(max(2*int64(cap(buf)), 64<<10), limit)
			nb := make([]byte, len(buf), nc)
			copy(nb, buf)
			buf = nb
		}
		end := min(int64(cap(buf)), limit)
		n, err := r.Read(buf[len(buf):end])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, true, nil
		}
		if err != nil {
			return buf, false, err
		}
	}
	return buf, false, nil
}

// peekReader reads from r until ctx ends, and can look one byte ahead.
type peekReader struct {
	ctx context.Context
	r   io.Reader
	b   [1]byte
	has bool  // b holds a byte not yet returned
	err error // the error that came with b, returned after it
}

// Read implements io.Reader.
func (p *peekReader) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if p.has {
		b[0] = p.b[0]
		p.has = false
		return 1, nil
	}
	if p.err != nil {
		return 0, p.err
	}
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	return p.r.Read(b)
}

// more reports whether r has at least one more byte, keeping it for the next Read.
func (p *peekReader) more() (bool, error) {
	switch {
	case p.has:
		return true, nil
	case p.err == io.EOF:
		return false, nil
	case p.err != nil:
		return false, p.err
	}
	for range 100 {
		if err := p.ctx.Err(); err != nil {
			return false, err
		}
		n, err := p.r.Read(p.b[:])
		if n > 0 {
			p.has, p.err = true, err
			return true, nil
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
	return false, io.ErrNoProgress
}
