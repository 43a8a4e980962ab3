package storebench

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// The PostgreSQL server of the whole test binary, started at first use as sqlstore's tests start
// theirs: a new cluster in a temporary directory, on a free loopback port with trust
// authentication, fsync and synchronous commits on (PostgreSQL's defaults). PostgreSQL refuses to
// run as root: as root, every PostgreSQL command runs as the postgres user, through runuser.
var (
	pgOnce    sync.Once
	pgShared  *pgServer
	pgMissing string // why there is none: PostgreSQL is not installed
	pgErr     error  // why there is none: it is installed, and would not start
)

// needPostgres returns the shared PostgreSQL server, starting it at the first call, or skips
// (see skipMissing).
func needPostgres(tb testing.TB) *pgServer {
	tb.Helper()
	pgOnce.Do(func() { pgShared, pgErr = startPostgres() })
	if pgMissing != "" {
		skipMissing(tb, pgMissing)
	}
	if pgErr != nil {
		tb.Fatalf("PostgreSQL is installed, and would not start: %v", pgErr)
	}
	return pgShared
}

// pgServer is a PostgreSQL cluster: its files in dir, listening on 127.0.0.1:port and in a
// socket directory of its own.
type pgServer struct {
	bin  string // the directory of initdb, pg_ctl and postgres
	dir  string // data/, sock/ and server.log are in it
	port int
	asPG bool // run the commands as the postgres user (this process is root)
}

// startPostgres makes a new cluster in a temporary directory, has the watchdog stop it, and
// starts it on a free port.
func startPostgres() (*pgServer, error) {
	bin := findPostgresBin()
	if bin == "" {
		pgMissing = "PostgreSQL: no initdb and pg_ctl found in /usr/lib/postgresql/*/bin or on the PATH: install PostgreSQL (Debian: apt-get install postgresql) or put its bin directory on the PATH"
		return nil, nil
	}
	dir, err := os.MkdirTemp("", "storebench-pg-")
	if err != nil {
		return nil, err
	}
	s := &pgServer{bin: bin, dir: dir, asPG: os.Geteuid() == 0}
	if err := guard(fmt.Sprintf("postgres %s %s", bin, dir)); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.init(); err != nil {
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
	return nil, errors.Join(errs...)
}

// findPostgresBin returns the directory of PostgreSQL's programs: the newest of
// /usr/lib/postgresql/*/bin (Debian's layout), or the one of pg_ctl on the PATH; "" if neither.
func findPostgresBin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(dir string) int { n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir))); return n }
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

// init creates the cluster, owned by the postgres user when this process is root.
func (s *pgServer) init() error {
	for _, d := range []string{s.dir, filepath.Join(s.dir, "sock")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if s.asPG {
			u, err := user.Lookup("postgres")
			if err != nil {
				return fmt.Errorf("PostgreSQL refuses to run as root, and there is no postgres user to run it as: %v", err)
			}
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			if err := os.Chown(d, uid, gid); err != nil {
				return err
			}
		}
	}
	out, err := s.command("initdb", "-D", s.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8",
		"--locale=C", "--no-sync").CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb: %v\n%s", err, out)
	}
	return nil
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

// start starts the server and waits until it accepts connections. Everything but where it
// listens is PostgreSQL's default: fsync and synchronous commits on.
func (s *pgServer) start() error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", s.port, filepath.Join(s.dir, "sock"))
	out, err := s.command("pg_ctl", "-D", s.data(), "-l", filepath.Join(s.dir, "server.log"), "-o", opts, "-w", "-t", "60", "start").CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		lines := strings.Split(strings.TrimRight(string(log), "\n"), "\n")
		return fmt.Errorf("pg_ctl start on port %d: %v\n%s\n%s", s.port, err, out, strings.Join(lines[max(0, len(lines)-20):], "\n"))
	}
	return nil
}

// dsn returns the connection string of the postgres database.
func (s *pgServer) dsn() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable application_name=storebench connect_timeout=5", s.port)
}
