// Package fhir serves FHIR R4 (4.0.1) ImagingStudy and Endpoint resources over Lumen's
// index, in application/fhir+json (SPEC-NOTES §E):
//
//	GET /fhir/metadata                 CapabilityStatement
//	GET /fhir/ImagingStudy?...         search: patient, subject, subject:identifier,
//	                                   identifier, started, modality,
//	                                   _include=ImagingStudy:endpoint, _count, _offset, _sort
//	GET /fhir/ImagingStudy/{id}        read; the id is the Study Instance UID
//	GET /fhir/Endpoint/{id}            read; "dicomweb" is the WADO-RS endpoint
//
// An ImagingStudy carries the study UID as identifier (system urn:dicom:uid, value
// urn:oid:<uid>) and the accession number as identifier of type ACSN, its series and
// instances, and an endpoint reference to the DICOMweb service (connectionType
// dicom-wado-rs). No Go FHIR model library was reachable from the module proxy; the
// handful of resource shapes used here are plain structs.
package fhir
