package pgtest

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// Environment variables of the watchdog process.
const (
	envWatchdog = "PGTEST_WATCHDOG" // the directory of the server it watches over
	envBin      = "PGTEST_BIN"      // the directory of that server's PostgreSQL programs
)

// watchdog is the test binary, started again to stop a server and remove its files once its
// standard input closes: when Close closes it, or when this process exits, however it exits.
type watchdog struct {
	in   io.Closer
	done chan struct{} // closed when the process has exited
}

// startWatchdog starts the watchdog of the server whose programs are in bin and files in dir.
func startWatchdog(bin, dir string) (*watchdog, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envWatchdog+"="+dir, envBin+"="+bin)
	ownGroup(cmd) // a Ctrl-C does not stop it before it cleans up
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &watchdog{in: in, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

// close has the watchdog stop the server, if it still runs, and remove its files, and waits until
// it has. A nil watchdog does nothing.
func (d *watchdog) close() {
	if d == nil {
		return
	}
	d.in.Close()
	<-d.done
}

// RunWatchdog reports whether this process is the watchdog of a server that NewServer started
// (the test binary, started again), and if it is, does the watchdog's work before it returns:
// it waits until its standard input closes, then stops the server at once (pg_ctl's mode
// "immediate") if it runs, and removes its files. Call it first in TestMain, and return at once
// when it reports true.
func RunWatchdog() bool {
	dir := os.Getenv(envWatchdog)
	if dir == "" {
		return false
	}
	io.Copy(io.Discard, os.Stdin)
	s := &Server{bin: os.Getenv(envBin), dir: dir, asPG: os.Geteuid() == 0}
	if _, err := os.Stat(filepath.Join(s.DataDir(), "postmaster.pid")); err == nil {
		s.Stop("immediate")
	}
	os.RemoveAll(dir)
	return true
}
