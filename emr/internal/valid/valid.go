package valid

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text reports UTF-8 text without control characters (what a DICOM LO or SH may hold,
// and what every index backend takes).
func Text(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

// PatientID reports a usable patient ID: not empty, at most 64 bytes of Text.
func PatientID(s string) bool { return s != "" && Issuer(s) }

// Issuer reports a usable issuer of patient ID: at most 64 bytes of Text, or empty (no
// issuer).
func Issuer(s string) bool { return len(s) <= 64 && Text(s) }

// Accession reports a usable accession number: not empty, at most 16 bytes of Text,
// without a backslash or the wildcards * and ?.
func Accession(s string) bool {
	return s != "" && len(s) <= 16 && !strings.ContainsAny(s, `*?\`) && Text(s)
}

var modality = regexp.MustCompile(`^[A-Z0-9_]{1,16}$`)

// Modality reports a modality code: 1 to 16 upper-case letters, digits or underscores
// (CT, MR, XA, ...).
func Modality(s string) bool { return modality.MatchString(s) }
