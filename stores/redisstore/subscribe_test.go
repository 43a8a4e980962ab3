package redisstore

import (
	"context"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// TestSubscribeAcrossReplicas: one replica refreshes a user's token; the other replicas take it
// up from Redis at their next look (Run's pass over the user) and hand it to their subscribers,
// with no refresh of their own.
func TestSubscribeAcrossReplicas(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	c, fake := storetest.Twitch(t)
	access, refresh := fake.IssueToken(faketwitch.ClientID, faketwitch.UserID, []string{"chat:read"}, 0)
	const replicas = 3
	regs := make([]*twitchoauth.UserTokens, replicas)
	heard := make([]chan *oauth2.Token, replicas)
	for r := range regs {
		regs[r] = twitchoauth.NewUserTokens(c, New(newClient(t, srv.Addr)))
		regs[r].ValidateEvery = 2 * time.Second
		if r == 0 {
			if _, err := regs[0].AddUserForToken(t.Context(), &oauth2.Token{AccessToken: access, RefreshToken: refresh}); err != nil {
				t.Fatal(err)
			}
		} else if err := regs[r].Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		src, err := regs[r].Source(faketwitch.UserID)
		if err != nil {
			t.Fatal(err)
		}
		heard[r] = make(chan *oauth2.Token, 8)
		stop := src.Subscribe(func(tok *oauth2.Token) { heard[r] <- tok })
		t.Cleanup(stop)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	next := func(r int) *oauth2.Token {
		t.Helper()
		select {
		case tok := <-heard[r]:
			return tok
		case <-ctx.Done():
			t.Fatalf("replica %d's subscriber heard nothing", r)
			return nil
		}
	}
	for r := range regs {
		if tok := next(r); tok.AccessToken != access {
			t.Fatalf("replica %d was first handed %q, want the token held", r, tok.AccessToken)
		}
	}

	src0, _ := regs[0].Source(faketwitch.UserID)
	fresh, err := src0.ForceRefresh(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok := next(0); tok.AccessToken != fresh.AccessToken {
		t.Errorf("replica 0 heard %q, want its refresh %q", tok.AccessToken, fresh.AccessToken)
	}
	var runs sync.WaitGroup
	defer runs.Wait()
	for r := 1; r < replicas; r++ {
		runs.Go(func() { regs[r].Run(ctx) })
	}
	for r := 1; r < replicas; r++ {
		if tok := next(r); tok.AccessToken != fresh.AccessToken {
			t.Errorf("replica %d heard %q, want the one replica 0 stored", r, tok.AccessToken)
		}
	}
	cancel()
	if n := fake.CountGrant("refresh_token"); n != 1 {
		t.Errorf("%d refreshes, want replica 0's alone", n)
	}
}
