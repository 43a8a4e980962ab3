package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
	"github.com/twitchoauth/twitchoauth/internal/redistest"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// This file and partition_test.go and crash_test.go fail Redis for real under a public client's
// refreshes (its refresh tokens work once: one sent twice ends the user's grant at the fake, as
// at Twitch): a Redis stopped (SIGSTOP) past the lease, killed (SIGKILL) and restarted from its
// AOF, cut off from one replica, and a holder killed between Twitch's answer and the save. None
// may lose a user, send a refresh token twice, or leave a user without a working token once
// Redis is back.

// pause stops the server's process (SIGSTOP): it keeps its connections and its listening socket,
// so clients connect and send but get no answer, until resume (SIGCONT). The test's end resumes
// it too.
func (s *redisServer) pause(t *testing.T) (resume func()) {
	t.Helper()
	pid := s.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resume = sync.OnceFunc(func() {
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Errorf("SIGCONT redis-server: %v", err)
		}
	})
	t.Cleanup(resume)
	return resume
}

// startOwnRedis starts a redis-server for the test, as startRedis does (persisting to an
// append-only file in a directory of its own with aof set), on a port below the range the kernel
// hands out for port 0 (see redistest.OwnPort): no listener of another test, nor another test's
// redis-server started on a freePort, takes it, also while this one is down between a kill and a
// restart.
func startOwnRedis(t testing.TB, aof bool) (srv *redisServer, port int, dir string) {
	t.Helper()
	dir = t.TempDir()
	var errs []error
	for range 5 {
		var err error
		if port, err = redistest.OwnPort(); err != nil {
			t.Fatal(err)
		}
		srv, err := startRedisIn(t, port, dir, aof)
		if err == nil {
			return srv, port, dir
		}
		errs = append(errs, err)
	}
	t.Fatalf("start redis-server: %v", errors.Join(errs...))
	return nil, 0, ""
}

// startRedisIn starts a redis-server on port with its files in dir, persisting every write to
// its append-only file before acknowledging it (appendfsync always) when aof is set, and waits
// until it answers, making sure the server that answers is this process (see
// redistest.Server.Ready). It is killed when the test ends.
func startRedisIn(t testing.TB, port int, dir string, aof bool) (*redisServer, error) {
	t.Helper()
	args := []string{"--appendonly", "no"}
	if aof {
		args = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	s, err := redistest.Start(redistest.Need(t), port, dir, args...)
	if err != nil {
		return nil, err
	}
	t.Cleanup(s.Stop)
	if err := s.Ready(t.Context()); err != nil {
		return nil, err
	}
	return &redisServer{s}, nil
}

// TestRedisPausedMidRefresh: Redis stops (SIGSTOP) while five users' refreshes are in flight,
// and stays stopped past the lease of their locks: the marks are written, the leases end while
// Twitch takes its time, Twitch answers, and the saves of the new pairs and the unlocks time
// out. After SIGCONT (and whatever commands Redis
// then runs from its dead connections), each source stores the pair it kept, and:
//   - no user is deleted from Redis, and no refresh token is sent twice;
//   - each source uses the pair Redis holds, without a mark, and so does a replica started anew,
//     without a refresh;
//   - that pair is the one Twitch issued last: its access token validates and its refresh token
//     refreshes.
//
// It runs with go-redis's default options, under which a command waits out the client's read
// timeout (5 s) whatever its context says, and with ContextTimeoutEnabled, under which the
// leases' deadlines reach the renewals: the leases then end, and the sources' contexts with them,
// well before Twitch answers.
func TestRedisPausedMidRefresh(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts redis.Options
	}{
		{"DefaultClient", redis.Options{}},
		{"ContextTimeoutEnabled", redis.Options{ContextTimeoutEnabled: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testPausedMidRefresh(t, tc.opts)
		})
	}
}

func testPausedMidRefresh(t *testing.T, opts redis.Options) {
	srv, _, _ := startOwnRedis(t, false)
	c, fake := storetest.PublicTwitch(t)
	storetest.LogLibrary(t, c)
	const users, ttl = 5, 2 * time.Second
	ids := storetest.UserIDs(6000, users)
	access := storetest.SeedPublic(t, New(newClient(t, srv.Addr)), fake, ids, 50*time.Second, time.Now().Add(-time.Minute))
	opts.Addr = srv.Addr
	rdb := redis.NewClient(&opts)
	t.Cleanup(func() { rdb.Close() })
	srcs := storetest.BindSources(t, c, New(rdb), ids, ttl)
	storetest.ExpireAccess(fake, access)
	fake.ResetRequests()
	// Slow answers: Redis is stopped while every refresh is in flight, and the leases end (their
	// renewals get no answer) before Twitch's answers come.
	fake.Fail("token", faketwitch.Fault{Pass: true, Delay: ttl + time.Second})

	ctx, cancel := context.WithTimeout(t.Context(), storetest.FaultTimeout)
	defer cancel()
	toks := make([]*oauth2.Token, users)
	errs := make([]error, users)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // after the cleanup that resumes Redis
	for i, src := range srcs {
		wg.Go(func() { toks[i], errs[i] = src.TokenContext(ctx) })
	}
	returned := make(chan struct{})
	go func() {
		wg.Wait()
		close(returned)
	}()
	storetest.WaitUntil(t, ctx, "every refresh in flight", func() bool { return fake.CountGrant("refresh_token") == users })
	resume := srv.pause(t)
	stopped := time.Now()
	// Each source gets Twitch's answer, fails to store it and to unlock (the client's read
	// timeouts), and returns, all while Redis is stopped.
	select {
	case <-returned:
	case <-ctx.Done():
		t.Fatalf("Token calls still blocked %v after Redis was stopped", time.Since(stopped))
	}
	if lease := time.Until(stopped.Add(2 * ttl)); lease > 0 {
		time.Sleep(lease) // past the lease: the lock keys have expired when Redis resumes
	}
	pending := 0
	for i, src := range srcs {
		if errs[i] != nil {
			t.Errorf("user %s: Token with Redis stopped after Twitch answered: %v; want the new pair, kept in memory", ids[i], errs[i])
		} else if toks[i].AccessToken == access[i] {
			t.Errorf("user %s: Token returned the expired token", ids[i])
		}
		if src.Pending() {
			pending++
		}
	}
	t.Logf("Redis stopped for %v; %d of %d sources hold a pair Redis did not take", time.Since(stopped).Round(time.Millisecond), pending, users)
	resume()

	want := map[string]string{}
	for i, src := range srcs {
		if err := src.FlushPending(ctx); err != nil {
			t.Errorf("user %s: FlushPending after Redis resumed: %v", ids[i], err)
		}
		tok, err := src.TokenContext(ctx)
		if err != nil {
			t.Fatalf("user %s: Token after Redis resumed: %v", ids[i], err)
		}
		if src.Pending() {
			t.Errorf("user %s: the pair is still pending", ids[i])
		}
		if toks[i] != nil && tok.AccessToken != toks[i].AccessToken {
			t.Errorf("user %s: the source switched tokens after Redis resumed", ids[i])
		}
		want[ids[i]] = tok.AccessToken
	}
	check := New(newClient(t, srv.Addr))
	storetest.WantStored(t, ctx, check, ids, want)
	// A replica started now takes the stored pairs up without a refresh.
	other := New(newClient(t, srv.Addr))
	for _, id := range ids {
		tok, err := twitchoauth.NewStoreTokenSource(c, other, id, nil).TokenContext(ctx)
		if err != nil || tok.AccessToken != want[id] {
			t.Errorf("user %s, a new replica: %v, %v; want the stored token", id, accessOf(tok), err)
		}
	}
	storetest.WantNoReuse(t, fake, users)
	storetest.WantWorking(t, ctx, c, fake, check, ids)
}

// accessOf names a token for a failure message: the fake's tokens name nothing else.
func accessOf(tok *oauth2.Token) string {
	if tok == nil {
		return "no token"
	}
	return fmt.Sprintf("%q", tok.AccessToken)
}

// TestRedisKilledMidRefresh: Redis, persisting every write to its append-only file before
// acknowledging it, is killed (SIGKILL) while 20 users' refreshes are in flight through a
// registry, and started again on the same port and directory once Twitch's answers have come
// while it was down (see storetest.RefreshAcrossOutage): the registry's sources keep the new
// pairs and store them once it is back. No user is deleted, none is reported revoked, no refresh
// token is sent twice, and every user ends with the pair Twitch issued last, in the store and on
// a replica started afterwards.
func TestRedisKilledMidRefresh(t *testing.T) {
	t.Parallel()
	srv, port, dir := startOwnRedis(t, true)
	addr := srv.Addr // the same after the restart
	c, fake := storetest.PublicTwitch(t)
	storetest.RefreshAcrossOutage(t, c, fake, storetest.Outage{
		Server: "Redis",
		Open:   func(t *testing.T) twitchoauth.TokenStore { return New(newClient(t, addr)) },
		Down:   func(*testing.T) { srv.Stop() }, // SIGKILL
		Up: func(t *testing.T) {
			if _, err := startRedisIn(t, port, dir, true); err != nil {
				t.Fatalf("restart redis-server on the same port and directory: %v", err)
			}
		},
		TwitchDelay: time.Second,
	})
}
