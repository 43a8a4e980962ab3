package pgtest

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
)

// Server is a PostgreSQL cluster of the tests: its files in a directory of its own, listening on
// 127.0.0.1 and in a socket directory of its own. Close stops it and removes its files.
type Server struct {
	bin      string   // the directory of initdb, pg_ctl and postgres
	dir      string   // data/, sock/ and server.log are in it
	settings []string // the server's settings, name=value
	port     int
	asPG     bool      // run the commands as the postgres user (this process is root)
	dog      *watchdog // nil in the watchdog itself
}

// NewServer makes a new cluster in a temporary directory whose name starts with pattern (see
// [os.MkdirTemp]), has a watchdog stop it and remove its files if this process dies, and starts it
// on a free loopback port. Each of settings (name=value, as postgres -c takes it) is set on the
// server too. When PostgreSQL is not installed, the error says so to [Need], which skips.
func NewServer(pattern string, settings ...string) (*Server, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dir: dir, settings: settings, asPG: os.Geteuid() == 0}
	if err := s.init(); err != nil {
		s.dog.close()
		os.RemoveAll(dir)
		return nil, err
	}
	var errs []error
	for range 3 { // another process may take the port between freePort and the server's bind
		if s.port, err = freePort(); err == nil {
			err = s.Start()
		}
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
	}
	s.Close()
	return nil, errors.Join(errs...)
}

// findBin returns the directory of PostgreSQL's programs: the newest of
// /usr/lib/postgresql/*/bin (Debian's layout), or the one of pg_ctl on the PATH.
func findBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errNotInstalled
}

// version is the major version in a path like /usr/lib/postgresql/15/bin.
func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// init creates the cluster, owned by the postgres user when this process is root, and starts its
// watchdog.
func (s *Server) init() error {
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
	dog, err := startWatchdog(s.bin, s.dir)
	if err != nil {
		return err
	}
	s.dog = dog
	out, err := s.command("initdb", "-D", s.DataDir(), "-U", "postgres", "-A", "trust", "-E", "UTF8",
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

// DataDir is the cluster's data directory (postmaster.pid, base/, pg_wal/ are in it).
func (s *Server) DataDir() string { return filepath.Join(s.dir, "data") }

// Addr is the server's loopback address, host:port.
func (s *Server) Addr() string { return portAddr(s.port) }

// DSN returns the connection string of database db on the server (see [DSN]).
func (s *Server) DSN(db, app string) string { return DSN(s.Addr(), db, app) }

// command returns PostgreSQL's program name with args, run as the postgres user when this process
// is root, in a process group of its own (a Ctrl-C reaches the tests, and the watchdog cleans up).
func (s *Server) command(name string, args ...string) *exec.Cmd {
	path := filepath.Join(s.bin, name)
	var cmd *exec.Cmd
	if s.asPG {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	ownGroup(cmd)
	cmd.Dir = s.dir
	return cmd
}

// Start starts the server, on its port and files, and waits until it accepts connections:
// NewServer does, and a test that stopped it starts it again. Everything but where it listens
// and the settings NewServer was given is PostgreSQL's default: fsync and synchronous commits on.
func (s *Server) Start() error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", s.port, filepath.Join(s.dir, "sock"))
	for _, set := range s.settings {
		opts += " -c " + set
	}
	log := filepath.Join(s.dir, "server.log")
	out, err := s.command("pg_ctl", "-D", s.DataDir(), "-l", log, "-o", opts, "-w", "-t", "60", "start").CombinedOutput()
	if err != nil {
		text, _ := os.ReadFile(log)
		return fmt.Errorf("pg_ctl start on port %d: %v\n%s\n%s", s.port, err, out, lastLines(text, 20))
	}
	return nil
}

// Stop stops the server, in one of pg_ctl's shutdown modes: "fast" disconnects the clients and
// shuts down cleanly, "immediate" kills every server process at once, as a crash would (the next
// Start recovers from the WAL).
func (s *Server) Stop(mode string) error {
	out, err := s.command("pg_ctl", "-D", s.DataDir(), "-m", mode, "-w", "-t", "60", "stop").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl stop -m %s: %v\n%s", mode, err, out)
	}
	return nil
}

// Close stops the server (mode "fast") and removes its files, through its watchdog, which it
// waits for.
func (s *Server) Close() {
	s.Stop("fast")
	s.dog.close()
}

// lastLines returns the last n lines of b.
func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
