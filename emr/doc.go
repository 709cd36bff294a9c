// Package emr links Lumen into EMR patient charts (SPEC-NOTES §E): the chart API
// (GET /emr/v1/patients/{patientID}/studies), the embeddable chart widget
// (GET /emr/v1/patients/{patientID}/chart), minting of signed expiring links
// (POST /emr/v1/links, package emr/links), the guard that admits link tokens to the
// widget, the viewer and the DICOMweb reads the viewer makes, and IHE Invoke Image
// Display (RAD-106, GET /IHEInvokeImageDisplay).
//
// Patients are identified by the pair (PatientID, IssuerOfPatientID), compared exactly.
// Studies are sorted into service lines, radiology and cardiology, by configurable rules
// on modality, SOP class, body part and study description.
package emr
