//go:build !unix

package httplimit

// openFileLimit returns a conservative limit of open files where there is no rlimit.
func openFileLimit() int { return 8192 }
