package twitchoauth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// recorder collects what a subscriber was called with.
type recorder struct {
	ch chan *oauth2.Token
}

func newRecorder() *recorder { return &recorder{ch: make(chan *oauth2.Token, 64)} }

func (r *recorder) fn(tok *oauth2.Token) { r.ch <- tok }

// next returns the next token the subscriber got, failing the test when none comes in time.
func (r *recorder) next(t *testing.T) *oauth2.Token {
	t.Helper()
	select {
	case tok := <-r.ch:
		return tok
	case <-time.After(10 * time.Second):
		t.Fatal("no notification")
		return nil
	}
}

// none checks that the subscriber got nothing more once every delivery under way has ended.
func (r *recorder) none(t *testing.T, src *UserTokenSource) {
	t.Helper()
	src.deliver()
	select {
	case tok := <-r.ch:
		t.Errorf("an unexpected notification: %q", tok.AccessToken)
	case <-time.After(50 * time.Millisecond):
	}
}

// TestSubscribeEveryChange: a subscriber hears of each kind of change once, in order: a refresh,
// a token handed over with SetToken, and a token another replica refreshed and stored that this
// source took up.
func TestSubscribeEveryChange(t *testing.T) {
	c, fake := newTestClient(t)
	store := &FileStore{Path: filepath.Join(t.TempDir(), "tok.json")}
	seedStored(t, store, fake, c, "u")
	a := NewStoreTokenSource(c, store, "u", nil)
	rec := newRecorder()
	stop := a.Subscribe(rec.fn)
	defer stop()

	refreshed, err := a.Token()
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.next(t); got != refreshed {
		t.Errorf("after a refresh: %q, want %q", got.AccessToken, refreshed.AccessToken)
	}

	access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, 0)
	handed := &oauth2.Token{AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(time.Hour)}
	if err := a.SetTokenContext(t.Context(), handed); err != nil {
		t.Fatal(err)
	}
	if got := rec.next(t); got != handed {
		t.Errorf("after SetToken: %q, want %q", got.AccessToken, handed.AccessToken)
	}

	b := NewStoreTokenSource(c, store, "u", handed)
	byB, err := b.ForceRefresh(t.Context(), handed)
	if err != nil {
		t.Fatal(err)
	}
	fake.ExpireAccessToken(handed.AccessToken)
	if got, err := a.ForceRefresh(t.Context(), handed); err != nil || got.AccessToken != byB.AccessToken {
		t.Fatalf("a took up %v, %v; want the other replica's %q", got, err, byB.AccessToken)
	}
	if got := rec.next(t); got.AccessToken != byB.AccessToken {
		t.Errorf("after the other replica's refresh: %q, want %q", got.AccessToken, byB.AccessToken)
	}
	rec.none(t, a)
	if n := fake.CountGrant("refresh_token"); n != 2 {
		t.Errorf("%d refreshes, want 2", n)
	}
}

// TestSubscribePendingPair: a refreshed pair the store did not take is announced once it is
// stored, not before.
func TestSubscribePendingPair(t *testing.T) {
	_, fake := newTestClient(t)
	c := publicClient(fake)
	store := &flakyStore{FileStore: &FileStore{Path: filepath.Join(t.TempDir(), "tok.json")}}
	seedStored(t, store, fake, c, "u")
	store.failing.Store(1)
	src := replica(c, store, "u")
	rec := newRecorder()
	defer src.Subscribe(rec.fn)()
	tok, err := src.Token()
	if err != nil || !src.Pending() {
		t.Fatalf("Token() = %v, %v, pending %v", tok, err, src.Pending())
	}
	rec.none(t, src)
	if err := src.FlushPending(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := rec.next(t); got != tok {
		t.Errorf("after the pair was stored: %q, want %q", got.AccessToken, tok.AccessToken)
	}
	rec.none(t, src)
}

// TestSubscribeSlowAndPanicking: a subscriber that blocks holds no Token caller and no other
// subscriber; one that panics gets the next change all the same; after stop, no more calls, and
// the subscription's goroutine has ended.
func TestSubscribeSlowAndPanicking(t *testing.T) {
	c, fake := newTestClient(t)
	access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, 0)
	src := NewUserTokenSource(c, expiredToken(access, refresh), nil)
	if _, err := src.Token(); err != nil { // the connection to Twitch, and its goroutines, are up
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()

	release := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	blocked := make(chan struct{}, 8)
	stopSlow := src.Subscribe(func(*oauth2.Token) {
		blocked <- struct{}{}
		<-release
	})
	panics := newRecorder()
	stopPanicky := src.Subscribe(func(tok *oauth2.Token) {
		panics.fn(tok)
		panic("listener bug")
	})
	good := newRecorder()
	stopGood := src.Subscribe(good.fn)
	// Each is handed the token held now first.
	if first := src.cur.Load(); good.next(t) != first || panics.next(t) != first {
		t.Error("a new subscriber was not handed the token held")
	}
	<-blocked

	for i := range 3 {
		done := make(chan error, 1)
		go func() {
			_, err := src.ForceRefresh(context.Background(), nil)
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("refresh %d held by a blocked subscriber", i)
		}
		if tok, err := src.Token(); err != nil || tok == nil {
			t.Fatalf("Token() = %v, %v", tok, err)
		}
		cur := src.cur.Load()
		if got := good.next(t); got != cur {
			t.Errorf("change %d: good subscriber got %q, want %q", i, got.AccessToken, cur.AccessToken)
		}
		if got := panics.next(t); got != cur {
			t.Errorf("change %d: panicking subscriber got %q, want %q", i, got.AccessToken, cur.AccessToken)
		}
	}
	// The slow one is still in its first call.

	stopGood()
	stopPanicky()
	stopSlow()
	stopGood() // again: nothing
	if _, err := src.ForceRefresh(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	good.none(t, src)
	once.Do(func() { close(release) })
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before the subscriptions", runtime.NumGoroutine(), before)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSubscribeNeverRejected: a token Twitch refused before its change was handed out is never
// handed out.
func TestSubscribeNeverRejected(t *testing.T) {
	c, _ := newTestClient(t)
	src := NewUserTokenSource(c, nil, nil)
	rec := newRecorder()
	defer src.Subscribe(rec.fn)()
	tok := &oauth2.Token{AccessToken: "tok", Expiry: time.Now().Add(time.Hour)}
	if err := src.lock(t.Context()); err != nil {
		t.Fatal(err)
	}
	src.set(tok)
	src.noteChange(tok)
	src.markRejected(tok) // validation said 401 before the change was handed out
	src.unlock()
	rec.none(t, src)
}

// TestUserTokensOnRefreshEveryChange: OnRefresh hears of a user's first token, of a refresh, and
// of a token handed over for a registered user, each once, in order.
func TestUserTokensOnRefreshEveryChange(t *testing.T) {
	c, fake := newTestClient(t)
	u := NewUserTokens(c, newMemStore())
	var mu sync.Mutex
	var heard []string
	u.OnRefresh = func(id string, tok *oauth2.Token) {
		mu.Lock()
		heard = append(heard, tok.AccessToken)
		mu.Unlock()
	}
	access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, []string{"chat:read"}, 0)
	if _, err := u.AddUserForToken(t.Context(), &oauth2.Token{AccessToken: access, RefreshToken: refresh}); err != nil {
		t.Fatal(err)
	}
	src, err := u.Source(faketwitch.UserID)
	if err != nil {
		t.Fatal(err)
	}
	refreshed, err := src.ForceRefresh(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	access2, refresh2 := fake.IssueToken(c.ClientID, faketwitch.UserID, []string{"chat:read"}, 0)
	if _, err := u.AddUserForToken(t.Context(), &oauth2.Token{AccessToken: access2, RefreshToken: refresh2}); err != nil {
		t.Fatal(err)
	}
	src.deliver()
	mu.Lock()
	defer mu.Unlock()
	want := []string{access, refreshed.AccessToken, access2}
	if len(heard) != len(want) {
		t.Fatalf("OnRefresh heard %q, want %q", heard, want)
	}
	for i := range want {
		if heard[i] != want[i] {
			t.Errorf("OnRefresh heard %q, want %q", heard, want)
		}
	}
}

// BenchmarkTokenCachedSubscribed is BenchmarkTokenCached with two subscribers: a cached token
// costs the same with listeners as without.
func BenchmarkTokenCachedSubscribed(b *testing.B) {
	src := NewUserTokenSource(&Client{}, &oauth2.Token{AccessToken: "a", Expiry: time.Now().Add(time.Hour)}, nil)
	defer src.Subscribe(func(*oauth2.Token) {})()
	defer src.Subscribe(func(*oauth2.Token) {})()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.Token(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSubscribeHandsCurrentToken: a subscriber is handed the token held at once, then each
// change, and never the same token twice. ForceRefresh takes any copy of the stale token.
func TestSubscribeHandsCurrentToken(t *testing.T) {
	c, fake := newTestClient(t)
	access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, 0)
	held := &oauth2.Token{AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(time.Hour)}
	src := NewUserTokenSource(c, held, nil)
	rec := newRecorder()
	defer src.Subscribe(rec.fn)()
	if got := rec.next(t); got != held {
		t.Errorf("first call: %q, want the token held", got.AccessToken)
	}
	stale := *held // the caller's own copy, as one that went through a store would be
	next, err := src.ForceRefresh(t.Context(), &stale)
	if err != nil || next.AccessToken == access {
		t.Fatalf("ForceRefresh(a copy of the held token) = %v, %v; want a refresh", next, err)
	}
	if got := rec.next(t); got != next {
		t.Errorf("after the refresh: %q, want %q", got.AccessToken, next.AccessToken)
	}
	rec.none(t, src)
}

// endBubble is a registry with one user, "100", whose source has a subscriber that blocks in its
// first call (with the token held) until release is closed; got has every token it was handed.
// It must be made inside synctest.Test.
type endBubble struct {
	*runBubble
	u       *UserTokens
	src     *UserTokenSource
	got     chan *oauth2.Token
	release chan struct{}
}

func newEndBubble(t *testing.T, keepRevoked bool) *endBubble {
	t.Helper()
	b := &endBubble{runBubble: newRunBubble(t), got: make(chan *oauth2.Token, 64), release: make(chan struct{})}
	b.u = NewUserTokens(b.c, b.store)
	b.u.KeepRevoked = keepRevoked
	if _, err := b.u.AddUserForToken(t.Context(), newUser(b.fake, "100", 0), "chat"); err != nil {
		t.Fatal(err)
	}
	src, err := b.u.Source("100")
	if err != nil {
		t.Fatal(err)
	}
	b.src = src
	first := true
	stop := src.Subscribe(func(tok *oauth2.Token) {
		b.got <- tok
		if first {
			first = false
			<-b.release
		}
	})
	t.Cleanup(stop)
	if got := <-b.got; got != src.cur.Load() {
		t.Fatalf("first call: %q, want the token held", got.AccessToken)
	}
	return b
}

// refresh refreshes b's user's token, which the busy subscriber is owed from then on.
func (b *endBubble) refresh(t *testing.T) *oauth2.Token {
	t.Helper()
	tok, err := b.src.ForceRefresh(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// unblock lets the subscriber return from its first call, waits until it has nothing left to do,
// and returns what it was handed since.
func (b *endBubble) unblock() []string {
	close(b.release)
	synctest.Wait()
	var out []string
	for {
		select {
		case tok := <-b.got:
			out = append(out, tok.AccessToken)
		default:
			return out
		}
	}
}

// TestSubscribeNothingAfterEnd: a subscriber busy in its callback while its user's token is
// refreshed (twice) and the user is then removed from the registry is handed neither refreshed
// token once it returns; its goroutine ends, and a token set on the source afterwards reaches
// neither a new subscriber nor the registry's OnRefresh.
func TestSubscribeNothingAfterEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newEndBubble(t, false)
		before := runtime.NumGoroutine()
		b.refresh(t)
		b.refresh(t)
		if err := b.u.Remove(t.Context(), "100", false); err != nil {
			t.Fatal(err)
		}
		if got := b.unblock(); len(got) != 0 {
			t.Errorf("after the removal, the subscriber was handed %d tokens of a user who is gone", len(got))
		}
		if n := runtime.NumGoroutine(); n >= before {
			t.Errorf("%d goroutines, %d with the subscription: it did not end with the source", n, before)
		}
		// A token set on the source afterwards is not the registry's: OnRefresh does not hear of it.
		var heard int
		b.u.OnRefresh = func(string, *oauth2.Token) { heard++ }
		b.src.SetToken(newUser(b.fake, "100", 0))
		late := newRecorder()
		b.src.Subscribe(late.fn)()
		synctest.Wait()
		if len(late.ch) != 0 || heard != 0 {
			t.Errorf("after the end, a new subscriber was handed %d tokens, OnRefresh %d", len(late.ch), heard)
		}
	})
}

// TestSubscribeNothingRejectedWhileBusy: with KeepRevoked, a subscriber busy while its user's
// token is refreshed and the grant is then found gone is never handed that token; the source has
// not ended, and the subscriber hears of the user's new login.
func TestSubscribeNothingRejectedWhileBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newEndBubble(t, true)
		refreshed := b.refresh(t)
		b.fake.RevokeGrant(refreshed.AccessToken)
		if _, err := b.src.ForceRefresh(t.Context(), nil); !errors.Is(err, ErrInvalidRefreshToken) {
			t.Fatalf("ForceRefresh after the grant was revoked: %v, want ErrInvalidRefreshToken", err)
		}
		if got := b.unblock(); len(got) != 0 {
			t.Errorf("after the grant was found gone, the subscriber was handed %d tokens Twitch refused", len(got))
		}
		select {
		case <-b.src.Done():
			t.Fatalf("a kept user's source ended: %v", b.src.Err())
		default:
		}
		if err := b.src.Err(); err != nil {
			t.Errorf("Err() = %v before the end", err)
		}
		relogin := newUser(b.fake, "100", 0)
		if _, err := b.u.AddUserForToken(t.Context(), relogin, "chat"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := <-b.got; got.AccessToken != relogin.AccessToken {
			t.Errorf("after a new login, the subscriber was handed another token than the login's")
		}
	})
}

// TestSourceDone: a registry's source ends when its user leaves the registry, and Done and Err
// say so and why: removed with Remove (ErrTokenNotFound), dropped because Twitch rejected the
// refresh token or the user revoked the app's authorization (ErrInvalidRefreshToken). Until
// then, Done is open and Err nil, and Err makes nothing.
func TestSourceDone(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(t *testing.T, b *runBubble, u *UserTokens, src *UserTokenSource)
		want error
	}{
		{"removed", func(t *testing.T, _ *runBubble, u *UserTokens, _ *UserTokenSource) {
			if err := u.Remove(t.Context(), "100", false); err != nil {
				t.Fatal(err)
			}
		}, ErrTokenNotFound},
		{"refresh rejected", func(t *testing.T, b *runBubble, _ *UserTokens, src *UserTokenSource) {
			b.fake.RevokeRefreshToken(b.store.stored("100").RefreshToken)
			if _, err := src.ForceRefresh(t.Context(), nil); !errors.Is(err, ErrInvalidRefreshToken) {
				t.Fatalf("ForceRefresh with a revoked grant: %v", err)
			}
		}, ErrInvalidRefreshToken},
		{"revoked by the user", func(t *testing.T, _ *runBubble, u *UserTokens, _ *UserTokenSource) {
			rec := httptest.NewRecorder()
			u.RevocationHandler([]byte(revocationSecret)).ServeHTTP(rec,
				revokeMessage(faketwitch.ClientID, "100").request(revocationSecret))
			if rec.Code != http.StatusNoContent {
				t.Fatalf("revocation answered %d", rec.Code)
			}
		}, ErrInvalidRefreshToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newRunBubble(t)
				u := NewUserTokens(b.c, b.store)
				if _, err := u.AddUserForToken(t.Context(), newUser(b.fake, "100", 0)); err != nil {
					t.Fatal(err)
				}
				src, err := u.Source("100")
				if err != nil {
					t.Fatal(err)
				}
				if err := src.Err(); err != nil {
					t.Fatalf("Err() = %v before the end", err)
				}
				if x := src.more.Load(); x != nil && x.notify.Load() != nil {
					t.Error("Err made the source's notifier")
				}
				done := src.Done()
				select {
				case <-done:
					t.Fatal("Done is closed before the end")
				default:
				}
				ended := make(chan error, 1)
				go func() {
					select {
					case <-done: // a bot leaves its user's channel here
						ended <- src.Err()
					case <-t.Context().Done():
					}
				}()
				tc.end(t, b, u, src)
				synctest.Wait()
				select {
				case err = <-ended:
				default:
					t.Fatal("Done is still open after the user left the registry")
				}
				if !errors.Is(err, tc.want) || errors.Is(err, ErrRefreshInDoubt) {
					t.Errorf("Err() = %v, want one that Is %v", err, tc.want)
				}
				if _, terr := src.Token(); !errors.Is(terr, tc.want) {
					t.Errorf("Token() err = %v, want one that Is %v as Err's", terr, tc.want)
				}
				if src.Done() != done {
					t.Error("Done returned another channel")
				}
			})
		})
	}
}
