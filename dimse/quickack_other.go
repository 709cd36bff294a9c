//go:build !linux

package dimse

import "net"

// quickAcker returns nil: only Linux delays acknowledgements in a way a receiver can
// switch off per read (see quickack_linux.go).
func quickAcker(net.Conn) func() { return nil }
