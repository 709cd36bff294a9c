package ingest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/lumenpacs/lumen/archive"
)

// blobWriter is the object being stored while the pipeline parses it. A store that takes
// writes (archive.Creator, the file system) receives the bytes in the ingesting
// goroutine, with no pipe and no second goroutine; any other store (S3) reads them from
// a pipe in Store.Put, in a goroutine of its own.
type blobWriter struct {
	ctx  context.Context
	key  string
	size int64 // expected length, or -1

	w   archive.Writer // archive.Creator
	buf *bufio.Writer  // in front of w: few, large writes whatever the reads' sizes
	n   int64

	pw   *io.PipeWriter // Store.Put
	done chan putResult
}

type putResult struct {
	info archive.ObjectInfo
	err  error
}

// openBlob starts storing an object under key; size is its length, or -1.
func (p *Pipeline) openBlob(ctx context.Context, key string, size int64) (*blobWriter, error) {
	b := &blobWriter{ctx: ctx, key: key, size: size}
	if c, ok := p.Store.(archive.Creator); ok {
		w, err := c.Create(ctx, key)
		if err != nil {
			return nil, err
		}
		b.w = w
		b.buf = writeBuffers.Get().(*bufio.Writer)
		b.buf.Reset(w)
		return b, nil
	}
	pr, pw := io.Pipe()
	b.pw, b.done = pw, make(chan putResult, 1)
	go func() {
		info, err := p.Store.Put(ctx, key, pr, size)
		if err != nil {
			pr.CloseWithError(err)
		}
		b.done <- putResult{info, err}
	}()
	return b, nil
}

// Write passes bytes of the object to the store.
func (b *blobWriter) Write(p []byte) (int, error) {
	if b.w == nil {
		return b.pw.Write(p)
	}
	n, err := b.buf.Write(p)
	b.n += int64(n)
	return n, err
}

// writeBuffers holds the write buffers of finished objects (blobWriter.buf). A STOW-RS
// part arrives in reads of a few KiB (mime/multipart's buffer): without it, each would be
// a write to the file.
var writeBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 256<<10) }}

// release returns the write buffer to writeBuffers.
func (b *blobWriter) release() {
	if b.buf != nil {
		b.buf.Reset(nil)
		writeBuffers.Put(b.buf)
		b.buf = nil
	}
}

// abort discards the object (the store's Put, if any, fails with err).
func (b *blobWriter) abort(err error) {
	if b.w == nil {
		b.pw.CloseWithError(err)
		<-b.done
		return
	}
	b.w.Abort()
	b.release()
}

// commit ends the object and returns once it is durable, or why it is not.
func (b *blobWriter) commit() putResult {
	if b.w == nil {
		b.pw.Close()
		return <-b.done
	}
	defer b.release()
	if b.size >= 0 && b.n != b.size {
		b.w.Abort()
		return putResult{err: fmt.Errorf("archive: put %s: read %d bytes, expected %d: %w", b.key, b.n, b.size, io.ErrUnexpectedEOF)}
	}
	if err := b.buf.Flush(); err != nil {
		b.w.Abort()
		return putResult{err: err}
	}
	info, err := b.w.Commit(b.ctx)
	return putResult{info, err}
}
