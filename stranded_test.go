package twitchoauth

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// This file tests that no user is stranded: put in doubt although their refresh token never left
// the process, or kept waiting longer than the refresh they wait for can take.

// lossyStore is a memStore (no SaveIf: fenced saves take the lock) that can lose the reply to the
// write of a spending mark: the write is made, and the store is then cut off (every call fails)
// until heal, as a replica's network to the store that fails just after forwarding a write.
type lossyStore struct {
	*memStore
	loseMark atomic.Bool // the next mark written: made, then its reply lost, and the store cut off
	down     atomic.Bool
	marks    atomic.Int32 // mark writes whose reply was lost
	// downCalls counts the calls made while the store was cut off.
	downCalls atomic.Int64
	// slow makes each Load of a user's record wait for its ctx to end; slowLoads counts them.
	slow      atomic.Bool
	slowLoads atomic.Int64
}

var errCutOff = errors.New("connection reset by peer")

func (l *lossyStore) Load(ctx context.Context, key string) (*StoredToken, error) {
	if l.slow.Load() && key != healthProbeKey {
		l.slowLoads.Add(1)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if l.down.Load() {
		l.downCalls.Add(1)
		return nil, errCutOff
	}
	return l.memStore.Load(ctx, key)
}

func (l *lossyStore) Save(ctx context.Context, key string, st *StoredToken) error {
	if l.down.Load() {
		l.downCalls.Add(1)
		return errCutOff
	}
	if err := l.memStore.Save(ctx, key, st); err != nil || st.Spending == nil || !l.loseMark.Load() {
		return err
	}
	l.marks.Add(1)
	l.down.Store(true)
	return errCutOff
}

func (l *lossyStore) Lock(ctx context.Context, key string, ttl time.Duration) (func() error, error) {
	if l.down.Load() {
		l.downCalls.Add(1)
		return nil, errCutOff
	}
	return l.memStore.Lock(ctx, key, ttl)
}

// seedExpired stores, under each ID, a public client's token Twitch has expired.
func seedExpired(t testing.TB, fake *faketwitch.Server, store TokenStore, ids ...string) {
	t.Helper()
	seedExpiredFor(t, fake, store, faketwitch.PublicClientID, ids...)
}

// seedExpiredFor is seedExpired for the app clientID.
func seedExpiredFor(t testing.TB, fake *faketwitch.Server, store TokenStore, clientID string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		fake.AddUser(id, "user"+id, "")
		access, refresh := fake.IssueToken(clientID, id, []string{"chat:read"}, 0)
		fake.ExpireAccessToken(access)
		st := &StoredToken{AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(-time.Minute),
			Scopes: []Scope{ScopeChatRead}, UserID: id, ClientID: clientID, RefreshIssuedAt: time.Now()}
		if err := store.Save(t.Context(), id, st); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMarkWriteReplyLost: a source's write of its mark is made, but the reply is lost and the
// store cut off. Nothing was sent. Another replica that finds the mark waits for it (it is not in
// doubt), and the source takes the mark back once the store answers again: the other replica
// then refreshes, once, and nobody is in doubt.
func TestMarkWriteReplyLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := publicBubble(t)
		lossy := &lossyStore{memStore: b.store}
		seedExpired(t, b.fake, b.store, "u")
		a := NewStoreTokenSource(b.c, lossy, "u", nil)
		lossy.loseMark.Store(true)
		if _, err := a.Token(); err == nil || errors.Is(err, ErrRefreshInDoubt) {
			t.Fatalf("Token() with the mark's reply lost = %v; want the store's error, not a doubt", err)
		}
		lossy.loseMark.Store(false)
		if st := b.store.stored("u"); st.Spending == nil || lossy.marks.Load() != 1 {
			t.Fatalf("stored %+v; want the mark made though its reply was lost", st)
		}
		if !a.Pending() {
			t.Error("the source does not hold the mark to take back")
		}

		other := NewStoreTokenSource(b.c, b.store, "u", nil) // another replica, which reaches the store
		got := make(chan error, 1)
		var tok *oauth2.Token
		go func() {
			var err error
			tok, err = other.Token()
			got <- err
		}()
		time.Sleep(20 * time.Second) // the cut lasts 20 s, within the mark's bound
		synctest.Wait()
		select {
		case err := <-got:
			t.Fatalf("the other replica returned %v while the mark's holder was cut off; want it to wait", err)
		default:
		}
		lossy.down.Store(false)
		if err := a.FlushPending(t.Context()); err != nil {
			t.Fatalf("FlushPending once the store answers: %v", err)
		}
		if err := <-got; err != nil {
			t.Fatalf("the other replica: %v; want the refresh it waited for", err)
		}
		if a.Pending() {
			t.Error("the mark is still pending")
		}
		if st := b.store.stored("u"); st.AccessToken != tok.AccessToken || st.Spending != nil {
			t.Errorf("stored %+v; want the other replica's pair, unmarked", st)
		}
		if _, err := a.Token(); err != nil {
			t.Errorf("the source that lost the reply: %v; want the pair stored", err)
		}
		wantNoReuse(t, b.fake, 1)
	})
}

// TestMarkTakenBackAtNextToken: the source whose mark's reply was lost takes the mark back at
// its next Token once the store answers, and refreshes then: one refresh, no doubt.
func TestMarkTakenBackAtNextToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := publicBubble(t)
		lossy := &lossyStore{memStore: b.store}
		seedExpired(t, b.fake, b.store, "u")
		a := NewStoreTokenSource(b.c, lossy, "u", nil)
		lossy.loseMark.Store(true)
		if _, err := a.Token(); err == nil {
			t.Fatal("Token() with the mark's reply lost succeeded")
		}
		lossy.loseMark.Store(false)
		lossy.down.Store(false)
		time.Sleep(time.Minute) // past the source's backoff
		tok, err := a.Token()
		if err != nil {
			t.Fatalf("the next Token: %v; want the mark taken back and the refresh sent", err)
		}
		if st := b.store.stored("u"); st.AccessToken != tok.AccessToken || st.Spending != nil {
			t.Errorf("stored %+v; want the new pair, unmarked", st)
		}
		wantNoReuse(t, b.fake, 1)
	})
}

// TestRunTakesMarksBackWhenStoreReturns: many users' marks are written as the store is cut off,
// before Run starts. While the store is away, Run tries one user a second, not every user; once
// the store answers again, it takes every mark back within a second or so, with no call of the
// program's, and every user is then usable: nobody in doubt, no refresh token sent twice.
func TestRunTakesMarksBackWhenStoreReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := publicBubble(t)
		lossy := &lossyStore{memStore: b.store}
		users := ids(40)
		seedExpired(t, b.fake, b.store, users...)
		u := NewUserTokens(b.c, lossy)
		var revoked atomic.Int32
		u.OnRevoked = func(string, error) { revoked.Add(1) }
		if err := u.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		lossy.loseMark.Store(true)
		for _, id := range users {
			lossy.down.Store(false) // up for this user's mark, whose reply is lost
			src, err := u.Source(id)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := src.Token(); err == nil || !src.Pending() {
				t.Fatalf("user %s: Token() with the mark's reply lost = %v, pending %v", id, err, src.Pending())
			}
		}
		lossy.loseMark.Store(false)
		stop := run(t, u)
		defer stop()
		const away = 10 * time.Minute
		calls := lossy.downCalls.Load()
		time.Sleep(away) // the store stays away for a while
		if n := lossy.downCalls.Load() - calls; n > 2*int64(away/time.Second) {
			t.Errorf("%d calls to the store while it was away for %v; want about one a second", n, away)
		}
		lossy.down.Store(false)
		back := time.Now()
		for _, id := range users {
			for b.store.stored(id).Spending != nil {
				if time.Since(back) > 3*time.Second {
					t.Fatalf("user %s: mark not taken back %v after the store returned", id, time.Since(back))
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		if d := time.Since(back); d > 2*time.Second {
			t.Errorf("every mark taken back %v after the store returned; want within a second or so", d)
		}
		for _, id := range users {
			src, _ := u.Source(id)
			if _, err := src.Token(); err != nil {
				t.Errorf("user %s: %v; want usable", id, err)
			}
		}
		if n := revoked.Load(); n != 0 {
			t.Errorf("OnRevoked called %d times; want none", n)
		}
		wantNoReuse(t, b.fake, len(users))
	})
}

// TestMarkDecidedWithinBound: the holder of a mark died holding the key's lock (a lock whose
// lease has not run out: a store's lock row outlives its holder). A source with the default lock
// ttl decides within the mark's bound, 35 s after the mark, with the typed error (not a lease or
// context error of its own), without taking the lock and without sending anything; the record is
// kept.
func TestMarkDecidedWithinBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := publicBubble(t)
		seedExpired(t, b.fake, b.store, "u")
		marked := *b.store.stored("u")
		marked.Spending = &SpendMark{Refresh: RefreshTokenHash(marked.RefreshToken), At: time.Now().UTC(), Holder: "dead-1"}
		if err := b.store.Save(t.Context(), "u", &marked); err != nil {
			t.Fatal(err)
		}
		if _, err := b.store.Lock(t.Context(), "u", 0); err != nil { // never released
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second) // the source starts 5 s after the mark
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
		defer cancel()
		_, err := NewStoreTokenSource(b.c, b.store, "u", nil).TokenContext(ctx)
		took := time.Since(marked.Spending.At)
		if !errors.Is(err, ErrRefreshInDoubt) || errors.Is(err, ErrLeaseLost) || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Token() = %v; want only the doubt", err)
		}
		if took > defaultMarkBound+time.Second || took < refreshTimeout {
			t.Errorf("decided %v after the mark; want within %v of it, and no sooner than a refresh may take", took, defaultMarkBound)
		}
		if st := b.store.stored("u"); !st.Matches(&marked) {
			t.Errorf("stored %+v; want the record kept", st)
		}
		wantNoReuse(t, b.fake, 0)
	})
}

// heldSaves is a memStore that refuses to store a refreshed pair in place of a marked one while
// refusing is set, as a store lost just after the refresh was sent.
type heldSaves struct {
	*memStore
	refusing atomic.Bool
}

func (h *heldSaves) Save(ctx context.Context, key string, st *StoredToken) error {
	if st.Spending == nil && h.refusing.Load() {
		if cur := h.memStore.stored(key); cur != nil && cur.Spending != nil {
			return errCutOff
		}
	}
	return h.memStore.Save(ctx, key, st)
}

// TestMarkWaitLeavesLockFree: a replica waiting for another holder's pair does not hold the key's
// lock, which the holder takes to store its pair on a store without SaveIf: the pair is stored
// while the other waits, and taken up by it, with one refresh in all.
func TestMarkWaitLeavesLockFree(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := publicBubble(t)
		store := &heldSaves{memStore: b.store}
		seedExpired(t, b.fake, b.store, "u")
		holder := NewStoreTokenSource(b.c, store, "u", nil)
		store.refusing.Store(true)
		want, err := holder.Token()
		if err != nil || !holder.Pending() {
			t.Fatalf("holder: %v, pending %v", err, holder.Pending())
		}
		store.refusing.Store(false)

		waiter := NewStoreTokenSource(b.c, store, "u", nil)
		got := make(chan *oauth2.Token, 1)
		go func() {
			tok, err := waiter.Token()
			if err != nil {
				t.Errorf("the waiting replica: %v", err)
			}
			got <- tok
		}()
		time.Sleep(3 * time.Second)
		synctest.Wait() // the waiter waits for the holder's pair
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if err := holder.FlushPending(ctx); err != nil {
			t.Fatalf("the holder could not store its pair while the other waited: %v", err)
		}
		if tok := <-got; tok == nil || tok.AccessToken != want.AccessToken {
			t.Errorf("the waiting replica got %v; want the holder's pair", tok)
		}
		wantNoReuse(t, b.fake, 1)
	})
}

// TestDoubtSettledByRun: a registry's user is in doubt (another holder's mark outlived its
// bound); OnRevoked hears it as the doubt. When the holder then stores its pair (a replica cut
// off from the store, back), Run takes it up: OnRefresh hears the token, OnRecovered is called
// once, and the user is usable. The same when the holder takes its mark back: the user refreshes.
func TestDoubtSettledByRun(t *testing.T) {
	for _, how := range []string{"pair stored", "mark taken back"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := publicBubble(t)
				seedExpired(t, b.fake, b.store, "u")
				old := *b.store.stored("u")
				marked := old
				marked.Spending = &SpendMark{Refresh: RefreshTokenHash(old.RefreshToken), At: time.Now().UTC(), Holder: "cut-off-1"}
				if err := b.store.Save(t.Context(), "u", &marked); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Minute) // past the mark's bound
				u := NewUserTokens(b.c, b.store)
				var mu sync.Mutex
				var events []string
				u.OnRevoked = func(id string, err error) {
					mu.Lock()
					defer mu.Unlock()
					events = append(events, "revoked in doubt="+map[bool]string{true: "yes", false: "no"}[errors.Is(err, ErrRefreshInDoubt)])
				}
				u.OnRefresh = func(id string, tok *oauth2.Token) {
					mu.Lock()
					defer mu.Unlock()
					events = append(events, "refresh "+tok.AccessToken)
				}
				u.OnRecovered = func(id string) {
					mu.Lock()
					defer mu.Unlock()
					events = append(events, "recovered")
				}
				if err := u.Sync(t.Context()); err != nil {
					t.Fatal(err)
				}
				src, _ := u.Source("u")
				if _, err := src.Token(); !errors.Is(err, ErrRefreshInDoubt) {
					t.Fatalf("Token() = %v; want the doubt", err)
				}
				stop := run(t, u)
				defer stop()

				var want string
				if how == "pair stored" {
					access, refresh := b.fake.IssueToken(faketwitch.PublicClientID, faketwitch.UserID, []string{"chat:read"}, 0)
					next := old
					next.AccessToken, next.RefreshToken, next.Expiry = access, refresh, time.Now().Add(4*time.Hour)
					if err := b.store.Save(t.Context(), "u", &next); err != nil {
						t.Fatal(err)
					}
					want = access
				} else if err := b.store.Save(t.Context(), "u", &old); err != nil {
					t.Fatal(err)
				}
				time.Sleep(doubtRecheck + 2*time.Second) // a pass of Run over a user in doubt
				synctest.Wait()
				mu.Lock()
				got := slices.Clone(events)
				mu.Unlock()
				if how == "pair stored" {
					if len(got) != 3 || got[0] != "revoked in doubt=yes" || got[1] != "refresh "+want || got[2] != "recovered" {
						t.Errorf("heard %q; want the doubt, then the pair, then the recovery", got)
					}
				} else if len(got) != 2 || got[0] != "revoked in doubt=yes" || got[1] != "recovered" {
					t.Errorf("heard %q; want the doubt, then the recovery", got)
				}
				tok, err := src.Token()
				if err != nil || (want != "" && tok.AccessToken != want) {
					t.Errorf("Token() after the pass = %v, %v; want usable", tok, err)
				}
				wantNoReuse(t, b.fake, map[bool]int{true: 0, false: 1}[want != ""])
			})
		})
	}
}

// TestOnRevokedPanics: a panic in OnRevoked (or OnRecovered) is logged and recovered, as one in
// OnRefresh is: the caller of Token gets the error, a Run worker goes on, and the user's state is
// what it would be without the panic.
func TestOnRevokedPanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := publicBubble(t)
		var logged bytes.Buffer
		var logMu sync.Mutex
		b.c.Logger = slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
			logMu.Lock()
			defer logMu.Unlock()
			return logged.Write(p)
		}), nil))
		seedExpired(t, b.fake, b.store, "gone", "run")
		for _, id := range []string{"gone", "run"} {
			b.fake.RevokeRefreshToken(b.store.stored(id).RefreshToken)
		}
		u := NewUserTokens(b.c, b.store)
		var calls atomic.Int32
		u.OnRevoked = func(string, error) {
			calls.Add(1)
			panic("the program's bug")
		}
		if err := u.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		src, _ := u.Source("gone")
		var err error
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("Token() panicked: %v", r)
				}
			}()
			_, err = src.Token()
		}()
		if !errors.Is(err, ErrInvalidRefreshToken) {
			t.Errorf("Token() = %v; want the grant gone", err)
		}
		if got := u.Users(); len(got) != 1 || got[0] != "run" {
			t.Errorf("users %v; want the revoked user removed as without the panic", got)
		}
		// Run finds the other user's grant gone through a validation: its worker's OnRevoked
		// panics, and Run goes on.
		b.fake.ExpireAccessToken(b.store.stored("run").AccessToken)
		st := *b.store.stored("run")
		st.Expiry = time.Now().Add(time.Hour)
		b.store.Save(t.Context(), "run", &st)
		u.ValidateEvery = time.Minute
		stop := run(t, u)
		time.Sleep(2 * time.Minute)
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v; want it to go on until stopped", err)
		}
		if n := calls.Load(); n != 2 {
			t.Errorf("OnRevoked called %d times, want 2", n)
		}
		logMu.Lock()
		defer logMu.Unlock()
		if !strings.Contains(logged.String(), "panicked") {
			t.Errorf("the panic was not logged:\n%s", logged.String())
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// lostPairReply is a memStore that makes the save of a refreshed pair in place of a marked one,
// and then loses its reply, once.
type lostPairReply struct {
	*memStore
	lose atomic.Bool
}

func (l *lostPairReply) Save(ctx context.Context, key string, st *StoredToken) error {
	if err := l.memStore.Save(ctx, key, st); err != nil || st.Spending != nil || !l.lose.Swap(false) {
		return err
	}
	return errCutOff
}

// TestPairSaveReplyLost: the save of a refreshed pair is made but its reply lost. The source holds
// the pair pending; storing it again finds it stored already, and the source's listeners hear of
// it then, as of any pair once it is stored.
func TestPairSaveReplyLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := publicBubble(t)
		store := &lostPairReply{memStore: b.store}
		seedExpired(t, b.fake, b.store, "u")
		src := NewStoreTokenSource(b.c, store, "u", nil)
		heard := make(chan *oauth2.Token, 4)
		stop := src.Subscribe(func(tok *oauth2.Token) { heard <- tok })
		defer stop()
		store.lose.Store(true)
		tok, err := src.Token()
		if err != nil || !src.Pending() {
			t.Fatalf("Token() = %v, %v, pending %v; want the pair held", tok, err, src.Pending())
		}
		if err := src.FlushPending(t.Context()); err != nil || src.Pending() {
			t.Fatalf("FlushPending: %v, pending %v", err, src.Pending())
		}
		synctest.Wait()
		select {
		case got := <-heard:
			if got.AccessToken != tok.AccessToken {
				t.Errorf("the subscriber heard %q; want the refreshed pair", got.AccessToken)
			}
		default:
			t.Error("the subscriber never heard of the refreshed pair, which the store holds")
		}
		wantNoReuse(t, b.fake, 1)
	})
}

// slowMark is a memStore whose write of a spending mark takes 25 s to come back.
type slowMark struct{ *memStore }

func (s slowMark) Save(ctx context.Context, key string, st *StoredToken) error {
	err := s.memStore.Save(ctx, key, st)
	if st.Spending != nil {
		time.Sleep(25 * time.Second)
	}
	return err
}

// TestSlowMarkNotSent: a mark whose write took so long that the refresh could not be over by the
// mark's bound (when other holders stop waiting for it) is taken back, and nothing is sent.
func TestSlowMarkNotSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := publicBubble(t)
		seedExpired(t, b.fake, b.store, "u")
		src := NewStoreTokenSource(b.c, slowMark{b.store}, "u", nil)
		if _, err := src.Token(); err == nil || errors.Is(err, ErrRefreshInDoubt) {
			t.Errorf("Token() = %v; want an error that nothing was sent", err)
		}
		if st := b.store.stored("u"); st.Spending != nil {
			t.Errorf("stored %+v; want the mark taken back", st)
		}
		wantNoReuse(t, b.fake, 0)
	})
}
