// Package tlsconf builds the TLS configurations of Lumen's listeners (HTTPS, and DICOM
// TLS per PS3.15 Annex B: the BCP 195 profile, TLS 1.2 or later) from PEM files, with
// the certificate reloaded from disk when its files change, so a renewed certificate is
// used without a restart, and optional verification of client certificates against a CA
// bundle.
package tlsconf
