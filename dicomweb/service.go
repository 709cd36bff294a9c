package dicomweb

import (
	"context"
	"errors"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/lumenpacs/lumen/archive"
	"github.com/lumenpacs/lumen/archive/dcm"
	"github.com/lumenpacs/lumen/archive/ingest"
	"github.com/lumenpacs/lumen/index"
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

// Ingester stores PS3.10 files (archive/ingest.Pipeline).
type Ingester interface {
	IngestFile(ctx context.Context, r io.Reader, size int64, src ingest.Source) (*ingest.Result, error)
}

// AuditStudyKey is the echo context key under which a STOW-RS request that stored
// instances of one study leaves that study's UID, for the audit trail.
const AuditStudyKey = "lumen.audit.study"

// Defaults of Service.
const (
	DefaultBasePath       = "/dicom-web"
	DefaultMaxUploadBytes = 4 << 30
	DefaultMaxLimit       = 1000
)

// Service is the DICOMweb service. Set the fields, then call Register once; the zero
// values of the optional fields are the documented defaults.
type Service struct {
	Index  Index
	Store  Store
	Ingest Ingester
	// BasePath is where the Studies Service lives (default DefaultBasePath).
	BasePath string
	// PublicURL is the scheme and authority used in RetrieveURL and BulkDataURI values
	// ("https://pacs.example.org"); empty means the request's own.
	PublicURL string
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

// root returns the absolute URL of the service for c's request.
func (s *Service) root(c echo.Context) string {
	if s.PublicURL != "" {
		return strings.TrimRight(s.PublicURL, "/") + s.base()
	}
	return c.Scheme() + "://" + c.Request().Host + s.base()
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
	g.GET("", s.capabilities)
	g.OPTIONS("", s.capabilities)

	g.POST("/studies", s.stow)
	g.POST("/studies/:study", s.stow)

	g.GET("/studies", s.qido(index.StudyLevel))
	g.GET("/series", s.qido(index.SeriesLevel))
	g.GET("/instances", s.qido(index.ImageLevel))
	g.GET("/studies/:study/series", s.qido(index.SeriesLevel))
	g.GET("/studies/:study/instances", s.qido(index.ImageLevel))
	g.GET("/studies/:study/series/:series/instances", s.qido(index.ImageLevel))

	g.GET("/studies/:study", s.retrieve)
	g.GET("/studies/:study/series/:series", s.retrieve)
	g.GET("/studies/:study/series/:series/instances/:instance", s.retrieve)
	g.GET("/studies/:study/metadata", s.metadata)
	g.GET("/studies/:study/series/:series/metadata", s.metadata)
	g.GET("/studies/:study/series/:series/instances/:instance/metadata", s.metadata)
	g.GET("/studies/:study/series/:series/instances/:instance/frames/:frames", s.frames)
	g.GET("/studies/:study/series/:series/instances/:instance/bulkdata/*", s.bulkdata)

	for _, p := range []string{"/studies/:study", "/studies/:study/series/:series", "/studies/:study/series/:series/instances/:instance"} {
		g.DELETE(p, s.delete)
	}
	g.GET("/studies/:study/rendered", s.renderedSeries)
	g.GET("/studies/:study/series/:series/rendered", s.renderedSeries)
	g.GET("/studies/:study/thumbnail", s.thumbnailSeries)
	g.GET("/studies/:study/series/:series/thumbnail", s.thumbnailSeries)
	g.GET("/studies/:study/series/:series/instances/:instance/rendered", s.renderedInstance(false))
	g.GET("/studies/:study/series/:series/instances/:instance/thumbnail", s.renderedInstance(true))
	g.GET("/studies/:study/series/:series/instances/:instance/frames/:frames/rendered", s.renderedInstance(false))
	g.GET("/studies/:study/series/:series/instances/:instance/frames/:frames/thumbnail", s.renderedInstance(true))

	e.GET("/wado", s.wadoURI)
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

// ErrorHandler answers errors with their status and a JSON body {"error": reason}. Index
// and store failures are logged and answered 503 without details; a request whose
// client went away gets no answer.
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
