// Package postgres is the production index backend: index.Index on PostgreSQL through
// github.com/lib/pq. Schema migrations are embedded and applied on Open under an advisory
// lock, so several Lumen replicas may start against one database at once.
package postgres
