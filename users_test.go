package twitchoauth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// memStore is a TokenStore in memory for the registry's tests: its locks have no lease (nothing in
// these tests dies holding one). It counts what it is asked.
type memStore struct {
	mu     sync.RWMutex
	tokens map[string]StoredToken
	locks  map[string]chan struct{}
	saves  atomic.Int64
	found  atomic.Int64 // Loads that found a token
}

func newMemStore() *memStore {
	return &memStore{tokens: map[string]StoredToken{}, locks: map[string]chan struct{}{}}
}

func (m *memStore) Load(ctx context.Context, key string) (*StoredToken, error) {
	m.mu.RLock()
	st, ok := m.tokens[key]
	m.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: key %q", ErrTokenNotFound, key)
	}
	m.found.Add(1)
	st.Scopes, st.Intents = slices.Clone(st.Scopes), slices.Clone(st.Intents)
	return &st, nil
}

func (m *memStore) Save(ctx context.Context, key string, tok *StoredToken) error {
	st := *tok
	st.Scopes, st.Intents = slices.Clone(st.Scopes), slices.Clone(st.Intents)
	m.mu.Lock()
	m.tokens[key] = st
	m.mu.Unlock()
	m.saves.Add(1)
	return nil
}

func (m *memStore) Lock(ctx context.Context, key string, ttl time.Duration) (func() error, error) {
	m.mu.Lock()
	ch := m.locks[key]
	if ch == nil {
		ch = make(chan struct{}, 1)
		m.locks[key] = ch
	}
	m.mu.Unlock()
	select {
	case ch <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return sync.OnceValue(func() error { <-ch; return nil }), nil
}

func (m *memStore) Delete(ctx context.Context, key string) error {
	m.mu.Lock()
	delete(m.tokens, key)
	m.mu.Unlock()
	return nil
}

func (m *memStore) Keys(ctx context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]string, 0, len(m.tokens))
	for k := range m.tokens {
		keys = append(keys, k)
	}
	return keys, nil
}

// stored returns what the store holds for key, or nil.
func (m *memStore) stored(key string) *StoredToken {
	st, err := m.Load(context.Background(), key)
	if err != nil {
		return nil
	}
	return st
}

// newUser registers a user with the fake and issues them a token of c's app.
func newUser(fake *faketwitch.Server, id string, ttl time.Duration) *oauth2.Token {
	fake.AddUser(id, "user"+id, "")
	access, refresh := fake.IssueToken(faketwitch.ClientID, id, []string{"chat:read", "chat:edit"}, ttl)
	return &oauth2.Token{AccessToken: access, RefreshToken: refresh}
}

// seedStore stores users' tokens as a registry would have, without validating them now (as after
// a restart): their ValidatedAt is zero.
func seedStore(t testing.TB, fake *faketwitch.Server, store TokenStore, ids []string) {
	t.Helper()
	for _, id := range ids {
		tok := newUser(fake, id, 0)
		st := &StoredToken{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(4 * time.Hour),
			Scopes: []Scope{ScopeChatRead, ScopeChatEdit}, UserID: id, Login: "user" + id, ClientID: faketwitch.ClientID}
		if err := store.Save(context.Background(), id, st); err != nil {
			t.Fatal(err)
		}
	}
}

func TestUserTokensAddAndSource(t *testing.T) {
	c, fake := newTestClient(t)
	store := newMemStore()
	u := NewUserTokens(c, store)
	bot, broadcaster := newUser(fake, "100", 0), newUser(fake, "200", 0)
	v, err := u.AddUserForToken(t.Context(), bot, "chat")
	if err != nil {
		t.Fatal(err)
	}
	if v.UserID != "100" || v.Login != "user100" {
		t.Errorf("Validation = %+v", v)
	}
	if _, err := u.AddUserForToken(t.Context(), broadcaster, "chatbot:200"); err != nil {
		t.Fatal(err)
	}
	if got := u.Users(); !slices.Equal(got, []string{"100", "200"}) {
		t.Errorf("Users() = %q", got)
	}
	s1, err := u.Source("100")
	if err != nil {
		t.Fatal(err)
	}
	if s2, _ := u.Source("100"); s2 != s1 {
		t.Error("Source returned two sources for one user")
	}
	if s, err := u.SourceForIntent("chat"); err != nil || s != s1 {
		t.Errorf("SourceForIntent(chat) = %p, %v; want the bot's source %p", s, err, s1)
	}
	if s, err := u.SourceForIntent("chatbot:200"); err != nil || s == s1 {
		t.Errorf("SourceForIntent(chatbot:200) = %p, %v", s, err)
	}
	tok, err := s1.Token()
	if err != nil || tok.AccessToken != bot.AccessToken {
		t.Errorf("Token() = %v, %v", tok, err)
	}
	st := store.stored("100")
	if st == nil || st.UserID != "100" || st.Login != "user100" || st.ClientID != faketwitch.ClientID ||
		!slices.Equal(st.Intents, []string{"chat"}) || st.ValidatedAt.IsZero() || st.Expiry.IsZero() {
		t.Errorf("stored %+v", st)
	}
	for _, tc := range []struct {
		name string
		get  func() (*UserTokenSource, error)
	}{
		{"unknown user", func() (*UserTokenSource, error) { return u.Source("999") }},
		{"unknown intent", func() (*UserTokenSource, error) { return u.SourceForIntent("moderation") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.get(); !errors.Is(err, ErrTokenNotFound) {
				t.Errorf("err = %v, want ErrTokenNotFound", err)
			}
		})
	}
	// Adding the user again merges intents and hands the same source the new token.
	again := newUser(fake, "100", 0)
	if _, err := u.AddUserForToken(t.Context(), again, "whispers"); err != nil {
		t.Fatal(err)
	}
	if tok, _ := s1.Token(); tok.AccessToken != again.AccessToken {
		t.Errorf("after adding again the source holds %q, want the new token", tok.AccessToken)
	}
	if got := u.Intents("100"); !slices.Equal(got, []string{"chat", "whispers"}) {
		t.Errorf("intents %q", got)
	}
}

// TestUserTokensSourceSeesChanges: Source reads the users' map without the registry's lock once
// it has been called often enough; a user added or removed is found, or not, at once.
func TestUserTokensSourceSeesChanges(t *testing.T) {
	c, fake := newTestClient(t)
	u := NewUserTokens(c, newMemStore())
	// indexed calls Source until it reads the map without the lock.
	indexed := func(id string) {
		t.Helper()
		for range 2 {
			if _, err := u.Source(id); err != nil {
				t.Fatal(err)
			}
		}
		if u.index.Load() == nil {
			t.Fatal("Source still takes the lock after two calls over one user")
		}
	}
	if _, err := u.AddUserForToken(t.Context(), newUser(fake, "100", 0)); err != nil {
		t.Fatal(err)
	}
	indexed("100")
	if _, err := u.AddUserForToken(t.Context(), newUser(fake, "200", 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Source("200"); err != nil {
		t.Errorf("Source of a user added after the index was filled: %v", err)
	}
	indexed("200")
	if err := u.Remove(t.Context(), "100", false); err != nil {
		t.Fatal(err)
	}
	if src, err := u.Source("100"); !errors.Is(err, ErrTokenNotFound) {
		t.Errorf("Source of a user removed after the index was filled = %p, %v; want ErrTokenNotFound", src, err)
	}
}

// TestUserTokensSourceWhileChanging: Source reads the users' map without the registry's lock
// while users are added and removed; a change never writes the map Source reads (the race
// detector, or the runtime's own check, tells).
func TestUserTokensSourceWhileChanging(t *testing.T) {
	c, fake := newTestClient(t)
	u := NewUserTokens(c, newMemStore())
	if _, err := u.AddUserForToken(t.Context(), newUser(fake, "100", 0)); err != nil {
		t.Fatal(err)
	}
	tok := newUser(fake, "200", 0)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			if _, err := u.Source("100"); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 100 {
		u.Source("100") // fills the index
		if _, err := u.AddUserForToken(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
		u.Source("100")
		if err := u.Remove(t.Context(), "200", false); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
}

func TestUserTokensAddRejects(t *testing.T) {
	c, fake := newTestClient(t)
	u := NewUserTokens(c, newMemStore())
	appAccess, _ := fake.IssueToken(faketwitch.ClientID, "", nil, 0)
	otherAccess, _ := fake.IssueToken(faketwitch.PublicClientID, faketwitch.UserID, nil, 0)
	deadAccess, _ := fake.IssueToken(faketwitch.ClientID, faketwitch.UserID, nil, 0)
	fake.ExpireAccessToken(deadAccess)
	for _, tc := range []struct {
		name string
		tok  *oauth2.Token
		want error
	}{
		{"nil", nil, nil},
		{"empty", &oauth2.Token{}, nil},
		{"app token", &oauth2.Token{AccessToken: appAccess}, ErrInvalidToken},
		{"another client's", &oauth2.Token{AccessToken: otherAccess}, ErrInvalidToken},
		{"dead without refresh token", &oauth2.Token{AccessToken: deadAccess}, ErrInvalidToken},
		{"dead with a rejected refresh token", &oauth2.Token{AccessToken: deadAccess, RefreshToken: "bogus"}, ErrInvalidRefreshToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := u.AddUserForToken(t.Context(), tc.tok)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if tc.tok != nil && tc.tok.AccessToken != "" && strings.Contains(err.Error(), tc.tok.AccessToken) {
				t.Errorf("error quotes the token: %v", err)
			}
		})
	}
	if users := u.Users(); len(users) != 0 {
		t.Errorf("users %q after only rejected tokens", users)
	}
}

// TestUserTokensAddDeadTokenRefreshes: a token that died but whose refresh token works is
// refreshed on the way in, and the new pair is what is stored.
func TestUserTokensAddDeadTokenRefreshes(t *testing.T) {
	c, fake := newTestClient(t)
	store := newMemStore()
	u := NewUserTokens(c, store)
	tok := newUser(fake, "100", 0)
	fake.ExpireAccessToken(tok.AccessToken)
	if _, err := u.AddUserForToken(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	if st := store.stored("100"); st == nil || st.AccessToken == tok.AccessToken {
		t.Errorf("stored %+v, want the refreshed token", st)
	}
}

func TestUserTokensAddUserForCode(t *testing.T) {
	c, fake := newTestClient(t)
	u := NewUserTokens(c, newMemStore())
	v, err := u.AddUserForCode(t.Context(), authorizeCode(t, fake, c), faketwitch.RedirectURL, "chat")
	if err != nil {
		t.Fatal(err)
	}
	if v.UserID != faketwitch.UserID {
		t.Errorf("user %q", v.UserID)
	}
	if _, err := u.SourceForIntent("chat"); err != nil {
		t.Error(err)
	}
	if _, err := u.AddUserForCode(t.Context(), "", faketwitch.RedirectURL); err == nil {
		t.Error("empty code accepted")
	}
	if _, err := u.AddUserForCode(t.Context(), "sekrit-code", faketwitch.RedirectURL); err == nil || strings.Contains(err.Error(), "sekrit-code") {
		t.Errorf("bad code: err = %v", err)
	}
}

// TestUserTokensIntentMoves: an intent given to a second user is taken from the first, in the
// store too, so that a registry started later over the same store agrees.
func TestUserTokensIntentMoves(t *testing.T) {
	c, fake := newTestClient(t)
	store := newMemStore()
	u := NewUserTokens(c, store)
	if _, err := u.AddUserForToken(t.Context(), newUser(fake, "100", 0), "chat", "api"); err != nil {
		t.Fatal(err)
	}
	if _, err := u.AddUserForToken(t.Context(), newUser(fake, "200", 0), "chat"); err != nil {
		t.Fatal(err)
	}
	want, _ := u.Source("200")
	if s, err := u.SourceForIntent("chat"); err != nil || s != want {
		t.Errorf("chat is %p, %v; want user 200's source", s, err)
	}
	if got := store.stored("100").Intents; !slices.Equal(got, []string{"api"}) {
		t.Errorf("user 100's stored intents %q, want [api]", got)
	}
	later := NewUserTokens(c, store)
	if err := later.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	want, _ = later.Source("200")
	if s, err := later.SourceForIntent("chat"); err != nil || s != want {
		t.Errorf("after a restart chat is %p, %v; want user 200's", s, err)
	}
}

func TestUserTokensRemove(t *testing.T) {
	for _, revoke := range []bool{false, true} {
		t.Run(fmt.Sprint("revoke=", revoke), func(t *testing.T) {
			c, fake := newTestClient(t)
			store := newMemStore()
			u := NewUserTokens(c, store)
			tok := newUser(fake, "100", 0)
			if _, err := u.AddUserForToken(t.Context(), tok, "chat"); err != nil {
				t.Fatal(err)
			}
			src, _ := u.Source("100")
			if err := u.Remove(t.Context(), "100", revoke); err != nil {
				t.Fatal(err)
			}
			if store.stored("100") != nil {
				t.Error("token still stored")
			}
			if _, err := u.Source("100"); !errors.Is(err, ErrTokenNotFound) {
				t.Errorf("Source after Remove: %v", err)
			}
			if _, err := u.SourceForIntent("chat"); !errors.Is(err, ErrTokenNotFound) {
				t.Errorf("SourceForIntent after Remove: %v", err)
			}
			if _, err := src.Token(); !errors.Is(err, ErrTokenNotFound) {
				t.Errorf("the removed user's source: Token() err = %v, want ErrTokenNotFound", err)
			}
			_, err := c.ValidateToken(t.Context(), tok.AccessToken)
			if revoke != errors.Is(err, ErrInvalidToken) {
				t.Errorf("revoke=%v: the token validates with err = %v", revoke, err)
			}
			if err := u.Remove(t.Context(), "100", revoke); err != nil {
				t.Errorf("removing again: %v", err)
			}
		})
	}
}

// TestUserTokensRemoveRevokeFailureKeepsUser: when Twitch cannot be reached, Remove with revoke
// keeps the user (and the grant) and says so.
func TestUserTokensRemoveRevokeFailureKeepsUser(t *testing.T) {
	c, fake := newTestClient(t)
	store := newMemStore()
	u := NewUserTokens(c, store)
	if _, err := u.AddUserForToken(t.Context(), newUser(fake, "100", 0)); err != nil {
		t.Fatal(err)
	}
	fake.Fail("revoke", faketwitch.Fault{Status: http.StatusServiceUnavailable, Count: 1})
	if err := u.Remove(t.Context(), "100", true); err == nil {
		t.Fatal("Remove succeeded although the revoke failed")
	}
	if store.stored("100") == nil || !slices.Contains(u.Users(), "100") {
		t.Error("the user was removed although the grant was not revoked")
	}
}

// TestUserTokensOnRefresh: a refresh through a user's source calls OnRefresh with the user and the
// new token, once, and the store holds it.
func TestUserTokensOnRefresh(t *testing.T) {
	c, fake := newTestClient(t)
	store := newMemStore()
	u := NewUserTokens(c, store)
	type refresh struct {
		user string
		tok  *oauth2.Token
	}
	var mu sync.Mutex
	var got []refresh
	u.OnRefresh = func(userID string, tok *oauth2.Token) {
		mu.Lock()
		got = append(got, refresh{userID, tok})
		mu.Unlock()
	}
	if _, err := u.AddUserForToken(t.Context(), newUser(fake, "100", 0)); err != nil {
		t.Fatal(err)
	}
	src, _ := u.Source("100")
	stale, err := src.Token()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 10 { // ten callers that found the same token wanting
		wg.Go(func() {
			if _, err := src.ForceRefresh(t.Context(), stale); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// One for the user's first token, one for the refresh.
	if len(got) != 2 || got[1].user != "100" || got[1].tok.AccessToken != store.stored("100").AccessToken || got[0].tok.AccessToken != stale.AccessToken {
		t.Errorf("OnRefresh calls %+v; want the first token, then one for the stored refreshed token", got)
	}
	if n := fake.CountGrant("refresh_token"); n != 1 {
		t.Errorf("%d refreshes", n)
	}
}

// captureLog returns a Logger writing to a buffer, for tests that check what is logged.
func captureLog() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// hookStore is a memStore that runs a func before a Lock or a Keys, to stage what other replicas
// do in between.
type hookStore struct {
	*memStore
	beforeLock func(key string, n int) // n counts the Locks of key, from 1
	keys       func(keys []string) []string
	mu         sync.Mutex
	locks      map[string]int
}

func (h *hookStore) Lock(ctx context.Context, key string, ttl time.Duration) (func() error, error) {
	h.mu.Lock()
	if h.locks == nil {
		h.locks = map[string]int{}
	}
	h.locks[key]++
	n := h.locks[key]
	h.mu.Unlock()
	if h.beforeLock != nil {
		h.beforeLock(key, n)
	}
	return h.memStore.Lock(ctx, key, ttl)
}

func (h *hookStore) Keys(ctx context.Context) ([]string, error) {
	keys, err := h.memStore.Keys(ctx)
	if h.keys != nil {
		keys = h.keys(keys)
	}
	return keys, err
}

// TestUserTokensRevokedKeepsNewLogin: when a replica finds a user's grant gone while another
// replica has just stored the token of the user's new login, the new token stays in the store.
func TestUserTokensRevokedKeepsNewLogin(t *testing.T) {
	c, fake := newTestClient(t)
	mem := newMemStore()
	seedStore(t, fake, mem, []string{"100"})
	st := mem.stored("100")
	st.Expiry = time.Now().Add(-time.Minute)
	mem.Save(t.Context(), "100", st)
	fake.ExpireAccessToken(st.AccessToken)
	fake.RevokeRefreshToken(st.RefreshToken)
	relogin := newUser(fake, "100", 0)
	store := &hookStore{memStore: mem, beforeLock: func(key string, n int) {
		if n == 2 { // after the rejected refresh, before the revoked user is removed
			fresh := *st
			fresh.AccessToken, fresh.RefreshToken, fresh.Expiry = relogin.AccessToken, relogin.RefreshToken, time.Now().Add(time.Hour)
			mem.Save(context.Background(), key, &fresh)
		}
	}}
	u := NewUserTokens(c, store)
	var revoked atomic.Int32
	u.OnRevoked = func(string, error) { revoked.Add(1) }
	if err := u.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	src, _ := u.Source("100")
	if _, err := src.Token(); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Fatalf("Token() err = %v", err)
	}
	if got := mem.stored("100"); got == nil || got.AccessToken != relogin.AccessToken {
		t.Fatalf("the new login's token was removed from the store: %+v", got)
	}
	// The user logged in again: nothing to report, and the registry keeps them, with the new token.
	if revoked.Load() != 0 {
		t.Errorf("OnRevoked called %d times for a user who logged in again", revoked.Load())
	}
	again, err := u.Source("100")
	if err != nil {
		t.Fatalf("the user who logged in again left the registry: %v", err)
	}
	if tok, err := again.Token(); err != nil || tok.AccessToken != relogin.AccessToken {
		t.Errorf("Token() = %v, %v; want the new login's token", tok, err)
	}
}

// TestUserTokensRevokedDoesNotHoldCaller: the call that finds a grant gone returns when its ctx
// ends, even while another holds the user's store lock; Run's next pass removes the user.
func TestUserTokensRevokedDoesNotHoldCaller(t *testing.T) {
	c, fake := newTestClient(t)
	mem := newMemStore()
	seedStore(t, fake, mem, []string{"100"})
	st := mem.stored("100")
	st.Expiry = time.Now().Add(-time.Minute)
	mem.Save(t.Context(), "100", st)
	fake.RevokeRefreshToken(st.RefreshToken)
	// The refresh takes the lock first (1); before the revoked user's removal takes it (2), another
	// holder takes it and keeps it.
	held := make(chan func() error, 1)
	store := &hookStore{memStore: mem, beforeLock: func(key string, n int) {
		if n == 2 {
			unlock, err := mem.Lock(context.Background(), key, time.Minute)
			if err != nil {
				t.Error(err)
			}
			held <- unlock
		}
	}}
	u := NewUserTokens(c, store)
	var revoked atomic.Int32
	u.OnRevoked = func(string, error) { revoked.Add(1) }
	if err := u.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	src, _ := u.Source("100")
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { _, err := src.TokenContext(ctx); errc <- err }()
	unlock := <-held
	cancel()
	if err := <-errc; !errors.Is(err, ErrInvalidRefreshToken) {
		t.Fatalf("TokenContext = %v, want ErrInvalidRefreshToken", err)
	}
	if revoked.Load() != 1 {
		t.Errorf("OnRevoked called %d times, want 1", revoked.Load())
	}
	if mem.stored("100") == nil {
		t.Fatal("the store lost the token while another held its lock")
	}
	unlock()
	e := u.users["100"]
	if e == nil {
		t.Fatal("the user left the registry before their token left the store")
	}
	if got := u.validateUser(t.Context(), e); got != dropped || mem.stored("100") != nil {
		t.Errorf("Run's pass: outcome %v, stored %+v; want the user dropped and their token deleted", got, mem.stored("100"))
	}
}

// TestUserTokensSyncStaleListing: a listing that misses a user the store holds (the user was
// saved while it was taken) does not drop the user.
func TestUserTokensSyncStaleListing(t *testing.T) {
	c, fake := newTestClient(t)
	mem := newMemStore()
	seedStore(t, fake, mem, []string{"100", "200"})
	store := &hookStore{memStore: mem}
	u := NewUserTokens(c, store)
	if err := u.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	store.keys = func(keys []string) []string {
		return slices.DeleteFunc(keys, func(k string) bool { return k == "100" })
	}
	if err := u.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := u.Users(); !slices.Equal(got, []string{"100", "200"}) {
		t.Errorf("users after a stale listing: %q", got)
	}
	mem.Delete(t.Context(), "100") // now it is gone for real
	if err := u.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := u.Users(); !slices.Equal(got, []string{"200"}) {
		t.Errorf("users after the deletion: %q", got)
	}
}

// TestUserTokensSyncListsKeyTwice: a store may list a key twice (Redis's SCAN does); a listing
// that names one user twice and lacks another, deleted, still drops the deleted one: Sync looks
// for removed users when the listing holds fewer of the registered users than there are, and
// counts each user once.
func TestUserTokensSyncListsKeyTwice(t *testing.T) {
	c, fake := newTestClient(t)
	mem := newMemStore()
	seedStore(t, fake, mem, []string{"100", "200"})
	store := &hookStore{memStore: mem}
	u := NewUserTokens(c, store)
	if err := u.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	mem.Delete(t.Context(), "100")
	store.keys = func(keys []string) []string { return append(keys, "200") } // "200" twice
	if err := u.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := u.Users(); !slices.Equal(got, []string{"200"}) {
		t.Errorf("users after a listing with 200 twice and 100 deleted: %q; want 100 dropped", got)
	}
}

// cancelOnDelete is a memStore that cancels a context as it deletes a token.
type cancelOnDelete struct {
	*memStore
	cancel context.CancelFunc
}

func (c *cancelOnDelete) Delete(ctx context.Context, key string) error {
	err := c.memStore.Delete(ctx, key)
	c.cancel()
	return err
}

// TestUserTokensRemoveEndsSourceAfterCtx: a Remove whose ctx ends once the store has dropped the
// user (the caller gave up) still ends the user's source: it hands the token out no more.
func TestUserTokensRemoveEndsSourceAfterCtx(t *testing.T) {
	c, fake := newTestClient(t)
	store := &cancelOnDelete{memStore: newMemStore()}
	u := NewUserTokens(c, store)
	for _, id := range ids(16) { // a lock free and a ctx ended: either may be taken, so many tries
		if _, err := u.AddUserForToken(t.Context(), newUser(fake, id, 0)); err != nil {
			t.Fatal(err)
		}
		src, _ := u.Source(id)
		ctx, cancel := context.WithCancel(t.Context())
		store.cancel = cancel
		u.Remove(ctx, id, false)
		if _, err := src.Token(); !errors.Is(err, ErrTokenNotFound) {
			t.Errorf("user %s, removed: Token() err = %v, want ErrTokenNotFound", id, err)
		}
	}
}

// TestUserTokensRemoveRevokesDeadAccessToken: Remove with revoke ends the grant even when the
// stored access token died before its Expiry: Twitch refuses to revoke the dead one, so the refresh
// token is traded for a live access token, and that one is revoked.
func TestUserTokensRemoveRevokesDeadAccessToken(t *testing.T) {
	c, fake := newTestClient(t)
	store := newMemStore()
	u := NewUserTokens(c, store)
	tok := newUser(fake, "100", 0)
	if _, err := u.AddUserForToken(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	fake.ExpireAccessToken(tok.AccessToken) // Twitch killed it; the store still says it is good
	fake.ResetRequests()
	if err := u.Remove(t.Context(), "100", true); err != nil {
		t.Fatal(err)
	}
	var revoked []string
	for _, r := range fake.Requests() {
		if r.Endpoint == "revoke" {
			revoked = append(revoked, r.Form.Get("token"))
		}
	}
	if len(revoked) == 0 || revoked[len(revoked)-1] == tok.AccessToken {
		t.Fatalf("revoke requests for %d tokens, the last the dead one: the grant was never revoked", len(revoked))
	}
	if _, err := c.ValidateToken(t.Context(), revoked[len(revoked)-1]); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("the token revoked last still validates: err = %v", err)
	}
}

// TestUserTokensRemoveRevokeFailsKeepsPair: Remove with revoke refreshes a dead access token to
// revoke a live one; when that revocation fails, the refresh has spent the stored refresh token:
// the new pair is stored in its place (the user stays, with the error), so that nothing sends the
// spent one again, and a second Remove revokes the grant.
func TestUserTokensRemoveRevokeFailsKeepsPair(t *testing.T) {
	_, fake := newTestClient(t)
	c := publicClient(fake)
	store := newMemStore()
	u := NewUserTokens(c, store)
	fake.AddUser("100", "user100", "")
	access, refresh := fake.IssueToken(c.ClientID, "100", []string{"chat:read"}, 0)
	if _, err := u.AddUserForToken(t.Context(), &oauth2.Token{AccessToken: access, RefreshToken: refresh}); err != nil {
		t.Fatal(err)
	}
	fake.ExpireAccessToken(access)
	fake.Fail("revoke", faketwitch.Fault{Pass: true, Count: 1})  // the dead token: refused as invalid
	fake.Fail("revoke", faketwitch.Fault{Status: 503, Count: 1}) // the live one: an outage
	if err := u.Remove(t.Context(), "100", true); err == nil {
		t.Fatal("Remove with the revocation failing: no error")
	}
	st := store.stored("100")
	if st == nil || st.RefreshToken == refresh {
		t.Fatalf("store holds %+v; want the pair the refresh got, in place of the spent one", st)
	}
	if err := u.Remove(t.Context(), "100", true); err != nil {
		t.Fatalf("Remove again: %v", err)
	}
	if _, err := c.ValidateToken(t.Context(), st.AccessToken); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("the stored pair's access token still validates: %v", err)
	}
	if n := fake.ReusedRefreshTokens(); n != 0 {
		t.Errorf("%d spent refresh tokens were sent again", n)
	}
}

// TestUserTokensValidatedAtFenced: a validation whose lease lapsed (another replica stored a new
// pair meanwhile) does not put the pair it read back with its "validated at".
func TestUserTokensValidatedAtFenced(t *testing.T) {
	c, fake := newTestClient(t)
	mem := newMemStore()
	seedStore(t, fake, mem, []string{"100"})
	u := NewUserTokens(c, mem)
	if err := u.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	newer := *mem.stored("100")
	newer.AccessToken, newer.RefreshToken = "other-replicas-access", "other-replicas-refresh"
	fake.Fail("validate", faketwitch.Fault{Pass: true, Delay: 50 * time.Millisecond, Count: 1})
	done := make(chan outcome, 1)
	go func() { done <- u.validateUser(t.Context(), u.users["100"]) }()
	for fake.CountRequests("validate") == 0 {
		time.Sleep(time.Millisecond) // until the validation is in flight
	}
	mem.Save(t.Context(), "100", &newer) // another replica, whose lease this one's outlived
	<-done
	if got := mem.stored("100"); got.AccessToken != newer.AccessToken || got.RefreshToken != newer.RefreshToken {
		t.Errorf("store holds %q/%q; want the other replica's pair, not the one put back", got.AccessToken, got.RefreshToken)
	}
}

// TestAdoptNeverBackwards: a token read from the store before the source refreshed is not put
// back in place of the newer one.
func TestAdoptNeverBackwards(t *testing.T) {
	c, _ := newTestClient(t)
	newer := &oauth2.Token{AccessToken: "p2", RefreshToken: "r2", Expiry: time.Now().Add(4 * time.Hour)}
	older := &oauth2.Token{AccessToken: "p1", RefreshToken: "r1", Expiry: time.Now().Add(3 * time.Hour)}
	src := NewUserTokenSource(c, newer, nil)
	var renewed atomic.Int32
	src.listener = changeCounter{&renewed}
	if err := src.adopt(t.Context(), older); err != nil {
		t.Fatal(err)
	}
	if tok, _ := src.Token(); tok != newer || renewed.Load() != 0 {
		t.Errorf("Token() = %q after adopting an older token (%d renewals); want the newer one kept", tok.AccessToken, renewed.Load())
	}
	if err := src.adopt(t.Context(), &oauth2.Token{AccessToken: "p3", Expiry: time.Now().Add(5 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if tok, _ := src.Token(); tok.AccessToken != "p3" || renewed.Load() != 1 {
		t.Errorf("Token() = %q; want the newer stored token adopted", tok.AccessToken)
	}
}

// changeCounter is a source's listener that counts the changes it hears.
type changeCounter struct{ n *atomic.Int32 }

func (changeCounter) revoked(context.Context, error) {}
func (changeCounter) recovered()                     {}
func (changeCounter) pendingKept()                   {}
func (changeCounter) hearsChanges() bool             { return true }
func (c changeCounter) changed(*oauth2.Token)        { c.n.Add(1) }
func (changeCounter) turns() chan struct{}           { return nil }

// authorizeCode logs the fake's user in to c's app at the fake's authorize page and returns the
// code its redirect carries.
func authorizeCode(t *testing.T, fake *faketwitch.Server, c *Client) string {
	t.Helper()
	a := NewUserAuthenticator(c, []Scope{ScopeChatRead})
	a.URL = faketwitch.RedirectURL
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, fake.BaseURL()+"authorize?"+strings.SplitN(a.AuthURL(), "?", 2)[1], nil)
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	return loc.Query().Get("code")
}

// TestUserTokensStoreWithoutKeys: over a store that cannot list its keys, the registry keeps the
// users added to it, and Sync does nothing.
func TestUserTokensStoreWithoutKeys(t *testing.T) {
	c, fake := newTestClient(t)
	type noKeys struct{ TokenStore } // only TokenStore's methods: not a KeyLister
	u := NewUserTokens(c, noKeys{newMemStore()})
	if _, err := u.AddUserForToken(t.Context(), newUser(fake, "100", 0)); err != nil {
		t.Fatal(err)
	}
	if err := u.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := u.Users(); !slices.Equal(got, []string{"100"}) {
		t.Errorf("Users() = %v after Sync, want [100]", got)
	}
	src, err := u.Source("100")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Token(); err != nil {
		t.Error(err)
	}
}
