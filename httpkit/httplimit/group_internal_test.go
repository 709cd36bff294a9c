package httplimit

import (
	"net/netip"
	"testing"
)

// TestGroup: IPv6 clients count by network (a /64 by default), IPv4 ones by address,
// IPv4-mapped IPv6 as IPv4.
func TestGroup(t *testing.T) {
	for _, tc := range []struct {
		bits   int
		a, b   string
		shared bool
	}{
		{0, "2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true},
		{0, "2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{128, "2001:db8:1:2::1", "2001:db8:1:2::2", false},
		{48, "2001:db8:1:2::1", "2001:db8:1:3::1", true},
		{0, "192.0.2.1", "::ffff:192.0.2.1", true},
		{0, "192.0.2.1", "192.0.2.2", false},
		{0, "fe80::1%eth0", "fe80::2%eth1", true},
	} {
		l := &Limiter{IPv6PrefixLen: tc.bits}
		ga, gb := l.group(netip.MustParseAddr(tc.a)), l.group(netip.MustParseAddr(tc.b))
		if (ga == gb) != tc.shared {
			t.Errorf("/%d: %s -> %s, %s -> %s; shared = %v, want %v", tc.bits, tc.a, ga, tc.b, gb, ga == gb, tc.shared)
		}
	}
}
