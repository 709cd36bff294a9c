package publicurl

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// Config says how absolute URLs are rooted. Its zero value uses the local address each
// connection arrived on.
type Config struct {
	// PublicURL, when set, is the scheme and authority of every absolute URL
	// ("https://pacs.example.org"); set it behind a reverse proxy.
	PublicURL string
	// AllowedHosts are the Host header values that may be used when PublicURL is
	// empty: "host" (with any port of the listener's) or "host:port".
	AllowedHosts []string
}

// Root returns scheme://authority for absolute URLs answering r (no trailing slash):
// PublicURL when set, else the request's scheme (http or https, as the caller read it)
// and Authority.
func (c Config) Root(scheme string, r *http.Request) string {
	if c.PublicURL != "" {
		return strings.TrimRight(c.PublicURL, "/")
	}
	return scheme + "://" + c.Authority(r)
}

// Authority is the host[:port] of absolute URLs written for r when PublicURL is empty:
// r's Host header when AllowedHosts admits it (lower-cased), else the local address the
// connection arrived on (http.LocalAddrContextKey), else "localhost". An arbitrary Host
// header is never used: it would let anyone who can send a request make the answers
// point elsewhere.
func (c Config) Authority(r *http.Request) string {
	var local netip.AddrPort
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok {
		ap := a.AddrPort()
		local = netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
	}
	host := strings.ToLower(r.Host)
	for _, h := range c.AllowedHosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if h != "" && (host == h || local.IsValid() && host == h+":"+strconv.Itoa(int(local.Port()))) {
			return host
		}
	}
	if local.IsValid() {
		return local.String()
	}
	return "localhost"
}
