package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func testConfig(t testing.TB, dir string) *Config {
	t.Helper()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.String("config", "", "")
	fs.String("data-dir", "", "")
	if err := fs.Parse([]string{"--data-dir", dir}); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(fs)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func flagSet(t *testing.T, args ...string) *pflag.FlagSet {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.String("config", "", "")
	fs.String("data-dir", "", "")
	fs.String("http-addr", "", "")
	fs.Int("workers", 0, "")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestConfigDefaults(t *testing.T) {
	c, err := loadConfig(flagSet(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "./data" || c.HTTP.Addr != ":8080" || c.Store.Backend != "fs" || c.Index.Backend != "sqlite" ||
		c.Store.FS.Dir != filepath.Join("data", "blobs") || c.Index.SQLite.Path != filepath.Join("data", "index.db") || c.Ingest.Duplicates != "quarantine" {
		t.Fatalf("defaults = %+v", c)
	}
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "lumen.yaml")
	os.WriteFile(file, []byte(`
data_dir: /srv/lumen
http:
  addr: ":9000"
store:
  backend: s3
  s3:
    endpoint: "127.0.0.1:9999"
    bucket: images
    access_key: from-file
index:
  backend: postgres
  postgres:
    dsn: postgres://x@127.0.0.1/db
import:
  workers: 3
`), 0o644)
	t.Setenv("LUMEN_STORE_S3_ACCESS_KEY", "from-env")
	t.Setenv("LUMEN_HTTP_ADDR", ":9100")
	c, err := loadConfig(flagSet(t, "--config", file, "--http-addr", "127.0.0.1:9200"))
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/srv/lumen" || c.Store.S3.Bucket != "images" || c.Import.Workers != 3 {
		t.Fatalf("file values not applied: %+v", c)
	}
	if c.Store.S3.AccessKey != "from-env" {
		t.Fatalf("env did not override the file: %q", c.Store.S3.AccessKey)
	}
	if c.HTTP.Addr != "127.0.0.1:9200" {
		t.Fatalf("flag did not override env: %q", c.HTTP.Addr)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"unknown key":     "http:\n  adr: \":1\"\n",
		"bad backend":     "store:\n  backend: tape\n",
		"s3 without host": "store:\n  backend: s3\n",
		"pg without dsn":  "index:\n  backend: postgres\n",
		"bad yaml":        "http: [\n",
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
			os.WriteFile(file, []byte(body), 0o644)
			if _, err := loadConfig(flagSet(t, "--config", file)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	t.Setenv("LUMEN_INGEST_DUPLICATES", "sometimes")
	c, err := loadConfig(flagSet(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openBackends(t.Context(), c, discardLogger(), nil); err == nil {
		t.Fatal("bad duplicate policy accepted")
	}
}

func TestProductionSampleConfig(t *testing.T) {
	t.Setenv("LUMEN_INDEX_POSTGRES_DSN", "postgres://lumen@127.0.0.1/lumen")
	t.Setenv("LUMEN_STORE_S3_SECRET_KEY", "secret")
	c, err := loadConfig(flagSet(t, "--config", filepath.Join("..", "..", "docs", "lumen.production.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	if c.Store.Backend != "s3" || c.Index.Backend != "postgres" || !c.Store.S3.UseTLS || c.Ingest.Duplicates != "quarantine" {
		t.Fatalf("sample = %+v", c)
	}
	if warn, err := c.dimseAccess(); err != nil || warn != "" {
		t.Fatalf("the sample's DICOM listener would not start with auth on: %v %s", err, warn)
	}
}

// TestConfigSections loads a file using the EMR, forwarding, sending and authentication
// sections: every key is known, lists of maps decode, and the checks apply.
func TestConfigSections(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "lumen.yaml")
	os.WriteFile(file, []byte(`
dimse:
  peers:
    - ae_title: DEST
      host: 127.0.0.1
      port: 4006
forward:
  rules:
    - calling_ae: CT1
      modality: CT
      destination: DEST
  retry: 5s
  max_attempts: 3
emr:
  link_keys: ["k1:`+strings.Repeat("QUJD", 11)+`"]
  frame_ancestors: ["https://emr.example.org"]
  ohif_url: "https://ohif.example.org/viewer?StudyInstanceUIDs={studies}"
auth:
  mode: "on"
  tokens:
    - name: gateway
      sha256: "`+strings.Repeat("cd", 32)+`"
      roles: [read, write]
      patient: "P1^^^HOSP"
`), 0o644)
	c, err := loadConfig(flagSet(t, "--config", file))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Forward.Rules) != 1 || c.Forward.Rules[0].Modality != "CT" || c.Forward.Retry.String() != "5s" || c.Forward.MaxAttempts != 3 ||
		c.Auth.Mode != "on" || len(c.Auth.Tokens) != 1 || c.Auth.Tokens[0].Patient != "P1^^^HOSP" ||
		len(c.Auth.Tokens[0].Roles) != 2 || len(c.EMR.FrameAncestors) != 1 {
		t.Fatalf("sections: %+v %+v %+v", c.Forward, c.Auth, c.EMR)
	}
	for name, body := range map[string]string{
		"forward to an unknown peer":  "forward:\n  rules:\n    - destination: NOPE\n",
		"auth on without credentials": "auth:\n  mode: \"on\"\n",
		"unknown auth mode":           "auth:\n  mode: maybe\n",
		"frame ancestor injection":    "emr:\n  frame_ancestors: [\"https://a.example; script-src *\"]\n",
		"removed send tokens":         "dimse:\n  send_token_sha256: [\"" + strings.Repeat("ab", 32) + "\"]\n",
	} {
		f := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
		os.WriteFile(f, []byte(body), 0o644)
		_, err := loadConfig(flagSet(t, "--config", f))
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if name == "removed send tokens" && !strings.Contains(err.Error(), "send role") {
			t.Errorf("%s: %v does not say what replaces it", name, err)
		}
	}
}

// TestServeNeedsAuthInProduction: on PostgreSQL or S3, serve refuses to start with the
// authentication mode left unset; dev must be asked for explicitly.
func TestServeNeedsAuthInProduction(t *testing.T) {
	c := testConfig(t, t.TempDir())
	c.Index.Backend, c.Index.Postgres.DSN = "postgres", "postgres://127.0.0.1:1/none"
	err := serve(context.Background(), c, discardLogger(), nil)
	if err == nil || !strings.Contains(err.Error(), "needs authentication") {
		t.Fatalf("serve on PostgreSQL without auth.mode: %v", err)
	}
}
