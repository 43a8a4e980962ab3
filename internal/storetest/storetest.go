// Package storetest is the test suite every twitchoauth.TokenStore must pass: storage, per-key
// locks with a lease, and the refresh discipline of replicas that share a login, run against the
// fake Twitch identity server.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// Open sets up an empty backing store for one test and returns how to connect to it: each call
// of connect is a new client (a replica), all of them seeing the same data.
type Open func(t *testing.T) (connect func(t *testing.T) twitchoauth.TokenStore)

// Run runs the whole suite.
func Run(t *testing.T, open Open) {
	t.Run("LoadMissing", func(t *testing.T) { testLoadMissing(t, open) })
	t.Run("SaveLoad", func(t *testing.T) { testSaveLoad(t, open) })
	t.Run("LockExclusive", func(t *testing.T) { testLockExclusive(t, open) })
	t.Run("LockLease", func(t *testing.T) { testLockLease(t, open) })
	t.Run("ReplicasRefreshOnce", func(t *testing.T) { testReplicasRefreshOnce(t, open) })
	t.Run("ManyUsers", func(t *testing.T) { testManyUsers(t, open) })
	t.Run("DeadHolder", func(t *testing.T) { testDeadHolder(t, open) })
	t.Run("BindThroughStore", func(t *testing.T) { testBindThroughStore(t, open) })
	t.Run("SaveIf", func(t *testing.T) { testSaveIf(t, open) })
	t.Run("LeaseRenew", func(t *testing.T) { testLeaseRenew(t, open) })
	t.Run("LeaseReader", func(t *testing.T) { testLeaseReader(t, open) })
	t.Run("ReleasingSaver", func(t *testing.T) { testReleasingSaver(t, open) })
	t.Run("SlowRefreshRenewsLease", func(t *testing.T) { testSlowRefreshRenewsLease(t, open) })
	t.Run("LateLockReply", func(t *testing.T) { testLateLockReply(t, open) })
	t.Run("LapsedLeaseFenced", func(t *testing.T) { testLapsedLeaseFenced(t, open) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, open) })
	t.Run("Keys", func(t *testing.T) { testKeys(t, open) })
	t.Run("SpendMark", func(t *testing.T) { testSpendMark(t, open) })
	t.Run("MarkedByAnother", func(t *testing.T) { testMarkedByAnother(t, open) })
	t.Run("PendingPair", func(t *testing.T) { testPendingPair(t, open) })
	t.Run("Watch", func(t *testing.T) { testWatch(t, open) })
}

// Twitch starts the fake identity server for the test and returns a confidential client of it.
func Twitch(t testing.TB) (*twitchoauth.Client, *faketwitch.Server) {
	t.Helper()
	fake := faketwitch.New()
	base := fake.Start()
	t.Cleanup(fake.Close)
	c := twitchoauth.NewClient(faketwitch.ClientID, faketwitch.ClientSecret)
	c.AuthBaseURL = base
	return c, fake
}

// PublicTwitch starts the fake identity server for the test and returns a public client of it
// (no secret): its refresh tokens are single-use, so a refresh token sent twice is refused.
func PublicTwitch(t testing.TB) (*twitchoauth.Client, *faketwitch.Server) {
	t.Helper()
	c, fake := Twitch(t)
	c.ClientID, c.ClientSecret = faketwitch.PublicClientID, ""
	return c, fake
}

// seed stores a token for user that Twitch has already expired, and returns it as the replicas
// hold it.
func seed(t *testing.T, store twitchoauth.TokenStore, fake *faketwitch.Server, user string) *oauth2.Token {
	t.Helper()
	return seedFor(t, store, fake, faketwitch.ClientID, user, user, true)
}

// seedFor stores under key a token of clientID for user, one Twitch has expired if expired is
// set, and returns it as the replicas hold it.
func seedFor(t *testing.T, store twitchoauth.TokenStore, fake *faketwitch.Server, clientID, user, key string, expired bool) *oauth2.Token {
	t.Helper()
	access, refresh := fake.IssueToken(clientID, user, []string{"chat:read"}, 0)
	expiry := time.Now().Add(4 * time.Hour)
	if expired {
		fake.ExpireAccessToken(access)
		expiry = time.Now().Add(-time.Minute)
	}
	st := &twitchoauth.StoredToken{AccessToken: access, RefreshToken: refresh, Expiry: expiry,
		Scopes: []twitchoauth.Scope{twitchoauth.ScopeChatRead}, UserID: user, ClientID: clientID}
	if err := store.Save(t.Context(), key, st); err != nil {
		t.Fatal(err)
	}
	return st.Token()
}

func testLoadMissing(t *testing.T, open Open) {
	store := open(t)(t)
	if _, err := store.Load(t.Context(), "nobody"); !errors.Is(err, twitchoauth.ErrTokenNotFound) {
		t.Errorf("Load of a missing key: err = %v, want ErrTokenNotFound", err)
	}
}

func testSaveLoad(t *testing.T, open Open) {
	connect := open(t)
	a, b := connect(t), connect(t)
	ctx := t.Context()
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	want := &twitchoauth.StoredToken{AccessToken: "acc", RefreshToken: "ref", Expiry: exp,
		Scopes: []twitchoauth.Scope{twitchoauth.ScopeChatRead, "future:scope"}, UserID: "1", Login: "one", ClientID: "cid"}
	if err := a.Save(ctx, "1", want); err != nil {
		t.Fatal(err)
	}
	if err := a.Save(ctx, "2", &twitchoauth.StoredToken{AccessToken: "other"}); err != nil {
		t.Fatal(err)
	}
	got, err := b.Load(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != want.AccessToken || got.RefreshToken != want.RefreshToken || !got.Expiry.Equal(exp) ||
		fmt.Sprint(got.Scopes) != fmt.Sprint(want.Scopes) || got.UserID != "1" || got.Login != "one" || got.ClientID != "cid" {
		t.Errorf("Load = %+v, want %+v", got, want)
	}
	if other, err := b.Load(ctx, "2"); err != nil || other.AccessToken != "other" {
		t.Errorf("key 2: %+v, %v", other, err)
	}
	if err := b.Save(ctx, "1", &twitchoauth.StoredToken{AccessToken: "new"}); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Load(ctx, "1"); err != nil || got.AccessToken != "new" || got.RefreshToken != "" {
		t.Errorf("after overwrite: %+v, %v", got, err)
	}
}

func testLockExclusive(t *testing.T, open Open) {
	connect := open(t)
	a, b := connect(t), connect(t)
	unlock, err := a.Lock(t.Context(), "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.Lock(ctx, "k", time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock of a held key: err = %v, want it to wait until ctx ends", err)
	}
	// Another key is free meanwhile.
	other, err := b.Lock(t.Context(), "k2", time.Minute)
	if err != nil {
		t.Fatalf("Lock of another key: %v", err)
	}
	got := make(chan error, 1)
	go func() {
		u, err := b.Lock(t.Context(), "k", time.Minute)
		if err == nil {
			err = u()
		}
		got <- err
	}()
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Errorf("Lock after unlock: %v", err)
	}
	if err := other(); err != nil {
		t.Error(err)
	}
}

func testLockLease(t *testing.T, open Open) {
	connect := open(t)
	a, b := connect(t), connect(t)
	if _, err := a.Lock(t.Context(), "k", 100*time.Millisecond); err != nil { // never released
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	unlock, err := b.Lock(ctx, "k", time.Minute)
	if err != nil {
		t.Fatalf("Lock after the holder's lease: %v", err)
	}
	// The first holder's late unlock must not free the new holder's lock; it cannot be called
	// here (it was dropped), so check exclusivity still holds.
	ctx2, cancel2 := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel2()
	if _, err := a.Lock(ctx2, "k", time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("lock taken over after the lease is not exclusive: %v", err)
	}
	if err := unlock(); err != nil {
		t.Error(err)
	}
}

// testReplicasRefreshOnce: five replicas, each with its own connection, call Token on one expired
// token together: one refresh reaches Twitch and all five end with the same new token.
func testReplicasRefreshOnce(t *testing.T, open Open) {
	c, fake := Twitch(t)
	connect := open(t)
	held := seed(t, connect(t), fake, faketwitch.UserID)
	// A slow token endpoint makes the replicas overlap for certain.
	fake.Fail("token", faketwitch.Fault{Delay: 50 * time.Millisecond, Pass: true})

	const replicas = 5
	var wg sync.WaitGroup
	tokens := make([]string, replicas)
	errs := make([]error, replicas)
	start := make(chan struct{})
	for i := range replicas {
		src := twitchoauth.NewStoreTokenSource(c, connect(t), faketwitch.UserID, held)
		wg.Go(func() {
			<-start
			tok, err := src.Token()
			if err == nil {
				tokens[i] = tok.AccessToken
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := fake.CountGrant("refresh_token"); n != 1 {
		t.Errorf("%d refresh requests reached Twitch, want 1", n)
	}
	for i, tok := range tokens {
		if tok != tokens[0] || tok == held.AccessToken {
			t.Errorf("replica %d holds %q, replica 0 %q", i, tok, tokens[0])
		}
	}
	st, err := connect(t).Load(t.Context(), faketwitch.UserID)
	if err != nil || st.AccessToken != tokens[0] {
		t.Errorf("store holds %+v, %v", st, err)
	}
}

// testManyUsers: 100 users' expired tokens, refreshed at once, each under its own key; a lock held
// on one user's key delays no other user.
func testManyUsers(t *testing.T, open Open) {
	c, fake := Twitch(t)
	connect := open(t)
	store := connect(t)
	const users = 100
	srcs := make([]*twitchoauth.UserTokenSource, users)
	for i := range users {
		id := fmt.Sprint(1000 + i)
		fake.AddUser(id, "user"+id, "")
		srcs[i] = twitchoauth.NewStoreTokenSource(c, store, id, seed(t, store, fake, id))
	}
	// User 0's lock is held elsewhere for the whole refresh of the others.
	unlock, err := connect(t).Lock(t.Context(), "1000", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	tokens := make([]string, users)
	errs := make([]error, users)
	for i := 1; i < users; i++ {
		wg.Go(func() {
			tok, err := srcs[i].Token()
			if err == nil {
				tokens[i] = tok.AccessToken
			}
			errs[i] = err
		})
	}
	wg.Wait() // would hang here if one user's lock held up another
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	tok, err := srcs[0].Token()
	if err != nil {
		t.Fatal(err)
	}
	tokens[0] = tok.AccessToken
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := fake.CountGrant("refresh_token"); n != users {
		t.Errorf("%d refresh requests, want %d", n, users)
	}
	for i := range users {
		id := fmt.Sprint(1000 + i)
		st, err := store.Load(t.Context(), id)
		if err != nil || st.AccessToken != tokens[i] || st.UserID != id {
			t.Errorf("user %s: store holds %+v, %v; source %q", id, st, err, tokens[i])
		}
		if v, err := c.ValidateToken(t.Context(), tokens[i]); err != nil || v.UserID != id {
			t.Errorf("user %s: token validates as %+v, %v", id, v, err)
		}
	}
}

// testDeadHolder: a replica that took the lock and died mid-refresh (the lock is never released)
// holds the others up only until its lease ends; then one of them refreshes.
func testDeadHolder(t *testing.T, open Open) {
	c, fake := Twitch(t)
	connect := open(t)
	held := seed(t, connect(t), fake, faketwitch.UserID)
	if _, err := connect(t).Lock(t.Context(), faketwitch.UserID, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		src := twitchoauth.NewStoreTokenSource(c, connect(t), faketwitch.UserID, held)
		wg.Go(func() { _, errs[i] = src.Token() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := fake.CountGrant("refresh_token"); n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
}

// testBindThroughStore: the storage helper keeps its token in the store: a login when there is
// none, then a refresh that a second helper adopts.
func testBindThroughStore(t *testing.T, open Open) {
	c, fake := Twitch(t)
	connect := open(t)
	logins := 0
	helper := func() *twitchoauth.UserAuthenticationStorageHelper {
		h := twitchoauth.NewUserAuthenticationStorageHelper(c, []twitchoauth.Scope{twitchoauth.ScopeChatRead})
		h.Store, h.StoreKey = connect(t), "bot"
		h.AuthGenerator = func(ctx context.Context, c *twitchoauth.Client, scopes []twitchoauth.Scope) (*oauth2.Token, error) {
			logins++
			access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, []string{"chat:read"}, 0)
			return &oauth2.Token{AccessToken: access, RefreshToken: refresh}, nil
		}
		return h
	}
	first, err := helper().Bind(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if logins != 1 {
		t.Fatalf("%d logins for an empty store, want 1", logins)
	}
	refreshed, err := first.ForceRefresh(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	second, err := helper().Bind(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := second.Token()
	if err != nil || tok.AccessToken != refreshed.AccessToken || logins != 1 {
		t.Errorf("second helper holds %v, %v after %d logins; want the refreshed token", tok, err, logins)
	}
}

// testDelete: a deleted token is gone for every replica, other keys stay, deleting a missing key
// is no error, and the key can be saved again.
func testDelete(t *testing.T, open Open) {
	connect := open(t)
	a, b := connect(t), connect(t)
	ctx := t.Context()
	for _, k := range []string{"1", "2"} {
		if err := a.Save(ctx, k, &twitchoauth.StoredToken{AccessToken: "acc" + k}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Delete(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(ctx, "1"); !errors.Is(err, twitchoauth.ErrTokenNotFound) {
		t.Errorf("Load after Delete: err = %v, want ErrTokenNotFound", err)
	}
	if st, err := b.Load(ctx, "2"); err != nil || st.AccessToken != "acc2" {
		t.Errorf("other key after Delete: %+v, %v", st, err)
	}
	for _, k := range []string{"1", "never-saved"} {
		if err := b.Delete(ctx, k); err != nil {
			t.Errorf("Delete of missing key %q: %v", k, err)
		}
	}
	// A held lock neither blocks Delete nor breaks: the key can be saved again and locked after.
	unlock, err := a.Lock(ctx, "2", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "2"); err != nil {
		t.Fatal(err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if err := b.Save(ctx, "1", &twitchoauth.StoredToken{AccessToken: "again"}); err != nil {
		t.Fatal(err)
	}
	if st, err := a.Load(ctx, "1"); err != nil || st.AccessToken != "again" {
		t.Errorf("saved again after Delete: %+v, %v", st, err)
	}
	unlock, err = b.Lock(ctx, "2", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
}

// testKeys: Keys lists exactly the keys that hold a token, for every replica: not locks, not
// deleted keys, and user IDs as they were saved.
func testKeys(t *testing.T, open Open) {
	connect := open(t)
	a := connect(t)
	b, ok := connect(t).(twitchoauth.KeyLister)
	if !ok {
		t.Skip("the store does not list its keys (twitchoauth.KeyLister): replicas do not see each other's users")
	}
	ctx := t.Context()
	if keys, err := b.Keys(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("Keys of an empty store = %q, %v", keys, err)
	}
	want := map[string]bool{}
	for i := range 150 { // more than one page of a paged listing
		k := fmt.Sprint(100000 + i)
		if err := a.Save(ctx, k, &twitchoauth.StoredToken{AccessToken: "acc", UserID: k}); err != nil {
			t.Fatal(err)
		}
		want[k] = true
	}
	for _, k := range []string{"100003", "100004"} {
		if err := a.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
		delete(want, k)
	}
	unlock, err := a.Lock(ctx, "locked-only", time.Minute) // a lock without a token is no key
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	unlock2, err := a.Lock(ctx, "100000", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock2()
	keys, err := b.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, k := range keys {
		if got[k] {
			t.Errorf("key %q listed twice", k)
		}
		got[k] = true
	}
	for k := range want {
		if !got[k] {
			t.Errorf("key %q missing from Keys", k)
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("Keys lists %q, which holds no token", k)
		}
	}
}

// implements returns s as T, one of the optional store interfaces, and skips the test when s is
// not one.
func implements[T any](t *testing.T, s twitchoauth.TokenStore) T {
	t.Helper()
	v, ok := s.(T)
	if !ok {
		t.Skipf("the store does not implement %v", reflect.TypeFor[T]())
	}
	return v
}
