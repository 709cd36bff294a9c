//go:build lumen_crashhook

package main

import (
	"os"
	"strings"
	"syscall"
)

// Built only with the tag lumen_crashhook, by the crash tests (TestHL7CrashBeforeACK):
// LUMEN_TEST_HL7_CRASH=<point>:<control ID> kills the process with SIGKILL when the HL7
// message with that control ID reaches point ("received": before it is applied;
// "applied": committed, its ACK not yet written). The release binary has no such code.
func init() {
	point, id, ok := strings.Cut(os.Getenv("LUMEN_TEST_HL7_CRASH"), ":")
	if !ok {
		return
	}
	hl7TestHook = func(p, controlID string) {
		if p == point && controlID == id {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
}
