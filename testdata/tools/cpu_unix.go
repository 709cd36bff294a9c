//go:build unix

package tools

import (
	"syscall"
	"time"
)

// CPUTime is the user and system CPU time so far of this process (syscall.RUSAGE_SELF)
// or of its children that have ended (syscall.RUSAGE_CHILDREN); 0 when it cannot be
// read. Benchmarks read it before and after the work they measure.
func CPUTime(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
