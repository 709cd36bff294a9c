package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/httpkit/auth/authtest"
	"github.com/lumenpacs/lumen/index"
)

func TestAuthenticate(t *testing.T) {
	is := authtest.NewIssuer(t)
	sum := sha256.Sum256([]byte("service-secret"))
	a, err := New(context.Background(), Config{Issuer: is.URL, Audience: "lumen",
		Tokens: []StaticToken{{Name: "pacs-bridge", SHA256: hex.EncodeToString(sum[:]), Roles: []string{RoleRead, RoleWrite}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	base := func() map[string]any {
		return map[string]any{"iss": is.URL, "aud": "lumen", "sub": "dr-who", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "roles": []string{"read"}}
	}
	req := func(tok string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/dicom-web/studies", nil)
		if tok != "" {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		return r
	}
	p, err := a.Authenticate(req(is.Token(t, base(), nil)))
	if err != nil || p.Subject != "dr-who" || !p.Has(RoleRead) || p.Has(RoleWrite) || p.Patient != nil || p.Via != "oidc" {
		t.Fatalf("valid token: %+v %v", p, err)
	}
	c := base()
	c["patient"] = "P-7^^^HOSP"
	c["scope"] = "openid lumen.write"
	if p, err := a.Authenticate(req(is.Token(t, c, nil))); err != nil || p.Patient == nil || p.Patient.ID != "P-7" || p.Patient.Issuer != "HOSP" || !p.Has(RoleWrite) {
		t.Fatalf("patient-scoped token: %+v %v", p, err)
	}
	if p, err := a.Authenticate(req("service-secret")); err != nil || p.Subject != "token:pacs-bridge" || !p.Has(RoleWrite) || p.Has(RoleDelete) {
		t.Fatalf("static token: %+v %v", p, err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	payload, _ := json.Marshal(base())
	none := header + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
	bad := map[string]string{
		"expired":        is.Token(t, func() map[string]any { c := base(); c["exp"] = now.Add(-time.Minute).Unix(); return c }(), nil),
		"wrong audience": is.Token(t, func() map[string]any { c := base(); c["aud"] = "someone-else"; return c }(), nil),
		"wrong issuer":   is.Token(t, func() map[string]any { c := base(); c["iss"] = "https://evil.example"; return c }(), nil),
		"bad signature":  is.Token(t, base(), other),
		"alg none":       none,
		"unknown token":  "not-a-known-token",
	}
	for name, tok := range bad {
		if p, err := a.Authenticate(req(tok)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: accepted (%+v, %v)", name, p, err)
		}
	}
	if _, err := a.Authenticate(req("")); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("no token: %v", err)
	}
	for name, cfg := range map[string]Config{
		"issuer without audience": {Issuer: is.URL},
		"bad digest":              {Tokens: []StaticToken{{Name: "x", SHA256: "abc"}}},
		"unknown role":            {Tokens: []StaticToken{{Name: "x", SHA256: hex.EncodeToString(sum[:]), Roles: []string{"superuser"}}}},
	} {
		if _, err := New(context.Background(), cfg, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestRateLimit: a principal over its budget gets 429 with Retry-After; another
// principal is not affected.
func TestRateLimit(t *testing.T) {
	a, err := New(context.Background(), Config{RateLimit: 1, RateBurst: 3, Tokens: []StaticToken{
		{Name: "busy", SHA256: digestOf("busy"), Roles: []string{RoleRead}}, {Name: "calm", SHA256: digestOf("calm"), Roles: []string{RoleRead}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	h := a.Middleware(func(echo.Context) string { return RoleRead }, nil)(func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	call := func(tok string) (int, string) {
		r := httptest.NewRequest(http.MethodGet, "/dicom-web/studies", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		c := e.NewContext(r, w)
		if err := h(c); err != nil {
			he := err.(*echo.HTTPError)
			return he.Code, w.Header().Get("Retry-After")
		}
		return w.Code, ""
	}
	for i := 0; i < 3; i++ {
		if code, _ := call("busy"); code != http.StatusOK {
			t.Fatalf("request %d within the burst: %d", i+1, code)
		}
	}
	if code, ra := call("busy"); code != http.StatusTooManyRequests || ra == "" {
		t.Fatalf("over the budget: %d, Retry-After %q", code, ra)
	}
	if code, _ := call("calm"); code != http.StatusOK {
		t.Fatalf("another account: %d", code)
	}
}

func digestOf(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// TestPatientClaim: a patient claim that is present but unusable refuses the token with
// 403 and a reason; it never leaves the token unscoped. One usable value in an array is
// accepted; several are refused. A static token's patient must name a patient too.
func TestPatientClaim(t *testing.T) {
	is := authtest.NewIssuer(t)
	a, err := New(context.Background(), Config{Issuer: is.URL, Audience: "lumen"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	token := func(patient any) string {
		return is.Token(t, map[string]any{"iss": is.URL, "aud": "lumen", "sub": "dr-who", "exp": now.Add(time.Hour).Unix(),
			"iat": now.Unix(), "roles": []string{"read"}, "patient": patient}, nil)
	}
	e := echo.New()
	var scope *index.Scope
	h := a.Middleware(func(echo.Context) string { return RoleRead }, nil)(func(c echo.Context) error {
		if sc := index.Scopes(c.Request().Context()); len(sc) > 0 {
			scope = &sc[0]
		}
		return c.NoContent(http.StatusOK)
	})
	call := func(tok string) (int, string) {
		scope = nil
		r := httptest.NewRequest(http.MethodGet, "/dicom-web/studies", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		if err := h(e.NewContext(r, w)); err != nil {
			he := err.(*echo.HTTPError)
			return he.Code, fmt.Sprint(he.Message)
		}
		return w.Code, ""
	}
	for name, v := range map[string]any{
		"array of two":     []string{"P-1", "P-2"},
		"empty array":      []string{},
		"number":           42,
		"object":           map[string]any{"id": "P-1"},
		"empty string":     "",
		"blank string":     "   ",
		"no ID":            "^^^HOSP",
		"null":             nil,
		"array of number":  []any{7},
		"array of empty":   []string{""},
		"boolean":          true,
		"nested array":     []any{[]string{"P-1"}},
		"array of objects": []any{map[string]any{"id": "P-1"}},
	} {
		code, msg := call(token(v))
		if code != http.StatusForbidden || !strings.Contains(msg, `"patient" claim`) {
			t.Errorf("%s: %d %q, want 403 naming the claim", name, code, msg)
		}
		if scope == nil && code == http.StatusOK {
			t.Errorf("%s: served unscoped", name)
		}
	}
	for name, v := range map[string]any{"string": "P-1^^^HOSP", "array of one": []string{"P-1^^^HOSP"}} {
		code, msg := call(token(v))
		if code != http.StatusOK || scope == nil || scope.Patient == nil || scope.Patient.ID != "P-1" || scope.Patient.Issuer != "HOSP" {
			t.Errorf("%s: %d %q scope %+v, want 200 scoped to P-1/HOSP", name, code, msg, scope)
		}
	}
	if _, err := New(context.Background(), Config{Tokens: []StaticToken{{Name: "x", SHA256: digestOf("x"), Roles: []string{RoleRead}, Patient: "^^^HOSP"}}}, nil); err == nil {
		t.Error("a static token whose patient names no patient was accepted")
	}
}

// TestLoopbackOnly: without authentication, only loopback clients are served (IPv4,
// IPv6, IPv4-mapped); others get 403 saying how to turn authentication on; health
// checks are exempt.
func TestLoopbackOnly(t *testing.T) {
	e := echo.New()
	e.IPExtractor = echo.ExtractIPDirect()
	h := LoopbackOnly(func(p string) bool { return p == "/healthz" })(func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	for _, c := range []struct {
		remote, path string
		want         int
	}{
		{"127.0.0.1:4000", "/dicom-web/studies", http.StatusOK},
		{"127.0.0.9:4000", "/dicom-web/studies", http.StatusOK},
		{"[::1]:4000", "/dicom-web/studies", http.StatusOK},
		{"[::ffff:127.0.0.1]:4000", "/dicom-web/studies", http.StatusOK},
		{"192.0.2.7:4000", "/dicom-web/studies", http.StatusForbidden},
		{"[2001:db8::7]:4000", "/viewer/", http.StatusForbidden},
		{"10.1.2.3:4000", "/healthz", http.StatusOK},
	} {
		r := httptest.NewRequest(http.MethodGet, c.path, nil)
		r.RemoteAddr = c.remote
		r.Header.Set("X-Forwarded-For", "127.0.0.1") // never believed here
		w := httptest.NewRecorder()
		code := http.StatusOK
		if err := h(e.NewContext(r, w)); err != nil {
			he := err.(*echo.HTTPError)
			code = he.Code
			if !strings.Contains(fmt.Sprint(he.Message), "auth.mode: on") {
				t.Errorf("%s: the refusal does not say how to turn authentication on: %v", c.remote, he.Message)
			}
		}
		if code != c.want {
			t.Errorf("%s %s: %d, want %d", c.remote, c.path, code, c.want)
		}
	}
}

// TestBearerMatches checks the one digest check of bearer tokens, as BearerMatches
// (the EMR's mint accounts) and Authenticate's static tokens use it: the header's form,
// the digest's hex case, an empty list; and where the two differ (Authenticate trims
// the token and tells a missing token from an unknown one).
func TestBearerMatches(t *testing.T) {
	secret, other := digestOf("service-secret"), digestOf("other")
	upper := strings.ToUpper(secret)
	for _, c := range []struct {
		header  string // Authorization ("": none)
		digests []string
		matches bool  // BearerMatches
		auth    error // Authenticate with the digests as static tokens (nil: accepted)
	}{
		{"Bearer service-secret", []string{secret}, true, nil},
		{"Bearer service-secret", []string{upper}, true, nil},
		{"Bearer service-secret", []string{other, upper, other}, true, nil},
		{"Bearer service-secret", []string{other}, false, ErrInvalid},
		{"Bearer service-secret", nil, false, ErrInvalid},
		{"", []string{secret}, false, ErrNoCredentials},
		{"Bearer ", []string{secret}, false, ErrNoCredentials},
		{"Bearer    ", []string{secret}, false, ErrNoCredentials},
		{"bearer service-secret", []string{secret}, false, ErrNoCredentials},
		{"BEARER service-secret", []string{secret}, false, ErrNoCredentials},
		{"Basic c2VydmljZS1zZWNyZXQ=", []string{secret}, false, ErrNoCredentials},
		{"Bearer  service-secret", []string{secret}, false, nil}, // trimmed by Authenticate only
		{"Bearer service-secret ", []string{secret}, false, nil},
		{"Bearer SERVICE-SECRET", []string{secret}, false, ErrInvalid},
		{"Bearer service-secret2", []string{secret}, false, ErrInvalid},
		{"Bearer " + secret, []string{secret}, false, ErrInvalid}, // the digest is not the token
	} {
		r := httptest.NewRequest(http.MethodGet, "/emr/v1/links", nil)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		if got := BearerMatches(r, c.digests); got != c.matches {
			t.Errorf("BearerMatches(%q, %d digests) = %v, want %v", c.header, len(c.digests), got, c.matches)
		}
		var tokens []StaticToken
		for i, d := range c.digests {
			tokens = append(tokens, StaticToken{Name: fmt.Sprint("t", i), SHA256: d, Roles: []string{RoleRead}})
		}
		a, err := New(context.Background(), Config{Tokens: tokens}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Authenticate(r); !errors.Is(err, c.auth) || c.auth == nil && err != nil {
			t.Errorf("Authenticate(%q, %d digests): %v, want %v", c.header, len(c.digests), err, c.auth)
		}
	}
	// Two static tokens with one digest: the last one configured is the principal.
	a, err := New(context.Background(), Config{Tokens: []StaticToken{{Name: "first", SHA256: secret}, {Name: "second", SHA256: upper}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer service-secret")
	if p, err := a.Authenticate(r); err != nil || p.Subject != "token:second" {
		t.Errorf("two tokens with one digest: %+v %v", p, err)
	}
}
