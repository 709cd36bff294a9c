// Package indextest is the contract suite every index.Index backend passes: the
// hierarchy and its computed counts, duplicates and conflicts, replace and delete, blob
// key listing, the records of a result and the answer built from each (Result.Records,
// Answer), content digests, the quarantine (records, scope, promotion), the work queue
// and the Worker that runs its jobs, and the data-driven matching table of PS3.4
// §C.2.2.2 (single value, universal, wildcard, ranges, UID lists, case-insensitive and
// fuzzy person names), and FindSeq yielding what Find returns. QueryPlans runs the query
// checks with sqlindex's study queries taking each of their ways. Open gives the tests of
// the packages above the index a fresh index of each backend.
package indextest
