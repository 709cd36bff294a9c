package httplimit

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/labstack/echo/v4"
)

// ParseProxies parses the addresses of trusted reverse proxies: IP addresses or CIDR
// ranges.
func ParseProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range list {
		if !strings.Contains(v, "/") {
			if a, err := netip.ParseAddr(v); err == nil {
				out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
				continue
			}
		}
		_, n, err := net.ParseCIDR(v)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address or CIDR range", v)
		}
		p, _ := netip.ParsePrefix(n.String())
		out = append(out, p)
	}
	return out, nil
}

// ClientIP says how to find a request's client address: the socket's peer, or, when the
// request comes from one of proxies, the address its X-Forwarded-For names (never
// implicitly for loopback, link-local or private ranges).
func ClientIP(proxies []netip.Prefix) echo.IPExtractor {
	if len(proxies) == 0 {
		return echo.ExtractIPDirect()
	}
	trust := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range proxies {
		_, n, _ := net.ParseCIDR(p.String())
		trust = append(trust, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(trust...)
}
