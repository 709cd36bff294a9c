package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/lumenpacs/lumen/archive"
)

// tmpPrefix marks in-progress puts; such files are never listed or returned.
const tmpPrefix = ".tmp-"

// Store keeps objects as files under a root directory.
type Store struct {
	root string
	// dirs remembers directories known to exist, so that a put into one of them needs
	// no stat (bounded: forgotten all at once when it reaches maxKnownDirs).
	dirs  sync.Map // string -> struct{}
	ndirs atomic.Int64
	// syncs shares directory fsyncs between the commits into one directory (dirSync).
	smu   sync.Mutex
	syncs map[string]*dirSync
	// anon: puts write anonymous files (Options.AnonymousTemps, offered here).
	anon atomic.Bool
	// direct: puts write with direct I/O (Options.DirectWrites; cleared when the file
	// system refuses it).
	direct atomic.Bool
}

// Options configures a store opened with Open. The zero value is the store of New.
type Options struct {
	// AnonymousTemps writes each object to an anonymous file (Linux's O_TMPFILE) that is
	// given its name at Commit (linkat), instead of to a named temporary file renamed
	// into place, where the file system offers such files (Open tries once in the root;
	// a directory that does not offer them gets a named temporary file). A put then
	// makes one directory entry instead of making one and replacing it, and the fsync of
	// its file does not also write its directory (ext4 without a journal does so for a
	// file with a new name). Durability is unchanged: the file is fsynced before it is
	// named, and the directory after.
	//
	// A put cut short leaves no temporary file: the file system reclaims the nameless
	// inode (journaled file systems when mounted again, ext4 without a journal when
	// e2fsck runs). So StaleTemps finds only the temporary files of puts that did not
	// use an anonymous file (and of an overwrite, which renames over the old object).
	AnonymousTemps bool

	// DirectWrites writes objects with direct I/O (Linux's O_DIRECT): the bytes go from
	// the writer's aligned buffers to the device, not through the page cache, so a put
	// spends no CPU copying them into the cache and its fsync has no cached pages to
	// write back. The last partial block of each object is written through the cache.
	// Objects just stored are then not in the page cache (a read right after the put
	// reads the device). Where the file system refuses direct I/O, puts use the cache.
	DirectWrites bool
}

// Open opens (creating if needed) a store rooted at dir, configured by opts.
func Open(dir string, opts Options) (*Store, error) {
	s, err := New(dir)
	if err != nil {
		return nil, err
	}
	if opts.AnonymousTemps {
		s.anon.Store(s.anonWorks())
	}
	s.direct.Store(opts.DirectWrites)
	return s, nil
}

// AnonymousTemps reports whether puts write anonymous files (Options.AnonymousTemps, and
// the file system under the root offers them).
func (s *Store) AnonymousTemps() bool { return s.anon.Load() }

// anonWorks reports whether an anonymous file made in the root can be given a name
// there (the kernel and file system offer O_TMPFILE, and linkat can name it).
func (s *Store) anonWorks() bool {
	f, ok, err := openAnon(s.root, 0o600)
	if !ok || err != nil {
		return false
	}
	defer f.Close()
	name := filepath.Join(s.root, tmpPrefix+"probe-"+strconv.FormatUint(rand.Uint64(), 36))
	if err := linkAnon(f, name); err != nil {
		return false
	}
	os.Remove(name)
	return true
}

// maxKnownDirs bounds Store.dirs (ingest makes 256 directories a day).
const maxKnownDirs = 4096

// New opens (creating if needed) a store rooted at dir.
func New(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("archive/fs: %w", err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("archive/fs: create root: %w", err)
	}
	return &Store{root: abs, syncs: map[string]*dirSync{}}, nil
}

// Root returns the store's root directory.
func (s *Store) Root() string { return s.root }

func (s *Store) path(key string) (string, error) {
	if err := archive.ValidateKey(key); err != nil {
		return "", err
	}
	for _, el := range strings.Split(key, "/") {
		if strings.HasPrefix(el, tmpPrefix) {
			return "", fmt.Errorf("%w: %q uses the reserved prefix %s", archive.ErrInvalidKey, key, tmpPrefix)
		}
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// ctxReader fails reads once its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Put implements archive.Store.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (archive.ObjectInfo, error) {
	w, err := s.create(ctx, key)
	if err != nil {
		return archive.ObjectInfo{}, err
	}
	n, err := io.Copy(w, ctxReader{ctx, r})
	if err == nil && size >= 0 && n != size {
		err = fmt.Errorf("read %d bytes, expected %d: %w", n, size, io.ErrUnexpectedEOF)
	}
	if err != nil {
		w.Abort()
		return archive.ObjectInfo{}, fmt.Errorf("archive/fs: put %s: %w", key, err)
	}
	return w.Commit(ctx)
}

var _ archive.Creator = (*Store)(nil)

// Create implements archive.Creator: the object is written to a temporary file in its
// directory; Commit fsyncs it, renames it into place and fsyncs the directory.
func (s *Store) Create(ctx context.Context, key string) (archive.Writer, error) {
	return s.create(ctx, key)
}

func (s *Store) create(ctx context.Context, key string) (*writer, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, fmt.Errorf("archive/fs: put %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("archive/fs: put %s: %w", key, err)
	}
	dir := filepath.Dir(p)
	_, known := s.dirs.Load(dir)
	if !known {
		if err := s.mkdirAll(dir); err != nil {
			return nil, fmt.Errorf("archive/fs: put %s: %w", key, err)
		}
	}
	f, anon, err := s.openTemp(dir)
	if known && errors.Is(err, fs.ErrNotExist) {
		// Removed since it was made: make it again.
		s.dirs.Delete(dir)
		if err := s.mkdirAll(dir); err != nil {
			return nil, fmt.Errorf("archive/fs: put %s: %w", key, err)
		}
		f, anon, err = s.openTemp(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("archive/fs: put %s: %w", key, err)
	}
	w := &writer{s: s, ctx: ctx, key: key, path: p, dir: dir, f: f, anon: anon}
	if s.direct.Load() {
		w.direct = directMaybe
	}
	return w, nil
}

// openTemp opens the file a put writes in dir: an anonymous file when the store uses
// them and dir offers them (anon), otherwise a named temporary file.
func (s *Store) openTemp(dir string) (f *os.File, anon bool, err error) {
	if s.anon.Load() {
		f, ok, err := openAnon(dir, objectPerm)
		if ok {
			return f, true, err
		}
	}
	f, err = os.CreateTemp(dir, tmpPrefix+"*")
	return f, false, err
}

// objectPerm is the permission of stored objects.
const objectPerm = 0o640

// mkdirAll makes dir and its missing parents (see mkdirAll), makes their entries
// durable (an fsync of the parent of each directory made) and remembers that dir exists.
// The entries are synced here, before any object is renamed into them, and not at the
// commit of the object that needed them: a later object in the same directory, whose
// put found it made, would otherwise rely on a put that may have been aborted.
func (s *Store) mkdirAll(dir string) error {
	created, err := mkdirAll(dir)
	if err != nil {
		return err
	}
	for _, d := range created {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	if s.ndirs.Add(1) > maxKnownDirs {
		s.dirs.Clear()
		s.ndirs.Store(1)
	}
	s.dirs.Store(dir, struct{}{})
	return nil
}

// writer is an object being written to its temporary file (archive.Writer).
type writer struct {
	s    *Store
	ctx  context.Context
	key  string
	path string   // the final path
	dir  string   // its directory
	f    *os.File // nil once committed or aborted
	anon bool     // f is anonymous (openAnon): it has no name before Commit
	n    int64
	// direct is the writer's direct I/O state (Options.DirectWrites); dbuf holds, in
	// an aligned buffer (directBufs), what is not yet written.
	direct int
	dbuf   *[]byte
}

// Direct I/O states of a writer.
const (
	directOff   = iota // writes go through the page cache
	directMaybe        // direct I/O wanted: the first bytes wait in dbuf until there are enough
	directOn           // the file is in direct I/O mode
)

// directMin is the least that goes to the file directly from the caller's buffer
// (aligned) rather than through dbuf. An object that ends before filling dbuf (256 KiB)
// and was not written so is written through the cache at Commit: for small objects
// direct I/O would cost more system calls and a wait for the device, and save little.
const directMin = 64 << 10

// directAlign is the alignment of direct writes: of the memory, the length and the
// file offset (a page, a multiple of every block device's logical block size).
const directAlign = 4096

// directBufs holds aligned buffers of 256 KiB for direct writes.
var directBufs = sync.Pool{New: func() any {
	const size = 256 << 10
	b := make([]byte, size+directAlign)
	off := (directAlign - int(uintptr(unsafe.Pointer(unsafe.SliceData(b)))%directAlign)) % directAlign
	b = b[off : off : off+size]
	return &b
}}

// isAligned reports whether p starts at an address direct I/O takes.
func isAligned(p []byte) bool {
	return uintptr(unsafe.Pointer(unsafe.SliceData(p)))%directAlign == 0
}

// Write implements archive.Writer; it fails once the context of Create is done.
func (w *writer) Write(p []byte) (int, error) {
	if w.f == nil {
		return 0, fmt.Errorf("archive/fs: put %s: write after commit or abort", w.key)
	}
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	if w.direct != directOff {
		return w.writeDirect(p)
	}
	n, err := w.f.Write(p)
	w.n += int64(n)
	return n, err
}

// writeDirect takes p while direct I/O is wanted or on: whole aligned blocks of a large
// aligned p go to the file directly when nothing is buffered; the rest through dbuf,
// written when full.
func (w *writer) writeDirect(p []byte) (int, error) {
	done := 0
	for len(p) > 0 {
		if w.direct == directOff {
			n, err := w.f.Write(p)
			done += n
			w.n += int64(n)
			return done, err
		}
		if (w.dbuf == nil || len(*w.dbuf) == 0) && len(p) >= directMin && isAligned(p) {
			n := len(p) &^ (directAlign - 1)
			if err := w.writeOut(w.f, p[:n]); err != nil {
				return done, err
			}
			p, done, w.n = p[n:], done+n, w.n+int64(n)
			continue
		}
		if w.dbuf == nil {
			w.dbuf = directBufs.Get().(*[]byte)
		}
		b := *w.dbuf
		n := copy(b[len(b):cap(b)], p)
		b = b[:len(b)+n]
		*w.dbuf = b
		p, done, w.n = p[n:], done+n, w.n+int64(n)
		if len(b) == cap(b) {
			if err := w.writeOut(w.f, b); err != nil {
				return done, err
			}
			*w.dbuf = b[:0]
		}
	}
	return done, nil
}

// writeOut writes b, whole aligned blocks, to f, the writer's file, turning direct I/O
// on first if it is wanted. Should the file system refuse direct I/O, the file and the
// store leave it and b goes through the cache.
func (w *writer) writeOut(f *os.File, b []byte) error {
	if w.direct == directMaybe {
		w.direct = directOn
		if err := setDirect(f, true); err != nil {
			w.s.direct.Store(false)
			w.direct = directOff
		}
	}
	_, err := f.Write(b)
	if err != nil && w.direct == directOn && errDirectRefused(err) {
		w.s.direct.Store(false)
		if serr := setDirect(f, false); serr != nil {
			return err
		}
		w.direct = directOff
		_, err = f.Write(b)
	}
	return err
}

// flushDirect writes what dbuf holds to f, the writer's file: in direct I/O mode its
// whole blocks directly and the rest through the cache (direct I/O takes only whole
// blocks); otherwise (a short object) all through the cache.
func (w *writer) flushDirect(f *os.File) error {
	defer w.releaseDirect()
	if w.dbuf == nil || len(*w.dbuf) == 0 {
		return nil
	}
	b := *w.dbuf
	if w.direct == directOn {
		if n := len(b) &^ (directAlign - 1); n > 0 {
			if err := w.writeOut(f, b[:n]); err != nil {
				return err
			}
			b = b[n:]
		}
	}
	if len(b) == 0 {
		return nil
	}
	if w.direct == directOn {
		if err := setDirect(f, false); err != nil {
			return err
		}
	}
	w.direct = directOff
	_, err := f.Write(b)
	return err
}

// releaseDirect returns dbuf to directBufs.
func (w *writer) releaseDirect() {
	if w.dbuf != nil {
		*w.dbuf = (*w.dbuf)[:0]
		directBufs.Put(w.dbuf)
		w.dbuf = nil
	}
}

// Abort implements archive.Writer.
func (w *writer) Abort() {
	if w.f == nil {
		return
	}
	w.releaseDirect()
	w.f.Close()
	if !w.anon {
		os.Remove(w.f.Name())
	}
	w.f = nil
}

// Commit implements archive.Writer: fsync, rename into place, fsync the directory (the
// directories made for the object were synced in Create).
func (w *writer) Commit(ctx context.Context) (archive.ObjectInfo, error) {
	if w.f == nil {
		return archive.ObjectInfo{}, fmt.Errorf("archive/fs: put %s: commit after commit or abort", w.key)
	}
	if w.anon {
		return w.commitAnon(ctx)
	}
	f, tmp := w.f, w.f.Name()
	w.f = nil
	fail := func(err error) (archive.ObjectInfo, error) {
		f.Close()
		os.Remove(tmp)
		return archive.ObjectInfo{}, fmt.Errorf("archive/fs: put %s: %w", w.key, err)
	}
	if err := w.ctx.Err(); err != nil {
		return fail(err)
	}
	if err := w.flushDirect(f); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if err := f.Chmod(objectPerm); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return archive.ObjectInfo{}, fmt.Errorf("archive/fs: put %s: %w", w.key, err)
	}
	if err := ctx.Err(); err != nil {
		os.Remove(tmp)
		return archive.ObjectInfo{}, fmt.Errorf("archive/fs: put %s: %w", w.key, err)
	}
	if err := w.ctx.Err(); err != nil {
		os.Remove(tmp)
		return archive.ObjectInfo{}, fmt.Errorf("archive/fs: put %s: %w", w.key, err)
	}
	if err := os.Rename(tmp, w.path); err != nil {
		os.Remove(tmp)
		return archive.ObjectInfo{}, fmt.Errorf("archive/fs: put %s: %w", w.key, err)
	}
	if err := w.s.syncDirShared(w.dir); err != nil {
		return archive.ObjectInfo{}, fmt.Errorf("archive/fs: put %s: %w", w.key, err)
	}
	return archive.ObjectInfo{Key: w.key, Size: w.n, ModTime: st.ModTime()}, nil
}

// commitAnon is Commit for an anonymous file: its permission set and its data fsynced,
// it is named (linkat), then the directory is fsynced.
func (w *writer) commitAnon(ctx context.Context) (archive.ObjectInfo, error) {
	f := w.f
	w.f = nil
	fail := func(err error) (archive.ObjectInfo, error) {
		f.Close()
		return archive.ObjectInfo{}, fmt.Errorf("archive/fs: put %s: %w", w.key, err)
	}
	if err := w.ctx.Err(); err != nil {
		return fail(err)
	}
	if err := w.flushDirect(f); err != nil {
		return fail(err)
	}
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if st.Mode().Perm() != objectPerm {
		// The umask narrowed it.
		if err := f.Chmod(objectPerm); err != nil {
			return fail(err)
		}
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if err := w.ctx.Err(); err != nil {
		return fail(err)
	}
	err = linkAnon(f, w.path)
	if errors.Is(err, fs.ErrExist) {
		err = w.replaceAnon(f)
	}
	if err != nil {
		return fail(err)
	}
	// Its bytes were fsynced before it was named: closing it cannot lose them.
	f.Close()
	if err := w.s.syncDirShared(w.dir); err != nil {
		return archive.ObjectInfo{}, fmt.Errorf("archive/fs: put %s: %w", w.key, err)
	}
	return archive.ObjectInfo{Key: w.key, Size: w.n, ModTime: st.ModTime()}, nil
}

// replaceAnon names the anonymous file f with a temporary name and renames it over the
// object that has the key already (linkat does not replace).
func (w *writer) replaceAnon(f *os.File) error {
	for {
		tmp := filepath.Join(w.dir, tmpPrefix+strconv.FormatUint(rand.Uint64(), 36))
		err := linkAnon(f, tmp)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := os.Rename(tmp, w.path); err != nil {
			os.Remove(tmp)
			return err
		}
		return nil
	}
}

// mkdirAll creates dir and its missing parents, returning the directories it created,
// deepest last.
func mkdirAll(dir string) ([]string, error) {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err == nil {
			if !st.IsDir() {
				return nil, fmt.Errorf("%s is not a directory", d)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	slices.Reverse(missing)
	for _, d := range missing {
		if err := os.Mkdir(d, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
	}
	return missing, nil
}

// dirSync is the state of the directory fsyncs of one directory. A commit needs an
// fsync of its directory that starts after its rename. When none is running, it runs one
// (running). When one is running, it may have started before the rename, so the commit
// waits for the next round instead (pending): the first to need it opens it and runs it
// once the running one ends; everyone renamed meanwhile shares it and gets its result.
// With one writer, or writers in different directories, every commit runs its own fsync,
// as before.
type dirSync struct {
	running, pending *syncRound
}

type syncRound struct {
	done    chan struct{}
	err     error
	members int // the commits it serves
}

// syncDirShared returns once an fsync of dir that started after the call has ended.
func (s *Store) syncDirShared(dir string) error {
	s.smu.Lock()
	ds := s.syncs[dir]
	if ds == nil {
		ds = &dirSync{}
		s.syncs[dir] = ds
	}
	if ds.running == nil {
		r := &syncRound{done: make(chan struct{}), members: 1}
		ds.running = r
		s.smu.Unlock()
		return s.runSync(dir, ds, r)
	}
	if r := ds.pending; r != nil {
		r.members++
		s.smu.Unlock()
		<-r.done
		return r.err
	}
	r := &syncRound{done: make(chan struct{}), members: 1}
	ds.pending = r
	prev := ds.running
	s.smu.Unlock()
	<-prev.done // runSync made r the running round
	return s.runSync(dir, ds, r)
}

// runSync runs round r (the running one) and makes the pending round, if any, the
// running one.
func (s *Store) runSync(dir string, ds *dirSync, r *syncRound) error {
	r.err = syncDirFunc(dir)
	s.smu.Lock()
	ds.running, ds.pending = ds.pending, nil
	if ds.running == nil {
		delete(s.syncs, dir)
	}
	s.smu.Unlock()
	close(r.done)
	return r.err
}

// syncDirFunc is syncDir, replaced by tests.
var syncDirFunc = syncDir

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

func (s *Store) open(op, key string) (*os.File, archive.ObjectInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, archive.ObjectInfo{}, fmt.Errorf("archive/fs: %s %s: %w", op, key, err)
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscallENOTDIR) {
			return nil, archive.ObjectInfo{}, fmt.Errorf("archive/fs: %s %s: %w", op, key, archive.ErrNotFound)
		}
		return nil, archive.ObjectInfo{}, fmt.Errorf("archive/fs: %s %s: %w", op, key, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, archive.ObjectInfo{}, fmt.Errorf("archive/fs: %s %s: %w", op, key, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, archive.ObjectInfo{}, fmt.Errorf("archive/fs: %s %s: %w", op, key, archive.ErrNotFound)
	}
	return f, archive.ObjectInfo{Key: key, Size: st.Size(), ModTime: st.ModTime()}, nil
}

// Get implements archive.Store. The reader is the object's *os.File itself, so that
// copying it to a network connection (io.Copy, net/http's ReadFrom) can use sendfile.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, archive.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, archive.ObjectInfo{}, fmt.Errorf("archive/fs: get %s: %w", key, err)
	}
	f, info, err := s.open("get", key)
	if err != nil {
		return nil, archive.ObjectInfo{}, err
	}
	return f, info, nil
}

type sectionCloser struct {
	*io.SectionReader
	f *os.File
}

func (s sectionCloser) Close() error { return s.f.Close() }

// GetRange implements archive.Store.
func (s *Store) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("archive/fs: get %s: %w", key, err)
	}
	f, info, err := s.open("get", key)
	if err != nil {
		return nil, err
	}
	n, err := archive.ClampRange(info.Size, offset, length)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("archive/fs: get %s [%d,%d]: %w", key, offset, length, err)
	}
	return sectionCloser{io.NewSectionReader(f, offset, n), f}, nil
}

// Stat implements archive.Store.
func (s *Store) Stat(ctx context.Context, key string) (archive.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return archive.ObjectInfo{}, fmt.Errorf("archive/fs: stat %s: %w", key, err)
	}
	p, err := s.path(key)
	if err != nil {
		return archive.ObjectInfo{}, fmt.Errorf("archive/fs: stat %s: %w", key, err)
	}
	st, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscallENOTDIR) {
			return archive.ObjectInfo{}, fmt.Errorf("archive/fs: stat %s: %w", key, archive.ErrNotFound)
		}
		return archive.ObjectInfo{}, fmt.Errorf("archive/fs: stat %s: %w", key, err)
	}
	if !st.Mode().IsRegular() {
		return archive.ObjectInfo{}, fmt.Errorf("archive/fs: stat %s: %w", key, archive.ErrNotFound)
	}
	return archive.ObjectInfo{Key: key, Size: st.Size(), ModTime: st.ModTime()}, nil
}

// Delete implements archive.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("archive/fs: delete %s: %w", key, err)
	}
	if _, err := s.Stat(ctx, key); err != nil {
		return fmt.Errorf("archive/fs: delete %s: %w", key, archive.ErrNotFound)
	}
	p, _ := s.path(key)
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("archive/fs: delete %s: %w", key, archive.ErrNotFound)
		}
		return fmt.Errorf("archive/fs: delete %s: %w", key, err)
	}
	return syncDir(filepath.Dir(p))
}

// List implements archive.Store. Keys come in lexical order: within each directory,
// entries are visited in the order of their key text (a directory sorts as name + "/").
func (s *Store) List(ctx context.Context, prefix string) iter.Seq2[archive.ObjectInfo, error] {
	return func(yield func(archive.ObjectInfo, error) bool) {
		// Start from the deepest directory wholly named by the prefix.
		dirKey := ""
		if i := strings.LastIndex(prefix, "/"); i >= 0 {
			dirKey = prefix[:i]
		}
		s.walk(ctx, dirKey, prefix, yield)
	}
}

func (s *Store) walk(ctx context.Context, dirKey, prefix string, yield func(archive.ObjectInfo, error) bool) bool {
	if err := ctx.Err(); err != nil {
		yield(archive.ObjectInfo{}, fmt.Errorf("archive/fs: list %s: %w", prefix, err))
		return false
	}
	dir := filepath.Join(s.root, filepath.FromSlash(dirKey))
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscallENOTDIR) {
			return true
		}
		return yield(archive.ObjectInfo{}, fmt.Errorf("archive/fs: list %s: %w", prefix, err))
	}
	type ent struct {
		key   string
		sort  string
		isDir bool
		e     fs.DirEntry
	}
	var ents []ent
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		k := e.Name()
		if dirKey != "" {
			k = dirKey + "/" + k
		}
		sk := k
		if e.IsDir() {
			sk += "/"
		}
		// Keep entries that can contain or match the prefix.
		if !strings.HasPrefix(sk, prefix) && !strings.HasPrefix(prefix, sk) {
			continue
		}
		ents = append(ents, ent{key: k, sort: sk, isDir: e.IsDir(), e: e})
	}
	slices.SortFunc(ents, func(a, b ent) int { return strings.Compare(a.sort, b.sort) })
	for _, e := range ents {
		if e.isDir {
			if !s.walk(ctx, e.key, prefix, yield) {
				return false
			}
			continue
		}
		if !e.e.Type().IsRegular() || !strings.HasPrefix(e.key, prefix) {
			continue
		}
		fi, err := e.e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted meanwhile
			}
			if !yield(archive.ObjectInfo{}, fmt.Errorf("archive/fs: list %s: %w", prefix, err)) {
				return false
			}
			continue
		}
		if !yield(archive.ObjectInfo{Key: e.key, Size: fi.Size(), ModTime: fi.ModTime()}, nil) {
			return false
		}
	}
	return true
}

// Ping implements archive.Store: the root must exist and be writable.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("archive/fs: ping: %w", err)
	}
	f, err := os.CreateTemp(s.root, tmpPrefix+"ping-*")
	if err != nil {
		return fmt.Errorf("archive/fs: ping: %w", err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// StaleTemps yields the temporary files of interrupted puts (a crash, a kill, or a put
// whose clean-up could not run) last modified before before, in the directories where the
// objects under prefix live ("" is the whole store). Such files are never listed, read or
// committed; only their removal reclaims the space. Each is named by its slash-separated
// path under the root (e.g. "dicom/2026/03/01/ab/.tmp-123456"), which RemoveTemp takes.
// A put in progress keeps its file's modification time fresh, so before should lie well
// in the past (ingest.Check uses its grace period).
func (s *Store) StaleTemps(ctx context.Context, prefix string, before time.Time) iter.Seq2[archive.ObjectInfo, error] {
	return func(yield func(archive.ObjectInfo, error) bool) {
		dirKey := ""
		if i := strings.LastIndex(prefix, "/"); i >= 0 {
			dirKey = prefix[:i]
		}
		s.walkTemps(ctx, dirKey, prefix, before, yield)
	}
}

func (s *Store) walkTemps(ctx context.Context, dirKey, prefix string, before time.Time, yield func(archive.ObjectInfo, error) bool) bool {
	if err := ctx.Err(); err != nil {
		yield(archive.ObjectInfo{}, fmt.Errorf("archive/fs: list temporary files %s: %w", prefix, err))
		return false
	}
	entries, err := os.ReadDir(filepath.Join(s.root, filepath.FromSlash(dirKey)))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscallENOTDIR) {
			return true
		}
		return yield(archive.ObjectInfo{}, fmt.Errorf("archive/fs: list temporary files %s: %w", prefix, err))
	}
	for _, e := range entries {
		k := e.Name()
		if dirKey != "" {
			k = dirKey + "/" + k
		}
		switch {
		case strings.HasPrefix(e.Name(), tmpPrefix):
			if !e.Type().IsRegular() {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // renamed into place or removed meanwhile
				}
				if !yield(archive.ObjectInfo{}, fmt.Errorf("archive/fs: list temporary files %s: %w", prefix, err)) {
					return false
				}
				continue
			}
			if fi.ModTime().Before(before) && !yield(archive.ObjectInfo{Key: k, Size: fi.Size(), ModTime: fi.ModTime()}, nil) {
				return false
			}
		case e.IsDir():
			if sk := k + "/"; !strings.HasPrefix(sk, prefix) && !strings.HasPrefix(prefix, sk) {
				continue
			}
			if !s.walkTemps(ctx, k, prefix, before, yield) {
				return false
			}
		}
	}
	return true
}

// RemoveTemp removes a temporary file named as StaleTemps names it, provided it is still
// unmodified since before; removed is false for a file modified since (a put may be
// writing it again), which is kept. A missing file is archive.ErrNotFound. Should a put
// still be writing a removed file, that put fails and nothing becomes visible under its
// key.
func (s *Store) RemoveTemp(ctx context.Context, name string, before time.Time) (removed bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("archive/fs: remove temporary file %s: %w", name, err)
	}
	if err := archive.ValidateKey(name); err != nil {
		return false, fmt.Errorf("archive/fs: remove temporary file %s: %w", name, err)
	}
	if !strings.HasPrefix(path.Base(name), tmpPrefix) {
		return false, fmt.Errorf("archive/fs: remove temporary file %s: %w: not a temporary file", name, archive.ErrInvalidKey)
	}
	p := filepath.Join(s.root, filepath.FromSlash(name))
	st, err := os.Lstat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscallENOTDIR) {
			return false, fmt.Errorf("archive/fs: remove temporary file %s: %w", name, archive.ErrNotFound)
		}
		return false, fmt.Errorf("archive/fs: remove temporary file %s: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		return false, fmt.Errorf("archive/fs: remove temporary file %s: %w", name, archive.ErrNotFound)
	}
	if !st.ModTime().Before(before) {
		return false, nil
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("archive/fs: remove temporary file %s: %w", name, archive.ErrNotFound)
		}
		return false, fmt.Errorf("archive/fs: remove temporary file %s: %w", name, err)
	}
	return true, nil
}
