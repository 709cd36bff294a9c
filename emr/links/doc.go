// Package links signs and verifies Lumen's signed, expiring links: the way an EMR embeds
// Lumen's chart widget, thumbnails and viewer without sharing credentials.
//
// A token is three base64url (unpadded) parts joined by dots: the key ID, the claims
// (JSON: scope, subject, expiry, a random token ID) and an HMAC-SHA256 over the first two
// parts with the key the ID names. Keys rotate by ID: a verifier holds every key whose
// links may still be in use, a signer signs with the active one.
//
// Scope "study" names a Study Instance UID; scope "patient" names a patient by
// (PatientID, IssuerOfPatientID), the pair that identifies a patient (SPEC-NOTES §E). The
// patient pair is carried as a SHA-256 digest, so a token in a URL or a log reveals no
// patient identifier; a request is in scope when the patient it names hashes to it.
package links
