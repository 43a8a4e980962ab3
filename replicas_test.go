package twitchoauth

import (
	"context"
	"errors"
	"io"
	"net/http"
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

// This file tests replicas that hear of each other at once, over a store that reports its
// changes, and reader replicas that never refresh.

// watchedStore is a memStore that reports its changes (a ChangeWatcher), as a shared store with
// notifications does, and counts its reads.
type watchedStore struct {
	*memStore
	loads atomic.Int64

	mu   sync.Mutex
	subs []chan string
}

func newWatchedStore() *watchedStore { return &watchedStore{memStore: newMemStore()} }

func (w *watchedStore) Load(ctx context.Context, key string) (*StoredToken, error) {
	w.loads.Add(1)
	return w.memStore.Load(ctx, key)
}

func (w *watchedStore) Save(ctx context.Context, key string, st *StoredToken) error {
	err := w.memStore.Save(ctx, key, st)
	w.notify(key)
	return err
}

func (w *watchedStore) Delete(ctx context.Context, key string) error {
	err := w.memStore.Delete(ctx, key)
	w.notify(key)
	return err
}

func (w *watchedStore) notify(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ch := range w.subs {
		ch <- key
	}
}

func (w *watchedStore) WatchChanges(ctx context.Context, changed func(key string)) error {
	ch := make(chan string, 1<<16)
	w.mu.Lock()
	w.subs = append(w.subs, ch)
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.subs = slices.DeleteFunc(w.subs, func(c chan string) bool { return c == ch })
		w.mu.Unlock()
	}()
	changed("")
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case key := <-ch:
			changed(key)
		}
	}
}

// replicaClient returns a client of the bubble's fake, public or confidential, with a transport
// of its own that counts what it sends to the token endpoint.
func replicaClient(b *runBubble, public bool, tokenCalls *atomic.Int64) *Client {
	c := NewClient(faketwitch.ClientID, faketwitch.ClientSecret)
	if public {
		c = NewClient(faketwitch.PublicClientID, "")
	}
	c.AuthBaseURL = b.c.AuthBaseURL
	c.HTTPClient = &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if strings.HasSuffix(req.URL.Path, "/token") && tokenCalls != nil {
			tokenCalls.Add(1)
		}
		return (&memTransport{fake: b.fake}).RoundTrip(req)
	})}
	return c
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// TestUserTokensHearsChangesAtOnce: over a store that reports its changes, a token replica A
// refreshed reaches replica B's subscribers and OnRefresh at once, with no use of B's; a user A
// removes is gone from B at once, and one A adds is there at once.
func TestUserTokensHearsChangesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := publicBubble(t)
		store := newWatchedStore()
		seedExpired(t, b.fake, store, "1", "2")
		a := NewUserTokens(replicaClient(b, true, nil), store)
		r := NewUserTokens(replicaClient(b, true, nil), store)
		r.SyncEvery = time.Hour // only the notifications can tell it
		var heard []string
		var mu sync.Mutex
		r.OnRefresh = func(id string, tok *oauth2.Token) {
			mu.Lock()
			defer mu.Unlock()
			heard = append(heard, id+":"+tok.AccessToken)
		}
		for _, u := range []*UserTokens{a, r} {
			if err := u.Sync(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		stopA, stopR := run(t, a), run(t, r)
		defer stopA()
		defer stopR()
		synctest.Wait()
		rsrc, _ := r.Source("1")
		got := make(chan *oauth2.Token, 4)
		stopSub := rsrc.Subscribe(func(tok *oauth2.Token) { got <- tok })
		defer stopSub()

		start := time.Now()
		asrc, _ := a.Source("1")
		tok, err := asrc.Token()
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		select {
		case g := <-got:
			if g.AccessToken != tok.AccessToken {
				t.Errorf("B's subscriber heard %q, want A's %q", g.AccessToken, tok.AccessToken)
			}
		default:
			t.Fatal("B's subscriber did not hear the token A refreshed")
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("B heard %v after A's refresh", d)
		}
		mu.Lock()
		if !slices.Contains(heard, "1:"+tok.AccessToken) {
			t.Errorf("B's OnRefresh heard %q; want A's token", heard)
		}
		mu.Unlock()

		if err := a.Remove(t.Context(), "2", false); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := r.Users(); slices.Contains(got, "2") {
			t.Errorf("B's users %v at once after A removed user 2", got)
		}
		seedExpired(t, b.fake, store, "3") // as A's AddUserForToken stores a user
		synctest.Wait()
		if got := r.Users(); !slices.Contains(got, "3") {
			t.Errorf("B's users %v at once after user 3 was stored", got)
		}
		if time.Since(start) != 0 {
			t.Errorf("%v went by; want it all at once", time.Since(start))
		}
		wantNoReuse(t, b.fake, 1)
	})
}

// TestMarkWaitEndsOnNotification: a replica waiting for another holder's pair hears of it at
// once over a store that reports its changes, not at its next look at the store.
func TestMarkWaitEndsOnNotification(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := publicBubble(t)
		store := newWatchedStore()
		refused := &heldSaves{memStore: store.memStore}
		seedExpired(t, b.fake, store, "u")
		holder := NewStoreTokenSource(b.c, refused, "u", nil)
		refused.refusing.Store(true)
		want, err := holder.Token()
		if err != nil || !holder.Pending() {
			t.Fatalf("holder: %v, pending %v", err, holder.Pending())
		}
		r := NewUserTokens(b.c, store)
		if err := r.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		stop := run(t, r)
		defer stop()
		src, _ := r.Source("u")
		got := make(chan *oauth2.Token, 1)
		go func() {
			tok, _ := src.Token()
			got <- tok
		}()
		time.Sleep(10 * time.Second) // the waiter looks at the store every second by now
		synctest.Wait()
		start := time.Now()
		refused.refusing.Store(false)
		if err := holder.FlushPending(t.Context()); err != nil {
			t.Fatal(err)
		}
		store.notify("u") // the holder's store is the shared one: it reports the write
		tok := <-got
		if tok == nil || tok.AccessToken != want.AccessToken {
			t.Fatalf("the waiter got %v; want the holder's pair", tok)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("the waiter took the pair up %v after it was stored; want at once", d)
		}
		wantNoReuse(t, b.fake, 1)
	})
}

// TestHelix401ReadsStoreFirst: replica B's Helix request is refused (401) with the token replica A
// has since refreshed: B reads the store, takes A's token and sends the request again with it;
// no validation and no refresh of B's.
func TestHelix401ReadsStoreFirst(t *testing.T) {
	c, fake := newTestClient(t)
	store := NewFileStore(t.TempDir())
	access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, 0)
	if err := store.Save(t.Context(), "u", &StoredToken{AccessToken: access, RefreshToken: refresh,
		Expiry: time.Now().Add(time.Hour), UserID: faketwitch.UserID, ClientID: c.ClientID}); err != nil {
		t.Fatal(err)
	}
	a := NewStoreTokenSource(c, store, "u", nil)
	var validations atomic.Int64
	bc := NewClient(c.ClientID, c.ClientSecret)
	bc.AuthBaseURL = c.AuthBaseURL
	bc.HTTPClient = &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if strings.HasSuffix(req.URL.Path, "/validate") || strings.HasSuffix(req.URL.Path, "/token") {
			validations.Add(1)
		}
		return http.DefaultTransport.RoundTrip(req)
	})}
	bsrc := NewStoreTokenSource(bc, store, "u", nil)
	if _, err := bsrc.Token(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Token(); err != nil {
		t.Fatal(err)
	}
	fake.ExpireAccessToken(access)
	newer, err := a.ForceRefresh(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	helix := newHelixServer(t, func(w http.ResponseWriter, r *http.Request) {
		if _, err := c.ValidateToken(r.Context(), strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, `{"data":[]}`)
	})
	resp, err := bsrc.HTTPClient().Get(helix + "/helix/users")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d; want 200 with the token A stored", resp.StatusCode)
	}
	if tok, _ := bsrc.Token(); tok.AccessToken != newer.AccessToken {
		t.Errorf("B holds %q; want A's %q", tok.AccessToken, newer.AccessToken)
	}
	if n := validations.Load(); n != 0 {
		t.Errorf("B sent %d validations or refreshes; want none", n)
	}
	if n := fake.CountGrant("refresh_token"); n != 1 {
		t.Errorf("%d refreshes; want A's only", n)
	}
}

// TestReaderReplicas: one writer (KeepFresh) and three readers share a store that reports its
// changes. 1,000 users' tokens expire together: the writer refreshes them before they do, and
// every reader serves each new token, having sent nothing to Twitch's token endpoint. Then the
// writer is killed: the readers keep serving the tokens that have not expired, and for those that
// have, fail with ErrNoFreshToken after ReaderWait, never refreshing.
func TestReaderReplicas(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := publicBubble(t)
		store := newWatchedStore()
		users := ids(1000)
		for _, id := range users {
			b.fake.AddUser(id, "user"+id, "")
			access, refresh := b.fake.IssueToken(faketwitch.PublicClientID, id, []string{"chat:read"}, time.Hour)
			st := &StoredToken{AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(time.Hour),
				Scopes: []Scope{ScopeChatRead}, UserID: id, ClientID: faketwitch.PublicClientID,
				RefreshIssuedAt: time.Now(), ValidatedAt: time.Now()}
			if err := store.Save(t.Context(), id, st); err != nil {
				t.Fatal(err)
			}
		}
		writer := NewUserTokens(replicaClient(b, true, nil), store)
		writer.KeepFresh = true
		var readerCalls atomic.Int64
		readers := make([]*UserTokens, 3)
		for i := range readers {
			readers[i] = NewUserTokens(replicaClient(b, true, &readerCalls), store)
			readers[i].ReadOnly = true
		}
		ctx, kill := context.WithCancel(t.Context())
		readersCtx, stopReaders := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		for _, u := range append([]*UserTokens{writer}, readers...) {
			if err := u.Sync(t.Context()); err != nil {
				t.Fatal(err)
			}
			runCtx := readersCtx
			if u == writer {
				runCtx = ctx
			}
			wg.Go(func() { u.Run(runCtx) })
		}
		defer wg.Wait()
		defer stopReaders()
		time.Sleep(55 * time.Minute) // the tokens expire at 60: the writer refreshes them by then
		synctest.Wait()
		if n := b.fake.CountGrant("refresh_token"); n != len(users) {
			t.Errorf("%d refreshes by the writer for %d users about to expire", n, len(users))
		}
		for _, r := range readers {
			for _, id := range users {
				src, err := r.Source(id)
				if err != nil {
					t.Fatal(err)
				}
				tok, err := src.Token()
				if st := store.stored(id); err != nil || tok.AccessToken != st.AccessToken {
					t.Fatalf("reader, user %s: %v, %v; want the writer's new token", id, tok, err)
				}
			}
		}

		kill() // the writer dies; its tokens live four more hours
		time.Sleep(4*time.Hour - 10*time.Minute)
		r := readers[0]
		src, _ := r.Source(users[0])
		if _, err := src.Token(); err != nil {
			t.Errorf("reader before the tokens expire: %v; want the stored token served", err)
		}
		time.Sleep(20 * time.Minute) // past every token's expiry
		start := time.Now()
		_, err := src.Token()
		if !errors.Is(err, ErrNoFreshToken) {
			t.Errorf("reader after the token expired: %v; want ErrNoFreshToken", err)
		}
		if d := time.Since(start); d != defaultReaderWait {
			t.Errorf("the reader waited %v for the writer; want ReaderWait, %v", d, defaultReaderWait)
		}
		if n := readerCalls.Load(); n != 0 {
			t.Errorf("the readers sent %d requests to the token endpoint; want none", n)
		}
		for _, r := range readers {
			if _, err := r.AddUserForToken(t.Context(), &oauth2.Token{AccessToken: "x"}); err == nil {
				t.Error("a reader added a user")
			}
		}
	})
}

// countingStore counts the reads one replica makes of a shared store.
type countingStore struct {
	*watchedStore
	loads atomic.Int64
}

func (c *countingStore) Load(ctx context.Context, key string) (*StoredToken, error) {
	c.loads.Add(1)
	return c.watchedStore.Load(ctx, key)
}

// TestUserTokensReadsWithNotifications: 4 replicas share 10,000 users over a store that reports
// its changes. Each replica reads each user's record about once per ValidateEvery (its slot: one
// replica validates, the others find the validation recent) plus once per change it hears of (a
// validation's save): the figures are logged, and held under a bound.
func TestUserTokensReadsWithNotifications(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 users")
	}
	synctest.Test(t, func(t *testing.T) {
		b := newRunBubble(t)
		shared := newWatchedStore()
		users := ids(10000)
		for _, id := range users {
			access, refresh := b.fake.IssueToken(faketwitch.ClientID, faketwitch.UserID, []string{"chat:read"}, 100*time.Hour)
			st := &StoredToken{AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(100 * time.Hour),
				UserID: id, ClientID: faketwitch.ClientID}
			if err := shared.memStore.Save(t.Context(), id, st); err != nil {
				t.Fatal(err)
			}
		}
		shared.memStore.saves.Store(0)
		replicas := make([]*countingStore, 4)
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		for i := range replicas {
			replicas[i] = &countingStore{watchedStore: shared}
			u := NewUserTokens(b.c, replicas[i])
			if err := u.Sync(t.Context()); err != nil {
				t.Fatal(err)
			}
			wg.Go(func() { u.Run(ctx) })
		}
		time.Sleep(time.Hour) // the first period: each user validated once, by one replica
		synctest.Wait()
		var before [4]int64
		for i, r := range replicas {
			before[i] = r.loads.Load()
		}
		saves0 := shared.memStore.saves.Load()
		const hours = 2
		time.Sleep(hours * time.Hour)
		synctest.Wait()
		cancel()
		wg.Wait()
		changes := float64(shared.memStore.saves.Load()-saves0) / float64(len(users)) / hours
		for i, r := range replicas {
			perUser := float64(r.loads.Load()-before[i]) / float64(len(users)) / hours
			t.Logf("replica %d: %.2f reads per user per hour (changes per user per hour: %.2f)", i, perUser, changes)
			// At most once per period, plus once per change it hears of.
			if limit := 1 + changes; perUser > limit {
				t.Errorf("replica %d: %.2f reads per user per hour, more than %.2f", i, perUser, limit)
			}
		}
	})
}

// TestUserTokensGapRereads: notifications stop for a while (the watch's connection lost) and
// changes made meanwhile go unreported; once the store reports the gap (the empty key), the
// replica reads every user again and lists the store: a token refreshed meanwhile reaches its
// subscribers, a user removed meanwhile is dropped, and one added is registered.
func TestUserTokensGapRereads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := publicBubble(t)
		store := newWatchedStore()
		seedExpired(t, b.fake, store, "1", "2")
		r := NewUserTokens(b.c, store)
		r.SyncEvery = 24 * time.Hour // only the gap's reread can tell it
		if err := r.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		stop := run(t, r)
		defer stop()
		synctest.Wait()
		src, _ := r.Source("1")
		got := make(chan *oauth2.Token, 4)
		defer src.Subscribe(func(tok *oauth2.Token) { got <- tok })()

		// Meanwhile, unreported: another replica refreshes user 1, removes user 2, adds user 3.
		other := NewStoreTokenSource(replicaClient(b, true, nil), store.memStore, "1", nil)
		tok, err := other.Token()
		if err != nil {
			t.Fatal(err)
		}
		store.memStore.Delete(t.Context(), "2")
		seedExpired(t, b.fake, store.memStore, "3")
		synctest.Wait()
		if u := r.Users(); !slices.Equal(u, []string{"1", "2"}) {
			t.Fatalf("users %v before the gap is reported; want the replica unaware", u)
		}
		store.notify("") // the watch is back: changes may have been missed
		synctest.Wait()
		select {
		case g := <-got:
			if g.AccessToken != tok.AccessToken {
				t.Errorf("the subscriber heard %q, want %q", g.AccessToken, tok.AccessToken)
			}
		default:
			t.Error("the subscriber did not hear the token refreshed during the gap")
		}
		if u := r.Users(); !slices.Equal(u, []string{"1", "3"}) {
			t.Errorf("users %v after the gap; want [1 3]", u)
		}
		wantNoReuse(t, b.fake, 1)
	})
}

// TestUserTokensWatchStartRereads: a token stored after the replica read its users and before
// its watch began is taken up as the watch begins, not when the replica's token expires.
func TestUserTokensWatchStartRereads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := publicBubble(t)
		store := newWatchedStore()
		seedExpired(t, b.fake, store, "1")
		r := NewUserTokens(b.c, store)
		if err := r.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		tok, err := NewStoreTokenSource(replicaClient(b, true, nil), store.memStore, "1", nil).Token()
		if err != nil {
			t.Fatal(err)
		}
		stop := run(t, r)
		defer stop()
		synctest.Wait()
		src, _ := r.Source("1")
		if cur := src.cur.Load(); cur == nil || cur.AccessToken != tok.AccessToken {
			t.Error("the replica holds its old token once its watch began; want the token stored before it did")
		}
	})
}
