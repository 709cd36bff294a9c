package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/lumenpacs/lumen/archive"
	"github.com/lumenpacs/lumen/archive/fs"
	"github.com/lumenpacs/lumen/archive/s3"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/postgres"
	"github.com/lumenpacs/lumen/index/sqlite"
	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/lumenpacs/lumen/service/send"
)

// backends are the opened store, index and pipeline.
type backends struct {
	store    archive.Store
	index    index.Index
	pipeline *ingest.Pipeline
}

func (b *backends) Close() error { return b.index.Close() }

// fsOptions are the file-system store's options: objects written to anonymous files
// where the file system offers them, and with direct I/O when the configuration asks
// (store.fs.direct_io; see archive/fs).
func fsOptions(c FSConfig) fs.Options {
	return fs.Options{AnonymousTemps: true, DirectWrites: c.DirectIO}
}

func openStore(ctx context.Context, c *Config) (archive.Store, error) {
	switch c.Store.Backend {
	case "s3":
		return s3.New(ctx, s3.Config{
			Endpoint: c.Store.S3.Endpoint, Bucket: c.Store.S3.Bucket, Region: c.Store.S3.Region,
			AccessKey: c.Store.S3.AccessKey, SecretKey: c.Store.S3.SecretKey, UseTLS: c.Store.S3.UseTLS,
			Prefix: c.Store.S3.Prefix, PartSize: uint64(c.Store.S3.PartSize),
		})
	default:
		return fs.Open(c.Store.FS.Dir, fsOptions(c.Store.FS))
	}
}

// openIndex opens the configured index; on PostgreSQL it logs what in the server's
// settings works against the query plans (postgres.Advice).
func openIndex(ctx context.Context, c *Config, log *slog.Logger) (index.Index, error) {
	switch c.Index.Backend {
	case "postgres":
		x, err := postgres.Open(ctx, c.Index.Postgres.DSN)
		if err != nil {
			return nil, err
		}
		advice, err := postgres.Advice(ctx, x)
		if err != nil {
			// Advice only: an index that cannot tell its settings still serves.
			log.Warn("index: reading the PostgreSQL server's settings", "err", err)
		}
		for _, a := range advice {
			log.Warn("index: " + a)
		}
		return x, nil
	default:
		return sqlite.Open(ctx, c.Index.SQLite.Path)
	}
}

func openBackends(ctx context.Context, c *Config, log *slog.Logger, m *ingest.Metrics) (*backends, error) {
	policy, err := ingest.ParsePolicy(c.Ingest.Duplicates)
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("store (%s): %w", c.Store.Backend, err)
	}
	ix, err := openIndex(ctx, c, log)
	if err != nil {
		return nil, fmt.Errorf("index (%s): %w", c.Index.Backend, err)
	}
	return &backends{store: st, index: ix, pipeline: &ingest.Pipeline{
		Store: st, Index: ix, Duplicates: policy, Logger: log, Metrics: m, DefaultIssuer: c.Ingest.DefaultIssuer,
		Jobs: forwardJobs(c.Forward.Rules), // every way in: DIMSE, STOW-RS, import
	}}, nil
}

// sendPeers are the peers Lumen sends to (C-MOVE, send, forwarding).
func (c DIMSEConfig) sendPeers() []send.Peer {
	var list []send.Peer
	for _, p := range c.Peers {
		list = append(list, send.Peer{AETitle: p.AETitle, Host: p.Host, Port: p.Port, TLS: p.TLS})
	}
	return list
}

// forwardJobs is the ingest hook of the forwarding rules (nil without rules).
func forwardJobs(rules []ForwardRule) func(*index.Instance, ingest.Source) []index.JobSpec {
	list := make([]send.Rule, len(rules))
	for i, r := range rules {
		list[i] = send.Rule{CallingAE: r.CallingAE, Modality: r.Modality, Destination: r.Destination}
	}
	jobs := send.ForwardJobs(list)
	if jobs == nil {
		return nil
	}
	return func(in *index.Instance, src ingest.Source) []index.JobSpec { return jobs(in, src.CallingAE) }
}
