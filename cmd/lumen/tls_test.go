package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/testdata/gen"
)

// testPKI is a CA and the certificates it signs, as PEM files in a directory.
type testPKI struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial int64
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Lumen test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &testPKI{dir: t.TempDir(), ca: ca, caKey: key, serial: 1}
	writePEM(t, filepath.Join(p.dir, "ca.pem"), "CERTIFICATE", der)
	return p
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// issue writes name.pem and name.key: a certificate for 127.0.0.1 (server and client
// use) with the given common name; it returns the serial number.
func (p *testPKI) issue(t *testing.T, name, cn string) int64 {
	t.Helper()
	p.serial++
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	writePEM(t, filepath.Join(p.dir, name+".pem"), "CERTIFICATE", der)
	writePEM(t, filepath.Join(p.dir, name+".key"), "PRIVATE KEY", kder)
	return p.serial
}

func (p *testPKI) path(name string) string { return filepath.Join(p.dir, name) }

// TestTLS: storescu over DICOM TLS (client certificate verified) stores; a plain
// connection to the TLS port and a client without a certificate are refused; HTTPS
// serves; a renewed certificate is used without a restart.
func TestTLS(t *testing.T) {
	pki := newPKI(t)
	pki.issue(t, "server", "lumen.test")
	pki.issue(t, "client", "modality.test")
	pki.issue(t, "dest", "workstation.test")
	pki.issue(t, "arr", "arr.test")
	// An audit record repository: syslog over TLS (RFC 5425).
	arrCert, err := tls.LoadX509KeyPair(pki.path("arr.pem"), pki.path("arr.key"))
	if err != nil {
		t.Fatal(err)
	}
	arr, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{arrCert}})
	if err != nil {
		t.Fatal(err)
	}
	defer arr.Close()
	frames := make(chan string, 100)
	go func() {
		for {
			conn, err := arr.Accept()
			if err != nil {
				return
			}
			go func() {
				r := bufio.NewReader(conn)
				for {
					var n int
					if _, err := fmt.Fscanf(r, "%d ", &n); err != nil {
						return
					}
					b := make([]byte, n)
					if _, err := io.ReadFull(r, b); err != nil {
						return
					}
					frames <- string(b)
				}
			}()
		}
	}()
	// A workstation accepting DICOM TLS only, verifying Lumen's certificate.
	destPort, destDir := storeSCP(t, "+tls", pki.path("dest.key"), pki.path("dest.pem"), "+cf", pki.path("ca.pem"))
	s := startLumen(t, func(c *Config) {
		c.DIMSE.Peers = []PeerConfig{{AETitle: "DEST", Host: "127.0.0.1", Port: destPort, TLS: true}, {AETitle: "MODALITY"}, {AETitle: "MOVER"}}
		c.DIMSE.RejectUnknownCallingAE = true
		c.Audit.Syslog = "tls://" + arr.Addr().String()
		c.DIMSE.TLSPeerCA = pki.path("ca.pem")
		c.HTTP.TLSCert, c.HTTP.TLSKey = pki.path("server.pem"), pki.path("server.key")
		c.DIMSE.TLSAddr = "127.0.0.1:0"
		c.DIMSE.TLSCert, c.DIMSE.TLSKey, c.DIMSE.TLSClientCA = pki.path("server.pem"), pki.path("server.key"), pki.path("ca.pem")
	})
	host, port, _ := net.SplitHostPort(s.addr.DIMSETLS)
	corpus, err := gen.Corpus(39)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ct.dcm")
	os.WriteFile(file, corpus[0].Data, 0o644)
	storescu := func(args ...string) (string, error) {
		cmd := exec.Command(dcmtkTool(t, "storescu"), append(append([]string{"-aet", "MODALITY", "-aec", "LUMEN"}, args...), host, port, file)...)
		cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := storescu("+tls", pki.path("client.key"), pki.path("client.pem"), "+cf", pki.path("ca.pem")); err != nil {
		t.Fatalf("storescu over TLS: %v\n%s", err, out)
	}
	select {
	case f := <-frames:
		if !strings.HasPrefix(f, "<85>1 ") || !strings.Contains(f, "<AuditMessage>") || !strings.Contains(f, `UserID="ae:MODALITY"`) {
			t.Fatalf("syslog over TLS: %q", f)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no audit message over syslog TLS")
	}
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool(t, pki.path("ca.pem"))}}}).
		Get("https://" + s.addr.HTTP + "/dicom-web/studies?StudyInstanceUID=" + corpus[0].StudyUID)
	if err != nil {
		t.Fatalf("HTTPS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTPS QIDO after the TLS store: %d", resp.StatusCode)
	}
	if out, err := storescu(); err == nil {
		t.Fatalf("plain storescu to the TLS port succeeded:\n%s", out)
	}
	// A certificate signed by the CA does not make an unknown AE known: the policy
	// still rejects it.
	cmd := exec.Command(dcmtkTool(t, "storescu"), "-aet", "STRANGER", "-aec", "LUMEN", "+tls", pki.path("client.key"), pki.path("client.pem"), "+cf", pki.path("ca.pem"), host, port, file)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "Calling AE Title Not Recognized") {
		t.Fatalf("an unknown AE over TLS: %v\n%s", err, out)
	}
	// C-MOVE (asked on the plain port) to a peer reached over DICOM TLS.
	phost, pport, _ := net.SplitHostPort(s.addr.DIMSE)
	if f := finalResponse(moveWith(t, "-S", "DEST", phost, pport, []string{"QueryRetrieveLevel=IMAGE", "StudyInstanceUID=" + corpus[0].StudyUID,
		"SeriesInstanceUID=" + corpus[0].SeriesUID, "SOPInstanceUID=" + corpus[0].SOPInstanceUID})); f.status != "0x0000" || f.completed != 1 {
		t.Fatalf("C-MOVE to a TLS peer: %s, %d completed:\n%s", f.status, f.completed, f.everything)
	}
	if got := received(t, destDir); len(got) != 1 {
		t.Fatalf("C-MOVE to a TLS peer: %d received", len(got))
	}
	if out, err := storescu("+tla", "+cf", pki.path("ca.pem")); err == nil {
		t.Fatalf("storescu without a client certificate succeeded:\n%s", out)
	}
	// Renewal: new files, same paths; the next connection gets the new certificate.
	time.Sleep(1100 * time.Millisecond) // the files are checked at most once a second
	serial := pki.issue(t, "server", "lumen.test")
	conn, err := tls.Dial("tcp", s.addr.HTTP, &tls.Config{RootCAs: pool(t, pki.path("ca.pem"))})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != serial {
		t.Fatalf("after renewal the server presents certificate %d, want %d", got, serial)
	}
	if out, err := storescu("+tls", pki.path("client.key"), pki.path("client.pem"), "+cf", pki.path("ca.pem")); err != nil {
		t.Fatalf("storescu over TLS after renewal: %v\n%s", err, out)
	}
}

func pool(t *testing.T, caFile string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(b)
	return p
}
