package tools

import "testing"

// MLLPSend returns the path of mllp_send, the MLLP client of Debian's python3-hl7 (the
// reference HL7 v2 sender), or reports it Missing (see Require).
func MLLPSend(t testing.TB) string {
	t.Helper()
	return Require(t, "mllp_send", "Debian's python3-hl7")
}
