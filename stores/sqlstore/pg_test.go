package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The tests run against a real PostgreSQL server that TestMain starts, once per test binary, on a
// free loopback port with trust authentication, and stops at the end. A watchdog process (this
// binary again) stops it and removes its files if the binary dies first (a panic, a timeout).
// PostgreSQL refuses to run as root: as root, every PostgreSQL command runs as the postgres user,
// through runuser.

// Environment variables of the processes these tests start.
const (
	envChild    = "SQLSTORE_TEST_CHILD"       // any child: TestMain starts no server
	envWatchdog = "SQLSTORE_TEST_PG_WATCHDOG" // the watchdog of the server whose files are there
	envPGBin    = "SQLSTORE_TEST_PG_BIN"
)

// pgInstallHint says how to get the server the tests need.
const pgInstallHint = "install PostgreSQL (Debian: apt-get install postgresql) or put its bin directory (initdb, pg_ctl) on the PATH"

var (
	shared    *pgServer // the server of the whole test binary, or nil
	pgMissing string    // why there is none: PostgreSQL is not installed
	pgFailed  error     // why there is none: it is installed, and would not start
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(envWatchdog); dir != "" {
		watchdog(os.Getenv(envPGBin), dir)
		return
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if os.Getenv(envChild) == "" {
		srv, err := startPostgres()
		var missing *notInstalled
		switch {
		case errors.As(err, &missing):
			pgMissing = err.Error()
		case err != nil:
			pgFailed = err
		default:
			shared = srv
			defer srv.remove()
		}
	}
	return m.Run()
}

// needPostgres returns the shared server, or skips the test when PostgreSQL is not installed;
// under CI (the environment variable CI set), it fails instead: CI must not skip silently.
func needPostgres(t testing.TB) *pgServer {
	t.Helper()
	if pgFailed != nil {
		t.Fatalf("PostgreSQL is installed, and would not start: %v", pgFailed)
	}
	if shared == nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL: %s (CI is set, so this fails instead of skipping)", pgMissing)
		}
		t.Skipf("PostgreSQL: %s", pgMissing)
	}
	return shared
}

// pgServer is a PostgreSQL cluster of the tests: its files in dir, listening on 127.0.0.1:port
// and in a socket directory of its own.
type pgServer struct {
	bin  string // the directory of initdb, pg_ctl and postgres
	dir  string // data/, sock/ and server.log are in it
	port int
	asPG bool      // run the commands as the postgres user (this process is root)
	dog  io.Closer // the watchdog's standard input: closing it makes the watchdog clean up
}

// findPostgresBin returns the directory of PostgreSQL's programs: the newest of
// /usr/lib/postgresql/*/bin (Debian's layout), or the one of pg_ctl on the PATH.
func findPostgresBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return pgVersion(b) - pgVersion(a) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", &notInstalled{}
}

// notInstalled says that PostgreSQL's programs are nowhere to be found.
type notInstalled struct{}

func (*notInstalled) Error() string {
	return "no initdb and pg_ctl found in /usr/lib/postgresql/*/bin or on the PATH: " + pgInstallHint
}

// pgVersion is the major version in a path like /usr/lib/postgresql/15/bin.
func pgVersion(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// startPostgres makes a new cluster in a temporary directory and starts it on a free port.
func startPostgres() (*pgServer, error) {
	bin, err := findPostgresBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sqlstore-pg-")
	if err != nil {
		return nil, err
	}
	s := &pgServer{bin: bin, dir: dir, asPG: os.Geteuid() == 0}
	if err := s.init(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	var errs []error
	for range 3 { // another process may take the port between freePort and the server's bind
		s.port = freePort()
		if err = s.start(); err == nil {
			return s, nil
		}
		errs = append(errs, err)
	}
	s.remove()
	return nil, errors.Join(errs...)
}

// init creates the cluster, owned by the postgres user when this process is root, and starts its
// watchdog.
func (s *pgServer) init() error {
	for _, d := range []string{s.dir, filepath.Join(s.dir, "sock")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if s.asPG {
			uid, gid, err := postgresUser()
			if err != nil {
				return err
			}
			if err := os.Chown(d, uid, gid); err != nil {
				return err
			}
		}
	}
	if err := s.startWatchdog(); err != nil {
		return err
	}
	out, err := s.command("initdb", "-D", s.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8",
		"--locale=C", "--no-sync").CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb: %v\n%s", err, out)
	}
	return nil
}

// postgresUser returns the uid and gid of the postgres user.
func postgresUser() (int, int, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return 0, 0, fmt.Errorf("PostgreSQL refuses to run as root, and there is no postgres user to run it as: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid, nil
}

func (s *pgServer) data() string { return filepath.Join(s.dir, "data") }

// command returns PostgreSQL's program name with args, run as the postgres user when this process
// is root, in a process group of its own (a Ctrl-C reaches the tests, and the watchdog cleans up).
func (s *pgServer) command(name string, args ...string) *exec.Cmd {
	path := filepath.Join(s.bin, name)
	var cmd *exec.Cmd
	if s.asPG {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Dir = s.dir
	return cmd
}

// start starts the server and waits until it accepts connections. Everything but the settings
// the tests need is PostgreSQL's default: fsync and synchronous commits on.
func (s *pgServer) start() error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=400", s.port, filepath.Join(s.dir, "sock"))
	out, err := s.command("pg_ctl", "-D", s.data(), "-l", filepath.Join(s.dir, "server.log"), "-o", opts, "-w", "-t", "60", "start").CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		return fmt.Errorf("pg_ctl start on port %d: %v\n%s\n%s", s.port, err, out, lastLines(log, 20))
	}
	return nil
}

// stop stops the server: mode "fast" disconnects the clients and shuts down cleanly, "immediate"
// kills every server process at once, as a crash would (the next start recovers from the WAL).
func (s *pgServer) stop(mode string) error {
	out, err := s.command("pg_ctl", "-D", s.data(), "-m", mode, "-w", "-t", "60", "stop").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl stop -m %s: %v\n%s", mode, err, out)
	}
	return nil
}

// remove stops the server and removes its files (the watchdog does both once its input closes).
func (s *pgServer) remove() {
	s.stop("fast")
	if s.dog != nil {
		s.dog.Close()
	} else {
		os.RemoveAll(s.dir)
	}
}

// startWatchdog starts this test binary as the server's watchdog: it waits until its standard
// input closes (when this process exits, however it exits), then stops the server at once and
// removes its files.
func (s *pgServer) startWatchdog() error {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envWatchdog+"="+s.dir, envPGBin+"="+s.bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	s.dog = in
	return nil
}

// watchdog is the process startWatchdog starts.
func watchdog(bin, dir string) {
	io.Copy(io.Discard, os.Stdin)
	s := &pgServer{bin: bin, dir: dir, asPG: os.Geteuid() == 0}
	if _, err := os.Stat(filepath.Join(s.data(), "postmaster.pid")); err == nil {
		s.stop("immediate")
	}
	os.RemoveAll(dir)
}

// dsn returns the connection string of database db as an application named app, which
// pg_stat_activity shows (and pg_terminate_backend finds).
func (s *pgServer) dsn(db, app string) string { return dsnAt(s.addr(), db, app) }

// addr is the server's loopback address.
func (s *pgServer) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// dsnAt is dsn for the server at addr (its own address, or a proxy's).
func dsnAt(addr, db, app string) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf("host=%s port=%s user=postgres dbname=%s sslmode=disable application_name=%s connect_timeout=5", host, port, db, app)
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

// lastLines returns the last n lines of b.
func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// serial numbers the tests' tables and applications.
var serial atomic.Int64

// uniquePrefix returns a table prefix no other test uses.
func uniquePrefix() string { return fmt.Sprintf("t%d_", serial.Add(1)) }

// pgDB opens a connection pool of its own (a replica's) to the server's postgres database,
// named app in pg_stat_activity, closed when the test ends.
func pgDB(t testing.TB, srv *pgServer, app string) *sql.DB { return pgDBAt(t, srv.addr(), app) }

// pgDBAt is pgDB for the server at addr (its own address, or a proxy's).
func pgDBAt(t testing.TB, addr, app string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsnAt(addr, "postgres", app))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	t.Cleanup(func() { db.Close() })
	return db
}

// pgStore returns a Store on a pool of its own to srv, on the tables of prefix.
func pgStore(t testing.TB, srv *pgServer, prefix string) *Store {
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
func terminate(t testing.TB, srv *pgServer, app string) int {
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
