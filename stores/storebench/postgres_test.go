package storebench

import (
	"sync"
	"testing"

	"github.com/twitchoauth/twitchoauth/internal/pgtest"
)

// The PostgreSQL server of the whole test binary, started at first use as sqlstore's tests start
// theirs (see pgtest): a new cluster in a temporary directory, on a free loopback port, fsync and
// synchronous commits on (PostgreSQL's defaults).
var (
	pgOnce   sync.Once
	pgShared *pgtest.Server
	pgErr    error // why there is none
)

// needPostgres returns the connection string of the shared PostgreSQL server, starting it at the
// first call, or skips, or under CI fails, when PostgreSQL is not installed (see pgtest.Need).
func needPostgres(tb testing.TB) string {
	tb.Helper()
	pgOnce.Do(func() { pgShared, pgErr = pgtest.NewServer("storebench-pg-") })
	return pgtest.Need(tb, pgShared, pgErr).DSN("postgres", "storebench")
}

// stopPostgres stops the shared PostgreSQL server, if it was started, and removes its files.
func stopPostgres() {
	if pgShared != nil {
		pgShared.Close()
	}
}
