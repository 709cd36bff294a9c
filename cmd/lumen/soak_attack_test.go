//go:build soak

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/dimse"
)

// soakAttacker counts what the adversarial phase of the soak test did and what it got.
type soakAttacker struct {
	idleTCP, idleTCPClosed            atomic.Int64 // silent connections to the DICOM port; closed by the server
	assocHeld, assocRefused           atomic.Int64 // associations under the peer's AE title from elsewhere
	slowUploads, slowUploadsCut       atomic.Int64 // trickling STOW uploads; answered or closed by the server
	halfOpen, halfOpenClosed          atomic.Int64 // HTTP connections with half a request header
	floods, flood401, flood429, flood atomic.Int64
}

func (a *soakAttacker) report() string {
	return fmt.Sprintf("%d silent DICOM connections (%d closed by the server); %d idle associations held as SOAK from 127.0.0.2 (%d refused); "+
		"%d slow uploads (%d cut or refused); %d half-open HTTP connections (%d closed); %d unauthenticated requests (%d answered 401, %d 429, %d other)",
		a.idleTCP.Load(), a.idleTCPClosed.Load(), a.assocHeld.Load(), a.assocRefused.Load(), a.slowUploads.Load(), a.slowUploadsCut.Load(),
		a.halfOpen.Load(), a.halfOpenClosed.Load(), a.floods.Load(), a.flood401.Load(), a.flood429.Load(), a.flood.Load())
}

// engaged reports whether every attack ran and met a limit.
func (a *soakAttacker) engaged() bool {
	return a.idleTCPClosed.Load() > 0 && a.assocRefused.Load() > 0 && a.slowUploadsCut.Load() > 0 && a.halfOpenClosed.Load() > 0 && a.flood429.Load() > 0
}

// dialFrom connects to addr from the loopback address ip (the attacker's own addresses:
// 127.0.0.2 and up; the legitimate clients are 127.0.0.1).
func dialFrom(ctx context.Context, ip, addr string) (net.Conn, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return d.DialContext(ctx, "tcp", addr)
}

// waitClosed blocks until the server closes c (or ctx ends, which closes c).
func waitClosed(ctx context.Context, c net.Conn) bool {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	io.Copy(io.Discard, c)
	return ctx.Err() == nil
}

// soakAttack starts the attacker until ctx ends (wg tracks its goroutines):
//   - 20 addresses × 10 TCP connections to the DICOM port that never send a byte,
//     reconnected as soon as the server closes them;
//   - associations under the storing peer's AE title (SOAK) from 127.0.0.2, opened as
//     fast as they are admitted and held idle;
//   - 3 addresses × 8 STOW uploads with the legitimate token that trickle one byte a
//     second after their part header, restarted when cut;
//   - 4 addresses × 50 HTTP connections that send half a request header, reopened;
//   - 4 clients on 127.0.0.30 sending unauthenticated QIDO requests as fast as answered.
func soakAttack(ctx context.Context, t *testing.T, httpAddr, dimseAddr string, wg *sync.WaitGroup) *soakAttacker {
	a := &soakAttacker{}
	loop := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				f()
			}
		}()
	}
	pause := func(d time.Duration) {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	for i := 0; i < 20; i++ {
		ip := fmt.Sprintf("127.0.0.%d", 10+i)
		for j := 0; j < 10; j++ {
			loop(func() {
				c, err := dialFrom(ctx, ip, dimseAddr)
				if err != nil {
					pause(100 * time.Millisecond)
					return
				}
				a.idleTCP.Add(1)
				if waitClosed(ctx, c) {
					a.idleTCPClosed.Add(1)
				}
			})
		}
	}
	for j := 0; j < 60; j++ {
		loop(func() {
			c, err := dimse.Dial(ctx, dimseAddr, dimse.DialConfig{CallingAETitle: "SOAK", CalledAETitle: "LUMEN", LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")},
				Contexts: []dimse.ProposedContext{{AbstractSyntax: dimse.VerificationSOPClass, TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}}}})
			if err != nil {
				if ctx.Err() == nil {
					a.assocRefused.Add(1)
				}
				pause(200 * time.Millisecond)
				return
			}
			a.assocHeld.Add(1)
			<-ctx.Done()
			c.Abort()
		})
	}
	for i := 0; i < 3; i++ {
		ip := fmt.Sprintf("127.0.0.%d", 3+i)
		for j := 0; j < 8; j++ {
			loop(func() {
				c, err := dialFrom(ctx, ip, httpAddr)
				if err != nil {
					pause(100 * time.Millisecond)
					return
				}
				a.slowUploads.Add(1)
				fmt.Fprintf(c, "POST /dicom-web/studies HTTP/1.1\r\nHost: lumen\r\nAuthorization: Bearer %s\r\n"+
					"Content-Type: multipart/related; type=\"application/dicom\"; boundary=b\r\nContent-Length: 10000000\r\n\r\n"+
					"--b\r\nContent-Type: application/dicom\r\n\r\n", soakToken)
				closed := make(chan struct{})
				go func() { io.Copy(io.Discard, c); close(closed) }()
				for {
					select {
					case <-ctx.Done():
						c.Close()
						return
					case <-closed:
						a.slowUploadsCut.Add(1)
						c.Close()
						return
					case <-time.After(time.Second):
						c.Write([]byte{0})
					}
				}
			})
		}
	}
	for i := 0; i < 4; i++ {
		ip := fmt.Sprintf("127.0.0.%d", 6+i)
		for j := 0; j < 50; j++ {
			loop(func() {
				c, err := dialFrom(ctx, ip, httpAddr)
				if err != nil {
					pause(100 * time.Millisecond)
					return
				}
				a.halfOpen.Add(1)
				fmt.Fprintf(c, "GET /dicom-web/studies HTTP/1.1\r\nHost: lum")
				if waitClosed(ctx, c) {
					a.halfOpenClosed.Add(1)
				}
			})
		}
	}
	flood := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) { return dialFrom(ctx, "127.0.0.30", addr) }}}
	for j := 0; j < 4; j++ {
		loop(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/dicom-web/studies", nil)
			resp, err := flood.Do(req)
			if err != nil {
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			a.floods.Add(1)
			switch resp.StatusCode {
			case http.StatusUnauthorized:
				a.flood401.Add(1)
			case http.StatusTooManyRequests:
				a.flood429.Add(1)
			default:
				a.flood.Add(1)
			}
		})
	}
	return a
}
