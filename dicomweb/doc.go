// Package dicomweb serves the DICOMweb Studies Service of DICOM PS3.18 over HTTP (echo
// v4): STOW-RS (section 10.5), QIDO-RS (10.6), WADO-RS (10.4: instances, metadata,
// frames, bulk data) and WADO-URI (section 9, application/dicom), plus DELETE of
// studies, series and instances (off unless configured) and a capabilities document.
//
// Responses are streamed from the archive store: retrieved instances and frames are
// never held whole in memory, STOW-RS bodies are ingested part by part, and metadata
// comes from the DICOM JSON precomputed in the index at ingest (PS3.18 Annex F).
package dicomweb
