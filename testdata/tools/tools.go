// Package tools finds the external programs the tests run (DCMTK, node): a missing one
// skips the test on a developer machine and fails it under CI=true, where `make test`
// has provisioned everything.
package tools

import (
	"os"
	"os/exec"
	"testing"
)

// Require returns the path of program (part of package, for the message), skipping t
// when it is not installed, or failing t under CI=true.
func Require(t testing.TB, program, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (%s) not installed", program, pkg)
		}
		t.Skipf("%s (%s) not installed", program, pkg)
	}
	return p
}

// DCMTK returns the path of a DCMTK tool (see Require).
func DCMTK(t testing.TB, tool string) string {
	t.Helper()
	return Require(t, tool, "DCMTK")
}
