package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/index"
	"golang.org/x/time/rate"
)

// Roles a principal may hold.
const (
	RoleRead   = "read"   // query and retrieve
	RoleWrite  = "write"  // store
	RoleDelete = "delete" // delete
	RoleAdmin  = "admin"  // administration (holds every role)
	// RoleSend pushes stored instances to configured DICOM peers (POST /api/v1/send).
	RoleSend = "send"
)

// Principal is who a request acts for.
type Principal struct {
	Subject string
	Roles   []string
	// Patient, when set, limits the principal to one patient's records.
	Patient *index.PatientKey
	// Via says how the principal was authenticated: "oidc" or "token".
	Via string
}

// Has reports whether the principal holds role (admin holds every role).
func (p *Principal) Has(role string) bool {
	return slices.Contains(p.Roles, role) || slices.Contains(p.Roles, RoleAdmin)
}

// StaticToken is a service account's API token, known by its SHA-256 only.
type StaticToken struct {
	Name    string   `koanf:"name"`
	SHA256  string   `koanf:"sha256"`
	Roles   []string `koanf:"roles"`
	Patient string   `koanf:"patient"` // ID or ID^^^Issuer: limits the token to one patient
}

// Config configures authentication.
type Config struct {
	// Issuer is the OpenID Connect issuer URL whose tokens are accepted ("" : none).
	Issuer string `koanf:"issuer"`
	// Audience is the audience tokens must name (the client ID of Lumen).
	Audience string `koanf:"audience"`
	// RolesClaim is the claim listing a token's roles (default "roles"); the space-
	// separated "scope" claim is read too, with roles as "lumen.read", "lumen.write", ...
	RolesClaim string `koanf:"roles_claim"`
	// PatientClaim is the claim limiting a token to one patient (default "patient"), as
	// ID or ID^^^Issuer.
	PatientClaim string `koanf:"patient_claim"`
	// Tokens are the static API tokens.
	Tokens []StaticToken `koanf:"tokens"`
	// RateLimit is how many requests per second one principal may make on average, with
	// bursts of RateBurst; beyond, 429 with Retry-After (0: no limit).
	RateLimit float64 `koanf:"rate_limit"`
	RateBurst int     `koanf:"rate_burst"`
}

// Errors of Authenticate.
var (
	ErrNoCredentials = errors.New("auth: no credentials")
	ErrInvalid       = errors.New("auth: invalid credentials")
	// ErrUnusableClaim refuses a verified token whose claim narrowing its access (the
	// patient claim) is present but cannot be applied: it fails closed (403), never open.
	ErrUnusableClaim = errors.New("auth: a claim that narrows access is unusable")
)

// Authenticator checks credentials.
type Authenticator struct {
	cfg      Config
	verifier *oidc.IDTokenVerifier
	log      *slog.Logger
	digests  []string // the SHA256 of cfg.Tokens, in order

	mu       sync.Mutex
	limiters map[string]*rate.Limiter // by principal subject
}

// allow takes one request from the principal's rate budget.
func (a *Authenticator) allow(subject string) bool {
	if a.cfg.RateLimit <= 0 {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.limiters == nil || len(a.limiters) > 100000 { // bounded: forget idle principals
		a.limiters = map[string]*rate.Limiter{}
	}
	l := a.limiters[subject]
	if l == nil {
		burst := a.cfg.RateBurst
		if burst <= 0 {
			burst = max(1, int(a.cfg.RateLimit))
		}
		l = rate.NewLimiter(rate.Limit(a.cfg.RateLimit), burst)
		a.limiters[subject] = l
	}
	return l.Allow()
}

// New prepares an authenticator; with an issuer it fetches the issuer's discovery
// document (the JWKS is fetched, and refreshed, as tokens need it).
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Authenticator, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Authenticator{cfg: cfg, log: log}
	if a.cfg.RolesClaim == "" {
		a.cfg.RolesClaim = "roles"
	}
	if a.cfg.PatientClaim == "" {
		a.cfg.PatientClaim = "patient"
	}
	for _, t := range cfg.Tokens {
		a.digests = append(a.digests, t.SHA256)
		if t.Patient != "" && parsePatient(t.Patient) == nil {
			return nil, fmt.Errorf("auth: token %q: patient %q names no patient (ID or ID^^^Issuer)", t.Name, t.Patient)
		}
		if len(t.SHA256) != 64 || strings.Trim(strings.ToLower(t.SHA256), "0123456789abcdef") != "" {
			return nil, fmt.Errorf("auth: token %q: sha256 is not a hex SHA-256 digest", t.Name)
		}
		for _, r := range t.Roles {
			if !slices.Contains([]string{RoleRead, RoleWrite, RoleDelete, RoleSend, RoleAdmin}, r) {
				return nil, fmt.Errorf("auth: token %q: unknown role %q (read, write, delete, send, admin)", t.Name, r)
			}
		}
	}
	if cfg.Issuer != "" {
		if cfg.Audience == "" {
			return nil, errors.New("auth: an issuer needs an audience (auth.audience)")
		}
		p, err := oidc.NewProvider(ctx, cfg.Issuer)
		if err != nil {
			return nil, fmt.Errorf("auth: issuer %s: %w", cfg.Issuer, err)
		}
		a.verifier = p.Verifier(&oidc.Config{ClientID: cfg.Audience,
			SupportedSigningAlgs: []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512, oidc.PS256, oidc.EdDSA}})
	}
	return a, nil
}

// Configured reports whether any credential can be accepted.
func (a *Authenticator) Configured() bool { return a.verifier != nil || len(a.cfg.Tokens) > 0 }

// parsePatient reads ID or ID^^^Issuer (the issuer's first component); nil when v
// names no patient (empty, or an empty ID).
func parsePatient(v string) *index.PatientKey {
	comps := strings.Split(strings.TrimSpace(v), "^")
	k := &index.PatientKey{ID: strings.TrimSpace(comps[0])}
	if k.ID == "" {
		return nil
	}
	if len(comps) >= 4 {
		k.Issuer, _, _ = strings.Cut(comps[3], "&")
	}
	return k
}

// patientClaim reads a patient claim that is present in a token. Usable: a string
// naming one patient, or an array holding exactly one such string. Anything else (an
// empty string, a number, an object, an empty array, several values) is an error:
// a claim that narrows access must never widen it by being unreadable.
func patientClaim(name string, v any) (*index.PatientKey, error) {
	switch v := v.(type) {
	case string:
		if k := parsePatient(v); k != nil {
			return k, nil
		}
		return nil, fmt.Errorf("%w: the %q claim names no patient", ErrUnusableClaim, name)
	case []any:
		if len(v) != 1 {
			return nil, fmt.Errorf("%w: the %q claim holds %d values; one patient is allowed", ErrUnusableClaim, name, len(v))
		}
		if s, ok := v[0].(string); ok {
			if k := parsePatient(s); k != nil {
				return k, nil
			}
		}
		return nil, fmt.Errorf("%w: the %q claim's value names no patient", ErrUnusableClaim, name)
	}
	return nil, fmt.Errorf("%w: the %q claim is a %T, not a patient identifier", ErrUnusableClaim, name, v)
}

// Authenticate returns the principal of a request's bearer token.
func (a *Authenticator) Authenticate(r *http.Request) (*Principal, error) {
	tok, ok := bearer(r)
	if tok = strings.TrimSpace(tok); !ok || tok == "" {
		return nil, ErrNoCredentials
	}
	if strings.Count(tok, ".") == 2 && a.verifier != nil {
		idt, err := a.verifier.Verify(r.Context(), tok)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		var claims map[string]any
		if err := idt.Claims(&claims); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		p := &Principal{Subject: idt.Subject, Via: "oidc"}
		switch v := claims[a.cfg.RolesClaim].(type) {
		case []any:
			for _, r := range v {
				if s, ok := r.(string); ok {
					p.Roles = append(p.Roles, s)
				}
			}
		case string:
			p.Roles = strings.Fields(v)
		}
		if sc, ok := claims["scope"].(string); ok {
			for _, s := range strings.Fields(sc) {
				if r, ok := strings.CutPrefix(s, "lumen."); ok {
					p.Roles = append(p.Roles, r)
				}
			}
		}
		if v, present := claims[a.cfg.PatientClaim]; present {
			if p.Patient, err = patientClaim(a.cfg.PatientClaim, v); err != nil {
				return nil, err
			}
		}
		return p, nil
	}
	i := matchDigest(tok, a.digests)
	if i < 0 {
		return nil, ErrInvalid
	}
	found := &a.cfg.Tokens[i]
	return &Principal{Subject: "token:" + found.Name, Roles: found.Roles, Patient: parsePatient(found.Patient), Via: "token"}, nil
}

// bearer returns the credentials of r's Authorization header in the Bearer scheme
// (RFC 6750 §2.1): the text after "Bearer " (that spelling, one space) as sent; ok is
// false when the header does not start so.
func bearer(r *http.Request) (tok string, ok bool) {
	return strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
}

// matchDigest returns the index of the last of sha256Hex (hex digits in either case)
// that is the SHA-256 of tok, or -1. Every digest is compared, each in constant time,
// so that the time taken says neither which one matched nor how much of one.
func matchDigest(tok string, sha256Hex []string) int {
	sum := sha256.Sum256([]byte(tok))
	got := []byte(hex.EncodeToString(sum[:]))
	found := -1
	for i, want := range sha256Hex {
		if subtle.ConstantTimeCompare([]byte(strings.ToLower(want)), got) == 1 {
			found = i
		}
	}
	return found
}

// BearerMatches reports whether r carries a bearer token whose SHA-256 is one of
// sha256Hex (hex digits in either case): service accounts known by digest, never in
// clear. The token is the text after "Bearer " exactly as sent, not trimmed (unlike
// Authenticate's); no token, an empty one or an empty list match nothing. Every digest
// is compared, in constant time. Authenticate checks static tokens the same way.
func BearerMatches(r *http.Request, sha256Hex []string) bool {
	tok, ok := bearer(r)
	return ok && tok != "" && matchDigest(tok, sha256Hex) >= 0
}

type principalKey struct{}

// FromContext returns the request's principal, if one was authenticated.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok
}

// Rule says what a request needs: the role ("" : nothing, a public resource).
type Rule func(c echo.Context) string

// Middleware authenticates every request the rule does not make public: no or
// unreadable credentials are 401 with a WWW-Authenticate challenge, a principal without
// the role 403. A patient-limited principal's scope is put into the request context
// (index.WithScope). Requests already admitted by a signed link (admitted returns true)
// pass.
func (a *Authenticator) Middleware(rule Rule, admitted func(echo.Context) bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			role := rule(c)
			if role == "" || admitted != nil && admitted(c) {
				return next(c)
			}
			p, err := a.Authenticate(c.Request())
			if errors.Is(err, ErrUnusableClaim) {
				a.log.Info("auth: token refused", "route", c.Path(), "reason", err)
				return echo.NewHTTPError(http.StatusForbidden, "token refused: "+strings.TrimPrefix(err.Error(), ErrUnusableClaim.Error()+": "))
			}
			if err != nil {
				challenge := `Bearer realm="lumen"`
				if errors.Is(err, ErrInvalid) {
					challenge += `, error="invalid_token"`
					a.log.Info("auth: credentials refused", "route", c.Path(), "remote", c.RealIP(), "reason", err)
				}
				c.Response().Header().Set("WWW-Authenticate", challenge)
				return echo.NewHTTPError(http.StatusUnauthorized, "authentication required: a bearer token (OpenID Connect or API token)")
			}
			if !a.allow(p.Subject) {
				c.Response().Header().Set("Retry-After", "1")
				return echo.NewHTTPError(http.StatusTooManyRequests, "too many requests from this account; slow down")
			}
			if !p.Has(role) {
				a.log.Info("auth: forbidden", "route", c.Path(), "subject", p.Subject, "needs", role)
				return echo.NewHTTPError(http.StatusForbidden, "this account lacks the "+role+" role")
			}
			ctx := context.WithValue(c.Request().Context(), principalKey{}, p)
			if p.Patient != nil {
				ctx = index.WithScope(ctx, index.Scope{Patient: p.Patient})
			}
			c.SetRequest(c.Request().WithContext(ctx))
			return next(c)
		}
	}
}

// FailureLimiter rate-limits, per client address, the requests that end refused without
// an authenticated principal (401, or 403 to a bad signed link): a client address over
// its budget gets 429 with Retry-After before its request is looked at, so that floods
// of unauthenticated requests cost neither verification nor audit records. Requests
// that authenticate are not charged.
type FailureLimiter struct {
	// Rate is refusals per second per client address on average, with bursts of Burst
	// (Rate <= 0: no limit).
	Rate  float64
	Burst int
	// Refused, when set, is told of each request answered 429 by the limiter.
	Refused func(c echo.Context)

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

// limiter returns the client address's limiter.
func (l *FailureLimiter) limiter(ip string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.limiters == nil || len(l.limiters) > 100000 { // bounded: forget idle addresses
		l.limiters = map[string]*rate.Limiter{}
	}
	lim := l.limiters[ip]
	if lim == nil {
		lim = rate.NewLimiter(rate.Limit(l.Rate), max(1, l.Burst))
		l.limiters[ip] = lim
	}
	return lim
}

// Middleware applies the limit; install it outside the link guard and authentication.
func (l *FailureLimiter) Middleware(next echo.HandlerFunc) echo.HandlerFunc {
	if l.Rate <= 0 {
		return next
	}
	return func(c echo.Context) error {
		lim := l.limiter(c.RealIP()) // the socket's peer unless a trusted proxy forwards (the server's IPExtractor)
		if lim.Tokens() < 1 {
			if l.Refused != nil {
				l.Refused(c)
			}
			c.Response().Header().Set("Retry-After", "1")
			return echo.NewHTTPError(http.StatusTooManyRequests, "too many refused requests from this address; slow down")
		}
		err := next(c)
		code := c.Response().Status
		if he, ok := err.(*echo.HTTPError); ok {
			code = he.Code
		}
		if _, signedIn := FromContext(c.Request().Context()); !signedIn && (code == http.StatusUnauthorized || code == http.StatusForbidden) {
			lim.Allow() // charge the refusal
		}
		return err
	}
}

// LoopbackOnly answers 403, with how to turn authentication on, to every request whose
// client address is not a loopback address, except the paths exempt names (health
// checks). It guards a server running without authentication (auth.mode dev): anyone
// on the network could otherwise read every patient. The client address is echo's
// RealIP, which the server sets to the socket's peer unless a trusted proxy forwards for
// the client.
func LoopbackOnly(exempt func(path string) bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if a, err := netip.ParseAddr(c.RealIP()); err == nil && a.Unmap().IsLoopback() || exempt != nil && exempt(c.Request().URL.Path) {
				return next(c)
			}
			return echo.NewHTTPError(http.StatusForbidden, "authentication is off (auth.mode: dev), so Lumen answers only this machine; "+
				"turn authentication on (auth.mode: on with auth.issuer or auth.tokens, docs/security.md), "+
				"or set http.allow_remote_without_auth: true to serve everyone without it")
		}
	}
}
