package dicomweb

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// capability describes one resource of the service.
type capability struct {
	Path        string   `json:"path"`
	Methods     []string `json:"methods"`
	Description string   `json:"description"`
	Accept      []string `json:"accept,omitempty"`
	Parameters  []string `json:"parameters,omitempty"`
}

// capabilities answers GET and OPTIONS on the base path with a JSON description of the
// resources, media types and query parameters this server supports.
func (s *Service) capabilities(c echo.Context) error {
	qidoParams := []string{"{attributeID}={value} (keyword or 8-hex tag; single value, wildcard * ?, DA/TM/DT range a-b, UID list with \\ or ,)", "includefield={attributeID}[,...] | all", "fuzzymatching=true|false", "limit", "offset"}
	frameAccept := []string{`multipart/related; type="application/octet-stream"; transfer-syntax=*`, `multipart/related; type="image/jpeg"` + " (and the other compressed media types, as stored)"}
	doc := map[string]any{
		"service":  "DICOMweb Studies Service (PS3.18)",
		"server":   "Lumen",
		"base":     s.root(c),
		"maxLimit": s.maxLimit(),
		"delete":   s.AllowDelete,
		"transcoding": "objects go out as stored with transfer-syntax=* (or the stored UID); otherwise in Explicit VR Little Endian (the default), Implicit VR Little Endian or Deflated Explicit VR Little Endian, converted from every uncompressed syntax (deflated and big endian included) and decompressed from RLE, JPEG baseline and extended (8- and 12-bit), JPEG lossless, JPEG-LS and JPEG 2000 (when built with OpenJPEG); " +
			"without transfer-syntax, an object that cannot be decompressed (progressive JPEG, say) goes out as stored; asked for explicitly, it is answered 406 with the reason, or left out of a study or series answer and named in a Warning header",
		"resources": []capability{
			{"/studies", []string{"GET"}, "QIDO-RS SearchForStudies", []string{"application/dicom+json"}, qidoParams},
			{"/series", []string{"GET"}, "QIDO-RS SearchForSeries", []string{"application/dicom+json"}, qidoParams},
			{"/instances", []string{"GET"}, "QIDO-RS SearchForInstances", []string{"application/dicom+json"}, qidoParams},
			{"/studies/{study}/series", []string{"GET"}, "QIDO-RS SearchForSeries in a study", []string{"application/dicom+json"}, qidoParams},
			{"/studies/{study}/instances", []string{"GET"}, "QIDO-RS SearchForInstances in a study", []string{"application/dicom+json"}, qidoParams},
			{"/studies/{study}/series/{series}/instances", []string{"GET"}, "QIDO-RS SearchForInstances in a series", []string{"application/dicom+json"}, qidoParams},
			{"/studies", []string{"POST"}, "STOW-RS StoreInstances", []string{`multipart/related; type="application/dicom"`}, nil},
			{"/studies/{study}", []string{"POST"}, "STOW-RS StoreInstances into a study (instances of other studies are refused)", []string{`multipart/related; type="application/dicom"`}, nil},
			{"/studies/{study}[/series/{series}[/instances/{instance}]]", []string{"GET", "DELETE"}, "WADO-RS Retrieve; DELETE when enabled", []string{`multipart/related; type="application/dicom"; transfer-syntax=*`, "application/dicom (one instance)"}, nil},
			{"/studies/{study}[/series/{series}[/instances/{instance}]]/metadata", []string{"GET"}, "WADO-RS RetrieveMetadata with ETag and If-None-Match", []string{"application/dicom+json"}, nil},
			{"/studies/{study}/series/{series}/instances/{instance}/frames/{frames}", []string{"GET"}, "WADO-RS RetrieveFrames (1-based, comma separated)", frameAccept, nil},
			{"/studies/{study}/series/{series}/instances/{instance}/bulkdata/{path}", []string{"GET"}, "WADO-RS RetrieveBulkData (the BulkDataURIs of the metadata)", []string{`multipart/related; type="application/octet-stream"`, "application/octet-stream"}, nil},
			{"/studies/{study}[/series/{series}]/rendered", []string{"GET"}, "Rendered study or series: multipart/related, one part per image instance (first frame), instances without a picture left out and counted in a Warning", []string{"image/jpeg", "image/png", "image/gif"}, []string{"accept", "quality=1..100", "viewport=vw,vh[,sx,sy,sw,sh]", "window=center,width,linear|linear-exact|sigmoid"}},
			{"/studies/{study}/series/{series}/instances/{instance}[/frames/{frame}]/rendered", []string{"GET"}, "Rendered instance (first frame; accept=image/gif on a multi-frame instance: an animated GIF at the recorded frame rate, at most 150 frames and 384 px) or frame: window, viewport, quality", []string{"image/jpeg", "image/png", "image/gif"}, []string{"accept", "quality=1..100", "viewport=vw,vh[,sx,sy,sw,sh]", "window=center,width,linear|linear-exact|sigmoid"}},
			{"/studies/{study}[/series/{series}[/instances/{instance}[/frames/{frame}]]]/thumbnail", []string{"GET"}, "Thumbnail (128 px unless viewport): representative or middle frame, middle instance of a series, first image series of a study; a placeholder with a Warning for objects without a picture", []string{"image/jpeg", "image/png", "image/gif"}, []string{"accept", "quality", "viewport"}},
			{"/wado", []string{"GET"}, "WADO-URI (at the server root)", []string{"image/jpeg", "image/png", "image/gif", "application/dicom"}, []string{"requestType=WADO", "studyUID", "seriesUID", "objectUID", "contentType", "transferSyntax", "rows", "columns", "windowCenter", "windowWidth", "frameNumber", "imageQuality"}},
		},
		"notImplemented": []string{"application/dicom+xml", "compression (only decompression is offered)", "conversion to Explicit VR Big Endian", "matching on nested (sequence) attributes (ignored with a Warning)"},
	}
	return c.JSONPretty(http.StatusOK, doc, "  ")
}
