//go:build !linux

package fs

import (
	"errors"
	"os"
)

// openAnon reports that anonymous files are not offered here (see anon_linux.go).
func openAnon(dir string, perm os.FileMode) (f *os.File, ok bool, err error) {
	return nil, false, nil
}

// linkAnon is never called where openAnon offers no anonymous files.
func linkAnon(f *os.File, path string) error {
	return errors.New("anonymous files are not supported")
}

// setDirect reports that direct I/O is not offered here.
func setDirect(f *os.File, on bool) error { return errors.New("direct I/O is not supported") }

// errDirectRefused is never true where setDirect fails.
func errDirectRefused(err error) bool { return false }
