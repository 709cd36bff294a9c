// Package sqlindex implements index.Index on database/sql, shared by the SQLite and
// PostgreSQL backends, which supply a Dialect and their embedded, versioned schema
// migrations. The PS3.4 §C.2.2.2 matching rules are compiled to SQL here, once.
package sqlindex
