package storebench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/twitchoauth/twitchoauth/internal/redistest"
)

// The Redis server of the whole test binary, started at first use without persistence (as
// redisstore's benchmarks run it), as redisstore's tests start theirs (see redistest): on a
// loopback port below the kernel's range for port 0, checking that the server answering is the
// one started.
var (
	redisOnce sync.Once
	redisAddr string
	redisErr  error // why there is none: it is installed, and would not start
)

// needRedis returns the address of the shared Redis server, starting it at the first call, or
// skips, or under CI fails, when redis-server is not installed (see redistest.Need).
func needRedis(tb testing.TB) string {
	tb.Helper()
	bin := redistest.Need(tb)
	redisOnce.Do(func() { redisAddr, redisErr = startRedis(bin) })
	if redisErr != nil {
		tb.Fatal(redisErr)
	}
	return redisAddr
}

// startRedis starts redis-server in a temporary directory, trying a few ports.
func startRedis(bin string) (string, error) {
	dir, err := os.MkdirTemp("", "storebench-redis-")
	if err != nil {
		return "", err
	}
	var errs []error
	for range 5 {
		addr, err := startRedisIn(bin, dir)
		if err == nil {
			return addr, nil
		}
		errs = append(errs, err)
	}
	os.RemoveAll(dir)
	return "", fmt.Errorf("start redis-server: %w", errors.Join(errs...))
}

// startRedisIn starts redis-server on a port of its own with its files in dir, has the watchdog
// stop it, and waits until it answers, making sure the server that answers is this one.
func startRedisIn(bin, dir string) (string, error) {
	port, err := redistest.OwnPort()
	if err != nil {
		return "", err
	}
	s, err := redistest.Start(bin, port, dir, "--appendonly", "no")
	if err != nil {
		return "", err
	}
	if err := guard(fmt.Sprintf("redis %d %s", s.Pid(), dir)); err != nil {
		s.Stop()
		return "", err
	}
	if err := s.Ready(context.Background()); err != nil {
		return "", err
	}
	return s.Addr, nil
}
