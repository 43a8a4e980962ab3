// Package redistest runs real redis-server processes for tests, on loopback ports, each checked,
// before it is used, to be the server that answers on its port. A caller decides how long each
// one lives (a test's t.Cleanup, or a watchdog of its own) and connects with the client it has.
//
// It imports only the standard library, so that the modules that use it pay for no client:
// it asks a server whether it is up in Redis's protocol, written out here.
package redistest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Need returns the path of redis-server, or ends tb when it is not installed: it skips tb, or
// under CI (the environment variable CI set) fails it: CI must not skip silently.
func Need(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err == nil {
		return bin
	}
	const why = "redis-server is not installed (.ci/run installs it; on Debian: apt-get install redis-server)"
	if os.Getenv("CI") != "" {
		tb.Fatalf("%s (CI is set, so this fails instead of skipping)", why)
	}
	tb.Skip(why)
	return ""
}

// Server is a redis-server process on a loopback port.
type Server struct {
	Addr string // host:port
	port int
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	out  bytes.Buffer  // its log; read only after done
}

// Start starts redis-server (bin, see Need) on port of 127.0.0.1, in protected mode, with its
// files in dir and no RDB snapshots, then with args, more of redis-server's options (for
// persistence, "--appendonly", "yes"). It does not wait for the server to answer: Ready does.
func Start(bin string, port int, dir string, args ...string) (*Server, error) {
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), port: port, done: make(chan struct{})}
	s.cmd = exec.Command(bin, append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--protected-mode", "yes", "--dir", dir}, args...)...)
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		s.cmd.Wait()
		close(s.done)
	}()
	return s, nil
}

// Pid is the server's process ID.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Stop kills the server and waits until it has exited. Stopping it again does nothing.
func (s *Server) Stop() {
	s.cmd.Process.Kill()
	<-s.done
}

// Ready waits, 10 s at most, until the server answers, and makes sure that the server that
// answers on its port is this process. When it is not, or it does not answer, Ready stops it.
func (s *Server) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		select {
		case <-s.done:
			return fmt.Errorf("redis-server on port %d exited: %s", s.port, strings.TrimSpace(s.out.String()))
		default:
		}
		info, err := serverInfo(ctx, s.Addr)
		if err == nil {
			if !strings.Contains(info, "process_id:"+strconv.Itoa(s.Pid())+"\r\n") {
				s.Stop()
				return fmt.Errorf("another redis-server answers on port %d", s.port)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			s.Stop()
			return fmt.Errorf("redis-server on port %d does not answer: %v", s.port, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// serverInfo asks the server at addr for its INFO server, on a connection of its own that it
// gives 200 ms.
func serverInfo(ctx context.Context, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	if _, err := io.WriteString(c, "*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	head = strings.TrimSuffix(head, "\r\n")
	n, err := strconv.Atoi(strings.TrimPrefix(head, "$"))
	if !strings.HasPrefix(head, "$") || err != nil || n < 0 {
		return "", errors.New(head) // an error reply, such as -LOADING while it reads its files
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return "", err
	}
	return string(body), nil
}

// OwnPort returns a loopback port that nothing listened on a moment ago, below the kernel's range
// of ports for port 0 (or from that range when there is no room below it): no listener on port 0,
// such as another test's server, takes it before the server binds it, nor while the server is
// down between a kill and a restart.
func OwnPort() (int, error) {
	const low = 10000
	first := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				first = n
			}
		}
	}
	if first > low+1000 {
		for range 100 {
			port := low + rand.IntN(first-low)
			if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
				l.Close()
				return port, nil
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
