// Package valid checks the identifiers the EMR surfaces (emr: the chart API, IHE Invoke
// Image Display; emr/fhir) take from requests before they reach the index: patient IDs
// and their issuers (the DICOM LO values PatientID and IssuerOfPatientID, PS3.5 §6.2:
// at most 64 characters, no control characters), accession numbers (AccessionNumber, an
// SH of at most 16, used as an exact key: neither the wildcards of PS3.4 C.2.2.2.4 nor
// the backslash that separates values) and modality codes (Modality, a CS).
//
// The lengths are counted in bytes of UTF-8, so a value that passes fits its VR in any
// character set; a backslash in a patient ID or issuer is not refused here (the index
// compares them whole).
package valid
