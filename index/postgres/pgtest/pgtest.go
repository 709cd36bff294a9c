package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/lib/pq" // driver
)

// DefaultDSN is used when LUMEN_TEST_POSTGRES_DSN is not set.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// BaseDSN returns the DSN tests connect to.
func BaseDSN() string {
	if v := os.Getenv("LUMEN_TEST_POSTGRES_DSN"); v != "" {
		return v
	}
	return DefaultDSN
}

// Schema creates a fresh schema, drops it when the test ends, and returns a DSN whose
// search_path selects it.
func Schema(t testing.TB) string {
	t.Helper()
	base := BaseDSN()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sql.Open("postgres", base)
	if err == nil {
		err = db.PingContext(ctx)
	}
	if err != nil {
		msg := "PostgreSQL not reachable at " + redact(base) + " (set LUMEN_TEST_POSTGRES_DSN): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	defer db.Close()
	b := make([]byte, 6)
	rand.Read(b)
	schema := "lumen_t_" + hex.EncodeToString(b)
	if _, err := db.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("postgres", base)
		if err != nil {
			return
		}
		defer db.Close()
		db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`)
	})
	return withSearchPath(base, schema)
}

func withSearchPath(dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			q := u.Query()
			q.Set("search_path", schema)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return dsn + " search_path=" + schema
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxx")
	}
	return u.String()
}
