package miniotest

import (
	"os/exec"
	"syscall"
)

// setProcAttr has the kernel kill the server if the test process dies without
// stopping it.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
