package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// TestRedisPartitionedReplica: four replicas serve 100 users of a public client whose tokens
// expire together, each user's source on each replica asking for the token at once (the fourth
// replica with a head start on half of them); the fourth replica reaches Redis through a proxy,
// which is cut while the refreshes are in flight (the fourth replica's among them: Twitch
// answers, and its saves and unlocks fail), then healed:
//   - Healed as soon as the cut replica's calls have returned: the other replicas wait for the
//     locks the cut replica could not release, and find its pairs stored by then.
//   - Healed only once every other replica's call has returned: they found the cut replica's
//     marks, past their wait, on the refresh tokens of the users it refreshed, and answered that
//     the refresh is in doubt; once the pairs are stored after the heal, they take them up.
//
// Either way every user is refreshed exactly once across the replicas, no refresh token is sent
// twice, no user is deleted, and after the heal every replica uses the pair Redis holds for every
// user, the one Twitch issued last.
func TestRedisPartitionedReplica(t *testing.T) {
	t.Parallel()
	t.Run("HealedAtOnce", func(t *testing.T) {
		t.Parallel()
		testPartitionedReplica(t, false)
	})
	t.Run("HealedPastLease", func(t *testing.T) {
		t.Parallel()
		testPartitionedReplica(t, true)
	})
}

func testPartitionedReplica(t *testing.T, healLate bool) {
	srv, _, _ := startOwnRedis(t, false)
	proxy := storetest.StartProxy(t, srv.Addr)
	c, fake := storetest.PublicTwitch(t)
	storetest.LogLibrary(t, c)
	const users, replicas, cut = 100, 4, 3
	// The lock ttl of every source: a lock the cut replica cannot release ends within it.
	const ttl = 8 * time.Second
	ids := storetest.UserIDs(8000, users)
	access := storetest.SeedPublic(t, New(newClient(t, srv.Addr)), fake, ids, 50*time.Second, time.Now().Add(-time.Minute))
	srcs := make([][]*twitchoauth.UserTokenSource, replicas)
	for r := range srcs {
		addr := srv.Addr
		if r == cut {
			addr = proxy.Addr
		}
		srcs[r] = storetest.BindSources(t, c, New(newClient(t, addr)), ids, ttl)
	}
	storetest.ExpireAccess(fake, access)
	fake.ResetRequests()
	// Slow answers: the proxy is cut while every refresh is in flight.
	fake.Fail("token", faketwitch.Fault{Pass: true, Delay: time.Second})

	ctx, cancel := context.WithTimeout(t.Context(), storetest.FaultTimeout)
	defer cancel()
	toks := make([][]*oauth2.Token, replicas)
	errs := make([][]error, replicas)
	var others, cutAsks sync.WaitGroup
	t.Cleanup(others.Wait)
	t.Cleanup(cutAsks.Wait)
	// The cut replica asks for the first half of the users first, so that it surely holds the
	// locks of many; then every replica asks for every user at once.
	first, rest := make(chan struct{}), make(chan struct{})
	for r := range srcs {
		toks[r], errs[r] = make([]*oauth2.Token, users), make([]error, users)
		asks := &others
		if r == cut {
			asks = &cutAsks
		}
		for i, src := range srcs[r] {
			start := rest
			if r == cut && i < users/2 {
				start = first
			}
			asks.Go(func() {
				<-start
				toks[r][i], errs[r][i] = src.TokenContext(ctx)
			})
		}
	}
	close(first)
	storetest.WaitUntil(t, ctx, "the cut replica's first refreshes in flight", func() bool { return fake.CountGrant("refresh_token") == users/2 })
	close(rest)
	storetest.WaitUntil(t, ctx, "every user's refresh in flight", func() bool { return fake.CountGrant("refresh_token") == users })
	proxy.Cut()
	cutAt := time.Now()
	// The cut replica's calls end: with the new pair it could not store, or with Redis's error.
	waitDone(t, ctx, &cutAsks, "the cut replica's Token calls")
	if healLate {
		waitDone(t, ctx, &others, "the other replicas' Token calls")
	}
	proxy.Heal()
	t.Logf("the proxy was cut for %v", time.Since(cutAt).Round(time.Millisecond))
	won, pending := 0, 0
	for i, src := range srcs[cut] {
		if errs[cut][i] == nil && toks[cut][i].AccessToken != access[i] {
			won++
		}
		if src.Pending() {
			pending++
			// The client may refuse for a moment more: it stops dialing a server it could not
			// reach for a second or so.
			storetest.WaitUntil(t, ctx, "the cut replica's pending pair of user "+ids[i]+" stored", func() bool {
				return src.FlushPending(ctx) == nil && !src.Pending()
			})
		}
	}
	t.Logf("the cut replica refreshed %d users; %d pairs were pending", won, pending)
	waitDone(t, ctx, &others, "the other replicas' Token calls")
	failed, doubts := 0, 0
	for r := range srcs {
		for i := range ids {
			switch err := errs[r][i]; {
			case errors.Is(err, twitchoauth.ErrRefreshInDoubt):
				doubts++
				if r == cut {
					t.Errorf("the cut replica, user %s: %v", ids[i], err)
				}
			case errors.Is(err, twitchoauth.ErrInvalidRefreshToken):
				t.Errorf("replica %d, user %s: %v", r, ids[i], err)
			case err != nil && r != cut:
				t.Errorf("replica %d, user %s: %v", r, ids[i], err)
			case err != nil:
				failed++
			}
		}
	}
	t.Logf("%d of the cut replica's Token calls failed, %d of the others' found the refresh in doubt", failed, doubts)

	// After the heal, every replica ends with the stored pair of every user: at once, or once
	// the backoff of a failed call (or the recheck of a refresh in doubt) has passed.
	want := map[string]string{}
	check := New(newClient(t, srv.Addr))
	for _, id := range ids {
		st, err := check.Load(ctx, id)
		if err != nil {
			t.Fatalf("user %s: %v", id, err)
		}
		want[id] = st.AccessToken
	}
	healed := time.Now()
	for r := range srcs {
		for i, src := range srcs[r] {
			storetest.WaitUntil(t, ctx, fmt.Sprintf("replica %d's token of user %s", r, ids[i]), func() bool {
				tok, err := src.TokenContext(ctx)
				if errors.Is(err, twitchoauth.ErrInvalidRefreshToken) && !errors.Is(err, twitchoauth.ErrRefreshInDoubt) {
					t.Fatalf("replica %d, user %s after the heal: %v", r, ids[i], err)
				}
				return err == nil && !src.Pending() && tok.AccessToken == want[ids[i]]
			})
		}
	}
	t.Logf("every replica held every stored pair %v after the heal", time.Since(healed).Round(time.Millisecond))
	storetest.WantStored(t, ctx, check, ids, want)
	storetest.WantNoReuse(t, fake, users)
	storetest.WantWorking(t, ctx, c, fake, check, ids)
}

// TestRedisPartitionAtMark: one of four replicas loses Redis's replies as its first write of a
// spending mark goes out (the write is made), then is cut off for 10 s, while 100 users' tokens
// expire together on every replica (see storetest.PartitionAtMark): after the heal every user is
// usable on every replica, none reported revoked, each refreshed once, no refresh token sent
// twice, and every stored pair unmarked and honoured by Twitch.
func TestRedisPartitionAtMark(t *testing.T) {
	t.Parallel()
	srv, _, _ := startOwnRedis(t, false)
	// The fenced save's script is in Redis's cache, as in a service that has run a while: a mark's
	// write is one EVALSHA, which Redis runs though its reply is lost (not one refused NOSCRIPT).
	err := New(newClient(t, srv.Addr)).SaveIf(t.Context(), "warm", &twitchoauth.StoredToken{}, &twitchoauth.StoredToken{})
	if !errors.Is(err, twitchoauth.ErrTokenChanged) {
		t.Fatalf("SaveIf of a missing key: %v", err)
	}
	storetest.PartitionAtMark(t, storetest.Partition{
		Server: "Redis",
		Addr:   srv.Addr,
		Open:   func(t *testing.T, addr string) twitchoauth.TokenStore { return New(newClient(t, addr)) },
	})
}

// waitDone waits for wg, failing the test when ctx ends first.
func waitDone(t *testing.T, ctx context.Context, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("waiting for %s: %v", what, ctx.Err())
	}
}
