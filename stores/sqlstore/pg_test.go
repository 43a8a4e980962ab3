package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth/internal/pgtest"
)

// The tests run against a real PostgreSQL server that TestMain starts (see pgtest), once per test
// binary, and stops at the end.

// envChild marks any child process of these tests: its TestMain starts no server.
const envChild = "SQLSTORE_TEST_CHILD"

var (
	shared    *pgtest.Server // the server of the whole test binary, or nil
	sharedErr error          // why there is none
)

func TestMain(m *testing.M) {
	if pgtest.RunWatchdog() {
		return
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if os.Getenv(envChild) == "" {
		shared, sharedErr = startPostgres()
		if shared != nil {
			defer shared.Close()
		}
	}
	return m.Run()
}

// startPostgres starts a PostgreSQL server of the tests' own: the shared one, or one a test
// stops and starts.
func startPostgres() (*pgtest.Server, error) {
	return pgtest.NewServer("sqlstore-pg-", "max_connections=400")
}

// needPostgres returns the shared server, or skips the test when PostgreSQL is not installed;
// under CI (the environment variable CI set), it fails instead: CI must not skip silently.
func needPostgres(t testing.TB) *pgtest.Server {
	t.Helper()
	return pgtest.Need(t, shared, sharedErr)
}

// freePort returns a loopback port that nothing listened on a moment ago.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serial numbers the tests' tables and applications.
var serial atomic.Int64

// uniquePrefix returns a table prefix no other test uses.
func uniquePrefix() string { return fmt.Sprintf("t%d_", serial.Add(1)) }

// pgDB opens a connection pool of its own (a replica's) to the server's postgres database,
// named app in pg_stat_activity, closed when the test ends.
func pgDB(t testing.TB, srv *pgtest.Server, app string) *sql.DB { return pgDBAt(t, srv.Addr(), app) }

// pgDBAt is pgDB for the server at addr (its own address, or a proxy's).
func pgDBAt(t testing.TB, addr, app string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", pgtest.DSN(addr, "postgres", app))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	t.Cleanup(func() { db.Close() })
	return db
}

// pgStore returns a Store on a pool of its own to srv, on the tables of prefix.
func pgStore(t testing.TB, srv *pgtest.Server, prefix string) *Store {
	t.Helper()
	s := New(pgDB(t, srv, "sqlstore-test"), Postgres)
	s.Prefix = prefix
	return s
}

// sqliteFile returns the path of a new SQLite database file for the test.
func sqliteFile(t testing.TB) string { return filepath.Join(t.TempDir(), "tokens.db") }

// sqliteStore opens the SQLite file at path with Open (a replica's own *sql.DB), closed when the
// test ends.
func sqliteStore(t testing.TB, path string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, SQLite, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// terminate ends, with pg_terminate_backend, every connection of the applications named app, and
// returns how many there were.
func terminate(t testing.TB, srv *pgtest.Server, app string) int {
	t.Helper()
	db := pgDB(t, srv, "sqlstore-admin")
	var n int
	err := db.QueryRowContext(context.Background(),
		"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
