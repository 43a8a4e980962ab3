package storetest

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// The checks the stores' fault tests make after a fault (a paused, killed or cut-off server): no
// refresh token sent twice, no user lost, and every stored pair the one Twitch honours.

// UserIDs returns n user IDs counting from first.
func UserIDs(first, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(first + i)
	}
	return ids
}

// WaitUntil polls cond until it holds, failing the test when ctx ends first.
func WaitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// SentTwice counts the refresh tokens that reached the fake more than once, read from the
// recorded requests: a check of the fake's own count of reuses.
func SentTwice(fake *faketwitch.Server) int {
	seen := map[string]int{}
	for _, r := range fake.Requests() {
		if r.Endpoint == "token" && r.Form.Get("grant_type") == "refresh_token" {
			seen[r.Form.Get("refresh_token")]++
		}
	}
	n := 0
	for _, k := range seen {
		if k > 1 {
			n++
		}
	}
	return n
}

// WantNoReuse checks that Twitch saw refreshes refresh requests (-1: any number) and no refresh
// token twice.
func WantNoReuse(t *testing.T, fake *faketwitch.Server, refreshes int) {
	t.Helper()
	got := fake.CountGrant("refresh_token")
	t.Logf("%d refresh requests, %d reused refresh tokens, %d sent twice", got, fake.ReusedRefreshTokens(), SentTwice(fake))
	if n := fake.ReusedRefreshTokens(); n != 0 {
		t.Errorf("%d spent refresh tokens were sent again (each ended its user's grant)", n)
	}
	if n := SentTwice(fake); n != 0 {
		t.Errorf("%d refresh tokens reached Twitch more than once", n)
	}
	if refreshes >= 0 && got != refreshes {
		t.Errorf("%d refresh requests reached Twitch, want %d", got, refreshes)
	}
}

// WantStored checks that store holds each user's pair whose access token is want[id], with no
// spending mark left on it.
func WantStored(t *testing.T, ctx context.Context, store twitchoauth.TokenStore, ids []string, want map[string]string) {
	t.Helper()
	for _, id := range ids {
		st, err := store.Load(ctx, id)
		switch {
		case errors.Is(err, twitchoauth.ErrTokenNotFound):
			t.Errorf("user %s was deleted from the store", id)
		case err != nil:
			t.Errorf("user %s: %v", id, err)
		case st.AccessToken != want[id]:
			t.Errorf("user %s: the store holds another access token than the sources use", id)
		case st.Spending != nil:
			t.Errorf("user %s: the store holds the pair with a spending mark left on it", id)
		}
	}
}

// WantWorking checks that Twitch honours each user's stored pair: its access token validates and
// its refresh token refreshes, none of them spent already.
func WantWorking(t *testing.T, ctx context.Context, c *twitchoauth.Client, fake *faketwitch.Server, store twitchoauth.TokenStore, ids []string) {
	t.Helper()
	fake.ClearFaults()
	for _, id := range ids {
		st, err := store.Load(ctx, id)
		if err != nil {
			t.Errorf("user %s: %v", id, err)
			continue
		}
		if _, err := c.ValidateToken(ctx, st.AccessToken); err != nil {
			t.Errorf("user %s: Twitch refuses the stored access token: %v", id, err)
		}
		if _, err := c.RefreshAccessToken(ctx, st.RefreshToken); err != nil {
			t.Errorf("user %s: Twitch refuses the stored refresh token: %v", id, err)
		}
	}
	if n := fake.ReusedRefreshTokens(); n != 0 {
		t.Errorf("%d stored refresh tokens had been spent already", n)
	}
}
