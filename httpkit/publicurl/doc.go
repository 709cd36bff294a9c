// Package publicurl roots the absolute URLs Lumen writes into its answers (DICOMweb
// RetrieveURL and BulkDataURI, PS3.18 §10.5 and F.2.6; Content-Location; the EMR
// surfaces' and FHIR's links) without trusting the request's Host header: the
// configured public URL, an allowed Host, or the listener's own address.
package publicurl
