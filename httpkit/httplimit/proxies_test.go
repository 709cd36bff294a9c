package httplimit

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestParseProxies: addresses become host prefixes, ranges stay ranges, and anything
// else is refused by value.
func TestParseProxies(t *testing.T) {
	got, err := ParseProxies([]string{"10.0.0.1", "192.168.0.0/16", "::1", "2001:db8::/32", "::ffff:10.1.2.3"})
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("10.1.2.3/32")}
	if err != nil || len(got) != len(want) {
		t.Fatalf("ParseProxies = %v, %v", got, err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %v, want %v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"proxy.example.org", "10.0.0.1/33", ""} {
		if _, err := ParseProxies([]string{bad}); err == nil {
			t.Errorf("ParseProxies(%q) accepted", bad)
		}
	}
}

// TestClientIP: X-Forwarded-For counts only from a listed proxy, never implicitly from
// loopback or private ranges.
func TestClientIP(t *testing.T) {
	proxies, _ := ParseProxies([]string{"10.0.0.1"})
	for _, c := range []struct {
		proxies []netip.Prefix
		remote  string
		want    string
	}{
		{nil, "10.0.0.1:1234", "10.0.0.1"},
		{nil, "127.0.0.1:1234", "127.0.0.1"},
		{proxies, "10.0.0.1:1234", "203.0.113.7"},
		{proxies, "10.0.0.2:1234", "10.0.0.2"},
		{proxies, "127.0.0.1:1234", "127.0.0.1"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		r.Header.Set(echo.HeaderXForwardedFor, "203.0.113.7")
		if got := ClientIP(c.proxies)(r); got != c.want {
			t.Errorf("proxies %v, from %s: client %s, want %s", c.proxies, c.remote, got, c.want)
		}
	}
}
