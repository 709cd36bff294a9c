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
