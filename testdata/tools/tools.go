// Package tools finds the external programs and files the tests use (DCMTK, node,
// pydicom's test files): a missing one skips the test on a developer machine and fails
// it under CI=true, where `make test` has provisioned everything.
package tools

import (
	"fmt"
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
		Missing(t, fmt.Sprintf("%s (%s) not installed", program, pkg))
	}
	return p
}

// Missing reports that something a test needs is not on this machine: the test is
// skipped on a developer machine and fails under CI=true, where `make test` has
// provisioned everything.
func Missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(what)
	}
	t.Skip(what)
}

// DCMTK returns the path of a DCMTK tool (see Require).
func DCMTK(t testing.TB, tool string) string {
	t.Helper()
	return Require(t, tool, "DCMTK")
}
