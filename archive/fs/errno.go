package fs

import "syscall"

// syscallENOTDIR is returned when a path element of a key is a file.
var syscallENOTDIR error = syscall.ENOTDIR
