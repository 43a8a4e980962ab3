// Package storebench measures the stores side by side: Load, SaveIf and a refresh under the
// key's lock, on the file store, Redis, PostgreSQL and SQLite, in one run of
//
//	go test -run '^$' -bench . -benchtime 200x -count 3
//
// Redis and PostgreSQL are real servers that this test binary starts, at first use, on loopback
// ports, and stops at its end; watchdog processes (this binary again: Redis's below,
// PostgreSQL's pgtest's) stop them if the binary dies first (a panic, a timeout). Without
// redis-server or PostgreSQL installed, their benchmarks skip, or fail under CI (the environment
// variable CI set).
package storebench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/twitchoauth/twitchoauth/internal/pgtest"
)

// envWatchdog marks the watchdog process of the Redis servers.
const envWatchdog = "STOREBENCH_WATCHDOG"

func TestMain(m *testing.M) {
	if pgtest.RunWatchdog() {
		return
	}
	if os.Getenv(envWatchdog) != "" {
		watchdog(os.Stdin)
		return
	}
	code := m.Run()
	stopPostgres()
	stopServers()
	os.Exit(code)
}

var (
	dogOnce sync.Once
	dogErr  error
	dogIn   io.WriteCloser // the watchdog's standard input: a line per server to stop
	dogCmd  *exec.Cmd
)

// guard tells the watchdog to stop a server (a line of watchdog's) when this process ends,
// starting the watchdog first if need be.
func guard(line string) error {
	dogOnce.Do(func() {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envWatchdog+"=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a Ctrl-C does not stop it before it cleans up
		in, err := cmd.StdinPipe()
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			dogErr = fmt.Errorf("start the watchdog: %w", err)
			return
		}
		dogIn, dogCmd = in, cmd
	})
	if dogErr != nil {
		return dogErr
	}
	_, err := io.WriteString(dogIn, line+"\n")
	return err
}

// stopServers has the watchdog stop the Redis servers now, and waits until it has.
func stopServers() {
	if dogCmd == nil {
		return
	}
	dogIn.Close()
	dogCmd.Wait()
}

// watchdog reads, until its input closes (when the test binary exits, however it exits), lines
// naming servers: "redis PID DIR". Then it kills each Redis, and removes its files.
func watchdog(in io.Reader) {
	var lines [][]string
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		lines = append(lines, strings.Fields(sc.Text()))
	}
	for _, f := range lines {
		if len(f) != 3 || f[0] != "redis" {
			continue
		}
		if pid, err := strconv.Atoi(f[1]); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		os.RemoveAll(f[2])
	}
}
