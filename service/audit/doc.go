// Package audit keeps the archive's audit trail: who did what to which study and patient,
// with what outcome (the questions of IHE ATNA, IHE ITI TF-1 9). A Trail writes records to
// the index's audit table (index.Auditor) in batches off the request path, and Syslog
// exports each one as a DICOM audit message (PS3.15 A.5) over syslog: RFC 5424 messages on
// UDP (RFC 5426) or TLS (RFC 5425). The surfaces decide what a request is (their routes
// and operations); this package records it.
package audit
