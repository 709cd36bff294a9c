// Package layertest checks the floors of the house (docs/architecture.md): it reads the
// import graph of the module's non-test code with `go list -deps -json` and fails on any
// import that runs up a floor, any sideways import between rooms of one floor that is not
// on the allow-list, and any import that crosses a "never" rule. It implements no part of
// the DICOM standard; it is a test only, run by `make test`.
package layertest
