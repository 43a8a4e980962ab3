package twitchoauth

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/oauth2"
)

// releasingStore is a FileStore that stores a lease's last write and ends the lease in one step
// (ReleasingSaver), and counts what it is asked. Made unsupported, it refuses with
// errors.ErrUnsupported, as a store does a lease not its own.
type releasingStore struct {
	*FileStore
	unsupported bool
	mu          sync.Mutex
	calls       []string
}

func (r *releasingStore) called(what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, what)
}

func (r *releasingStore) SaveIf(ctx context.Context, key string, prev, next *StoredToken) error {
	r.called("SaveIf")
	return r.FileStore.SaveIf(ctx, key, prev, next)
}

func (r *releasingStore) LockLease(ctx context.Context, key string, ttl time.Duration) (Lease, error) {
	l, err := r.FileStore.LockLease(ctx, key, ttl)
	if err != nil {
		return nil, err
	}
	return &countingLease{Lease: l, r: r, key: key}, nil
}

func (r *releasingStore) SaveIfUnlock(ctx context.Context, lease Lease, key string, prev, next *StoredToken) error {
	r.called("SaveIfUnlock")
	l, ok := lease.(*countingLease)
	if r.unsupported || !ok || l.key != key {
		return errors.ErrUnsupported
	}
	if err := r.FileStore.SaveIf(ctx, key, prev, next); err != nil {
		return err
	}
	return l.Lease.Unlock()
}

// countingLease is a lease whose Unlock its store counts.
type countingLease struct {
	Lease
	r   *releasingStore
	key string
}

func (l *countingLease) Unlock() error {
	l.r.called("Unlock")
	return l.Lease.Unlock()
}

func (l *countingLease) Renew(ctx context.Context) error {
	l.r.called("Renew")
	return l.Lease.Renew(ctx)
}

// TestLeaseNotRenewedAfterReleasingSave: once the refresh's save that releases the lock is under
// way, the lease is not renewed, however long its reply takes (here a store hook): the store may
// have ended the lease, and its renewal would be heard as a lease lost.
func TestLeaseNotRenewedAfterReleasingSave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newRunBubble(t)
		store := &releasingStore{FileStore: &FileStore{Path: filepath.Join(t.TempDir(), "tok.json")}}
		seedStored(t, store.FileStore, b.fake, b.c, "u")
		src := replica(b.c, store, "u")
		ttl := src.lockTTL()
		b.c.Hooks = &Hooks{StoreEnd: func(ctx context.Context, e StoreEvent) {
			if e.Op == StoreSaveIf {
				time.Sleep(ttl / 2) // past the time to renew, short of the deadline
			}
		}}
		src.store = observeStore(b.c.hooks(), store)
		if _, err := src.ForceRefresh(t.Context(), nil); err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if i := slices.Index(store.calls, "SaveIfUnlock"); i < 0 || slices.Contains(store.calls[i:], "Renew") {
			t.Errorf("the refresh asked %v; want no Renew after the SaveIfUnlock that released the lock", store.calls)
		}
	})
}

// TestRefreshReleasesWithItsSave: a refresh through a store whose leases can save and end
// themselves in one step stores its new pair that way, and neither unlocks after nor writes
// anything more; the mark of a public client's refresh is a plain SaveIf before it. A store that
// refuses a lease gets a SaveIf and an Unlock instead. Store hooks hear the same.
func TestRefreshReleasesWithItsSave(t *testing.T) {
	for _, tc := range []struct {
		name        string
		public      bool
		unsupported bool
		hooks       bool
		want        []string
	}{
		{"confidential", false, false, false, []string{"SaveIfUnlock"}},
		{"public", true, false, false, []string{"SaveIf", "SaveIfUnlock"}},
		{"observed", true, false, true, []string{"SaveIf", "SaveIfUnlock"}},
		{"unsupported", false, true, true, []string{"SaveIfUnlock", "SaveIf", "Unlock"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, fake := newTestClient(t)
			if tc.public {
				c = publicClient(fake)
			}
			var mu sync.Mutex
			var ops []StoreOp
			if tc.hooks {
				c.Hooks = &Hooks{StoreEnd: func(ctx context.Context, e StoreEvent) {
					mu.Lock()
					defer mu.Unlock()
					ops = append(ops, e.Op)
				}}
			}
			store := &releasingStore{FileStore: &FileStore{Path: filepath.Join(t.TempDir(), "tok.json")}, unsupported: tc.unsupported}
			old := seedStored(t, store.FileStore, fake, c, "u")
			tok, err := replica(c, store, "u").ForceRefresh(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if st, err := store.Load(t.Context(), "u"); err != nil || st.AccessToken != tok.AccessToken || st.RefreshToken == old.RefreshToken || st.Spending != nil {
				t.Fatalf("stored %v; want the new pair, unmarked", err)
			}
			if !slices.Equal(store.calls, tc.want) {
				t.Errorf("the refresh asked %v; want %v", store.calls, tc.want)
			}
			if tc.hooks {
				want := []StoreOp{StoreLock, StoreLoad, StoreSaveIf, StoreSaveIf}
				if tc.unsupported {
					want = []StoreOp{StoreLock, StoreLoad, StoreSaveIf, StoreSaveIf, StoreUnlock}
				}
				if !slices.Equal(ops, want) {
					t.Errorf("the hooks heard %v; want %v", ops, want)
				}
			}
		})
	}
}

// TestBindRefreshKeepsLockForValidation: the storage helper refreshes a token Twitch ended and then
// stores what the new pair's validation said, both under the lock: the refresh's save does not
// release the lock before that last write.
func TestBindRefreshKeepsLockForValidation(t *testing.T) {
	c, fake := newTestClient(t)
	store := &releasingStore{FileStore: &FileStore{Path: filepath.Join(t.TempDir(), "tok.json")}}
	seedStored(t, store.FileStore, fake, c, "")
	h := NewUserAuthenticationStorageHelper(c, []Scope{ScopeChatRead})
	h.Store = store
	h.AuthGenerator = func(context.Context, *Client, []Scope) (*oauth2.Token, error) {
		return nil, errors.New("a login was started")
	}
	if _, err := h.Bind(t.Context()); err != nil {
		t.Fatal(err)
	}
	if want := []string{"SaveIf", "SaveIf", "Unlock"}; !slices.Equal(store.calls, want) {
		t.Errorf("Bind asked %v; want %v: the pair, then its validation, then the unlock", store.calls, want)
	}
}

// TestLockWaitEndedByWatchKeepsTurn: a renewal whose wait for the lock ends without it (its watch
// found another holder's mark, to be waited out next) takes a turn back, waiting for one, before
// it goes on: only a renewal granted the lock goes on without a turn.
func TestLockWaitEndedByWatchKeepsTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		unlock, err := store.Lock(t.Context(), "u", time.Minute) // another holder's
		if err != nil {
			t.Fatal(err)
		}
		defer unlock()
		turns := make(chan struct{}, 1)
		ctx, done, err := admit(t.Context(), turns, false)
		if err != nil {
			t.Fatal(err)
		}
		defer done()
		errMark := errors.New("held mark")
		watch := func(context.Context) error {
			turns <- struct{}{}                              // another renewal took the turn given back
			go func() { time.Sleep(time.Second); <-turns }() // and is done a second later
			return errMark
		}
		k := &leaseKeeper{ttl: time.Minute}
		_, err = k.take(ctx, store, "u", watch)
		var w *watchError
		if !errors.As(err, &w) {
			t.Fatalf("take: %v", err)
		}
		synctest.Wait()
		time.Sleep(2 * time.Second)
		// awaitMark gives the turn back while it waits, and takes it again after.
		resume := waitingForOthers(ctx)
		resume()
		if !holdsTurn(ctx) {
			t.Error("after a watch error (no lock held) the renewal holds no turn, and its retry renews without one")
		}
	})
}

// lockAsks is a store that counts the asks for a lock.
type lockAsks struct {
	*memStore
	asks atomic.Int32
}

func (s *lockAsks) Lock(ctx context.Context, key string, ttl time.Duration) (func() error, error) {
	s.asks.Add(1)
	return s.memStore.Lock(ctx, key, ttl)
}

// TestLockWaitAsksOnceTurnGivenBack: a renewal that waits for another holder's lock cuts its ask
// short once, to give its turn back, and then asks once for as long as the wait takes: each ask
// starts the store's poll of the lock over, at its shortest interval.
func TestLockWaitAsksOnceTurnGivenBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newRunBubble(t)
		store := &lockAsks{memStore: b.store}
		seedExpiredFor(t, b.fake, store, b.c.ClientID, "u")
		unlock, err := store.memStore.Lock(t.Context(), "u", time.Minute) // another replica's
		if err != nil {
			t.Fatal(err)
		}
		u := NewUserTokens(b.c, store)
		if err := u.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		done := tokenLater(u, "u")
		time.Sleep(10 * lockWatchEvery)
		synctest.Wait()
		if err := unlock(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n := store.asks.Load(); n != 2 {
			t.Errorf("a wait of %v for the lock asked for it %d times; want 2: once cut short to give the turn back, then once", 10*lockWatchEvery, n)
		}
	})
}
