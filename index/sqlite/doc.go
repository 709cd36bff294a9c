// Package sqlite is the embedded default index backend: index.Index on SQLite through the
// pure-Go modernc.org/sqlite driver (no cgo), in WAL mode with synchronous=FULL so a
// committed transaction survives power loss. Schema migrations are embedded and applied
// on Open.
package sqlite
