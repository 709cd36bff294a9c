package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"time"
)

// ErrNotFound is returned (wrapped) when a key does not exist.
var ErrNotFound = errors.New("archive: object not found")

// ErrInvalidRange is returned (wrapped) when a ranged read starts beyond the end of an
// object or has a negative offset or length.
var ErrInvalidRange = errors.New("archive: invalid range")

// ErrInvalidKey is returned (wrapped) when a key is empty, absolute, or contains empty,
// "." or ".." path elements.
var ErrInvalidKey = errors.New("archive: invalid key")

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	// Key is the object's key.
	Key string
	// Size is the object's length in bytes.
	Size int64
	// ModTime is when the object was last written.
	ModTime time.Time
}

// Store is blob storage. Implementations are safe for concurrent use.
//
// Put is atomic: a concurrent or later Get sees either the previous object or the whole
// new one, never a partial object. Put returns only once the object is durable. If r
// returns an error or ctx is cancelled, nothing becomes visible under key.
type Store interface {
	// Put stores everything read from r under key, replacing any existing object.
	// size is the number of bytes r will yield, or -1 when unknown.
	Put(ctx context.Context, key string, r io.Reader, size int64) (ObjectInfo, error)
	// Get opens the whole object. The caller closes the reader.
	Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error)
	// GetRange opens length bytes starting at offset. A length of -1 reads to the end;
	// a range running past the end is shortened to the end. An offset at or beyond the
	// end of a non-empty object is ErrInvalidRange.
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// Stat describes the object under key.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// Delete removes the object. Deleting a missing key is ErrNotFound.
	Delete(ctx context.Context, key string) error
	// List yields every object whose key starts with prefix, in lexical key order.
	List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error]
	// Ping reports whether the backend is reachable and usable.
	Ping(ctx context.Context) error
}

// Writer receives the bytes of one object from Creator.Create as the caller writes
// them. Nothing is visible under the key before Commit returns nil. A Writer is used by
// one goroutine.
type Writer interface {
	// Write appends bytes to the object.
	io.Writer
	// Commit makes the object durable and visible under its key, atomically, with the
	// guarantees of Store.Put: once it returns nil the whole object survives a crash; a
	// concurrent or later Get sees the previous object or the whole new one. On error
	// nothing becomes visible and the Writer is finished. ctx cancelled before the
	// object becomes visible fails the commit.
	Commit(ctx context.Context) (ObjectInfo, error)
	// Abort discards what was written; nothing becomes visible. After Commit, or a
	// second time, it does nothing.
	Abort()
}

// Creator is implemented by stores that take an object's bytes as the caller writes
// them, in the caller's goroutine (archive/fs), instead of reading them from an
// io.Reader in Put: the caller then needs no pipe and no second goroutine. Stores that
// upload from a reader (archive/s3) do not implement it.
type Creator interface {
	// Create starts an object under key. The caller writes its bytes and then calls
	// Commit, or Abort.
	Create(ctx context.Context, key string) (Writer, error)
}

// ValidateKey checks that key is a relative slash-separated path with no empty, "."
// or ".." elements, the form every backend accepts.
func ValidateKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") || strings.ContainsAny(key, "\\\x00") {
		return fmt.Errorf("%w: %q", ErrInvalidKey, key)
	}
	for _, el := range strings.Split(key, "/") {
		if el == "" || el == "." || el == ".." {
			return fmt.Errorf("%w: %q", ErrInvalidKey, key)
		}
	}
	return nil
}

// ClampRange validates a ranged read of an object of the given size and returns the number
// of bytes it covers: length -1 means to the end, a range past the end is shortened, and an
// offset at or beyond the end of a non-empty object is ErrInvalidRange.
func ClampRange(size, offset, length int64) (int64, error) {
	if offset < 0 || length < -1 {
		return 0, ErrInvalidRange
	}
	if size == 0 && offset == 0 {
		return 0, nil
	}
	if offset >= size {
		return 0, ErrInvalidRange
	}
	if length == -1 || offset+length > size {
		return size - offset, nil
	}
	return length, nil
}
