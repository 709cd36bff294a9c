// Package identity applies HL7 v2 ADT messages to the patient records of the index: the
// Patient Identity Feed of IHE ITI Patient Administration Management (PAM, transaction
// ITI-30), with the patient administration events of HL7 v2 chapter 3 (A01, A04, A05,
// A08, A28, A31 create or update demographics; A40, and A34/A36 read as A40, merge; A47
// changes an identifier).
//
// ADT is an hl7/mllp Handler: it parses each message (package hl7), checks its header
// (message type, event, processing ID, version), maps PID-3, PID-5, PID-7, PID-8 and
// MRG-1 to index.Identity operations, and answers an original-mode acknowledgement (AA,
// AE or AR with ERR segments naming the field). An AA is answered only once the change
// and the message's ACK are committed in one index transaction, so a message re-sent
// after a lost ACK gets the same ACK and changes nothing. The mapping, the null rules
// (empty keeps, `""` deletes) and the order of checks are those of docs/hl7.md §1–§4.
//
// Listener puts ADT behind a listener's peer list (sending facility, application and
// host: AR 103 for a sender not listed, connections from hosts not listed refused) and
// records every message in the audit trail (who, which patient, the ACK code).
package identity
