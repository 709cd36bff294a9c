package dimse

import (
	"io"
	"net"
)

// pduReader returns what to read conn's PDUs from: conn itself, or, where the platform
// allows it (quickAcker), conn acknowledging at once each read that returned bytes. A
// peer that sends with Nagle's algorithm on then never waits for the delayed-ACK
// timer between the PDUs of one message.
func pduReader(conn net.Conn) io.Reader {
	if ack := quickAcker(conn); ack != nil {
		return &ackingReader{r: conn, ack: ack}
	}
	return conn
}

// ackingReader reads from r and, after each read that returned bytes, has them
// acknowledged at once (ack).
type ackingReader struct {
	r   io.Reader
	ack func()
}

func (a *ackingReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.ack()
	}
	return n, err
}
