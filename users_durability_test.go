package twitchoauth

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"weak"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// storeUsers stores a token for each of ids in store, as another replica would have.
func storeUsers(t testing.TB, store TokenStore, ids []string) {
	t.Helper()
	for _, id := range ids {
		st := &StoredToken{AccessToken: "a" + id, RefreshToken: "r" + id, Expiry: time.Now().Add(4 * time.Hour),
			UserID: id, ClientID: faketwitch.ClientID, RefreshIssuedAt: time.Now()}
		if err := store.Save(context.Background(), id, st); err != nil {
			t.Fatal(err)
		}
	}
}

// TestUserTokensRemoveLetsGo: removed users are let go of at once while Run runs, not kept until
// their slot in the period comes: their sources become unreachable. Also when the same ID is
// added again meanwhile.
func TestUserTokensRemoveLetsGo(t *testing.T) {
	c, _ := newTestClient(t)
	store := newMemStore()
	users := ids(4000)
	storeUsers(t, store, users)
	u := NewUserTokens(c, store)
	u.SyncEvery = time.Hour
	if err := u.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	stop := run(t, u)
	defer stop()
	var ptrs []weak.Pointer[UserTokenSource]
	for _, id := range users {
		src, err := u.Source(id)
		if err != nil {
			t.Fatal(err)
		}
		ptrs = append(ptrs, weak.Make(src))
	}
	for _, id := range users {
		if err := u.Remove(t.Context(), id, false); err != nil {
			t.Fatal(err)
		}
	}
	// A tenth come back under the same IDs: their old entries must go all the same.
	storeUsers(t, store, users[:400])
	if err := u.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		alive := 0
		for _, p := range ptrs {
			if p.Value() != nil {
				alive++
			}
		}
		if alive == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d removed users' sources still reachable", alive, len(ptrs))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(u.Users()); n != 400 {
		t.Errorf("%d users registered, want the 400 added again", n)
	}
}

// TestUserTokensRemoveOnlyTheirs: Remove refuses an empty user ID, and a key whose stored token is
// not that user's (the storage helper's own file, say): nothing is deleted or revoked.
func TestUserTokensRemoveOnlyTheirs(t *testing.T) {
	c, fake := newTestClient(t)
	dir := t.TempDir()
	store := &FileStore{Path: filepath.Join(dir, "user_token.json")}
	access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, 0)
	// The storage helper's file (key "") and a token saved under a key that names another user.
	for key, st := range map[string]*StoredToken{
		"":    {AccessToken: access, RefreshToken: refresh},
		"999": {AccessToken: access, RefreshToken: refresh, UserID: faketwitch.UserID},
	} {
		if err := store.Save(t.Context(), key, st); err != nil {
			t.Fatal(err)
		}
	}
	u := NewUserTokens(c, store)
	for _, key := range []string{"", "999"} {
		if err := u.Remove(t.Context(), key, true); err == nil {
			t.Errorf("Remove(%q) = nil; want an error", key)
		}
		if _, err := store.Load(t.Context(), key); err != nil {
			t.Errorf("key %q after Remove: %v; want it left alone", key, err)
		}
	}
	if n := fake.CountRequests("revoke"); n != 0 {
		t.Errorf("%d revokes; want none", n)
	}
	if info, _ := fake.TokenInfo(access); !info.Live {
		t.Error("the token was revoked")
	}
	if _, err := os.Stat(filepath.Join(dir, "user_token.json")); err != nil {
		t.Errorf("the helper's file: %v", err)
	}
	// A user the store holds under their own ID is removed, known to the registry or not.
	if err := store.Save(t.Context(), faketwitch.UserID, &StoredToken{AccessToken: access, RefreshToken: refresh, UserID: faketwitch.UserID}); err != nil {
		t.Fatal(err)
	}
	if err := u.Remove(t.Context(), faketwitch.UserID, false); err != nil {
		t.Errorf("Remove of a stored user: %v", err)
	}
	if _, err := store.Load(t.Context(), faketwitch.UserID); !errors.Is(err, ErrTokenNotFound) {
		t.Errorf("after Remove: %v, want ErrTokenNotFound", err)
	}
}

// publicBubble is a runBubble whose app is the fake's public client.
func publicBubble(t testing.TB) *runBubble {
	b := newRunBubble(t)
	b.c.ClientID, b.c.ClientSecret = faketwitch.PublicClientID, ""
	return b
}

// TestUserTokensRenewsLapsingRefreshToken: Twitch lets a public client's refresh token lapse after
// 30 days unused. Run renews it before, for a user the bot has not needed for weeks, and
// RefreshTokenExpiry moves ahead with it.
func TestUserTokensRenewsLapsingRefreshToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := publicBubble(t)
		access, refresh := b.fake.IssueToken(faketwitch.PublicClientID, faketwitch.UserID, []string{"chat:read"}, 0)
		u := NewUserTokens(b.c, b.store)
		u.SyncEvery = time.Hour
		if _, err := u.AddUserForToken(t.Context(), &oauth2.Token{AccessToken: access, RefreshToken: refresh}); err != nil {
			t.Fatal(err)
		}
		first, err := u.RefreshTokenExpiry(t.Context(), faketwitch.UserID)
		if err != nil || first.IsZero() {
			t.Fatalf("RefreshTokenExpiry = %v, %v", first, err)
		}
		stop := run(t, u)
		time.Sleep(35 * 24 * time.Hour)
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		src, err := u.Source(faketwitch.UserID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := src.Token(); err != nil {
			t.Errorf("after 35 days unused: %v; want the refresh token renewed before it lapsed", err)
		}
		if later, err := u.RefreshTokenExpiry(t.Context(), faketwitch.UserID); err != nil || !later.After(first) {
			t.Errorf("RefreshTokenExpiry = %v, %v; want later than %v", later, err, first)
		}
		if n := b.fake.CountGrant("refresh_token"); n < 2 || n > 4 {
			t.Errorf("%d refreshes in 35 days, want a renewal every 20 days or so and the last use's", n)
		}
	})
}

// TestUserTokensRunHonoursRetryAfter: after Twitch answered 429 with Retry-After, Run neither
// validates nor refreshes the user again before the wait is over, however short its own backoff.
func TestUserTokensRunHonoursRetryAfter(t *testing.T) {
	for _, endpoint := range []string{"validate", "token"} {
		t.Run(endpoint, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newRunBubble(t)
				access, refresh := b.fake.IssueToken(b.c.ClientID, faketwitch.UserID, []string{"chat:read"}, 0)
				u := NewUserTokens(b.c, b.store)
				u.SyncEvery = time.Hour
				if _, err := u.AddUserForToken(t.Context(), &oauth2.Token{AccessToken: access, RefreshToken: refresh}); err != nil {
					t.Fatal(err)
				}
				b.fake.ExpireAccessToken(access) // the next validation says 401: a refresh follows
				b.fake.Fail(endpoint, faketwitch.Fault{Status: http.StatusTooManyRequests,
					Body: `{"status":429,"message":"Too Many Requests"}`, Header: map[string]string{"Retry-After": "1200"}})
				b.fake.ResetRequests()
				stop := run(t, u)
				defer stop()
				// The user's slot comes within the hour.
				for b.fake.CountRequests(endpoint) == 0 {
					time.Sleep(time.Second)
				}
				time.Sleep(19*time.Minute + 50*time.Second)
				if n := b.fake.CountRequests(endpoint); n != 1 {
					t.Errorf("%d %s requests within the 20 minutes Twitch asked to wait, want 1", n, endpoint)
				}
				time.Sleep(2 * time.Minute)
				if n := b.fake.CountRequests(endpoint); n != 2 {
					t.Errorf("%d %s requests once the wait was over, want 2", n, endpoint)
				}
			})
		})
	}
}

// TestUserTokensKeepsUserInDoubt: a replica that finds another holder's mark on the refresh
// token and no new pair coming tells OnRevoked why, keeps the user and the stored record, and
// takes up the pair when the holder stores it at last.
func TestUserTokensKeepsUserInDoubt(t *testing.T) {
	_, fake := newTestClient(t)
	c := publicClient(fake)
	store := &flakyStore{FileStore: &FileStore{Path: filepath.Join(t.TempDir(), "user_token.json")}}
	seedStored(t, store, fake, c, faketwitch.UserID)
	store.failing.Store(1)
	holder := replica(c, store, faketwitch.UserID)
	tok, err := holder.Token()
	if err != nil || !holder.Pending() {
		t.Fatalf("holder: %v, pending %v", err, holder.Pending())
	}

	u := NewUserTokens(c, store.FileStore)
	var mu sync.Mutex
	var told []error
	u.OnRevoked = func(id string, err error) {
		mu.Lock()
		told = append(told, err)
		mu.Unlock()
	}
	if err := u.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	src, err := u.Source(faketwitch.UserID)
	if err != nil {
		t.Fatal(err)
	}
	src.state().markBound = time.Second
	if _, err := src.Token(); !errors.Is(err, ErrRefreshInDoubt) {
		t.Fatalf("Token() = %v, want the doubt", err)
	}
	mu.Lock()
	if len(told) != 1 || !errors.Is(told[0], ErrRefreshInDoubt) {
		t.Errorf("OnRevoked heard %v, want the doubt once", told)
	}
	mu.Unlock()
	if _, err := store.Load(t.Context(), faketwitch.UserID); err != nil {
		t.Errorf("stored record: %v; want it kept", err)
	}
	if got := u.Users(); len(got) != 1 {
		t.Errorf("users %v; want the user kept", got)
	}
	// A pass of Run meanwhile changes nothing and sends nothing.
	u.mu.RLock()
	e := u.users[faketwitch.UserID]
	u.mu.RUnlock()
	if out := u.validateUser(t.Context(), e); out != retry {
		t.Errorf("validation while in doubt: %v, want a retry", out)
	}
	wantNoReuse(t, fake, 1)
	// The holder's pair arrives; the next pass takes it up.
	if err := holder.FlushPending(t.Context()); err != nil {
		t.Fatal(err)
	}
	if out := u.validateUser(t.Context(), e); out != validated {
		t.Errorf("validation after the pair was stored: %v", out)
	}
	if got, err := src.Token(); err != nil || got.AccessToken != tok.AccessToken {
		t.Errorf("Token() = %v, %v; want the holder's %q", got, err, tok.AccessToken)
	}
	wantNoReuse(t, fake, 1)
}

// TestUserTokensRunStoresPendingSoon: a pair the store did not take when the program's own
// Token call refreshed it is stored by Run within seconds, not at the user's slot an hour later:
// until then, other replicas would find the refresh token in doubt.
func TestUserTokensRunStoresPendingSoon(t *testing.T) {
	_, fake := newTestClient(t)
	c := publicClient(fake)
	store := &flakyStore{FileStore: &FileStore{Path: filepath.Join(t.TempDir(), "user_token.json")}}
	seedStored(t, store, fake, c, faketwitch.UserID)
	u := NewUserTokens(c, store)
	if err := u.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	stop := run(t, u)
	defer stop()
	src, err := u.Source(faketwitch.UserID)
	if err != nil {
		t.Fatal(err)
	}
	store.failing.Store(1)
	tok, err := src.Token()
	if err != nil || !src.Pending() {
		t.Fatalf("Token() = %v, %v, pending %v", tok, err, src.Pending())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st, err := store.Load(t.Context(), faketwitch.UserID); err == nil && st.AccessToken == tok.AccessToken && st.Spending == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not store the pending pair within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	wantNoReuse(t, fake, 1)
}

// TestAddUserLostRefreshInDoubt: a public client's token handed to AddUserForToken that must be
// refreshed first, whose refresh answer is lost, is reported in doubt: the caller learns that its
// refresh token may be spent, not that it may try again with it.
func TestAddUserLostRefreshInDoubt(t *testing.T) {
	_, fake := newTestClient(t)
	c := publicClient(fake)
	access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, []string{"chat:read"}, 0)
	fake.ExpireAccessToken(access)
	fake.Fail("token", faketwitch.Fault{Lose: true, Count: 1})
	u := NewUserTokens(c, newMemStore())
	_, err := u.AddUserForToken(t.Context(), &oauth2.Token{AccessToken: access, RefreshToken: refresh})
	if !errors.Is(err, ErrRefreshInDoubt) {
		t.Errorf("AddUserForToken = %v; want an error that Is ErrRefreshInDoubt", err)
	}
}

// downStore is a memStore that is unreachable while down is set: its Lock, Load and Save fail,
// or with savesOnly, its Save alone.
type downStore struct {
	*memStore
	down      atomic.Bool
	savesOnly bool
}

var errStoreDown = errors.New("store unreachable")

func (d *downStore) Lock(ctx context.Context, key string, ttl time.Duration) (func() error, error) {
	if d.down.Load() && !d.savesOnly {
		return nil, errStoreDown
	}
	return d.memStore.Lock(ctx, key, ttl)
}

func (d *downStore) Load(ctx context.Context, key string) (*StoredToken, error) {
	if d.down.Load() && !d.savesOnly {
		return nil, errStoreDown
	}
	return d.memStore.Load(ctx, key)
}

func (d *downStore) Save(ctx context.Context, key string, st *StoredToken) error {
	if d.down.Load() {
		return errStoreDown
	}
	return d.memStore.Save(ctx, key, st)
}

// TestAddUserHoldsPairTheStoreRefused: adding a user whose handed-in token Twitch rejected refreshes
// it, spending a public client's refresh token; when the store then refuses the new pair (its save
// fails, or it is unreachable altogether), the pair is not lost: the user is added with it, the
// error says so with the Validation, the token is used, and the pair is stored once the store is
// back, keeping the intents it holds, with OnRefresh told then. Nothing is sent twice. Adding with
// a code whose exchange the store then refuses is kept the same way.
func TestAddUserHoldsPairTheStoreRefused(t *testing.T) {
	for _, tc := range []struct {
		name      string
		savesOnly bool
		code      bool
	}{{"save fails", true, false}, {"store unreachable", false, false}, {"code, store unreachable", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			c, fake := newTestClient(t)
			if !tc.code {
				c = publicClient(fake) // its refresh tokens work once
			}
			store := &downStore{memStore: newMemStore(), savesOnly: tc.savesOnly}
			access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, []string{"chat:read"}, 0)
			fake.ExpireAccessToken(access)
			store.Save(t.Context(), faketwitch.UserID, &StoredToken{AccessToken: access, RefreshToken: refresh,
				Expiry: time.Now().Add(-time.Minute), UserID: faketwitch.UserID, ClientID: c.ClientID, Intents: []string{"chat"}})
			u := NewUserTokens(c, store)
			var told []string
			u.OnRefresh = func(_ string, tok *oauth2.Token) { told = append(told, tok.AccessToken) }
			store.down.Store(true)

			var v *Validation
			var err error
			if tc.code {
				v, err = u.AddUserForCode(t.Context(), authorizeCode(t, fake, c), faketwitch.RedirectURL, "chatbot:1")
			} else {
				v, err = u.AddUserForToken(t.Context(), &oauth2.Token{AccessToken: access, RefreshToken: refresh}, "chatbot:1")
			}
			if !errors.Is(err, errStoreDown) || v == nil || v.UserID != faketwitch.UserID {
				t.Fatalf("add user with the store down = %+v, %v; want the Validation and the store's error", v, err)
			}
			src, err := u.Source(faketwitch.UserID)
			if err != nil {
				t.Fatalf("the user was not added: %v", err)
			}
			held, err := src.Token()
			if err != nil || held.AccessToken == access || !src.Pending() {
				t.Fatalf("Token() = %v, %v (pending %v); want the new pair, held", held, err, src.Pending())
			}
			if len(told) != 0 {
				t.Errorf("OnRefresh told of a pair not stored yet")
			}

			store.down.Store(false)
			if err := src.FlushPending(t.Context()); err != nil {
				t.Fatalf("FlushPending with the store back: %v", err)
			}
			st := store.stored(faketwitch.UserID)
			if st == nil || st.AccessToken != held.AccessToken || st.RefreshToken != held.RefreshToken {
				t.Fatalf("store holds %+v; want the held pair", st)
			}
			if !slices.Equal(st.Intents, []string{"chat", "chatbot:1"}) {
				t.Errorf("stored intents %q; want the stored one kept and the new one added", st.Intents)
			}
			if !slices.Equal(told, []string{held.AccessToken}) {
				t.Errorf("OnRefresh told %q; want the held token once, once stored", told)
			}
			refreshes := 1 // of the handed-in token
			if tc.code {
				refreshes = 0
			}
			wantNoReuse(t, fake, refreshes)
			if tok, err := src.Token(); err != nil || tok.AccessToken != held.AccessToken || src.Pending() {
				t.Errorf("after the store took it: %v, %v, pending %v", tok, err, src.Pending())
			}
		})
	}
}

// TestAddUserHeldPairSuperseded: a pair an added user holds is not stored over a token another
// replica stored for the user meanwhile (a newer login's): the held pair is dropped from the queue,
// and the stored token is left as it is.
func TestAddUserHeldPairSuperseded(t *testing.T) {
	_, fake := newTestClient(t)
	c := publicClient(fake)
	store := &downStore{memStore: newMemStore(), savesOnly: true}
	access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, 0)
	fake.ExpireAccessToken(access)
	u := NewUserTokens(c, store)
	store.down.Store(true)
	if _, err := u.AddUserForToken(t.Context(), &oauth2.Token{AccessToken: access, RefreshToken: refresh}); !errors.Is(err, errStoreDown) {
		t.Fatalf("AddUserForToken = %v; want the store's error", err)
	}
	store.down.Store(false)
	newer := &StoredToken{AccessToken: "newer", RefreshToken: "newer-r", Expiry: time.Now().Add(4 * time.Hour), UserID: faketwitch.UserID}
	store.Save(t.Context(), faketwitch.UserID, newer)
	src, _ := u.Source(faketwitch.UserID)
	if err := src.FlushPending(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := store.stored(faketwitch.UserID); st.AccessToken != "newer" || src.Pending() {
		t.Errorf("store holds %q, pending %v; want the newer token kept and nothing pending", st.AccessToken, src.Pending())
	}
}

// TestUserTokensRunStoresAddedPairSoon: a user added while Run runs, whose new pair the store
// refused, has it stored within seconds of the store coming back, not at the user's slot, up to
// an hour later: Run takes the new user and the pair to store in the same pass.
func TestUserTokensRunStoresAddedPairSoon(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newRunBubble(t)
		store := &downStore{memStore: newMemStore(), savesOnly: true}
		u := NewUserTokens(b.c, store)
		stop := run(t, u)
		defer stop()
		synctest.Wait()
		tok := newUser(b.fake, "100", 0)
		b.fake.ExpireAccessToken(tok.AccessToken) // refreshed as it is added
		store.down.Store(true)
		if _, err := u.AddUserForToken(t.Context(), tok); !errors.Is(err, errStoreDown) {
			t.Fatalf("AddUserForToken = %v; want the store's error", err)
		}
		store.down.Store(false)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		src, err := u.Source("100")
		if err != nil {
			t.Fatal(err)
		}
		if st := store.stored("100"); st == nil || src.Pending() {
			t.Errorf("10 s after the store came back: stored %v, pending %v; want the pair stored", st != nil, src.Pending())
		}
	})
}
