//go:build linux

package fs

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// openAnon opens an anonymous regular file in dir (O_TMPFILE): an inode with no name,
// which linkAnon later gives its name. ok is false when the file system or the kernel
// does not offer such files; the caller then uses a named temporary file.
func openAnon(dir string, perm os.FileMode) (f *os.File, ok bool, err error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, uint32(perm))
	if err != nil {
		// EOPNOTSUPP: the file system has no O_TMPFILE; EISDIR or EINVAL: the kernel
		// predates it (O_TMPFILE includes O_DIRECTORY).
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
			return nil, false, nil
		}
		return nil, true, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, "(anonymous)")), true, nil
}

// linkAnon gives the anonymous file f (openAnon) the name path; it fails with an error
// matching fs.ErrExist when path exists.
func linkAnon(f *os.File, path string) error {
	var err error
	ctl := func(fd uintptr) {
		// Through /proc, which needs no privilege (linkat with AT_EMPTY_PATH may).
		err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(fd)), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
		if errors.Is(err, unix.ENOENT) {
			err = unix.Linkat(int(fd), "", unix.AT_FDCWD, path, unix.AT_EMPTY_PATH)
		}
	}
	rc, cerr := f.SyscallConn()
	if cerr != nil {
		return cerr
	}
	if cerr := rc.Control(ctl); cerr != nil {
		return cerr
	}
	if err != nil {
		return &os.LinkError{Op: "linkat", Old: f.Name(), New: path, Err: err}
	}
	return nil
}

// setDirect turns direct I/O (O_DIRECT: writes go from the caller's memory to the device,
// past the page cache) on or off for f.
func setDirect(f *os.File, on bool) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		flags, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		if err != nil {
			serr = err
			return
		}
		if on {
			flags |= unix.O_DIRECT
		} else {
			flags &^= unix.O_DIRECT
		}
		_, serr = unix.FcntlInt(fd, unix.F_SETFL, flags)
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fcntl", Path: f.Name(), Err: serr}
	}
	return nil
}

// errDirectRefused reports whether a direct write failed for want of alignment or
// support (the write is then made through the page cache).
func errDirectRefused(err error) bool { return errors.Is(err, unix.EINVAL) }
