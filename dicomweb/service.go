package dicomweb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/lumenpacs/lumen/archive"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/httpkit/publicurl"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/service/audit"
	"github.com/lumenpacs/lumen/service/ingest"
)

// Index is what the service needs from the index.
type Index interface {
	Find(ctx context.Context, q index.Query) (*index.Result, error)
	Instance(ctx context.Context, sopInstanceUID string) (*index.Instance, error)
	DeleteInstance(ctx context.Context, sopInstanceUID string) (*index.Instance, error)
}

// Store is what the service needs from the archive store.
type Store interface {
	Get(ctx context.Context, key string) (io.ReadCloser, archive.ObjectInfo, error)
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	Put(ctx context.Context, key string, r io.Reader, size int64) (archive.ObjectInfo, error)
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string) iter.Seq2[archive.ObjectInfo, error]
}

// Ingester stores PS3.10 files (service/ingest.Pipeline).
type Ingester interface {
	IngestFile(ctx context.Context, r io.Reader, size int64, src ingest.Source) (*ingest.Result, error)
}

// AuditStudyKey is the echo context key under which a STOW-RS request that stored
// instances of one study leaves that study's UID, for the audit trail (the key the
// audit middleware of service/audit reads).
const AuditStudyKey = audit.StudyKey

// Defaults of Service.
const (
	DefaultBasePath       = "/dicom-web"
	DefaultMaxUploadBytes = 4 << 30
	DefaultMaxLimit       = 1000
	// DefaultMaxURLLength is 8 KiB, the request-line limit of common reverse proxies
	// (nginx's large_client_header_buffers, Apache's LimitRequestLine).
	DefaultMaxURLLength = 8 << 10
	// DefaultMaxSTOWParts is far above the instances of one study sent in one request
	// by real uploaders, and keeps the response (one item per part) small.
	DefaultMaxSTOWParts = 10000
	// DefaultMaxFailures is the FailedSOPSequence items kept for one STOW-RS response.
	DefaultMaxFailures = 1000
	// DefaultMaxQueryValues leaves room under the index's own cap
	// (index.MaxQueryTerms), set by SQLite's expression depth limit of 1000.
	DefaultMaxQueryValues = 500
	// DefaultMaxIncludeFields is several times the attributes a viewer asks for.
	DefaultMaxIncludeFields = 200
)

// Service is the DICOMweb service. Set the fields, then call Register once; the zero
// values of the optional fields are the documented defaults.
type Service struct {
	Index  Index
	Store  Store
	Ingest Ingester
	// BasePath is where the Studies Service lives (default DefaultBasePath).
	BasePath string
	// PublicURL is the scheme and authority used in every absolute URL the service
	// writes (RetrieveURL, BulkDataURI, Content-Location: "https://pacs.example.org").
	// When empty, the authority is the request's Host header if AllowedHosts lists it,
	// else the local address the connection arrived on: an arbitrary Host header is
	// never reflected.
	PublicURL string
	// AllowedHosts are the Host header values that may be used in absolute URLs when
	// PublicURL is empty: "pacs.example.org" (which also admits the port the
	// connection arrived on, "pacs.example.org:8042") or "host:port" exactly. Matching
	// ignores case. Default: none (the local address is used).
	AllowedHosts []string
	// MaxURLLength caps the request target (path and query) of DICOMweb and WADO-URI
	// requests in bytes; longer ones are answered 414 URI Too Long (default
	// DefaultMaxURLLength).
	MaxURLLength int
	// MaxSTOWParts caps the parts of one STOW-RS request; the parts after it are not
	// read, and the answer says so: 413 when nothing was stored, else 202 with what was
	// (default DefaultMaxSTOWParts).
	MaxSTOWParts int
	// MaxFailures caps the FailedSOPSequence items of one STOW-RS response; failures
	// beyond it are counted in a Warning instead of listed (default DefaultMaxFailures).
	MaxFailures int
	// MaxQueryValues caps the values of the matching keys of one QIDO-RS request
	// (each UID of a list, each alternative, each fuzzy name word counts one; a key
	// counts at least one); more is 400 (default DefaultMaxQueryValues). Values above
	// index.MaxQueryTerms cannot be run by the index and are 400 as well.
	MaxQueryValues int
	// MaxIncludeFields caps the includefield attributes of one QIDO-RS request; more is
	// 400 (default DefaultMaxIncludeFields).
	MaxIncludeFields int
	// MaxUploadBytes caps a STOW-RS request body (default DefaultMaxUploadBytes).
	MaxUploadBytes int64
	// MaxLimit caps the results of one QIDO-RS request (default DefaultMaxLimit).
	MaxLimit int
	// AllowDelete enables DELETE of studies, series and instances.
	AllowDelete bool
	// CORSOrigins are the origins allowed by CORS (default: any, "*").
	CORSOrigins []string
	// ThumbnailLRU is how many thumbnails are kept in memory (default
	// DefaultThumbnailLRU); all are also kept in the store under ThumbnailPrefix.
	ThumbnailLRU int
	// Logger receives operational messages (never patient data above Debug).
	Logger *slog.Logger

	cache thumbCache
}

func (s *Service) base() string {
	if s.BasePath == "" {
		return DefaultBasePath
	}
	return "/" + strings.Trim(s.BasePath, "/")
}

func (s *Service) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// root returns the absolute URL of the service for c's request: PublicURL, else the
// request's scheme and an authority that never reflects an arbitrary Host header
// (publicurl.Config.Authority).
func (s *Service) root(c echo.Context) string {
	return publicurl.Config{PublicURL: s.PublicURL, AllowedHosts: s.AllowedHosts}.Root(c.Scheme(), c.Request()) + s.base()
}

// limitURL answers 414 URI Too Long to requests whose target (path and query) is over
// MaxURLLength, before anything is parsed or looked up.
func (s *Service) limitURL(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		n := len(r.RequestURI)
		if n == 0 {
			n = len(r.URL.RequestURI())
		}
		if limit := orDefault(s.MaxURLLength, DefaultMaxURLLength); n > limit {
			return echo.NewHTTPError(http.StatusRequestURITooLong, fmt.Sprintf("the request URL is %d bytes long; this server takes at most %d (dicomweb.max_url_length)", n, limit))
		}
		return next(c)
	}
}

// Register adds the service's routes (and CORS for them) to e, and WADO-URI at /wado.
func (s *Service) Register(e *echo.Echo) {
	base := s.base()
	origins := s.CORSOrigins
	if len(origins) == 0 {
		origins = []string{"*"}
	}
	e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
		Skipper: func(c echo.Context) bool {
			r := c.Request()
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") == "" {
				return true // not a pre-flight: OPTIONS on the base is the capabilities document
			}
			p := r.URL.Path
			return !(p == base || strings.HasPrefix(p, base+"/") || p == "/wado")
		},
		AllowOrigins:  origins,
		AllowMethods:  []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodDelete, http.MethodOptions},
		AllowHeaders:  []string{"Authorization", "Accept", "Content-Type", "If-None-Match", "If-Modified-Since", "Range"},
		ExposeHeaders: []string{"Warning", "ETag", "Content-Location", "Content-Length", "Content-Type"},
		MaxAge:        600,
	}))
	g := e.Group(base)
	lim := s.limitURL // on each route: a group middleware would also answer unknown paths
	g.GET("", s.capabilities, lim)
	g.OPTIONS("", s.capabilities, lim)

	g.POST("/studies", s.stow, lim)
	g.POST("/studies/:study", s.stow, lim)

	g.GET("/studies", s.qido(index.StudyLevel), lim)
	g.GET("/series", s.qido(index.SeriesLevel), lim)
	g.GET("/instances", s.qido(index.ImageLevel), lim)
	g.GET("/studies/:study/series", s.qido(index.SeriesLevel), lim)
	g.GET("/studies/:study/instances", s.qido(index.ImageLevel), lim)
	g.GET("/studies/:study/series/:series/instances", s.qido(index.ImageLevel), lim)

	g.GET("/studies/:study", s.retrieve, lim)
	g.GET("/studies/:study/series/:series", s.retrieve, lim)
	g.GET("/studies/:study/series/:series/instances/:instance", s.retrieve, lim)
	g.GET("/studies/:study/metadata", s.metadata, lim)
	g.GET("/studies/:study/series/:series/metadata", s.metadata, lim)
	g.GET("/studies/:study/series/:series/instances/:instance/metadata", s.metadata, lim)
	g.GET("/studies/:study/series/:series/instances/:instance/frames/:frames", s.frames, lim)
	g.GET("/studies/:study/series/:series/instances/:instance/bulkdata/*", s.bulkdata, lim)

	for _, p := range []string{"/studies/:study", "/studies/:study/series/:series", "/studies/:study/series/:series/instances/:instance"} {
		g.DELETE(p, s.delete, lim)
	}
	g.GET("/studies/:study/rendered", s.renderedSeries, lim)
	g.GET("/studies/:study/series/:series/rendered", s.renderedSeries, lim)
	g.GET("/studies/:study/thumbnail", s.thumbnailSeries, lim)
	g.GET("/studies/:study/series/:series/thumbnail", s.thumbnailSeries, lim)
	g.GET("/studies/:study/series/:series/instances/:instance/rendered", s.renderedInstance(false), lim)
	g.GET("/studies/:study/series/:series/instances/:instance/thumbnail", s.renderedInstance(true), lim)
	g.GET("/studies/:study/series/:series/instances/:instance/frames/:frames/rendered", s.renderedInstance(false), lim)
	g.GET("/studies/:study/series/:series/instances/:instance/frames/:frames/thumbnail", s.renderedInstance(true), lim)

	e.GET("/wado", s.wadoURI, lim)
}

// uidParams returns the study, series and instance UIDs of the path (those present),
// checking their syntax.
func uidParams(c echo.Context) (study, series, instance string, err error) {
	for _, p := range []struct {
		name string
		v    *string
	}{{"study", &study}, {"series", &series}, {"instance", &instance}} {
		v := c.Param(p.name)
		if v == "" {
			continue
		}
		if !dcm.ValidUID(v) {
			return "", "", "", echo.NewHTTPError(http.StatusBadRequest, "the "+p.name+" UID in the path is not a valid UID")
		}
		*p.v = v
	}
	return study, series, instance, nil
}

// ErrorHandler answers errors with their status and a JSON body {"error": reason}. A
// query the index refuses as given (index.ErrBadQuery) is 400 with the index's reason;
// other index and store failures are logged and answered 503 without details; a request
// whose client went away gets no answer.
func (s *Service) ErrorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, msg := http.StatusInternalServerError, "internal error"
	var he *echo.HTTPError
	switch {
	case errors.As(err, &he):
		code = he.Code
		msg = http.StatusText(code)
		if m, ok := he.Message.(string); ok {
			msg = m
		}
	case errors.Is(err, index.ErrNotFound), errors.Is(err, archive.ErrNotFound):
		code, msg = http.StatusNotFound, "not found"
	case errors.Is(err, index.ErrBadQuery):
		code, msg = http.StatusBadRequest, strings.TrimPrefix(err.Error(), "index: ")
	case errors.Is(err, context.Canceled):
		return
	default:
		code, msg = http.StatusServiceUnavailable, "the archive could not answer; try again"
		s.log().Warn("dicomweb: request failed", "method", c.Request().Method, "path", c.Path(), "err", err)
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(code)
		return
	}
	_ = c.JSON(code, map[string]string{"error": msg})
}

// orDefault is v, or def when v is not positive (the zero value of a limit field).
func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}
