package send

import "crypto/tls"

// Peer is a DICOM node Lumen sends to: C-MOVE destinations, `lumen send` and forwarding
// targets.
type Peer struct {
	AETitle string
	Host    string
	Port    int
	// TLS makes Lumen's associations to this peer DICOM TLS (PS3.15 B.1).
	TLS bool
}

// Peers is the book of known peers. A destination is known by its AE title, and only
// with a host and a port.
type Peers struct {
	List []Peer
	// TLS gives the client TLS configuration for a peer's host (peers with TLS set).
	TLS func(serverName string) *tls.Config
}

// Destination resolves a destination AE title among the known peers.
func (b *Peers) Destination(ae string) (Destination, bool) {
	if b == nil {
		return Destination{}, false
	}
	for _, p := range b.List {
		if p.AETitle == ae && p.Host != "" && p.Port > 0 {
			d := Destination{AETitle: p.AETitle, Host: p.Host, Port: p.Port}
			if p.TLS && b.TLS != nil {
				d.TLS = b.TLS(p.Host)
			}
			return d, true
		}
	}
	return Destination{}, false
}
