// Package qr is the Query/Retrieve SCP of PS3.4 Annex C, in the Patient Root and Study
// Root information models: FindSCP answers C-FIND (C.4.1) at the PATIENT, STUDY, SERIES
// and IMAGE levels from the index, with the matching of index.Query (C.2.2.2) and answers
// in the request's character set when it can hold them, else in UTF-8 (C.4.1.1.3.2),
// each match sent as a pending response as soon as the index has read it;
// RetrieveSCP answers C-MOVE (C.4.2) and C-GET (C.4.3), resolving the identifier's unique
// keys (C.4.2.2.1) to stored instances and running the storage sub-operations through
// package send, with pending counts, C-CANCEL, and the final statuses of Table C.4-2
// (A801 unknown destination, A900 identifier, A702 and B000 failed sub-operations).
//
// Both are dimse handlers: cmd/lumen sets them into dimse.Server. They read the index
// through the small Index interface and audit through Auditor (service/audit.Trail).
package qr
