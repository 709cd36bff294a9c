// Package pgtest gives tests a private schema in a real PostgreSQL server: the one named
// by LUMEN_TEST_POSTGRES_DSN, or the local server on 127.0.0.1:5432 (database test).
// Without a server, tests are skipped, unless CI=true, where that is a failure.
package pgtest
