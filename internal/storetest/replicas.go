package storetest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// The scenarios of two replicas, each a UserTokens registry running Run over a client of its own
// of a store that reports its changes: what one does reaches the other at once, and after a gap
// in the other's watch, within SyncEvery.

// PublicClient returns a client of the fake's public app (its refresh tokens work once) whose log
// the test prints if it fails (see LogLibrary): a replica's own.
func PublicClient(t *testing.T, fake *faketwitch.Server) *twitchoauth.Client {
	c := twitchoauth.NewClient(faketwitch.PublicClientID, "")
	c.AuthBaseURL = fake.BaseURL()
	LogLibrary(t, c)
	return c
}

// Replicas is a writer A and a watcher B over one store, each with a client of its own, running
// Run until the test ends, and B's subscriptions to every user's source.
type Replicas struct {
	Fake *faketwitch.Server
	A, B *twitchoauth.UserTokens
	IDs  []string

	heard   chan heard
	seen    map[heard]time.Time // what WantHeard took from heard, by user and token
	mu      sync.Mutex
	onFresh map[string]string // user → the last token B's OnRefresh was handed
}

// heard is a token B's subscriber was handed, and when.
type heard struct {
	id, access string
	at         time.Time
}

// StartReplicas seeds n users of the fake's public app (tokens that expire in four hours) through
// a, starts replica A over a and replica B over b, B listing the store every syncEvery only (its
// watch must tell it the rest), waits until both have every user, subscribes to each user's source on
// B, and waits until B's watch reports A's refresh of the first user.
func StartReplicas(t *testing.T, a, b twitchoauth.TokenStore, n int, syncEvery time.Duration) *Replicas {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), FaultTimeout)
	defer cancel()
	_, fake := PublicTwitch(t)
	r := &Replicas{Fake: fake, IDs: UserIDs(7000, n), heard: make(chan heard, 64*n), seen: map[heard]time.Time{}, onFresh: map[string]string{}}
	SeedPublic(t, a, fake, r.IDs, 0, time.Now().Add(4*time.Hour))
	r.A = twitchoauth.NewUserTokens(PublicClient(t, fake), a)
	r.B = twitchoauth.NewUserTokens(PublicClient(t, fake), b)
	r.B.SyncEvery = syncEvery
	r.B.OnRefresh = func(id string, tok *oauth2.Token) {
		r.mu.Lock()
		r.onFresh[id] = tok.AccessToken
		r.mu.Unlock()
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(t.Context()))
	var wg sync.WaitGroup
	for _, u := range []*twitchoauth.UserTokens{r.A, r.B} {
		wg.Go(func() { u.Run(runCtx) })
	}
	t.Cleanup(func() {
		stop()
		wg.Wait()
	})
	WaitUntil(t, ctx, "A and B to list every user", func() bool { return len(r.A.Users()) == n && len(r.B.Users()) == n })
	for _, id := range r.IDs {
		src, err := r.B.Source(id)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(src.Subscribe(func(tok *oauth2.Token) {
			r.heard <- heard{id, tok.AccessToken, time.Now()}
		}))
	}
	// B's watch is up once it reports a change: A's refresh of the first user, not timed.
	r.WantHeard(t, ctx, r.IDs[0], r.Refresh(t, r.IDs[0]))
	return r
}

// Refresh makes Twitch refuse the user's token and has A refresh it, and returns A's new token.
func (r *Replicas) Refresh(t *testing.T, id string) string {
	access, _ := r.refresh(t, id)
	return access
}

// refresh is Refresh, also returning when A's ForceRefresh was called.
func (r *Replicas) refresh(t *testing.T, id string) (access string, called time.Time) {
	t.Helper()
	src, err := r.A.Source(id)
	if err != nil {
		t.Fatal(err)
	}
	old, err := src.TokenContext(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	r.Fake.ExpireAccessToken(old.AccessToken)
	called = time.Now()
	tok, err := src.ForceRefresh(t.Context(), old)
	if err != nil {
		t.Fatalf("A's refresh of user %s: %v", id, err)
	}
	return tok.AccessToken, called
}

// WantHeard waits until B's subscriber of id is handed access (or was), and returns when it was.
func (r *Replicas) WantHeard(t *testing.T, ctx context.Context, id, access string) time.Time {
	t.Helper()
	want := heard{id: id, access: access}
	for {
		if at, ok := r.seen[want]; ok {
			return at
		}
		select {
		case h := <-r.heard:
			if _, ok := r.seen[heard{id: h.id, access: h.access}]; !ok {
				r.seen[heard{id: h.id, access: h.access}] = h.at
			}
		case <-ctx.Done():
			t.Fatalf("B's subscriber of user %s was not handed A's new token: %v", id, ctx.Err())
		}
	}
}

// WantGone waits until B's source of id has ended (B dropped the user), checks that B no longer
// lists the user, and returns when the source ended.
func (r *Replicas) WantGone(t *testing.T, ctx context.Context, id string, src *twitchoauth.UserTokenSource) time.Time {
	t.Helper()
	select {
	case <-src.Done():
	case <-ctx.Done():
		t.Fatalf("B did not drop user %s: %v", id, ctx.Err())
	}
	at := time.Now()
	if slices.Contains(r.B.Users(), id) {
		t.Errorf("B lists user %s, whose source has ended", id)
	}
	return at
}

// WantOnRefresh checks that B's OnRefresh was handed each user's token in want.
func (r *Replicas) WantOnRefresh(t *testing.T, want map[string]string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, access := range want {
		if r.onFresh[id] != access {
			t.Errorf("B's OnRefresh was not handed A's new token of user %s", id)
		}
	}
}

// Percentile returns the p-th percentile of sorted d.
func Percentile(d []time.Duration, p int) time.Duration {
	return d[(len(d)*p+99)/100-1]
}

// HearsRefreshAtOnce: A refreshes each of users users in turn; the time from A's ForceRefresh
// returning to B's subscriber being handed A's token is measured, its p50 and p99 logged, and the
// p99 held under bound (a subscriber handed the token before ForceRefresh returned counts as 0).
// Then A removes removed users, one at a time: each is dropped by B within bound (its p99 logged).
func HearsRefreshAtOnce(t *testing.T, a, b twitchoauth.TokenStore, users, removed int, bound time.Duration) {
	r := StartReplicas(t, a, b, users, time.Hour)
	ctx, cancel := context.WithTimeout(t.Context(), FaultTimeout)
	defer cancel()
	var lat, whole []time.Duration
	want := map[string]string{}
	for _, id := range r.IDs[1:] {
		access, called := r.refresh(t, id)
		returned := time.Now()
		at := r.WantHeard(t, ctx, id, access)
		lat = append(lat, max(0, at.Sub(returned)))
		whole = append(whole, at.Sub(called))
		want[id] = access
	}
	slices.Sort(lat)
	slices.Sort(whole)
	p50, p99 := Percentile(lat, 50), Percentile(lat, 99)
	t.Logf("%d refreshes by A: B's subscriber handed the token after A's ForceRefresh returned: p50 %v, p99 %v, max %v (0: before it returned; from the call: p50 %v, p99 %v)",
		len(lat), p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond),
		Percentile(whole, 50).Round(10*time.Microsecond), Percentile(whole, 99).Round(10*time.Microsecond))
	if p99 > bound {
		t.Errorf("p99 %v from A's refresh to B's subscriber; want under %v", p99, bound)
	}
	r.WantOnRefresh(t, want)
	WantNoReuse(t, r.Fake, -1)

	var gone []time.Duration
	for _, id := range r.IDs[:removed] {
		src, err := r.B.Source(id)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.A.Remove(ctx, id, false); err != nil {
			t.Fatal(err)
		}
		returned := time.Now()
		gone = append(gone, r.WantGone(t, ctx, id, src).Sub(returned))
	}
	slices.Sort(gone)
	p99 = Percentile(gone, 99)
	t.Logf("%d users removed by A: dropped by B after p50 %v, p99 %v", len(gone),
		Percentile(gone, 50).Round(10*time.Microsecond), p99.Round(10*time.Microsecond))
	if p99 > bound {
		t.Errorf("p99 %v from A's Remove to B dropping the user; want under %v", p99, bound)
	}
	if n := len(r.B.Users()); n != users-removed {
		t.Errorf("B has %d users; want %d", n, users-removed)
	}
}

// WatchLoss is how a store's test ends the watch of replica B for ChangesSeenAfterWatchLost.
type WatchLoss struct {
	// Lose ends B's watch's connection; A's writes can be made once it returns, and B's watch
	// hears none of them until Back.
	Lose func(t *testing.T)
	// Back lets B's watch connect again; nil when it does so by itself.
	Back func(t *testing.T)
}

// ChangesSeenAfterWatchLost: B (SyncEvery syncEvery) loses its watch; meanwhile A refreshes five
// users and removes one. Within syncEvery of its watch being let back, B's subscribers are handed
// every new token and B has dropped the user; and a change made later reaches B at once (within
// a fifth of syncEvery).
func ChangesSeenAfterWatchLost(t *testing.T, a, b twitchoauth.TokenStore, syncEvery time.Duration, loss WatchLoss) {
	r := StartReplicas(t, a, b, 20, syncEvery)
	ctx, cancel := context.WithTimeout(t.Context(), FaultTimeout)
	defer cancel()
	removed := r.IDs[19]
	removedSrc, err := r.B.Source(removed)
	if err != nil {
		t.Fatal(err)
	}

	loss.Lose(t)
	want := map[string]string{}
	for _, id := range r.IDs[1:6] {
		want[id] = r.Refresh(t, id)
	}
	if err := r.A.Remove(ctx, removed, false); err != nil {
		t.Fatal(err)
	}
	if loss.Back != nil {
		loss.Back(t)
	}
	back := time.Now() // for a watch that comes back by itself, A's last change
	var last time.Time
	for _, id := range r.IDs[1:6] {
		if at := r.WantHeard(t, ctx, id, want[id]); at.After(last) {
			last = at
		}
	}
	if at := r.WantGone(t, ctx, removed, removedSrc); at.After(last) {
		last = at
	}
	took := max(0, last.Sub(back))
	t.Logf("after the gap, B had every change made in it %v after its watch was let back (SyncEvery %v)", took.Round(time.Millisecond), syncEvery)
	if took > syncEvery {
		t.Errorf("B took %v to take up the changes made while its watch was down; want within SyncEvery, %v", took, syncEvery)
	}
	r.WantOnRefresh(t, want)

	id := r.IDs[6]
	access := r.Refresh(t, id)
	returned := time.Now()
	later := max(0, r.WantHeard(t, ctx, id, access).Sub(returned))
	t.Logf("a refresh after the gap: B's subscriber handed it %v after A's returned", later.Round(10*time.Microsecond))
	if later > syncEvery/5 {
		t.Errorf("B heard of a refresh after the gap %v after it; want at once", later)
	}
	WantNoReuse(t, r.Fake, -1)
}
