package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// What the stores' fault tests share: seeding and binding public clients' users, the library's
// log, a server that is gone, and the scenario of a server lost in the middle of refreshes.

// FaultTimeout bounds a fault test's wait for anything.
const FaultTimeout = 2 * time.Minute

// Scopes is what the seeded tokens grant.
var Scopes = []twitchoauth.Scope{twitchoauth.ScopeChatRead}

// LogLibrary sends c's log to a buffer that the test prints if it fails (or with
// TWITCHOAUTH_FAULT_LOG set): what the library did, which a failure report needs.
func LogLibrary(t *testing.T, c *twitchoauth.Client) {
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

// SeedPublic stores under each ID a token of the fake's public app for that user, which Twitch
// takes for twitchTTL (0: the fake's default) and the stored record says expires at expiry, and
// returns the access tokens.
func SeedPublic(t *testing.T, store twitchoauth.TokenStore, fake *faketwitch.Server, ids []string, twitchTTL time.Duration, expiry time.Time) []string {
	t.Helper()
	access := make([]string, len(ids))
	for i, id := range ids {
		fake.AddUser(id, "user"+id, "")
		var refresh string
		access[i], refresh = fake.IssueToken(faketwitch.PublicClientID, id, []string{"chat:read"}, twitchTTL)
		st := &twitchoauth.StoredToken{AccessToken: access[i], RefreshToken: refresh, Expiry: expiry,
			Scopes: Scopes, UserID: id, Login: "user" + id, ClientID: faketwitch.PublicClientID, RefreshIssuedAt: time.Now()}
		if err := store.Save(t.Context(), id, st); err != nil {
			t.Fatal(err)
		}
	}
	return access
}

// ExpireAccess makes Twitch refuse each access token, as when its lifetime has passed.
func ExpireAccess(fake *faketwitch.Server, access []string) {
	for _, a := range access {
		fake.ExpireAccessToken(a)
	}
}

// ExpireStored makes each user's stored token expired, at Twitch and in the store.
func ExpireStored(t *testing.T, store twitchoauth.TokenStore, fake *faketwitch.Server, ids []string) {
	t.Helper()
	for _, id := range ids {
		st, err := store.Load(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		fake.ExpireAccessToken(st.AccessToken)
		st.Expiry = time.Now().Add(-time.Minute)
		if err := store.Save(t.Context(), id, st); err != nil {
			t.Fatal(err)
		}
	}
}

// BindSources binds a source of each ID's token in store (one replica), with a lock ttl of ttl,
// eight at a time; none may log its user in.
func BindSources(t *testing.T, c *twitchoauth.Client, store twitchoauth.TokenStore, ids []string, ttl time.Duration) []*twitchoauth.UserTokenSource {
	t.Helper()
	srcs := make([]*twitchoauth.UserTokenSource, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			h := twitchoauth.NewUserAuthenticationStorageHelper(c, Scopes)
			h.Store, h.StoreKey, h.LockTTL = store, id, ttl
			h.AuthGenerator = func(context.Context, *twitchoauth.Client, []twitchoauth.Scope) (*oauth2.Token, error) {
				t.Error("a login was started")
				return nil, errors.New("no login in this test")
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

// WantFailsPromptly checks that f, the operation op on a store whose server is gone, fails
// within promptly, with an error that carries the store's prefix and says why (one of why),
// never a verdict on the token.
func WantFailsPromptly(t *testing.T, op string, f func() error, prefix string, why []string, promptly time.Duration) {
	t.Helper()
	start := time.Now()
	err := f()
	took := time.Since(start)
	t.Logf("%s after %v: %v", op, took.Round(time.Millisecond), err)
	switch {
	case err == nil:
		t.Errorf("%s succeeded with the server gone", op)
	case errors.Is(err, twitchoauth.ErrTokenNotFound) || errors.Is(err, twitchoauth.ErrTokenCorrupt):
		t.Errorf("%s: %v; want the server's error, not a verdict on the token", op, err)
	case !strings.Contains(err.Error(), prefix) || !slices.ContainsFunc(why, func(w string) bool { return strings.Contains(err.Error(), w) }):
		t.Errorf("%s: %v; want %q and one of %q", op, err, prefix, why)
	}
	if took > promptly {
		t.Errorf("%s took %v", op, took)
	}
}

// WantDown checks that each operation of store fails promptly (see WantFailsPromptly), Lock
// included (it must not poll a server it cannot reach), and Keys when the store lists them.
func WantDown(t *testing.T, ctx context.Context, store twitchoauth.TokenStore, prefix string, why []string, promptly time.Duration) {
	t.Helper()
	check := func(op string, f func() error) {
		t.Helper()
		WantFailsPromptly(t, op, f, prefix, why, promptly)
	}
	check("Load", func() error { _, err := store.Load(ctx, "1"); return err })
	check("Save", func() error { return store.Save(ctx, "1", &twitchoauth.StoredToken{AccessToken: "a"}) })
	check("Lock", func() error {
		unlock, err := store.Lock(ctx, "1", time.Minute)
		if err == nil {
			unlock()
		}
		return err
	})
	if kl, ok := store.(twitchoauth.KeyLister); ok {
		check("Keys", func() error { _, err := kl.Keys(ctx); return err })
	}
}

// Outage is a store's server that RefreshAcrossOutage loses in the middle of refreshes.
type Outage struct {
	Server      string                                    // what the log calls it: "Redis", "PostgreSQL"
	Open        func(t *testing.T) twitchoauth.TokenStore // a new client of the store
	Down        func(t *testing.T)                        // takes the server down (it is down on return)
	Up          func(t *testing.T)                        // starts it again on the same address and data
	TwitchDelay time.Duration                             // how long Twitch takes to answer each refresh
}

// RefreshAcrossOutage: 20 users of a public client, whose tokens have expired, are asked for at
// once through a registry whose Run lists the store throughout; while their refreshes are in
// flight, the store's server goes down, and Twitch's answers come while it is down. The sources
// keep the new pairs (Token returns them) and store them once the server is back: half through
// FlushPending, half through Token once its backoff has passed. No user is deleted (from the store
// or the registry), none is reported revoked, no refresh token is sent twice, and every user ends
// with the pair Twitch issued last, in the store and on a replica started afterwards.
func RefreshAcrossOutage(t *testing.T, c *twitchoauth.Client, fake *faketwitch.Server, o Outage) {
	ctx, cancel := context.WithTimeout(t.Context(), FaultTimeout)
	defer cancel()
	LogLibrary(t, c)
	const users = 20
	ids := UserIDs(7000, users)
	access := SeedPublic(t, o.Open(t), fake, ids, 0, time.Now().Add(-time.Minute))
	ExpireAccess(fake, access)

	regStore := o.Open(t)
	reg := twitchoauth.NewUserTokens(c, regStore)
	reg.SyncEvery = 50 * time.Millisecond // it lists the store while the server goes, and as it comes back
	var revokedMu sync.Mutex
	var revoked []string
	reg.OnRevoked = func(id string, err error) {
		revokedMu.Lock()
		defer revokedMu.Unlock()
		revoked = append(revoked, fmt.Sprintf("%s: %v", id, err))
	}
	if err := reg.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := reg.Users(); len(got) != users {
		t.Fatalf("the registry has %d users, want %d", len(got), users)
	}
	runCtx, stopRun := context.WithCancel(ctx)
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
	fake.Fail("token", faketwitch.Fault{Pass: true, Delay: o.TwitchDelay})

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
	WaitUntil(t, ctx, "every refresh in flight", func() bool { return fake.CountGrant("refresh_token") == users })
	o.Down(t)
	down := time.Now()
	wg.Wait() // Twitch answered; the saves failed
	o.Up(t)
	t.Logf("%s was down for %v", o.Server, time.Since(down).Round(time.Millisecond))
	// A client may wait a moment before it dials again a server that refused it many times
	// (go-redis: until a probe each second gets through).
	WaitUntil(t, ctx, "the registry's client reaching "+o.Server+" again", func() bool {
		_, err := regStore.Load(ctx, ids[0])
		return err == nil
	})

	want := map[string]string{}
	pending := 0
	for i, src := range srcs {
		if errs[i] != nil {
			t.Errorf("user %s: Token across the outage: %v; want the new pair, kept in memory", ids[i], errs[i])
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
	t.Logf("%d of %d sources hold a pair %s did not take", pending, users, o.Server)
	// Half are stored by FlushPending, the other half by Token calls once their backoff passed
	// (or by Run, whichever comes first).
	for i, src := range srcs {
		if i%2 == 0 {
			if err := src.FlushPending(ctx); err != nil {
				t.Errorf("user %s: FlushPending after the restart: %v", ids[i], err)
			}
			continue
		}
		WaitUntil(t, ctx, "user "+ids[i]+"'s pair stored", func() bool {
			tok, err := src.TokenContext(ctx)
			if err != nil || tok.AccessToken != want[ids[i]] {
				t.Fatalf("user %s: Token after the restart: %v, %v", ids[i], tok != nil, err)
			}
			return !src.Pending()
		})
	}
	check := o.Open(t)
	WantStored(t, ctx, check, ids, want)
	if got := reg.Users(); len(got) != users {
		t.Errorf("the registry kept %d users of %d", len(got), users)
	}

	// A replica started after the restart takes every stored pair up, without a refresh.
	other := twitchoauth.NewUserTokens(c, o.Open(t))
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
			t.Errorf("user %s, a new replica: %v; want the stored token", id, err)
		}
	}
	stopRun()
	<-ran
	revokedMu.Lock()
	if len(revoked) > 0 {
		t.Errorf("OnRevoked called %d times:\n%s", len(revoked), strings.Join(revoked, "\n"))
	}
	revokedMu.Unlock()
	WantNoReuse(t, fake, users)
	WantWorking(t, ctx, c, fake, check, ids)
}
