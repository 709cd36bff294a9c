//go:build linux

package dimse

import (
	"net"

	"golang.org/x/sys/unix"
)

// quickAcker returns a function that has the kernel acknowledge at once what the
// connection has received (TCP_QUICKACK, which Linux clears again by itself, so it is
// set after each read that returned bytes, a PDU header's included), or nil when conn is
// not a TCP connection.
//
// A sender that leaves Nagle's algorithm on (DCMTK does unless TCP_NODELAY=1 is in its
// environment, and many modalities' stacks do) holds a data set PDU that follows a
// small command PDU until that command is acknowledged; Linux delays the
// acknowledgement by at least 40 ms while the receiver has nothing to send, so every
// small instance would wait that long.
func quickAcker(conn net.Conn) func() {
	if nc, ok := conn.(interface{ NetConn() net.Conn }); ok { // DICOM TLS
		conn = nc.NetConn()
	}
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	set := func(fd uintptr) {
		// Best effort: a failure only leaves the kernel's delayed acknowledgement.
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
	}
	return func() { _ = rc.Control(set) }
}
