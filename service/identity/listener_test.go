package identity

import (
	"net"
	"testing"
)

// TestPeers: the host policy and the sender check of a peer list.
func TestPeers(t *testing.T) {
	addr := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000} }
	p, err := NewPeers([]Peer{{Facility: "HIS", Application: "ADT", Host: "127.0.0.1"}, {Facility: "LAB", Host: "127.0.1.0/24"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		fac, app, ip string
		host, sender bool
	}{
		{"HIS", "ADT", "127.0.0.1", true, true},
		{"HIS", "ADT", "127.0.1.9", true, false}, // a listed host, but not this sender's
		{"HIS", "LAB", "127.0.0.1", true, false},
		{"LAB", "ANY", "127.0.1.9", true, true},
		{"LAB", "ANY", "127.0.2.9", false, false},
		{"CLINIC", "ADT", "127.0.0.1", true, false},
	} {
		if h, s := p.host(addr(c.ip)), p.sender(c.fac, c.app, addr(c.ip)); h != c.host || s != c.sender {
			t.Errorf("%s|%s from %s: host %v sender %v, want %v %v", c.fac, c.app, c.ip, h, s, c.host, c.sender)
		}
	}
	open, _ := NewPeers(nil)
	if !open.host(addr("127.9.9.9")) || !open.sender("ANY", "ONE", addr("127.9.9.9")) {
		t.Error("no peer list: everyone is refused")
	}
	named, _ := NewPeers([]Peer{{Application: "ADT", Host: "localhost"}})
	if !named.host(addr("127.0.0.1")) || named.host(addr("127.0.0.2")) {
		t.Error("a host name is not resolved")
	}
}
