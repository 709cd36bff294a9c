// Package tools finds the external programs and files the tests use (DCMTK, node,
// pydicom's test files, python-hl7): a missing one skips the test on a developer
// machine and fails it under CI=true, where `make test` has provisioned everything.
package tools

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

// NPM installs the locked npm packages of dir (a package.json, its package-lock.json
// and the scripts next to them) once per lock file into the user cache, and returns that
// directory with the scripts copied in. Node and npm are required (see Require).
func NPM(t testing.TB, dir string) string {
	t.Helper()
	Require(t, "node", "Node.js")
	npm := Require(t, "npm", "Node.js")
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	out := filepath.Join(cache, "lumen-tests", "node-"+hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "node_modules", ".package-lock.json")); err != nil {
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = out
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci (the npm registry must be reachable): %v\n%s", err, b)
		}
	}
	return out
}
