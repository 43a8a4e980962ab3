package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// This file and proxy_test.go and crash_test.go fail Redis for real under a public client's
// refreshes (its refresh tokens work once: one sent twice ends the user's grant at the fake, as
// at Twitch): a Redis stopped (SIGSTOP) past the lease, killed (SIGKILL) and restarted from its
// AOF, cut off from one replica, and a holder killed between Twitch's answer and the save. None
// may lose a user, send a refresh token twice, or leave a user without a working token once
// Redis is back.

// faultTimeout bounds each of these tests: none may hang.
const faultTimeout = 2 * time.Minute

// scopes is what the seeded tokens grant.
var scopes = []twitchoauth.Scope{twitchoauth.ScopeChatRead}

// logLibrary sends c's log to a buffer that the test prints if it fails (or with
// TWITCHOAUTH_FAULT_LOG set): what the library did, which a failure report needs.
func logLibrary(t *testing.T, c *twitchoauth.Client) {
	buf := &lockedBuffer{}
	c.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("TWITCHOAUTH_FAULT_LOG") != "" {
			t.Logf("the library's log:\n%s", buf.String())
		}
	})
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// seedPublic stores under each ID a token of the fake's public app for that user, and returns the
// access tokens. Twitch still takes them (Bind validates them), but each expires within the
// source's expiry margin, so a source bound to it refreshes it at first use.
func seedPublic(t *testing.T, store *Store, fake *faketwitch.Server, ids []string) []string {
	t.Helper()
	access := make([]string, len(ids))
	for i, id := range ids {
		fake.AddUser(id, "user"+id, "")
		var refresh string
		access[i], refresh = fake.IssueToken(faketwitch.PublicClientID, id, []string{"chat:read"}, 50*time.Second)
		st := &twitchoauth.StoredToken{AccessToken: access[i], RefreshToken: refresh, Expiry: time.Now().Add(-time.Minute),
			Scopes: scopes, UserID: id, Login: "user" + id, ClientID: faketwitch.PublicClientID, RefreshIssuedAt: time.Now()}
		if err := store.Save(t.Context(), id, st); err != nil {
			t.Fatal(err)
		}
	}
	return access
}

// bindSources binds a source of each ID's token in store (one replica), with a lock ttl of ttl,
// eight at a time.
func bindSources(t *testing.T, c *twitchoauth.Client, store twitchoauth.TokenStore, ids []string, ttl time.Duration) []*twitchoauth.UserTokenSource {
	t.Helper()
	srcs := make([]*twitchoauth.UserTokenSource, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			h := twitchoauth.NewUserAuthenticationStorageHelper(c, scopes)
			h.Store, h.StoreKey, h.LockTTL = store, id, ttl
			h.AuthGenerator = func(context.Context, *twitchoauth.Client, []twitchoauth.Scope) (*oauth2.Token, error) {
				return nil, errors.New("a login was started")
			}
			srcs[i], errs[i] = h.Bind(t.Context())
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("bind: %v", err)
	}
	return srcs
}

// expireAll makes Twitch refuse each access token, as when its lifetime has passed.
func expireAll(fake *faketwitch.Server, access []string) {
	for _, a := range access {
		fake.ExpireAccessToken(a)
	}
}

// pause stops the server's process (SIGSTOP): it keeps its connections and its listening socket,
// so clients connect and send but get no answer, until resume (SIGCONT). The test's end resumes
// it too.
func (s *redisServer) pause(t *testing.T) (resume func()) {
	t.Helper()
	pid := s.cmd.Process.Pid
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
// hands out for port 0: no listener of another test, nor another test's redis-server started on
// a freePort, takes it, also while this one is down between a kill and a restart.
func startOwnRedis(t testing.TB, aof bool) (srv *redisServer, port int, dir string) {
	t.Helper()
	dir = t.TempDir()
	var errs []error
	for range 5 {
		port = ownPort(t)
		srv, err := startRedisIn(t, port, dir, aof)
		if err == nil {
			return srv, port, dir
		}
		errs = append(errs, err)
	}
	t.Fatalf("start redis-server: %v", errors.Join(errs...))
	return nil, 0, ""
}

// ownPort returns a loopback port that nothing listened on a moment ago, below the kernel's range
// of ports for port 0 (or from that range when there is no room below it).
func ownPort(t testing.TB) int {
	t.Helper()
	const low = 10000
	first := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				first = n
			}
		}
	}
	if first <= low+1000 {
		return freePort(t)
	}
	for range 100 {
		port := low + rand.IntN(first-low)
		if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			l.Close()
			return port
		}
	}
	return freePort(t)
}

// startRedisIn starts a redis-server on port with its files in dir, persisting every write to
// its append-only file before acknowledging it (appendfsync always) when aof is set, and waits
// until it answers PING, making sure the server that answers is this process. It is killed when
// the test ends.
func startRedisIn(t testing.TB, port int, dir string, aof bool) (*redisServer, error) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is not installed, and CI must run this test (.ci/run installs it)")
		}
		t.Skip("redis-server is not installed (.ci/run installs it; on Debian: apt-get install redis-server)")
	}
	s := &redisServer{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), done: make(chan struct{})}
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--protected-mode", "yes", "--dir", dir}
	if aof {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	s.cmd = exec.CommandContext(t.Context(), bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(s.Stop)
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("redis-server on port %d exited: %s", port, strings.TrimSpace(s.out.String()))
		default:
		}
		pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		info, err := rdb.Info(pctx, "server").Result()
		pcancel()
		if err == nil {
			if !strings.Contains(info, "process_id:"+strconv.Itoa(s.cmd.Process.Pid)+"\r\n") {
				s.Stop()
				return nil, fmt.Errorf("another redis-server answers on port %d", port)
			}
			return s, nil
		}
		select {
		case <-ctx.Done():
			s.Stop()
			return nil, fmt.Errorf("redis-server on port %d does not answer: %v", port, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
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
	logLibrary(t, c)
	const users, ttl = 5, 2 * time.Second
	ids := storetest.UserIDs(6000, users)
	access := seedPublic(t, New(newClient(t, srv.Addr)), fake, ids)
	opts.Addr = srv.Addr
	rdb := redis.NewClient(&opts)
	t.Cleanup(func() { rdb.Close() })
	srcs := bindSources(t, c, New(rdb), ids, ttl)
	expireAll(fake, access)
	fake.ResetRequests()
	// Slow answers: Redis is stopped while every refresh is in flight, and the leases end (their
	// renewals get no answer) before Twitch's answers come.
	fake.Fail("token", faketwitch.Fault{Pass: true, Delay: ttl + time.Second})

	ctx, cancel := context.WithTimeout(t.Context(), faultTimeout)
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
// registry, and started again on the same port and directory 1.5 s later. Twitch's answers come
// while it is down: the registry's sources keep the new pairs and store them once it is back.
// No user is deleted (from Redis or from the registry, which syncs the store throughout), none
// is reported revoked, no refresh token is sent twice, and every user ends with the pair Twitch
// issued last, in the store and on a replica started afterwards.
func TestRedisKilledMidRefresh(t *testing.T) {
	t.Parallel()
	srv, port, dir := startOwnRedis(t, true)
	c, fake := storetest.PublicTwitch(t)
	logLibrary(t, c)
	const users = 20
	ids := storetest.UserIDs(7000, users)
	access := seedPublic(t, New(newClient(t, srv.Addr)), fake, ids)
	expireAll(fake, access)

	reg := twitchoauth.NewUserTokens(c, New(newClient(t, srv.Addr)))
	reg.SyncEvery = 50 * time.Millisecond // it lists the store while Redis dies, and as it comes back
	var revokedMu sync.Mutex
	var revoked []string
	reg.OnRevoked = func(id string, err error) {
		revokedMu.Lock()
		defer revokedMu.Unlock()
		revoked = append(revoked, fmt.Sprintf("%s: %v", id, err))
	}
	if err := reg.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := reg.Users(); len(got) != users {
		t.Fatalf("the registry has %d users, want %d", len(got), users)
	}
	runCtx, stopRun := context.WithCancel(t.Context())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		reg.Run(runCtx)
	}()
	t.Cleanup(func() {
		stopRun()
		<-ran
	})
	fake.ResetRequests()
	fake.Fail("token", faketwitch.Fault{Pass: true, Delay: time.Second})

	ctx, cancel := context.WithTimeout(t.Context(), faultTimeout)
	defer cancel()
	srcs := make([]*twitchoauth.UserTokenSource, users)
	for i, id := range ids {
		src, err := reg.Source(id)
		if err != nil {
			t.Fatal(err)
		}
		srcs[i] = src
	}
	toks := make([]*oauth2.Token, users)
	errs := make([]error, users)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	for i, src := range srcs {
		wg.Go(func() { toks[i], errs[i] = src.TokenContext(ctx) })
	}
	storetest.WaitUntil(t, ctx, "every refresh in flight", func() bool { return fake.CountGrant("refresh_token") == users })
	srv.Stop() // SIGKILL
	killed := time.Now()
	time.Sleep(1500 * time.Millisecond)
	srv, err := startRedisIn(t, port, dir, true)
	if err != nil {
		t.Fatalf("restart redis-server on the same port and directory: %v", err)
	}
	t.Logf("Redis was down for %v", time.Since(killed).Round(time.Millisecond))
	wg.Wait()

	want := map[string]string{}
	pending := 0
	for i, src := range srcs {
		if errs[i] != nil {
			t.Errorf("user %s: Token across the kill: %v; want the new pair", ids[i], errs[i])
			continue
		}
		if toks[i].AccessToken == access[i] {
			t.Errorf("user %s: Token returned the expired token", ids[i])
		}
		if src.Pending() {
			pending++
		}
		want[ids[i]] = toks[i].AccessToken
	}
	t.Logf("%d of %d sources hold a pair Redis did not take", pending, users)
	// Half are stored by FlushPending, the other half by Token calls once their backoff passed.
	for i, src := range srcs {
		if i%2 == 0 {
			if err := src.FlushPending(ctx); err != nil {
				t.Errorf("user %s: FlushPending after the restart: %v", ids[i], err)
			}
			continue
		}
		storetest.WaitUntil(t, ctx, "user "+ids[i]+"'s pair stored by Token", func() bool {
			tok, err := src.TokenContext(ctx)
			if err != nil || tok.AccessToken != want[ids[i]] {
				t.Fatalf("user %s: Token after the restart: %v, %v", ids[i], accessOf(tok), err)
			}
			return !src.Pending()
		})
	}
	check := New(newClient(t, srv.Addr))
	storetest.WantStored(t, ctx, check, ids, want)
	if got := reg.Users(); len(got) != users {
		t.Errorf("the registry kept %d users of %d", len(got), users)
	}

	// A replica started after the restart takes every stored pair up, without a refresh.
	other := twitchoauth.NewUserTokens(c, New(newClient(t, srv.Addr)))
	if err := other.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := other.Users(); len(got) != users {
		t.Errorf("a new replica finds %d users, want %d", len(got), users)
	}
	for _, id := range ids {
		src, err := other.Source(id)
		if err != nil {
			t.Errorf("a new replica: %v", err)
			continue
		}
		if tok, err := src.TokenContext(ctx); err != nil || tok.AccessToken != want[id] {
			t.Errorf("user %s, a new replica: %v, %v; want the stored token", id, accessOf(tok), err)
		}
	}
	stopRun()
	<-ran
	revokedMu.Lock()
	if len(revoked) > 0 {
		t.Errorf("OnRevoked called %d times:\n%s", len(revoked), revoked)
	}
	revokedMu.Unlock()
	storetest.WantNoReuse(t, fake, users)
	storetest.WantWorking(t, ctx, c, fake, check, ids)
}
