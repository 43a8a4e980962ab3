package redisstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// TestUserTokensReplicas: five replicas of a bot, each a UserTokens over its own connection to one
// redis-server, serving 100 users:
//   - the users one replica adds, with their intents, are seen by the others after Sync;
//   - when the 100 tokens expire together and every replica asks for every user's token at once,
//     each user's token is refreshed exactly once across the replicas, and all agree on it;
//   - with Run going on all five, each user is validated once per period between them, not five
//     times.
func TestUserTokensReplicas(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	c, fake := storetest.Twitch(t)
	const users, replicas = 100, 5
	ids := make([]string, users)
	adder := twitchoauth.NewUserTokens(c, New(newClient(t, srv.Addr)))
	for i := range ids {
		ids[i] = fmt.Sprint(5000 + i)
		fake.AddUser(ids[i], "user"+ids[i], "")
		access, refresh := fake.IssueToken(faketwitch.ClientID, ids[i], []string{"chat:read"}, 0)
		if _, err := adder.AddUserForToken(t.Context(), &oauth2.Token{AccessToken: access, RefreshToken: refresh}, "chatbot:"+ids[i]); err != nil {
			t.Fatal(err)
		}
	}

	// The tokens expire together, at Twitch and in the store.
	seeder := New(newClient(t, srv.Addr))
	storetest.ExpireStored(t, seeder, fake, ids)
	fake.ResetRequests()
	fake.Fail("token", faketwitch.Fault{Pass: true, Delay: 20 * time.Millisecond}) // replicas overlap for certain

	regs := make([]*twitchoauth.UserTokens, replicas)
	for r := range regs {
		regs[r] = twitchoauth.NewUserTokens(c, New(newClient(t, srv.Addr)))
		regs[r].ValidateEvery = 2 * time.Second
		if err := regs[r].Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := regs[r].Users(); !slices.Equal(got, ids) {
			t.Fatalf("replica %d sees %d users, want the %d added elsewhere", r, len(got), users)
		}
		if _, err := regs[r].SourceForIntent("chatbot:" + ids[7]); err != nil {
			t.Fatalf("replica %d: %v", r, err)
		}
	}

	tokens := make([][]string, replicas)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for r := range regs {
		tokens[r] = make([]string, users)
		for i, id := range ids {
			wg.Go(func() {
				<-start
				src, err := regs[r].Source(id)
				if err == nil {
					var tok *oauth2.Token
					if tok, err = src.Token(); err == nil {
						tokens[r][i] = tok.AccessToken
					}
				}
				if err != nil {
					t.Errorf("replica %d, user %s: %v", r, id, err)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	if n := fake.CountGrant("refresh_token"); n != users {
		t.Errorf("%d refreshes for %d users on %d replicas, want exactly %d", n, users, replicas, users)
	}
	for i, id := range ids {
		st, err := seeder.Load(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		for r := range regs {
			if tokens[r][i] != st.AccessToken {
				t.Errorf("user %s: replica %d holds another token than the store", id, r)
			}
		}
	}

	// Run on every replica until every user has been validated (an event, not a time): each user
	// is validated once in its slot between the five, never twice within half a period.
	const period = 5 * time.Second
	for _, u := range regs {
		u.ValidateEvery = period
	}
	fake.ResetRequests()
	ctx, cancel := context.WithCancel(t.Context())
	var runs sync.WaitGroup
	for _, u := range regs {
		runs.Go(func() { u.Run(ctx) })
	}
	validated := func() map[string][]time.Time {
		at := map[string][]time.Time{}
		for _, req := range fake.Requests() {
			if req.Endpoint == "validate" {
				tok := strings.TrimPrefix(req.Authorization, "OAuth ")
				at[tok] = append(at[tok], req.At)
			}
		}
		return at
	}
	deadline := time.Now().Add(4 * period)
	for {
		at := validated()
		done := 0
		for i := range ids {
			if len(at[tokens[0][i]]) > 0 {
				done++
			}
		}
		if done == users {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d users validated in %v by %d replicas", done, users, 4*period, replicas)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	runs.Wait()
	total := 0
	for i, id := range ids {
		times := validated()[tokens[0][i]]
		total += len(times)
		for k := 1; k < len(times); k++ {
			if gap := times[k].Sub(times[k-1]); gap < period/2 {
				t.Errorf("user %s validated twice %v apart by %d replicas; want once per period between them", id, gap, replicas)
			}
		}
	}
	t.Logf("%d validations of %d users by %d replicas", total, users, replicas)
}

// TestKeysPrefixIsLiteral: Keys lists the keys under the Store's own prefix only, even when the
// prefix holds characters SCAN's pattern gives a meaning to.
func TestKeysPrefixIsLiteral(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	rdb := newClient(t, srv.Addr)
	odd := &Store{Client: rdb, Prefix: `x[ab]*?\:`}
	plain := &Store{Client: rdb, Prefix: "xa:"}
	if err := odd.Save(t.Context(), "1", &twitchoauth.StoredToken{AccessToken: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := plain.Save(t.Context(), "2", &twitchoauth.StoredToken{AccessToken: "b"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		store *Store
		want  []string
	}{{odd, []string{"1"}}, {plain, []string{"2"}}} {
		keys, err := tc.store.Keys(t.Context())
		if err != nil || !slices.Equal(keys, tc.want) {
			t.Errorf("prefix %q: Keys = %q, %v; want %q", tc.store.Prefix, keys, err, tc.want)
		}
	}
}
