// Package archivetest is the contract suite every archive.Store backend passes: round
// trips, ranges at boundaries, not-found errors, atomic puts that leave nothing visible on
// failure, context cancellation, concurrent puts, listing and large streamed objects.
//
// A backend's test calls Run with a constructor that returns a fresh, empty store.
package archivetest
