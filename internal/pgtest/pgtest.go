// Package pgtest runs real PostgreSQL servers for tests: each a new cluster in a temporary
// directory, on a free loopback port with trust authentication, its settings PostgreSQL's
// defaults (fsync and synchronous commits on) but for where it listens and those the caller
// names. PostgreSQL refuses to run as root: as root, every PostgreSQL command runs as the
// postgres user, through runuser. A watchdog process (the test binary again, see RunWatchdog)
// stops each server and removes its files if the test binary dies first (a panic, a timeout).
//
// It imports only the standard library, so that the modules that use it pay for no driver: a
// caller opens its own *sql.DB on [Server.DSN] with the driver it has.
//
// Every test binary that starts a server calls RunWatchdog first in its TestMain:
//
//	func TestMain(m *testing.M) {
//		if pgtest.RunWatchdog() {
//			return
//		}
//		srv, err := pgtest.NewServer("mystore-pg-")
//		...
//	}
package pgtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
)

// installHint says how to get the server the tests need.
const installHint = "install PostgreSQL (Debian: apt-get install postgresql) or put its bin directory (initdb, pg_ctl) on the PATH"

// errNotInstalled says that PostgreSQL's programs are nowhere to be found.
var errNotInstalled = errors.New("no initdb and pg_ctl found in /usr/lib/postgresql/*/bin or on the PATH: " + installHint)

// Need returns srv, what NewServer returned with err, or ends tb: it skips tb when PostgreSQL is
// not installed, and fails it when PostgreSQL would not start. Under CI (the environment variable
// CI set), a PostgreSQL that is not installed fails tb too: CI must not skip silently.
func Need(tb testing.TB, srv *Server, err error) *Server {
	tb.Helper()
	switch {
	case errors.Is(err, errNotInstalled):
		if os.Getenv("CI") != "" {
			tb.Fatalf("PostgreSQL: %v (CI is set, so this fails instead of skipping)", err)
		}
		tb.Skipf("PostgreSQL: %v", err)
	case err != nil:
		tb.Fatalf("PostgreSQL is installed, and would not start: %v", err)
	case srv == nil:
		tb.Fatal("PostgreSQL: no server was started for this test binary")
	}
	return srv
}

// DSN returns the connection string of database db on the server at addr (a server's own
// address, or a proxy's) as the postgres user, as an application named app, which
// pg_stat_activity shows (and pg_terminate_backend finds).
func DSN(addr, db, app string) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf("host=%s port=%s user=postgres dbname=%s sslmode=disable application_name=%s connect_timeout=5", host, port, db, app)
}

// freePort returns a loopback port that nothing listened on a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// portAddr is the loopback address of port.
func portAddr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
