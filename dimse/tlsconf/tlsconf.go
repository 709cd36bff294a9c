package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Files names the PEM files of a listener.
type Files struct {
	Cert, Key string
	// ClientCA, when set, makes client certificates required and verified against it.
	ClientCA string
}

// reloader serves the certificate, re-reading the files when their modification time
// or size changes (checked at most once a second).
type reloader struct {
	files   Files
	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string
	checked time.Time
}

func stamp(paths ...string) (string, error) {
	s := ""
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		s += fmt.Sprintf("%s:%d:%d;", p, st.ModTime().UnixNano(), st.Size())
	}
	return s, nil
}

func (r *reloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cert != nil && time.Since(r.checked) < time.Second {
		return r.cert, nil
	}
	r.checked = time.Now()
	st, err := stamp(r.files.Cert, r.files.Key)
	if err != nil {
		if r.cert != nil {
			return r.cert, nil // keep serving the last good certificate
		}
		return nil, err
	}
	if st == r.stamp && r.cert != nil {
		return r.cert, nil
	}
	c, err := tls.LoadX509KeyPair(r.files.Cert, r.files.Key)
	if err != nil {
		if r.cert != nil {
			return r.cert, nil // a half-written renewal: try again later
		}
		return nil, err
	}
	r.cert, r.stamp = &c, st
	return r.cert, nil
}

// Server returns a server configuration for the files: TLS 1.2 or later, the
// certificate reloaded when it changes, client certificates verified when ClientCA is
// set. It loads the files once now, so that a configuration error is reported at
// start-up.
func Server(f Files) (*tls.Config, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("tlsconf: a certificate and a key file are needed")
	}
	r := &reloader{files: f}
	if _, err := r.get(nil); err != nil {
		return nil, fmt.Errorf("tlsconf: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.get}
	if f.ClientCA != "" {
		pem, err := os.ReadFile(f.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tlsconf: %s holds no PEM certificate", f.ClientCA)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// Client returns, for outgoing DICOM TLS associations, a function giving the
// configuration for a server name: servers verified against the CA bundle caFile (the
// system roots when empty), and Lumen's own certificate (f.Cert, f.Key when set,
// reloaded when they change) presented to servers that ask for one.
func Client(f Files, caFile string) (func(serverName string) *tls.Config, error) {
	var roots *x509.CertPool
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tlsconf: %s holds no PEM certificate", caFile)
		}
	}
	var own func(*tls.CertificateRequestInfo) (*tls.Certificate, error)
	if f.Cert != "" && f.Key != "" {
		r := &reloader{files: f}
		if _, err := r.get(nil); err != nil {
			return nil, fmt.Errorf("tlsconf: %w", err)
		}
		own = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return r.get(nil) }
	}
	return func(serverName string) *tls.Config {
		return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, ServerName: serverName, GetClientCertificate: own}
	}, nil
}
