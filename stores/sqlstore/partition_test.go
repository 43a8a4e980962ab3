package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// pgStoreAt returns a Store on a pool of its own to the server at addr (its own address, or a
// proxy's), on the tables of prefix.
func pgStoreAt(t testing.TB, addr, prefix string) *Store {
	t.Helper()
	s := New(pgDBAt(t, addr, "sqlstore-test"), Postgres)
	s.Prefix = prefix
	return s
}

// TestPostgresPartitionAtMark: one of four replicas loses PostgreSQL's replies as its first write
// of a spending mark goes out (the write is made), then is cut off for 10 s, while 100 users'
// tokens expire together on every replica (see storetest.PartitionAtMark): after the heal every
// user is usable on every replica, none reported revoked, each refreshed once, no refresh token
// sent twice, and every stored pair unmarked and honoured by Twitch.
func TestPostgresPartitionAtMark(t *testing.T) {
	t.Parallel()
	srv := needPostgres(t)
	prefix := uniquePrefix()
	storetest.PartitionAtMark(t, storetest.Partition{
		Server: "PostgreSQL",
		Addr:   srv.Addr(),
		Open:   func(t *testing.T, addr string) twitchoauth.TokenStore { return pgStoreAt(t, addr, prefix) },
	})
}

// TestPostgresMarkReplyLost: a replica's write of its spending mark reaches PostgreSQL, which
// makes it, and the reply is lost: the proxy drops it and resets the connection. The replica sent
// nothing to Twitch; it must not take its own mark for a refresh in doubt, and neither may
// another replica: the replica takes its mark back once its next connection gets through, and
// both replicas get the one pair a single refresh gives. No OnRevoked, no doubt, no refresh token
// sent twice.
func TestPostgresMarkReplyLost(t *testing.T) {
	t.Parallel()
	srv := needPostgres(t)
	ctx, cancel := context.WithTimeout(t.Context(), storetest.FaultTimeout)
	defer cancel()
	c, fake := storetest.PublicTwitch(t)
	storetest.LogLibrary(t, c)
	prefix := uniquePrefix()
	direct := pgStoreAt(t, srv.Addr(), prefix)
	const user = "9300"
	access := storetest.SeedPublic(t, direct, fake, []string{user}, 0, time.Now().Add(-time.Minute))
	storetest.ExpireAccess(fake, access)
	proxy := storetest.StartProxy(t, srv.Addr())
	trip := storetest.TripAtMark(t, pgStoreAt(t, proxy.Addr, prefix), proxy, direct)

	var mu sync.Mutex
	var heard []string
	srcs := make([]*twitchoauth.UserTokenSource, 2)
	runCtx, stopRuns := context.WithCancel(ctx)
	var runs sync.WaitGroup
	t.Cleanup(func() {
		stopRuns()
		runs.Wait()
	})
	for r, store := range []twitchoauth.TokenStore{trip, pgStoreAt(t, srv.Addr(), prefix)} {
		reg := twitchoauth.NewUserTokens(c, store)
		reg.OnRevoked = func(id string, err error) {
			mu.Lock()
			defer mu.Unlock()
			heard = append(heard, fmt.Sprintf("replica %d: OnRevoked: %v", r, err))
		}
		reg.OnRecovered = func(string) {
			mu.Lock()
			defer mu.Unlock()
			heard = append(heard, fmt.Sprintf("replica %d: OnRecovered", r))
		}
		if err := reg.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		src, err := reg.Source(user)
		if err != nil {
			t.Fatal(err)
		}
		srcs[r] = src
		runs.Go(func() { reg.Run(runCtx) })
	}
	fake.ResetRequests()

	first := make(chan error, 1)
	go func() {
		_, err := srcs[0].TokenContext(ctx)
		first <- err
	}()
	select {
	case <-trip.Tripped():
	case <-ctx.Done():
		t.Fatal("the replica never wrote its mark")
	}
	storetest.WaitUntil(t, ctx, "the mark made and its reply dropped", func() bool {
		st, err := direct.Load(ctx, user)
		return err == nil && st.Spending != nil && proxy.Dropped() > 0
	})
	proxy.Cut() // the connection that carried the write is reset
	proxy.Heal()
	healed := time.Now()
	err := <-first
	t.Logf("the replica whose mark's reply was lost: Token = %v", err)
	if err == nil || errors.Is(err, twitchoauth.ErrInvalidRefreshToken) {
		t.Errorf("the replica whose mark's reply was lost: Token = %v; want the store's error, not a verdict on the token", err)
	}
	if n := fake.CountGrant("refresh_token"); n != 0 {
		t.Fatalf("%d refreshes reached Twitch though the mark's write failed", n)
	}

	// Both replicas get a token: the other one at its first call, which waits for the mark.
	toks := make([]*oauth2.Token, 2)
	other := make(chan error, 1)
	go func() {
		var err error
		toks[1], err = srcs[1].TokenContext(ctx)
		other <- err
	}()
	storetest.WaitUntil(t, ctx, "a token on the replica whose mark's reply was lost", func() bool {
		tok, err := srcs[0].TokenContext(ctx)
		if errors.Is(err, twitchoauth.ErrInvalidRefreshToken) {
			t.Fatalf("the replica whose mark's reply was lost, after the heal: %v", err)
		}
		toks[0] = tok
		return err == nil
	})
	if err := <-other; err != nil {
		t.Errorf("the other replica: %v", err)
	}
	if t.Failed() {
		return
	}
	t.Logf("both replicas held a token %v after the heal", time.Since(healed).Round(time.Millisecond))
	if toks[0].AccessToken != toks[1].AccessToken || toks[0].AccessToken == access[0] {
		t.Errorf("the replicas hold different tokens, or the expired one")
	}
	stopRuns()
	runs.Wait()
	mu.Lock()
	if len(heard) > 0 {
		t.Errorf("heard of a doubt:\n%s", strings.Join(heard, "\n"))
	}
	mu.Unlock()
	storetest.WantStored(t, ctx, direct, []string{user}, map[string]string{user: toks[0].AccessToken})
	storetest.WantNoReuse(t, fake, 1)
	storetest.WantWorking(t, ctx, c, fake, direct, []string{user})
}
