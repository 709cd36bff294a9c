package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dicomweb"
	"github.com/lumenpacs/lumen/dicomweb/admin"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/dimse/tlsconf"
	"github.com/lumenpacs/lumen/emr"
	"github.com/lumenpacs/lumen/emr/fhir"
	"github.com/lumenpacs/lumen/hl7/mllp"
	"github.com/lumenpacs/lumen/httpkit/auth"
	"github.com/lumenpacs/lumen/httpkit/httplimit"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/service/audit"
	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/lumenpacs/lumen/service/metrics"
	"github.com/lumenpacs/lumen/service/send"
	viewerweb "github.com/lumenpacs/lumen/viewer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the archive",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadConfig(cmd.Flags())
			if err != nil {
				return err
			}
			log, err := newLogger(c, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			var ready chan listening
			if f, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				// A person started it: one line saying where everything is.
				ready = make(chan listening, 1)
				go func() {
					if a, ok := <-ready; ok {
						fmt.Fprintln(f, startLine(c, a))
					}
				}()
			}
			return serve(cmd.Context(), c, log, ready)
		},
	}
	cmd.Flags().String("http-addr", "", "HTTP listen address (key http.addr)")
	cmd.Flags().String("dimse-addr", "", "DICOM listen address (key dimse.addr)")
	cmd.Flags().String("hl7-addr", "", "HL7 v2 (MLLP) listen address (key hl7.addr; off unless set)")
	return cmd
}

// startLine is the one human line `lumen serve` prints on a terminal once it listens:
// where the viewer, DICOMweb and DICOM are, the data directory, and the authentication
// mode.
func startLine(c *Config, a listening) string {
	local := func(addr string) string { // a wildcard listener is reached as localhost
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return addr
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			host = "localhost"
		}
		return net.JoinHostPort(host, port)
	}
	scheme := "http"
	if c.HTTP.TLSCert != "" {
		scheme = "https"
	}
	root := scheme + "://" + local(a.HTTP)
	if c.DICOMweb.PublicURL != "" {
		root = strings.TrimRight(c.DICOMweb.PublicURL, "/")
	}
	line := "Lumen is running: viewer " + root + "/viewer/ · DICOMweb " + root + "/" + strings.Trim(c.DICOMweb.BasePath, "/")
	if a.DIMSE != "" {
		line += " · DICOM " + c.DIMSE.AETitle + "@" + local(a.DIMSE)
	}
	if a.DIMSETLS != "" {
		line += " (TLS " + local(a.DIMSETLS) + ")"
	}
	switch {
	case a.HL7 != "" && a.HL7TLS != "":
		line += " · HL7 " + local(a.HL7) + " (TLS " + local(a.HL7TLS) + ")"
	case a.HL7 != "":
		line += " · HL7 " + local(a.HL7)
	case a.HL7TLS != "":
		line += " · HL7 TLS " + local(a.HL7TLS)
	}
	store := "data " + c.DataDir
	if c.Store.Backend == "s3" || c.Index.Backend == "postgres" {
		store = "store " + c.Store.Backend + ", index " + c.Index.Backend
	}
	line += " · " + store
	switch {
	case c.Auth.Mode == "on":
		line += " · authentication on"
	case c.HTTP.AllowRemoteWithoutAuth:
		line += " · authentication OFF, open to the network"
	default:
		line += " · authentication off (this machine only)"
	}
	return line
}

// listening are the addresses the server listens on.
type listening struct{ HTTP, DIMSE, DIMSETLS, HL7, HL7TLS string }

// serve runs the server until ctx ends. ready, if not nil, receives the addresses.
func serve(ctx context.Context, c *Config, log *slog.Logger, ready chan<- listening) error {
	if c.Auth.Mode == "" {
		if c.Index.Backend == "postgres" || c.Store.Backend == "s3" {
			return fmt.Errorf("config: a deployment on PostgreSQL or S3 needs authentication: set auth.mode: on with auth.issuer or auth.tokens (or auth.mode: dev to run without, knowingly)")
		}
		c.Auth.Mode = "dev" // the embedded defaults: a laptop
	}
	dimseWarn, err := c.dimseAccess()
	if err != nil {
		return err
	}
	if dimseWarn != "" {
		log.Warn(dimseWarn)
	}
	hl7Warn, err := c.hl7Access()
	if err != nil {
		return err
	}
	if hl7Warn != "" {
		log.Warn(hl7Warn)
	}
	if c.DIMSE.CheckHost {
		for _, p := range c.DIMSE.Peers {
			if p.Host == "" {
				log.Warn("dimse: peer has no host and dimse.check_host is on: its associations are refused", "ae_title", p.AETitle)
			}
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	b, err := openBackends(ctx, c, log, ingest.NewMetrics(reg))
	if err != nil {
		return err
	}
	defer b.Close()
	log.Info("lumen starting", "version", version, "store", c.Store.Backend, "index", c.Index.Backend, "data_dir", c.DataDir)

	if c.Fsck.OnStart {
		go b.pipeline.StartupCheck(ctx, c.Fsck.Days, c.Fsck.Grace, c.Fsck.Repair, c.Fsck.Timeout, log)
	}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// The client's address is the socket's peer; X-Forwarded-For counts only when the
	// request comes from a configured reverse proxy (never by default: loopback and
	// private ranges are not trusted implicitly).
	proxies, _ := httplimit.ParseProxies(c.HTTP.TrustedProxies) // checked by validate
	e.IPExtractor = httplimit.ClientIP(proxies)
	e.GET("/healthz", func(ec echo.Context) error { return ec.String(http.StatusOK, "ok\n") })
	e.GET("/", func(ec echo.Context) error { return ec.Redirect(http.StatusFound, "/viewer/") })
	e.GET("/readyz", metrics.Ready(map[string]func(context.Context) error{"index": b.index.Ping, "store": b.store.Ping}))
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
	e.Use(metrics.HTTP(reg))
	var syslog *audit.Syslog
	if c.Audit.Syslog != "" {
		var peerTLS func(string) *tls.Config
		if c.DIMSE.TLSPeerCA != "" {
			if peerTLS, err = tlsconf.Client(tlsconf.Files{}, c.DIMSE.TLSPeerCA); err != nil {
				return fmt.Errorf("audit syslog tls: %w", err)
			}
		}
		if syslog, err = audit.NewSyslog(c.Audit.Syslog, c.DIMSE.AETitle, peerTLS, log); err != nil {
			return err
		}
	}
	trail := audit.New(b.index, syslog, log)
	defer syslog.Close(5 * time.Second)      // after the trail: it exports what the trail was given
	defer trail.Close()                      // before the index closes (deferred earlier)
	e.Use(trail.HTTP(httpAction, httpActor)) // outside the link guard and authentication: refusals are audited too
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lumen_http_refused_total", Help: "HTTP requests and connections refused by a limit, by reason.",
	}, []string{"reason"})
	reg.MustRegister(refused)
	failures := &auth.FailureLimiter{Rate: c.Auth.FailureRateLimit, Burst: c.Auth.FailureRateBurst, Refused: func(ec echo.Context) {
		ec.Set(audit.SkipKey, true) // a flood must not become a flood of audit rows
		refused.WithLabelValues("unauthenticated_rate").Inc()
	}}
	e.Use(failures.Middleware)  // before the link guard and authentication: refused before any verification
	e.Use(metrics.Recover(log)) // inside the audit: a handler's panic is a 500, audited
	(&admin.Audit{Trail: trail}).Register(e)
	metrics.Queue(reg, b.index)
	observeDIMSE := metrics.DIMSE(reg)
	web := &dicomweb.Service{
		Index: b.index, Store: b.store, Ingest: b.pipeline, Logger: log,
		BasePath: c.DICOMweb.BasePath, PublicURL: c.DICOMweb.PublicURL, MaxUploadBytes: c.DICOMweb.MaxUploadBytes,
		MaxLimit: c.DICOMweb.MaxLimit, AllowDelete: c.DICOMweb.AllowDelete, CORSOrigins: c.DICOMweb.CORSOrigins,
		ThumbnailLRU: c.DICOMweb.ThumbnailLRU,
		AllowedHosts: c.DICOMweb.AllowedHosts, MaxURLLength: c.DICOMweb.MaxURLLength, MaxSTOWParts: c.DICOMweb.MaxSTOWParts,
		MaxFailures: c.DICOMweb.MaxFailures, MaxQueryValues: c.DICOMweb.MaxQueryValues, MaxIncludeFields: c.DICOMweb.MaxIncludeFields,
	}
	signer, err := c.linkSigner()
	if err != nil {
		return err
	}
	chart := &emr.Service{
		Index: b.index, Links: signer, MintTokenHashes: c.EMR.MintTokenSHA256, FrameAncestors: c.EMR.FrameAncestors,
		DICOMwebBase: c.DICOMweb.BasePath, PublicURL: c.DICOMweb.PublicURL, AllowedHosts: c.DICOMweb.AllowedHosts, OHIFURL: c.EMR.OHIFURL, Logger: log,
		MaxIIDStudies: c.EMR.IIDMaxStudies,
		ServiceLines: emr.ServiceLines{Modalities: c.EMR.CardiologyModalities, SOPClassPrefixes: c.EMR.CardiologySOPClassPrefixes,
			BodyParts: c.EMR.CardiologyBodyParts, Keywords: c.EMR.CardiologyKeywords},
	}
	if c.Auth.Mode != "on" && !c.HTTP.AllowRemoteWithoutAuth {
		// Without authentication, only this machine is served (health checks excepted).
		e.Use(auth.LoopbackOnly(func(p string) bool { return p == "/healthz" || p == "/readyz" }))
	}
	e.Use(chart.Guard) // link tokens, wherever they are presented
	if c.Auth.Mode == "on" {
		authn, err := auth.New(ctx, auth.Config{Issuer: c.Auth.Issuer, Audience: c.Auth.Audience, RolesClaim: c.Auth.RolesClaim,
			PatientClaim: c.Auth.PatientClaim, Tokens: c.Auth.Tokens, RateLimit: c.Auth.RateLimit, RateBurst: c.Auth.RateBurst}, log)
		if err != nil {
			return err
		}
		e.Use(authn.Middleware(authRule, emr.LinkAdmitted))
		log.Info("auth: on", "issuer", c.Auth.Issuer, "api_tokens", len(c.Auth.Tokens))
	} else {
		if c.HTTP.AllowRemoteWithoutAuth {
			log.Warn("AUTHENTICATION IS OFF (auth.mode dev) and http.allow_remote_without_auth is set: every HTTP surface is open to anyone who can reach it; set auth.mode: on for any real deployment")
		} else {
			log.Warn("AUTHENTICATION IS OFF (auth.mode dev): HTTP answers this machine (loopback) only; set auth.mode: on to serve the network (http.allow_remote_without_auth: true opens it without authentication)")
		}
	}
	web.Register(e)
	(&admin.Quarantine{Ingest: b.pipeline, Logger: log}).Register(e)
	(&admin.Rejections{Ingest: b.pipeline, Thumbnails: web, Logger: log}).Register(e)
	if id, ok := b.index.(index.Identity); ok {
		(&admin.Identity{Index: id, Logger: log}).Register(e)
	}
	chart.Register(e)
	(&fhir.Service{Index: b.index, DICOMwebBase: c.DICOMweb.BasePath, PublicURL: c.DICOMweb.PublicURL, AllowedHosts: c.DICOMweb.AllowedHosts,
		MaxMatches: c.EMR.FHIRMaxMatches, Logger: log}).Register(e)
	(&viewerweb.Viewer{DICOMwebBase: c.DICOMweb.BasePath, FrameAncestors: c.EMR.FrameAncestors}).Register(e)
	book := &send.Peers{List: c.DIMSE.sendPeers()}
	for _, p := range c.DIMSE.Peers {
		if p.TLS {
			tc, err := tlsconf.Client(tlsconf.Files{Cert: c.DIMSE.TLSCert, Key: c.DIMSE.TLSKey}, c.DIMSE.TLSPeerCA)
			if err != nil {
				return fmt.Errorf("dimse tls to peers: %w", err)
			}
			book.TLS = tc
			break
		}
	}
	(&admin.Send{Index: b.index, Sender: &send.Sender{Store: b.store, CallingAETitle: c.DIMSE.AETitle, Logger: log}, Peers: book, Logger: log}).Register(e)
	e.HTTPErrorHandler = web.ErrorHandler
	if signer == nil {
		log.Info("emr: no link keys configured (emr.link_keys): signed links are off")
	}
	host, _ := os.Hostname()
	worker := fmt.Sprintf("%s:%d:%x", host, os.Getpid(), time.Now().UnixNano()&0xffffff)
	// One job worker: thumbnails and forwarding register their kinds with it.
	jobsDone := make(chan struct{})
	if q, ok := b.index.(index.Queue); ok {
		jobs := &index.Worker{Queue: q, Name: worker, Log: log}
		if c.DICOMweb.BackgroundThumbnails {
			jobs.Handle(web.ThumbnailJobs(worker, 0))
		}
		if len(c.Forward.Rules) > 0 {
			jobs.Handle((&send.Forwarder{Queue: q, Index: b.index, Sender: &send.Sender{Store: b.store, CallingAETitle: c.DIMSE.AETitle, Logger: log},
				Peers: book, Retry: c.Forward.Retry, MaxAttempts: c.Forward.MaxAttempts, Worker: worker, Log: log}).Jobs())
		}
		go func() { defer close(jobsDone); jobs.Run(ctx) }()
	} else {
		close(jobsDone)
	}

	ln, err := net.Listen("tcp", c.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", c.HTTP.Addr, err)
	}
	// Connections and uploads are bounded per client address and overall, so that no
	// client can hold every file descriptor or upload slot (httpkit/httplimit). A
	// trusted proxy carries everyone's connections: the per-address caps skip it.
	lim := &httplimit.Limiter{MaxConns: c.HTTP.MaxConns, MaxConnsPerAddr: c.HTTP.MaxConnsPerAddr,
		MaxUploads: c.HTTP.MaxUploads, MaxUploadsPerAddr: c.HTTP.MaxUploadsPerAddr, MinUploadRate: c.HTTP.MinUploadRate,
		UploadRateWindow: c.HTTP.UploadRateWindow, UploadGrace: c.HTTP.UploadGrace, ClientAddr: e.IPExtractor, ExemptAddrs: proxies}
	metrics.Limits(reg, lim)
	ln = lim.Listener(ln) // under TLS: a handshake holds a connection too
	if c.HTTP.TLSCert != "" {
		tc, err := tlsconf.Server(tlsconf.Files{Cert: c.HTTP.TLSCert, Key: c.HTTP.TLSKey})
		if err != nil {
			ln.Close()
			return fmt.Errorf("http tls: %w", err)
		}
		ln = tls.NewListener(ln, tc)
	}
	srv := &http.Server{Handler: e, ReadHeaderTimeout: c.HTTP.ReadHeaderTimeout, IdleTimeout: c.HTTP.IdleTimeout,
		ReadTimeout: c.HTTP.ReadTimeout, WriteTimeout: c.HTTP.WriteTimeout}
	lim.ConfigureServer(srv)
	errc := make(chan error, 5) // http, dimse, dimse tls, hl7, hl7 tls
	go func() { errc <- fmt.Errorf("http: %w", srv.Serve(ln)) }()
	log.Info("http listening", "addr", ln.Addr().String())
	addrs := listening{HTTP: ln.Addr().String()}

	var dsrv *dimse.Server
	if c.DIMSE.Addr != "" {
		dln, err := net.Listen("tcp", c.DIMSE.Addr)
		if err != nil {
			srv.Close()
			return fmt.Errorf("dimse listen %s: %w", c.DIMSE.Addr, err)
		}
		dsrv = newDIMSEServer(c, b, book, trail, log)
		dsrv.Observe = observeDIMSE
		go func() { errc <- fmt.Errorf("dimse: %w", dsrv.Serve(dln)) }()
		addrs.DIMSE = dln.Addr().String()
		if c.DIMSE.TLSAddr != "" {
			tc, err := tlsconf.Server(tlsconf.Files{Cert: c.DIMSE.TLSCert, Key: c.DIMSE.TLSKey, ClientCA: c.DIMSE.TLSClientCA})
			if err != nil {
				srv.Close()
				dsrv.Shutdown(context.Background())
				return fmt.Errorf("dimse tls: %w", err)
			}
			tln, err := net.Listen("tcp", c.DIMSE.TLSAddr)
			if err != nil {
				srv.Close()
				dsrv.Shutdown(context.Background())
				return fmt.Errorf("dimse tls listen %s: %w", c.DIMSE.TLSAddr, err)
			}
			go func() { errc <- fmt.Errorf("dimse tls: %w", dsrv.Serve(tls.NewListener(tln, tc))) }()
			addrs.DIMSETLS = tln.Addr().String()
			log.Info("dimse tls listening", "addr", addrs.DIMSETLS, "client_certificates", c.DIMSE.TLSClientCA != "")
		}
		if !c.DIMSE.RejectUnknownCallingAE {
			log.Warn("dimse: permissive AE policy: any calling AE may echo, store, query and retrieve (set dimse.reject_unknown_calling_ae and dimse.peers to restrict it)")
		}
		log.Info("dimse listening", "addr", addrs.DIMSE, "ae_title", c.DIMSE.AETitle, "check_called_ae", c.DIMSE.CheckCalledAE, "reject_unknown_calling_ae", c.DIMSE.RejectUnknownCallingAE, "peers", len(c.DIMSE.Peers))
	}
	var hsrv *mllp.Server
	if c.HL7.Addr != "" || c.HL7.TLSAddr != "" {
		if hsrv, err = startHL7(c, b, trail, reg, log, errc, &addrs); err != nil {
			srv.Close()
			if dsrv != nil {
				dsrv.Shutdown(context.Background())
			}
			return err
		}
	}
	if ready != nil {
		ready <- addrs
	}
	select {
	case err := <-errc:
		srv.Close()
		if dsrv != nil {
			dsrv.Shutdown(context.Background())
		}
		if hsrv != nil {
			hsrv.Shutdown(context.Background())
		}
		return err
	case <-ctx.Done():
	}
	log.Info("lumen shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), c.HTTP.ShutdownTimeout)
	defer cancel()
	if hsrv != nil {
		// The message in progress on each connection is finished and acknowledged.
		if err := hsrv.Shutdown(sctx); err != nil {
			log.Warn("hl7 shutdown: connections closed before their message was answered", "err", err)
		}
	}
	if dsrv != nil {
		if err := dsrv.Shutdown(sctx); err != nil {
			log.Warn("dimse shutdown: associations aborted", "err", err)
		}
	}
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("http shutdown", "err", err)
	}
	<-jobsDone // the job worker may start a write (a thumbnail, a forward batch) until it has returned
	web.Wait() // thumbnails being written to the store
	log.Info("lumen stopped")
	return nil
}

// startHL7 starts the HL7 listeners (hl7.addr, hl7.tls_addr) on one mllp.Server; their
// Serve errors go to errc and their addresses into addrs.
func startHL7(c *Config, b *backends, trail *audit.Trail, reg prometheus.Registerer, log *slog.Logger, errc chan<- error, addrs *listening) (*mllp.Server, error) {
	var hsrv *mllp.Server
	observe := metrics.HL7(reg, func() mllp.Stats {
		if hsrv == nil {
			return mllp.Stats{}
		}
		return hsrv.Stats()
	})
	hsrv, err := newHL7Server(c, b.index, trail, observe, log)
	if err != nil {
		return nil, err
	}
	var tc *tls.Config
	if c.HL7.TLSAddr != "" {
		if tc, err = tlsconf.Server(tlsconf.Files{Cert: c.HL7.TLSCert, Key: c.HL7.TLSKey, ClientCA: c.HL7.TLSClientCA}); err != nil {
			return nil, fmt.Errorf("hl7 tls: %w", err)
		}
	}
	if c.HL7.Addr != "" {
		ln, err := net.Listen("tcp", c.HL7.Addr)
		if err != nil {
			return nil, fmt.Errorf("hl7 listen %s: %w", c.HL7.Addr, err)
		}
		go func() { errc <- fmt.Errorf("hl7: %w", hsrv.Serve(ln)) }()
		addrs.HL7 = ln.Addr().String()
	}
	if c.HL7.TLSAddr != "" {
		ln, err := net.Listen("tcp", c.HL7.TLSAddr)
		if err != nil {
			hsrv.Shutdown(context.Background())
			return nil, fmt.Errorf("hl7 tls listen %s: %w", c.HL7.TLSAddr, err)
		}
		go func() { errc <- fmt.Errorf("hl7 tls: %w", hsrv.Serve(tls.NewListener(ln, tc))) }()
		addrs.HL7TLS = ln.Addr().String()
	}
	if c.HL7.Issuer == "" {
		log.Warn("hl7: no hl7.issuer: each message's first PID-3 identifier typed MR (else the first) is taken, with the assigning authority it names; set hl7.issuer in production")
	}
	if c.HL7.Issuer != "" && c.Ingest.DefaultIssuer == "" {
		log.Info("hl7: ingest.default_issuer is not set: objects stored without IssuerOfPatientID are not the patients the ADT feed names")
	}
	log.Info("hl7 listening", "addr", addrs.HL7, "tls_addr", addrs.HL7TLS, "client_certificates", c.HL7.TLSClientCA != "",
		"issuer", c.HL7.Issuer, "peers", len(c.HL7.Peers))
	return hsrv, nil
}

// authRule says which role each HTTP request needs ("" : public): reading for GET,
// writing for POST (STOW-RS), deleting for DELETE, sending for pushing to peers, admin
// for the rest of /api/. Public:
// health and metrics, CORS preflight, the viewer's static files (its data requests are
// checked), the FHIR CapabilityStatement, and link minting (which checks its own
// service-account tokens).
func authRule(c echo.Context) string {
	r := c.Request()
	p := r.URL.Path
	switch {
	case r.Method == http.MethodOptions, p == "/", p == "/healthz", p == "/readyz", p == "/metrics", p == "/fhir/metadata":
		return ""
	case p == "/viewer" || strings.HasPrefix(p, "/viewer/"):
		return ""
	case p == "/emr/v1/links" && r.Method == http.MethodPost:
		return ""
	case p == "/api/v1/send" && r.Method == http.MethodPost:
		return auth.RoleSend
	case strings.HasPrefix(p, "/api/"):
		return auth.RoleAdmin
	case r.Method == http.MethodDelete:
		return auth.RoleDelete
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		return auth.RoleRead
	}
	return auth.RoleWrite
}
