// Package commit is the Storage Commitment Push Model SCP of PS3.4 Annex J: for an
// N-ACTION request (J.3.2) it checks each referenced SOP instance, committed when the
// index has it under the same SOP class and its stored object is in the blob store, and
// returns the N-EVENT-REPORT to send (J.3.3): event type 1 when all are committed, 2 with
// the Failed SOP Sequence and failure reasons 0x0110, 0x0112 or 0x0119 otherwise. SCP is
// a dimse.CommitHandler.
package commit
