package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
	"github.com/lumenpacs/lumen/emr"
	"github.com/lumenpacs/lumen/emr/links"
	"github.com/lumenpacs/lumen/httpkit/auth"
	"github.com/lumenpacs/lumen/httpkit/httplimit"
	"github.com/lumenpacs/lumen/service/identity"
	"github.com/spf13/pflag"
)

// Config is Lumen's configuration. Keys are the koanf tags, dotted by section.
type Config struct {
	DataDir  string         `koanf:"data_dir"`
	HTTP     HTTPConfig     `koanf:"http"`
	Log      LogConfig      `koanf:"log"`
	Store    StoreConfig    `koanf:"store"`
	Index    IndexConfig    `koanf:"index"`
	Ingest   IngestConfig   `koanf:"ingest"`
	Fsck     FsckConfig     `koanf:"fsck"`
	Import   ImportConfig   `koanf:"import"`
	DIMSE    DIMSEConfig    `koanf:"dimse"`
	HL7      HL7Config      `koanf:"hl7"`
	DICOMweb DICOMwebConfig `koanf:"dicomweb"`
	EMR      EMRConfig      `koanf:"emr"`
	Forward  ForwardConfig  `koanf:"forward"`
	Auth     AuthConfig     `koanf:"auth"`
	Audit    AuditConfig    `koanf:"audit"`
}

// AuditConfig configures the export of the audit trail.
type AuditConfig struct {
	// Syslog, when set, also sends every audit record as a DICOM audit message (PS3.15
	// A.5) to an audit record repository: udp://host:port (RFC 5426) or tls://host:port
	// (RFC 5425, verified against dimse.tls_peer_ca or the system roots).
	Syslog string `koanf:"syslog"`
}

// AuthConfig configures authentication of the HTTP surfaces (package httpkit/auth).
type AuthConfig struct {
	// Mode is "on" (every protected request needs a bearer token; start-up fails when
	// neither an issuer nor a token is configured) or "dev" (no authentication, logged
	// loudly at start-up). Unset, it is dev on the embedded backends (a laptop: one
	// command runs Lumen) and an error on the production ones (PostgreSQL or S3):
	// `lumen serve` refuses to start there until authentication is configured or dev is
	// asked for explicitly.
	Mode         string             `koanf:"mode"`
	Issuer       string             `koanf:"issuer"`
	Audience     string             `koanf:"audience"`
	RolesClaim   string             `koanf:"roles_claim"`
	PatientClaim string             `koanf:"patient_claim"`
	Tokens       []auth.StaticToken `koanf:"tokens"`
	RateLimit    float64            `koanf:"rate_limit"`
	RateBurst    int                `koanf:"rate_burst"`
	// FailureRateLimit is how many refused unauthenticated requests (401, or 403 to a
	// signed link) one client address may make per second on average, with bursts of
	// FailureRateBurst; beyond, 429 before the request is looked at (0: no limit).
	FailureRateLimit float64 `koanf:"failure_rate_limit"`
	FailureRateBurst int     `koanf:"failure_rate_burst"`
}

// EMRConfig configures the EMR linkage (package emr), the built-in viewer and
// FHIR.
type EMRConfig struct {
	// LinkKeys sign and verify links: "id:secret" with a base64 secret of at least 32
	// bytes. Keep a retired key here until its links have expired.
	LinkKeys []string `koanf:"link_keys"`
	// LinkKey is the ID of the key new links are signed with (default: the first).
	LinkKey string `koanf:"link_key"`
	// MintTokenSHA256 are the hex SHA-256 digests of the bearer tokens of EMR service
	// accounts allowed to mint links (POST /emr/v1/links).
	MintTokenSHA256 []string `koanf:"mint_token_sha256"`
	// FrameAncestors are the EMR origins allowed to frame the widget and the viewer.
	FrameAncestors []string `koanf:"frame_ancestors"`
	// OHIFURL sends IHE Invoke Image Display to OHIF ({studies} is replaced).
	OHIFURL string `koanf:"ohif_url"`
	// IIDMaxStudies bounds the studies one IHE IID request may name or open.
	IIDMaxStudies int `koanf:"iid_max_studies"`
	// FHIRMaxMatches bounds the studies one FHIR search may match (and _offset).
	FHIRMaxMatches int `koanf:"fhir_max_matches"`
	// The service-line rules (emr.ServiceLines).
	CardiologyModalities       []string `koanf:"cardiology_modalities"`
	CardiologySOPClassPrefixes []string `koanf:"cardiology_sop_class_prefixes"`
	CardiologyBodyParts        []string `koanf:"cardiology_body_parts"`
	CardiologyKeywords         []string `koanf:"cardiology_keywords"`
}

// DICOMwebConfig configures the DICOMweb service (package dicomweb).
type DICOMwebConfig struct {
	BasePath       string   `koanf:"base_path"`
	PublicURL      string   `koanf:"public_url"`
	MaxUploadBytes int64    `koanf:"max_upload_bytes"`
	MaxLimit       int      `koanf:"max_limit"`
	AllowDelete    bool     `koanf:"allow_delete"`
	CORSOrigins    []string `koanf:"cors_origins"`
	ThumbnailLRU   int      `koanf:"thumbnail_lru"`
	// BackgroundThumbnails renders each study's thumbnails once it has stopped
	// receiving instances, from the queue in the index.
	BackgroundThumbnails bool `koanf:"background_thumbnails"`
	// Bounds of what one request may ask (dicomweb.Service): the Host header values
	// allowed in absolute URLs when public_url is empty, the request target's length,
	// STOW-RS parts and listed failures, QIDO values and includefield entries.
	AllowedHosts     []string `koanf:"allowed_hosts"`
	MaxURLLength     int      `koanf:"max_url_length"`
	MaxSTOWParts     int      `koanf:"max_stow_parts"`
	MaxFailures      int      `koanf:"max_failures"`
	MaxQueryValues   int      `koanf:"max_query_values"`
	MaxIncludeFields int      `koanf:"max_include_fields"`
}

// DIMSEConfig configures the DICOM listener and its AE policy.
type DIMSEConfig struct {
	Addr                   string        `koanf:"addr"`
	AETitle                string        `koanf:"ae_title"`
	CheckCalledAE          bool          `koanf:"check_called_ae"`
	RejectUnknownCallingAE bool          `koanf:"reject_unknown_calling_ae"`
	CheckHost              bool          `koanf:"check_host"`
	Peers                  []PeerConfig  `koanf:"peers"`
	MaxAssociations        int           `koanf:"max_associations"`
	MaxAssociationsPerAE   int           `koanf:"max_associations_per_ae"`
	MaxPDULength           int           `koanf:"max_pdu_length"`
	IdleTimeout            time.Duration `koanf:"idle_timeout"`
	ARTIMTimeout           time.Duration `koanf:"artim_timeout"`
	// MaxPendingPerAddress is each source address's share of connections without an
	// association, enforced once the listener is busy (dimse.Server).
	MaxPendingPerAddress int `koanf:"max_pending_per_address"`
	// AssociateRequestTimeout closes a connection that has not sent its whole
	// A-ASSOCIATE-RQ within it (TLS handshake included).
	AssociateRequestTimeout time.Duration `koanf:"associate_request_timeout"`
	// ReservedForPeers are association places only configured peers calling from their
	// configured host may take (0: automatic, max(4, max_associations/8); -1: none).
	ReservedForPeers int      `koanf:"reserved_for_peers"`
	TransferSyntaxes []string `koanf:"transfer_syntaxes"`
	// TLSAddr, when set, is a DICOM TLS listener (PS3.15 Annex B, conventionally port
	// 2762) with TLSCert and TLSKey (PEM, reloaded when they change); TLSClientCA, when
	// set, requires client certificates signed by it. Peers with TLS set are reached
	// over TLS, verified against TLSPeerCA (default: the system roots).
	TLSAddr     string `koanf:"tls_addr"`
	TLSCert     string `koanf:"tls_cert"`
	TLSKey      string `koanf:"tls_key"`
	TLSClientCA string `koanf:"tls_client_ca"`
	TLSPeerCA   string `koanf:"tls_peer_ca"`
	// AllowUnauthenticated, with auth.mode on, lets the DICOM listener admit calling AEs
	// without the production policy or client certificates (logged at every start).
	// Without it, auth.mode on requires reject_unknown_calling_ae and check_host, or a
	// TLS-only listener that verifies client certificates.
	AllowUnauthenticated bool `koanf:"allow_unauthenticated"`
}

// HL7Config configures the HL7 v2 listener (MLLP): the ADT feed of the patient
// records (docs/hl7.md).
type HL7Config struct {
	// Addr is the MLLP listen address (off unless set); TLSAddr, when set, an MLLP
	// listener over TLS with TLSCert and TLSKey (PEM, reloaded when they change);
	// TLSClientCA, when set, requires client certificates signed by it.
	Addr        string `koanf:"addr"`
	TLSAddr     string `koanf:"tls_addr"`
	TLSCert     string `koanf:"tls_cert"`
	TLSKey      string `koanf:"tls_key"`
	TLSClientCA string `koanf:"tls_client_ca"`
	// Issuer is the assigning authority whose identifier of PID-3 and MRG-1 is the
	// patient's (identity.ADT.Issuer); it becomes the records' IssuerOfPatientID.
	Issuer string `koanf:"issuer"`
	// ProcessingIDs are the MSH-11 values accepted (HL7 Table 0103; default P).
	ProcessingIDs []string `koanf:"processing_ids"`
	// Peers are the senders allowed: a message from a sender (MSH-4, MSH-3) not
	// listed, or from another host than its entry names, is answered AR 103; a
	// connection from a host no entry names is closed. Empty: any sender from
	// anywhere (logged at start; refused with auth.mode on unless
	// AllowUnauthenticated).
	Peers []HL7PeerConfig `koanf:"peers"`
	// AllowUnauthenticated, with auth.mode on, lets the listener serve without a peer
	// list whose every entry names its host, or TLS-only with client certificates.
	AllowUnauthenticated bool `koanf:"allow_unauthenticated"`
	// Limits (hl7/mllp.Server): connections overall and per remote host, the idle time
	// between messages, the time one message may take to arrive and its ACK to be
	// written, and the size of one message.
	MaxConns        int           `koanf:"max_conns"`
	MaxConnsPerHost int           `koanf:"max_conns_per_host"`
	IdleTimeout     time.Duration `koanf:"idle_timeout"`
	ReadTimeout     time.Duration `koanf:"read_timeout"`
	WriteTimeout    time.Duration `koanf:"write_timeout"`
	MaxMessageBytes int           `koanf:"max_message_bytes"`
}

// HL7PeerConfig is one allowed HL7 sender: its sending facility (MSH-4.1) and
// application (MSH-3.1), and the host it connects from (an IP address, a CIDR range or
// a host name). An empty field matches any value; an entry names at least one.
type HL7PeerConfig struct {
	Facility    string `koanf:"facility"`
	Application string `koanf:"application"`
	Host        string `koanf:"host"`
}

// peers is the peer list in the listener's terms.
func (h *HL7Config) peers() []identity.Peer {
	out := make([]identity.Peer, len(h.Peers))
	for i, p := range h.Peers {
		out[i] = identity.Peer{Facility: p.Facility, Application: p.Application, Host: p.Host}
	}
	return out
}

// ForwardConfig configures auto-forwarding on ingest.
type ForwardConfig struct {
	Rules []ForwardRule `koanf:"rules"`
	// Retry is the delay before the first retry of a failed forward; it doubles with each
	// attempt, up to an hour.
	Retry time.Duration `koanf:"retry"`
	// MaxAttempts is how many times a forward is tried before it is given up (logged).
	MaxAttempts int `koanf:"max_attempts"`
}

// ForwardRule forwards newly stored instances that match to a known peer. Empty match
// fields match anything.
type ForwardRule struct {
	CallingAE   string `koanf:"calling_ae"` // the sender's AE title (DIMSE); "" for any source
	Modality    string `koanf:"modality"`   // the series' Modality
	Destination string `koanf:"destination"`
}

// PeerConfig is a known remote AE.
type PeerConfig struct {
	AETitle  string   `koanf:"ae_title"`
	Host     string   `koanf:"host"`
	Port     int      `koanf:"port"`
	Services []string `koanf:"services"`
	// TLS makes Lumen's associations to this peer DICOM TLS (C-MOVE, send, forwarding).
	TLS bool `koanf:"tls"`
}

// HTTPConfig configures the HTTP listener.
type HTTPConfig struct {
	Addr            string        `koanf:"addr"`
	ReadTimeout     time.Duration `koanf:"read_timeout"`
	WriteTimeout    time.Duration `koanf:"write_timeout"`
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
	// TLSCert and TLSKey (PEM files) make the listener HTTPS; the certificate is
	// reloaded when the files change.
	TLSCert string `koanf:"tls_cert"`
	TLSKey  string `koanf:"tls_key"`
	// TrustedProxies are the addresses (IPs or CIDR ranges) of reverse proxies whose
	// X-Forwarded-For names the client. From anyone else the header is ignored: the
	// client is the socket's peer (audit records, ATNA, limits per address).
	TrustedProxies []string `koanf:"trusted_proxies"`
	// AllowRemoteWithoutAuth lets a server without authentication (auth.mode dev) answer
	// clients other than this machine's (loopback) ones.
	AllowRemoteWithoutAuth bool `koanf:"allow_remote_without_auth"`
	// Bounds of what clients may hold (httpkit/httplimit): open connections overall
	// (0: half the open-file limit) and per client address, request bodies being
	// received overall and per address, the slowest a body may arrive (bytes/s), and
	// the time a request header may take and an idle keep-alive connection may stay.
	MaxConns          int           `koanf:"max_conns"`
	MaxConnsPerAddr   int           `koanf:"max_conns_per_addr"`
	MaxUploads        int           `koanf:"max_uploads"`
	MaxUploadsPerAddr int           `koanf:"max_uploads_per_addr"`
	MinUploadRate     int64         `koanf:"min_upload_rate"`
	UploadRateWindow  time.Duration `koanf:"upload_rate_window"`
	UploadGrace       time.Duration `koanf:"upload_grace"`
	ReadHeaderTimeout time.Duration `koanf:"read_header_timeout"`
	IdleTimeout       time.Duration `koanf:"idle_timeout"`
}

// LogConfig configures logging.
type LogConfig struct {
	Level  string `koanf:"level"`
	Format string `koanf:"format"`
}

// StoreConfig selects and configures the blob store.
type StoreConfig struct {
	Backend string   `koanf:"backend"`
	FS      FSConfig `koanf:"fs"`
	S3      S3Config `koanf:"s3"`
}

// FSConfig configures the filesystem store.
type FSConfig struct {
	Dir string `koanf:"dir"`
	// DirectIO writes objects of 256 KiB and more with O_DIRECT (Linux): less CPU per
	// instance, but an object just received is not in the page cache when a viewer or a
	// forwarding rule reads it soon after. Off by default.
	DirectIO bool `koanf:"direct_io"`
}

// S3Config configures the S3 store.
type S3Config struct {
	Endpoint  string `koanf:"endpoint"`
	Bucket    string `koanf:"bucket"`
	Region    string `koanf:"region"`
	AccessKey string `koanf:"access_key"`
	SecretKey string `koanf:"secret_key"`
	UseTLS    bool   `koanf:"use_tls"`
	Prefix    string `koanf:"prefix"`
	PartSize  int64  `koanf:"part_size"`
}

// IndexConfig selects and configures the index database.
type IndexConfig struct {
	Backend  string         `koanf:"backend"`
	SQLite   SQLiteConfig   `koanf:"sqlite"`
	Postgres PostgresConfig `koanf:"postgres"`
}

// SQLiteConfig configures the embedded index.
type SQLiteConfig struct {
	Path string `koanf:"path"`
}

// PostgresConfig configures the PostgreSQL index.
type PostgresConfig struct {
	DSN string `koanf:"dsn"`
}

// IngestConfig configures the ingest pipeline.
type IngestConfig struct {
	Duplicates string `koanf:"duplicates"`
	// DefaultIssuer is the IssuerOfPatientID the index files an object under when the
	// object has none (the stored object is not changed): modalities rarely send one,
	// while the ADT feed always names its assigning authority (usually hl7.issuer).
	DefaultIssuer string `koanf:"default_issuer"`
}

// FsckConfig configures the start-up consistency check.
type FsckConfig struct {
	OnStart bool          `koanf:"on_start"`
	Days    int           `koanf:"days"`
	Repair  bool          `koanf:"repair"`
	Timeout time.Duration `koanf:"timeout"`
	Grace   time.Duration `koanf:"grace"`
}

// ImportConfig configures lumen import.
type ImportConfig struct {
	Workers int `koanf:"workers"`
}

// defaults are the documented default values (docs/configuration.md).
var defaults = map[string]any{
	"data_dir":                          "./data",
	"http.addr":                         ":8080",
	"http.read_timeout":                 "5m",
	"http.write_timeout":                "30m",
	"http.shutdown_timeout":             "30s",
	"http.tls_cert":                     "",
	"http.tls_key":                      "",
	"http.trusted_proxies":              []any{},
	"http.allow_remote_without_auth":    false,
	"http.max_conns":                    0,
	"http.max_conns_per_addr":           256,
	"http.max_uploads":                  256,
	"http.max_uploads_per_addr":         16,
	"http.min_upload_rate":              4096,
	"http.upload_rate_window":           "30s",
	"http.upload_grace":                 "30s",
	"http.read_header_timeout":          "10s",
	"http.idle_timeout":                 "60s",
	"log.level":                         "info",
	"log.format":                        "json",
	"store.backend":                     "fs",
	"store.fs.dir":                      "",
	"store.fs.direct_io":                false,
	"store.s3.endpoint":                 "",
	"store.s3.bucket":                   "lumen",
	"store.s3.region":                   "",
	"store.s3.access_key":               "",
	"store.s3.secret_key":               "",
	"store.s3.use_tls":                  false,
	"store.s3.prefix":                   "",
	"store.s3.part_size":                0,
	"index.backend":                     "sqlite",
	"index.sqlite.path":                 "",
	"index.postgres.dsn":                "",
	"ingest.duplicates":                 "quarantine",
	"ingest.default_issuer":             "",
	"fsck.on_start":                     true,
	"fsck.days":                         2,
	"fsck.repair":                       false,
	"fsck.timeout":                      "60s",
	"fsck.grace":                        "10m",
	"import.workers":                    4,
	"dimse.addr":                        ":11112",
	"dimse.ae_title":                    "LUMEN",
	"dimse.check_called_ae":             false,
	"dimse.reject_unknown_calling_ae":   false,
	"dimse.check_host":                  false,
	"dimse.peers":                       []any{},
	"dimse.max_associations":            64,
	"dimse.max_associations_per_ae":     32,
	"dimse.max_pdu_length":              262144,
	"dimse.idle_timeout":                "5m",
	"dimse.artim_timeout":               "30s",
	"dimse.max_pending_per_address":     8,
	"dimse.associate_request_timeout":   "5s",
	"dimse.reserved_for_peers":          0,
	"dimse.tls_addr":                    "",
	"dimse.tls_cert":                    "",
	"dimse.tls_key":                     "",
	"dimse.tls_client_ca":               "",
	"dimse.tls_peer_ca":                 "",
	"dimse.transfer_syntaxes":           []any{},
	"dimse.allow_unauthenticated":       false,
	"hl7.addr":                          "",
	"hl7.tls_addr":                      "",
	"hl7.tls_cert":                      "",
	"hl7.tls_key":                       "",
	"hl7.tls_client_ca":                 "",
	"hl7.issuer":                        "",
	"hl7.processing_ids":                []any{"P"},
	"hl7.peers":                         []any{},
	"hl7.allow_unauthenticated":         false,
	"hl7.max_conns":                     64,
	"hl7.max_conns_per_host":            8,
	"hl7.idle_timeout":                  "5m",
	"hl7.read_timeout":                  "30s",
	"hl7.write_timeout":                 "30s",
	"hl7.max_message_bytes":             1 << 20,
	"dicomweb.base_path":                "/dicom-web",
	"dicomweb.public_url":               "",
	"dicomweb.max_upload_bytes":         int64(4 << 30),
	"dicomweb.max_limit":                1000,
	"dicomweb.allow_delete":             false,
	"dicomweb.cors_origins":             []any{"*"},
	"dicomweb.thumbnail_lru":            4096,
	"dicomweb.background_thumbnails":    true,
	"dicomweb.allowed_hosts":            []any{},
	"dicomweb.max_url_length":           8192,
	"dicomweb.max_stow_parts":           10000,
	"dicomweb.max_failures":             1000,
	"dicomweb.max_query_values":         500,
	"dicomweb.max_include_fields":       200,
	"audit.syslog":                      "",
	"auth.mode":                         "",
	"auth.issuer":                       "",
	"auth.audience":                     "",
	"auth.roles_claim":                  "roles",
	"auth.patient_claim":                "patient",
	"auth.tokens":                       []any{},
	"auth.rate_limit":                   200.0,
	"auth.rate_burst":                   400,
	"auth.failure_rate_limit":           10.0,
	"auth.failure_rate_burst":           50,
	"forward.rules":                     []any{},
	"forward.retry":                     "30s",
	"forward.max_attempts":              10,
	"emr.link_keys":                     []any{},
	"emr.link_key":                      "",
	"emr.mint_token_sha256":             []any{},
	"emr.frame_ancestors":               []any{},
	"emr.ohif_url":                      "",
	"emr.iid_max_studies":               100,
	"emr.fhir_max_matches":              10000,
	"emr.cardiology_modalities":         anys(emr.DefaultServiceLines.Modalities),
	"emr.cardiology_sop_class_prefixes": anys(emr.DefaultServiceLines.SOPClassPrefixes),
	"emr.cardiology_body_parts":         anys(emr.DefaultServiceLines.BodyParts),
	"emr.cardiology_keywords":           anys(emr.DefaultServiceLines.Keywords),
}

func anys(list []string) []any {
	out := make([]any, len(list))
	for i, v := range list {
		out[i] = v
	}
	return out
}

// removedKeys are settings of earlier versions, with what replaces them.
var removedKeys = map[string]string{
	"dimse.send_token_sha256": "give the account an auth.tokens entry (or an OpenID Connect role) with the send role; see docs/security.md",
}

// envKeys maps LUMEN_* variable names to configuration keys.
func envKeys() map[string]string {
	m := map[string]string{}
	for k := range defaults {
		m["LUMEN_"+strings.ToUpper(strings.ReplaceAll(k, ".", "_"))] = k
	}
	return m
}

// flagKeys maps command-line flags to configuration keys.
var flagKeys = map[string]string{
	"data-dir":   "data_dir",
	"dimse-addr": "dimse.addr",
	"hl7-addr":   "hl7.addr",
	"http-addr":  "http.addr",
	"log-level":  "log.level",
	"log-format": "log.format",
	"workers":    "import.workers",
}

// loadConfig merges defaults, the YAML file, LUMEN_* variables and set flags.
func loadConfig(flags *pflag.FlagSet) (*Config, error) {
	k := koanf.New(".")
	if err := k.Load(confmap.Provider(defaults, "."), nil); err != nil {
		return nil, err
	}
	path, _ := flags.GetString("config")
	if path == "" {
		path = os.Getenv("LUMEN_CONFIG")
	}
	if path != "" {
		if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		// Reject unknown keys: a typo must not silently fall back to a default.
		for _, key := range k.Keys() {
			if why, ok := removedKeys[key]; ok {
				return nil, fmt.Errorf("config %s: %q is no longer a setting: %s", path, key, why)
			}
			if _, ok := defaults[key]; !ok && k.Get(key) != nil { // an empty section is null
				return nil, fmt.Errorf("config %s: unknown key %q", path, key)
			}
		}
	}
	known := envKeys()
	if err := k.Load(env.ProviderWithValue("LUMEN_", ".", func(name, value string) (string, any) {
		if key, ok := known[name]; ok {
			return key, value
		}
		return "", nil
	}), nil); err != nil {
		return nil, err
	}
	set := map[string]any{}
	flags.Visit(func(f *pflag.Flag) {
		if key, ok := flagKeys[f.Name]; ok {
			set[key] = f.Value.String()
		}
	})
	if err := k.Load(confmap.Provider(set, "."), nil); err != nil {
		return nil, err
	}
	var c Config
	if err := k.UnmarshalWithConf("", &c, koanf.UnmarshalConf{Tag: "koanf", FlatPaths: false}); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if c.Store.FS.Dir == "" {
		c.Store.FS.Dir = filepath.Join(c.DataDir, "blobs")
	}
	if c.Index.SQLite.Path == "" {
		c.Index.SQLite.Path = filepath.Join(c.DataDir, "index.db")
	}
	return &c, c.validate()
}

// dimseAccess checks, with authentication on, that the DICOM listener does not admit
// anyone who can reach it while HTTP answers 401: it needs the production policy
// (known calling AEs only, each from its configured host, each with its services), or
// DICOM TLS alone with client certificates, or dimse.allow_unauthenticated asked for
// knowingly (warn is then set, for a log line at every start).
func (c *Config) dimseAccess() (warn string, err error) {
	d := c.DIMSE
	if c.Auth.Mode != "on" || d.Addr == "" && d.TLSAddr == "" {
		return "", nil
	}
	policy := d.RejectUnknownCallingAE && d.CheckHost
	certs := d.Addr == "" && d.TLSClientCA != ""
	switch {
	case policy || certs:
		return "", nil
	case d.AllowUnauthenticated:
		return "DICOM IS UNAUTHENTICATED (dimse.allow_unauthenticated): any calling AE that reaches the DICOM listener may query, retrieve and store while HTTP requires authentication", nil
	}
	return "", fmt.Errorf("config: auth.mode is on but the DICOM listener admits any calling AE from anywhere: " +
		"set dimse.reject_unknown_calling_ae: true and dimse.check_host: true (every peer in dimse.peers with its host and services), " +
		"or serve DICOM over TLS only with client certificates (dimse.addr: \"\", dimse.tls_addr, dimse.tls_client_ca), " +
		"or set dimse.allow_unauthenticated: true to run so knowingly")
}

// hl7Access checks, with authentication on, that the HL7 listener does not take ADT
// messages from anyone who can reach it: it needs a peer list whose every entry names
// its host, or TLS only with client certificates, or hl7.allow_unauthenticated (warn is
// then set, for a log line at every start).
func (c *Config) hl7Access() (warn string, err error) {
	h := c.HL7
	if h.Addr == "" && h.TLSAddr == "" {
		return "", nil
	}
	hosts := len(h.Peers) > 0
	for _, p := range h.Peers {
		hosts = hosts && p.Host != ""
	}
	certs := h.Addr == "" && h.TLSClientCA != ""
	switch {
	case hosts || certs:
		return "", nil
	case c.Auth.Mode != "on":
		if len(h.Peers) == 0 {
			return "hl7: no hl7.peers: any sender that reaches the HL7 listener may update and merge patient records", nil
		}
		return "", nil
	case h.AllowUnauthenticated:
		return "HL7 IS UNAUTHENTICATED (hl7.allow_unauthenticated): any sender that reaches the HL7 listener may update and merge patient records while HTTP requires authentication", nil
	}
	return "", fmt.Errorf("config: auth.mode is on but the HL7 listener takes ADT messages from any host: " +
		"list the senders in hl7.peers, each with its host, " +
		"or serve HL7 over TLS only with client certificates (hl7.addr: \"\", hl7.tls_addr, hl7.tls_client_ca), " +
		"or set hl7.allow_unauthenticated: true to run so knowingly")
}

func (h HL7Config) validate() error {
	if h.TLSAddr != "" && (h.TLSCert == "" || h.TLSKey == "") {
		return fmt.Errorf("config: hl7.tls_addr needs hl7.tls_cert and hl7.tls_key")
	}
	for _, p := range h.Peers {
		if p.Facility == "" && p.Application == "" && p.Host == "" {
			return fmt.Errorf("config: hl7.peers: an entry names no facility, application or host")
		}
	}
	if _, err := identity.NewPeers(h.peers()); err != nil {
		return fmt.Errorf("config: hl7.peers: %w", err)
	}
	for _, id := range h.ProcessingIDs {
		switch id {
		case "P", "D", "T", "N", "V":
		default:
			return fmt.Errorf("config: hl7.processing_ids: %q is not a processing ID of HL7 Table 0103 (P, D, T, N, V)", id)
		}
	}
	if h.MaxMessageBytes < 0 {
		return fmt.Errorf("config: hl7.max_message_bytes must not be negative")
	}
	return nil
}

// frameAncestor is an origin allowed in CSP frame-ancestors (no spaces or semicolons
// that would change the policy).
var frameAncestor = regexp.MustCompile(`^https?://[A-Za-z0-9.\-\[\]:*]+$`)

// linkSigner builds the link signer from emr.link_keys (nil when none is configured).
func (c *Config) linkSigner() (*links.Signer, error) {
	s, err := links.ParseKeys(c.EMR.LinkKey, c.EMR.LinkKeys)
	if err != nil {
		return nil, fmt.Errorf("config: emr.link_keys: %w", err)
	}
	return s, nil
}

func (c *Config) validate() error {
	if _, err := c.linkSigner(); err != nil {
		return err
	}
	for _, o := range c.EMR.FrameAncestors {
		if !frameAncestor.MatchString(o) {
			return fmt.Errorf("config: emr.frame_ancestors: %q is not an origin (https://emr.example.org)", o)
		}
	}
	for _, h := range c.EMR.MintTokenSHA256 {
		if len(h) != 64 || strings.Trim(strings.ToLower(h), "0123456789abcdef") != "" {
			return fmt.Errorf("config: emr.mint_token_sha256: %q is not a hex SHA-256 digest", h)
		}
	}
	if _, err := httplimit.ParseProxies(c.HTTP.TrustedProxies); err != nil {
		return fmt.Errorf("config: http.trusted_proxies: %w", err)
	}
	if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
		return fmt.Errorf("config: http.tls_cert and http.tls_key go together")
	}
	if c.DIMSE.TLSAddr != "" && (c.DIMSE.TLSCert == "" || c.DIMSE.TLSKey == "") {
		return fmt.Errorf("config: dimse.tls_addr needs dimse.tls_cert and dimse.tls_key")
	}
	if err := c.HL7.validate(); err != nil {
		return err
	}
	switch c.Auth.Mode {
	case "", "dev":
	case "on":
		if c.Auth.Issuer == "" && len(c.Auth.Tokens) == 0 {
			return fmt.Errorf("config: auth.mode is on but neither auth.issuer nor auth.tokens is configured: nobody could sign in")
		}
	default:
		return fmt.Errorf("config: auth.mode %q: want on or dev", c.Auth.Mode)
	}
	for _, r := range c.Forward.Rules {
		known := false
		for _, p := range c.DIMSE.Peers {
			known = known || p.AETitle == r.Destination && p.Host != "" && p.Port > 0
		}
		if !known {
			return fmt.Errorf("config: forward.rules: destination %q is not in dimse.peers with host and port", r.Destination)
		}
	}
	if c.EMR.OHIFURL != "" && !strings.Contains(c.EMR.OHIFURL, "{studies}") {
		return fmt.Errorf("config: emr.ohif_url must contain {studies}")
	}
	switch c.Store.Backend {
	case "fs":
	case "s3":
		if c.Store.S3.Endpoint == "" || c.Store.S3.Bucket == "" {
			return fmt.Errorf("config: store.backend s3 needs store.s3.endpoint and store.s3.bucket")
		}
	default:
		return fmt.Errorf("config: store.backend %q: want fs or s3", c.Store.Backend)
	}
	switch c.Index.Backend {
	case "sqlite":
	case "postgres":
		if c.Index.Postgres.DSN == "" {
			return fmt.Errorf("config: index.backend postgres needs index.postgres.dsn")
		}
	default:
		return fmt.Errorf("config: index.backend %q: want sqlite or postgres", c.Index.Backend)
	}
	if c.DIMSE.AETitle == "" || len(c.DIMSE.AETitle) > 16 {
		return fmt.Errorf("config: dimse.ae_title must be 1 to 16 characters")
	}
	for _, p := range c.DIMSE.Peers {
		if p.AETitle == "" || len(p.AETitle) > 16 {
			return fmt.Errorf("config: dimse.peers: ae_title %q must be 1 to 16 characters", p.AETitle)
		}
		for _, svc := range p.Services {
			switch svc {
			case "echo", "store", "find", "move", "get", "commit":
			default:
				return fmt.Errorf("config: dimse.peers %s: unknown service %q (echo, store, find, move, get, commit)", p.AETitle, svc)
			}
		}
	}
	if c.Import.Workers < 1 {
		return fmt.Errorf("config: import.workers must be at least 1")
	}
	return nil
}
