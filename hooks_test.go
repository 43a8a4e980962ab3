package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// spanKey is the context key under which the recording hooks put the name of the work a Start
// hook began, so that the work under it can be told to nest.
type spanKey struct{}

// hookRecorder records every hook call as a line, with the work it was under.
type hookRecorder struct {
	mu     sync.Mutex
	lines  []string
	served map[string]int
	n      int
}

// span is what the recording hooks put under spanKey.
type hookSpan struct{ name, parent string }

// nameOf returns the name of the work ctx is under.
func nameOf(ctx context.Context) string {
	if s, ok := ctx.Value(spanKey{}).(hookSpan); ok {
		return s.name
	}
	return "-"
}

// parentOf returns the name of the work that the work of ctx, begun by a Start hook, is under.
func parentOf(ctx context.Context) string {
	if s, ok := ctx.Value(spanKey{}).(hookSpan); ok {
		return s.parent
	}
	return "-"
}

// hooks returns Hooks that record into r.
func (r *hookRecorder) hooks() *Hooks {
	add := func(format string, args ...any) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.lines = append(r.lines, fmt.Sprintf(format, args...))
	}
	begin := func(ctx context.Context, name string) context.Context {
		r.mu.Lock()
		r.n++
		name = fmt.Sprintf("%s#%d", name, r.n)
		r.mu.Unlock()
		return context.WithValue(ctx, spanKey{}, hookSpan{name, nameOf(ctx)})
	}
	return &Hooks{
		RequestStart: func(ctx context.Context, e RequestEvent) context.Context {
			return begin(ctx, "request "+e.Endpoint)
		},
		RequestEnd: func(ctx context.Context, e RequestEvent) {
			add("request %s %s status=%d err=%v in %s", e.Method, e.Endpoint, e.Status, e.Err, parentOf(ctx))
		},
		RefreshStart: func(ctx context.Context, e RefreshEvent) context.Context {
			return begin(ctx, "refresh")
		},
		RefreshEnd: func(ctx context.Context, e RefreshEvent) {
			add("refresh user=%s app=%v outcome=%s status=%d err=%v as %s", e.UserID, e.App, e.Outcome, e.Status, e.Err, nameOf(ctx))
		},
		StoreStart: func(ctx context.Context, e StoreEvent) context.Context {
			return begin(ctx, "store "+string(e.Op))
		},
		StoreEnd: func(ctx context.Context, e StoreEvent) {
			add("store %s key=%s err=%v in %s", e.Op, e.Key, e.Err, parentOf(ctx))
		},
		Validation: func(ctx context.Context, e ValidationEvent) {
			add("validation user=%s outcome=%s status=%d err=%v", e.UserID, e.Outcome, e.Status, e.Err)
		},
		UserChange: func(ctx context.Context, e UserEvent) {
			add("user %s %s", e.UserID, e.Change)
		},
		TokenServed: func(ctx context.Context, userID string, app bool) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.served == nil {
				r.served = map[string]int{}
			}
			r.served[userID]++
		},
	}
}

// take returns the lines recorded so far, and forgets them.
func (r *hookRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.lines
	r.lines = nil
	return out
}

// matching returns the lines that start with prefix.
func matching(lines []string, prefix string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// TestHooksRefreshNests: a public client's refresh through a store is heard as one refresh whose
// store operations (lock, load, mark, pair, unlock) and token request are under it, in order; the
// token handed out is heard too.
func TestHooksRefreshNests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := publicBubble(t)
		rec := &hookRecorder{}
		b.c.Hooks = rec.hooks()
		seedExpired(t, b.fake, b.store, "u")
		src := NewStoreTokenSource(b.c, b.store, "u", nil)
		if _, err := src.Token(); err != nil {
			t.Fatal(err)
		}
		got := rec.take()
		want := []string{
			"store lock key=u err=<nil> in refresh#1",
			"store load key=u err=<nil> in refresh#1", // the token
			"store load key=u err=<nil> in refresh#1", // the mark: a store without SaveIf reads,
			"store save key=u err=<nil> in refresh#1", // then writes, under the lock
			"request POST token status=200 err=<nil> in refresh#1",
			"store load key=u err=<nil> in refresh#1", // the pair
			"store save key=u err=<nil> in refresh#1",
			"store unlock key=u err=<nil> in refresh#1",
			"refresh user=u app=false outcome=ok status=0 err=<nil> as refresh#1",
		}
		if !slices.Equal(got, want) {
			t.Errorf("heard:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
		}
		if _, err := src.Token(); err != nil {
			t.Fatal(err)
		}
		if n := rec.served["u"]; n != 2 {
			t.Errorf("TokenServed heard %d tokens of u handed out; want 2", n)
		}
		if got := rec.take(); len(got) != 0 {
			t.Errorf("a cached token made the hooks hear %q; want nothing but TokenServed", got)
		}
	})
}

// TestHooksLockWaitIsOneLock: a renewal that waits seconds for the lock another replica holds
// asks the store for it a second at a time (see take); the hooks hear of the wait as one lock,
// which did not fail, not as a failed lock a second.
func TestHooksLockWaitIsOneLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newRunBubble(t)
		rec := &hookRecorder{}
		b.c.Hooks = rec.hooks()
		seedExpiredFor(t, b.fake, b.store, faketwitch.ClientID, "u")
		u := NewUserTokens(b.c, b.store)
		if err := u.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		src, err := u.Source("u")
		if err != nil {
			t.Fatal(err)
		}
		unlock, err := b.store.Lock(t.Context(), "u", time.Minute) // another replica's
		if err != nil {
			t.Fatal(err)
		}
		rec.take()
		done := make(chan error, 1)
		go func() {
			_, err := src.Token()
			done <- err
		}()
		time.Sleep(5 * lockWatchEvery)
		synctest.Wait()
		if err := unlock(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		got := matching(rec.take(), "store lock ")
		if len(got) != 1 || !strings.HasPrefix(got[0], "store lock key=u err=<nil> in refresh#") {
			t.Errorf("heard:\n\t%s\nwant one lock, without an error, in the refresh", strings.Join(got, "\n\t"))
		}
	})
}

// TestHooksLockWaitPaired: every StoreStart of a lock wait is paired with a StoreEnd, however the
// wait ends: ctx ended, the watch's error, the lock had (and its unlock).
func TestHooksLockWaitPaired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var starts, ends int
		h := &Hooks{
			StoreStart: func(ctx context.Context, e StoreEvent) context.Context { starts++; return ctx },
			StoreEnd:   func(ctx context.Context, e StoreEvent) { ends++ },
		}
		inner := newMemStore()
		o := observeStore(h, inner)
		unlock, _ := inner.Lock(t.Context(), "u", time.Minute)
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		k := &leaseKeeper{ttl: time.Minute}
		_, err := k.take(ctx, o, "u", func(context.Context) error { return nil })
		cancel()
		if err == nil || starts != ends {
			t.Errorf("ctx end: err=%v starts=%d ends=%d", err, starts, ends)
		}
		n := 0
		_, err = k.take(t.Context(), o, "u", func(context.Context) error {
			if n++; n == 2 {
				return errors.New("stop")
			}
			return nil
		})
		if err == nil || starts != ends {
			t.Errorf("watch error: err=%v starts=%d ends=%d", err, starts, ends)
		}
		unlock()
		if _, err = k.take(t.Context(), o, "u", nil); err != nil {
			t.Fatal(err)
		}
		k.lease.Unlock()
		if starts != ends || starts != 4 {
			t.Errorf("lock had + unlock: starts=%d ends=%d, want 4 each", starts, ends)
		}
	})
}

// TestHooksRefreshOutcomes: each way a refresh ends is heard with its outcome and status, and no
// event's text holds a token.
func TestHooksRefreshOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fault  func(b *runBubble, st *StoredToken)
		ctx    func(context.Context) context.Context
		want   string
		noUser bool
	}{
		{name: "ok", want: "outcome=ok status=0"},
		{name: "rejected", fault: func(b *runBubble, st *StoredToken) { b.fake.RevokeRefreshToken(st.RefreshToken) },
			want: "outcome=rejected status=400"},
		{name: "5xx", fault: func(b *runBubble, _ *StoredToken) { b.fake.Fail("token", faketwitch.Fault{Status: 503}) },
			want: "outcome=transient status=503"},
		{name: "429", fault: func(b *runBubble, _ *StoredToken) {
			b.fake.Fail("token", faketwitch.Fault{Status: 429, Body: `{"status":429,"message":"Too Many Requests"}`})
		}, want: "outcome=transient status=429"},
		{name: "answer lost", fault: func(b *runBubble, _ *StoredToken) {
			b.fake.Fail("token", faketwitch.Fault{Status: 200, Body: `{"access_token":`, Truncate: true})
		},
			want: "outcome=in_doubt status=0"},
		{name: "canceled", ctx: func(ctx context.Context) context.Context {
			ctx, cancel := context.WithCancel(ctx)
			cancel()
			return ctx
		}, want: "outcome=canceled status=0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := publicBubble(t)
				rec := &hookRecorder{}
				b.c.Hooks = rec.hooks()
				seedExpired(t, b.fake, b.store, "u")
				st := b.store.stored("u")
				if tc.fault != nil {
					tc.fault(b, st)
				}
				ctx := t.Context()
				if tc.ctx != nil {
					ctx = tc.ctx(ctx)
				}
				src := NewStoreTokenSource(b.c, b.store, "u", nil)
				_, err := src.TokenContext(ctx)
				if (err == nil) != (tc.name == "ok") {
					t.Fatalf("TokenContext() = %v", err)
				}
				got := matching(rec.take(), "refresh ")
				if len(got) != 1 || !strings.Contains(got[0], " "+tc.want+" ") {
					t.Fatalf("heard %q; want one refresh with %s", got, tc.want)
				}
				for _, secret := range []string{st.AccessToken, st.RefreshToken, RefreshTokenHash(st.RefreshToken)} {
					if strings.Contains(got[0], secret) {
						t.Errorf("the refresh event holds a token: %s", got[0])
					}
				}
			})
		})
	}
}

// TestHooksValidationOutcomes: each way a validation ends is heard with its outcome and status.
func TestHooksValidationOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault *faketwitch.Fault
		dead  bool
		want  string
	}{
		{name: "ok", want: "user=" + faketwitch.UserID + " outcome=ok status=200"},
		{name: "invalid", dead: true, want: "user= outcome=invalid status=401"},
		{name: "429", fault: &faketwitch.Fault{Status: 429, Body: `{"status":429,"message":"Too Many Requests"}`},
			want: "user= outcome=rate_limited status=429"},
		{name: "5xx", fault: &faketwitch.Fault{Status: 502}, want: "user= outcome=server_error status=502"},
		{name: "network", want: "user= outcome=network status=0"},
		{name: "400", fault: &faketwitch.Fault{Status: 400, Body: `{"status":400,"message":"missing authorization token"}`},
			want: "user= outcome=failed status=400"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newRunBubble(t)
				rec := &hookRecorder{}
				b.c.Hooks = rec.hooks()
				b.fake.AddUser(faketwitch.UserID, "user", "")
				access, _ := b.fake.IssueToken(faketwitch.ClientID, faketwitch.UserID, []string{"chat:read"}, 0)
				if tc.dead {
					b.fake.ExpireAccessToken(access)
				}
				if tc.fault != nil {
					b.fake.Fail("validate", *tc.fault)
				}
				if tc.name == "network" {
					b.c.HTTPClient = &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
						return nil, errors.New("connection reset by peer")
					})}
				}
				_, err := b.c.ValidateToken(t.Context(), access)
				if (err == nil) != (tc.name == "ok") {
					t.Fatalf("ValidateToken() = %v", err)
				}
				got := matching(rec.take(), "validation ")
				if len(got) != 1 || !strings.HasPrefix(got[0], "validation "+tc.want+" ") {
					t.Fatalf("heard %q; want one validation with %s", got, tc.want)
				}
				if strings.Contains(got[0], access) {
					t.Errorf("the validation event holds the token: %s", got[0])
				}
			})
		})
	}
}

// TestHooksUserChanges: a registry's users are heard as they are added, revoked and dropped, put
// in doubt and recovered, and removed.
func TestHooksUserChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := publicBubble(t)
		rec := &hookRecorder{}
		b.c.Hooks = rec.hooks()
		seedExpired(t, b.fake, b.store, "gone", "doubt", "kept")
		old := *b.store.stored("doubt")
		marked := old
		marked.Spending = &SpendMark{Refresh: RefreshTokenHash(old.RefreshToken), At: time.Now().UTC(), Holder: "cut-off-1"}
		if err := b.store.Save(t.Context(), "doubt", &marked); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute) // past the mark's bound
		b.fake.RevokeRefreshToken(b.store.stored("gone").RefreshToken)

		u := NewUserTokens(b.c, b.store)
		if err := u.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		added := matching(rec.take(), "user ")
		slices.Sort(added)
		if want := []string{"user doubt added", "user gone added", "user kept added"}; !slices.Equal(added, want) {
			t.Errorf("Sync: heard %q; want %q", added, want)
		}
		for _, id := range []string{"gone", "doubt"} {
			src, _ := u.Source(id)
			if _, err := src.Token(); err == nil {
				t.Fatalf("%s: Token() succeeded", id)
			}
		}
		if got, want := matching(rec.take(), "user "), []string{"user gone removed", "user gone revoked", "user doubt in_doubt"}; !slices.Equal(got, want) {
			t.Errorf("grants gone and in doubt: heard %q; want %q", got, want)
		}
		stop := run(t, u)
		if err := b.store.Save(t.Context(), "doubt", &old); err != nil { // the mark taken back
			t.Fatal(err)
		}
		time.Sleep(doubtRecheck + 2*time.Second)
		synctest.Wait()
		if got := matching(rec.take(), "user "); !slices.Equal(got, []string{"user doubt recovered"}) {
			t.Errorf("a doubt settled: heard %q; want the recovery", got)
		}
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v, want context.Canceled", err)
		}
		if err := u.Remove(t.Context(), "kept", false); err != nil {
			t.Fatal(err)
		}
		if got := matching(rec.take(), "user "); !slices.Equal(got, []string{"user kept removed"}) {
			t.Errorf("Remove: heard %q; want the removal", got)
		}
	})
}

// plainStore is a TokenStore with none of the optional interfaces.
type plainStore struct{ TokenStore }

// TestHooksKeepStoreInterfaces: observing a store's operations neither adds an optional interface
// it lacks nor hides one it has, so that a source does what it would do without hooks.
func TestHooksKeepStoreInterfaces(t *testing.T) {
	h := (&hookRecorder{}).hooks()
	plain := observeStore(h, plainStore{newMemStore()})
	if _, ok := asConditionalSaver(plain); ok {
		t.Error("an observed store without SaveIf is a ConditionalSaver")
	}
	if _, ok := asOptional[LeaseLocker](plain); ok {
		t.Error("an observed store without LockLease is a LeaseLocker")
	}
	if _, ok := asKeyLister(plain); ok {
		t.Error("an observed store without Keys is a KeyLister")
	}
	if _, ok := asChangeWatcher(plain); ok {
		t.Error("an observed store without WatchChanges is a ChangeWatcher")
	}
	full := observeStore(h, NewFileStore(t.TempDir()))
	if _, ok := full.(*observedStore); !ok {
		t.Fatal("a store with hooks is not observed")
	}
	if _, ok := asConditionalSaver(full); !ok {
		t.Error("an observed FileStore is not a ConditionalSaver")
	}
	if _, ok := asOptional[LeaseLocker](full); !ok {
		t.Error("an observed FileStore is not a LeaseLocker")
	}
	if _, ok := asKeyLister(full); !ok {
		t.Error("an observed FileStore is not a KeyLister")
	}
	if _, ok := asChangeWatcher(full); !ok {
		t.Error("an observed FileStore is not a ChangeWatcher")
	}
	if observeStore(h, full) != full {
		t.Error("a store observed twice is wrapped twice")
	}
	if s := newMemStore(); observeStore(&Hooks{Validation: func(context.Context, ValidationEvent) {}}, s) != TokenStore(s) {
		t.Error("a store is wrapped for hooks that hear no store operation")
	}
}

// TestHooksRequests: every request to the identity server is heard, with its status, and a
// request's failure with no answer is heard with status 0.
func TestHooksRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newRunBubble(t)
		rec := &hookRecorder{}
		b.c.Hooks = rec.hooks()
		if _, err := b.c.AppAccessToken(t.Context()); err != nil {
			t.Fatal(err)
		}
		b.c.HTTPClient = &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
			return nil, errors.New("connection refused")
		})}
		if _, err := b.c.AppAccessToken(t.Context()); err == nil {
			t.Fatal("AppAccessToken() without a network succeeded")
		}
		got := rec.take()
		if len(got) != 2 || !strings.HasPrefix(got[0], "request POST token status=200 err=<nil>") ||
			!strings.HasPrefix(got[1], "request POST token status=0 err=twitchoauth: token:") {
			t.Errorf("heard %q; want a token request answered 200, then one that failed", got)
		}
	})
}
