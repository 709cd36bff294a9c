package emr

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/emr/internal/valid"
	"github.com/lumenpacs/lumen/emr/links"
	"github.com/lumenpacs/lumen/httpkit/auth"
	"github.com/lumenpacs/lumen/httpkit/publicurl"
	"github.com/lumenpacs/lumen/index"
)

// Index is what the service needs from the index. When the value also implements
// index.Identity (the index owns patient records), merged-away patients are detected on
// every surface (ResolvePatient): their charts, IID requests and patient links are
// answered as merged, never widened to the survivor; without it nothing is ever merged.
type Index interface {
	Find(ctx context.Context, q index.Query) (*index.Result, error)
}

// Defaults of Service.
const (
	DefaultLinkTTL    = 8 * time.Hour
	MaxLinkTTL        = 7 * 24 * time.Hour
	DefaultChartLimit = 50
	MaxChartLimit     = 500
	MaxWidgetStudies  = 200
	// DefaultMaxIIDStudies is the default of Service.MaxIIDStudies.
	DefaultMaxIIDStudies = 100
)

// Service serves the EMR surfaces. Set the fields, then call Register once; zero values
// of the optional fields are the documented defaults.
type Service struct {
	Index Index
	// Links signs and verifies link tokens; nil disables links (minting answers 503 and
	// every request carrying a token is refused).
	Links *links.Signer
	// MintTokenHashes are the hex SHA-256 digests of the bearer tokens allowed to mint
	// links (service accounts of the EMR), checked by auth.BearerMatches. None: minting
	// is refused.
	MintTokenHashes []string
	// ServiceLines sorts studies into radiology and cardiology.
	ServiceLines ServiceLines
	// FrameAncestors are the origins allowed to frame the widget and the viewer
	// ("https://emr.example.org"), besides Lumen's own.
	FrameAncestors []string
	// DICOMwebBase is the path of the DICOMweb service (default "/dicom-web").
	DICOMwebBase string
	// PublicURL is the scheme and authority of links in answers; empty means the
	// request's scheme and the listener's address (or an allowed Host).
	PublicURL string
	// AllowedHosts are the Host header values that may root absolute URLs when
	// PublicURL is empty (publicurl.Config); otherwise the listener's address is used.
	AllowedHosts []string
	// OHIFURL, when set, is where IHE Invoke Image Display sends viewers instead of the
	// built-in viewer: a URL in which {studies} is replaced by the comma-separated Study
	// Instance UIDs ("https://ohif.example.org/viewer?StudyInstanceUIDs={studies}").
	OHIFURL string
	// MaxIIDStudies is the most studies one IHE Invoke Image Display request may name
	// (studyUID or accessionNumber values) or open (mostRecentResults, the studies a
	// patient request matches); beyond it the request is refused with a page saying so.
	// Default DefaultMaxIIDStudies.
	MaxIIDStudies int
	// Logger receives operational and audit messages (never patient data above Debug).
	Logger *slog.Logger
}

func (s *Service) maxIIDStudies() int {
	if s.MaxIIDStudies > 0 {
		return s.MaxIIDStudies
	}
	return DefaultMaxIIDStudies
}

func (s *Service) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Service) dicomweb() string {
	if s.DICOMwebBase == "" {
		return "/dicom-web"
	}
	return "/" + strings.Trim(s.DICOMwebBase, "/")
}

// root is the absolute URL of the server for c's request.
func (s *Service) root(c echo.Context) string {
	return publicurl.Config{PublicURL: s.PublicURL, AllowedHosts: s.AllowedHosts}.Root(c.Scheme(), c.Request())
}

// Register adds the EMR routes to e. Guard must also be installed (e.Use) for link
// tokens to be accepted anywhere.
func (s *Service) Register(e *echo.Echo) {
	e.GET("/emr/v1/patients/:patient/studies", s.chartStudies)
	e.GET("/emr/v1/patients/:patient/chart", s.chartWidget)
	e.POST("/emr/v1/links", s.mint)
	e.GET("/IHEInvokeImageDisplay", s.invokeImageDisplay)
}

// patientParam is the patient the path names: the path segment (percent-decoded) and
// the issuer query parameter.
func patientParam(c echo.Context) (id, issuer string, err error) {
	id, err = url.PathUnescape(c.Param("patient"))
	if err != nil || !valid.PatientID(id) {
		return "", "", echo.NewHTTPError(http.StatusBadRequest, "the patient ID in the path is empty, too long or badly encoded")
	}
	issuer = c.QueryParam("issuer")
	if !valid.Issuer(issuer) {
		return "", "", echo.NewHTTPError(http.StatusBadRequest, "issuer is longer than 64 characters or not text")
	}
	return id, issuer, nil
}

// mintAllowed reports whether the request carries a bearer token allowed to mint.
func (s *Service) mintAllowed(c echo.Context) bool {
	return auth.BearerMatches(c.Request(), s.MintTokenHashes)
}
