package storebench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The Redis server of the whole test binary, started at first use without persistence (as
// redisstore's benchmarks run it), as redisstore's tests start theirs: on a loopback port below
// the kernel's range for port 0, checking that the server answering is the one started.
var (
	redisOnce    sync.Once
	redisAddr    string
	redisMissing string // why there is none: redis-server is not installed
	redisErr     error  // why there is none: it is installed, and would not start
)

// needRedis returns the address of the shared Redis server, starting it at the first call, or
// skips (see skipMissing).
func needRedis(tb testing.TB) string {
	tb.Helper()
	redisOnce.Do(func() { redisAddr, redisErr = startRedis() })
	if redisMissing != "" {
		skipMissing(tb, redisMissing)
	}
	if redisErr != nil {
		tb.Fatal(redisErr)
	}
	return redisAddr
}

// startRedis starts redis-server in a temporary directory, trying a few ports.
func startRedis() (string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		redisMissing = "redis-server is not installed (.ci/run installs it; on Debian: apt-get install redis-server)"
		return "", nil
	}
	dir, err := os.MkdirTemp("", "storebench-redis-")
	if err != nil {
		return "", err
	}
	var errs []error
	for range 5 {
		addr, err := startRedisIn(bin, dir, ownPort())
		if err == nil {
			return addr, nil
		}
		errs = append(errs, err)
	}
	os.RemoveAll(dir)
	return "", fmt.Errorf("start redis-server: %w", errors.Join(errs...))
}

// startRedisIn starts redis-server on port with its files in dir, has the watchdog stop it, and
// waits until it answers, making sure the server that answers is this one.
func startRedisIn(bin, dir string, port int) (string, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var out bytes.Buffer
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--protected-mode", "yes", "--dir", dir)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	kill := func() {
		cmd.Process.Kill()
		<-done
	}
	if err := guard(fmt.Sprintf("redis %d %s", cmd.Process.Pid, dir)); err != nil {
		kill()
		return "", err
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		select {
		case <-done:
			return "", fmt.Errorf("redis-server on port %d exited: %s", port, strings.TrimSpace(out.String()))
		default:
		}
		pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		info, err := rdb.Info(pctx, "server").Result()
		pcancel()
		if err == nil {
			if !strings.Contains(info, "process_id:"+strconv.Itoa(cmd.Process.Pid)+"\r\n") {
				kill()
				return "", fmt.Errorf("another redis-server answers on port %d", port)
			}
			return addr, nil
		}
		select {
		case <-ctx.Done():
			kill()
			return "", fmt.Errorf("redis-server on port %d does not answer: %v", port, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ownPort returns a loopback port that nothing listened on a moment ago, below the kernel's range
// of ports for port 0 (or from that range when there is no room below it), so that no listener
// on port 0 takes it before the server binds it.
func ownPort() int {
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
				return port
			}
		}
	}
	return freePort()
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
