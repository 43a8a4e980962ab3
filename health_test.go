package twitchoauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// healthWorld is a public client's registry over a lossyStore holding one user in each state
// (the user ID names it), and every token the test saw, to look for in what Health reports.
type healthWorld struct {
	b      *runBubble
	lossy  *lossyStore
	u      *UserTokens
	tokens []string
}

// newHealthWorld must be called inside synctest.Test.
func newHealthWorld(t *testing.T) *healthWorld {
	t.Helper()
	b := publicBubble(t)
	w := &healthWorld{b: b, lossy: &lossyStore{memStore: b.store}}
	ctx := t.Context()
	seedExpired(t, b.fake, b.store, "doubt", "revoked", "pending", "backoff", "idle", "fresh")

	// fresh holds a live token, whose refresh token was issued 25 days ago.
	st := b.store.stored("fresh")
	st.AccessToken, st.RefreshToken = b.fake.IssueToken(faketwitch.PublicClientID, "fresh", []string{"chat:read"}, 0)
	st.Expiry, st.RefreshIssuedAt = time.Now().Add(4*time.Hour), time.Now().Add(-25*24*time.Hour)
	if err := b.store.Save(ctx, "fresh", st); err != nil {
		t.Fatal(err)
	}
	// doubt's refresh token is marked by another holder, past the mark's bound.
	st = b.store.stored("doubt")
	st.Spending = &SpendMark{Refresh: RefreshTokenHash(st.RefreshToken), At: time.Now().UTC(), Holder: "cut-off-1"}
	if err := b.store.Save(ctx, "doubt", st); err != nil {
		t.Fatal(err)
	}
	// revoked's grant is gone at Twitch.
	b.fake.RevokeRefreshToken(b.store.stored("revoked").RefreshToken)
	for _, id := range []string{"doubt", "revoked", "pending", "backoff", "idle", "fresh"} {
		st := b.store.stored(id)
		w.tokens = append(w.tokens, st.AccessToken, st.RefreshToken)
	}
	time.Sleep(time.Minute) // past the mark's bound

	w.u = NewUserTokens(b.c, w.lossy)
	w.u.KeepRevoked = true
	w.u.OnRefresh = func(_ string, tok *oauth2.Token) { w.tokens = append(w.tokens, tok.AccessToken, tok.RefreshToken) }
	if err := w.u.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	use := func(id string) error {
		src, err := w.u.Source(id)
		if err != nil {
			t.Fatal(err)
		}
		_, err = src.Token()
		return err
	}
	if err := use("doubt"); !errors.Is(err, ErrRefreshInDoubt) {
		t.Fatalf("doubt: Token() = %v; want the doubt", err)
	}
	if err := use("revoked"); !errors.Is(err, ErrInvalidRefreshToken) || errors.Is(err, ErrRefreshInDoubt) {
		t.Fatalf("revoked: Token() = %v; want the grant gone", err)
	}
	w.lossy.loseMark.Store(true) // pending's mark is made, its reply lost: the source holds it
	if err := use("pending"); err == nil {
		t.Fatal("pending: Token() with the mark's reply lost succeeded")
	}
	w.lossy.loseMark.Store(false)
	w.lossy.down.Store(false)
	b.fake.Fail("token", faketwitch.Fault{Status: http.StatusServiceUnavailable})
	if err := use("backoff"); err == nil || errors.Is(err, ErrInvalidRefreshToken) {
		t.Fatalf("backoff: Token() = %v; want Twitch's 503", err)
	}
	b.fake.ClearFaults()

	// revoked's ValidatedAt, as Run's read of the store would have taken it.
	w.u.mu.RLock()
	w.u.users["revoked"].validatedAt.Store(time.Unix(1_700_000_000, 0).UnixNano())
	w.u.mu.RUnlock()
	return w
}

// seen adds the tokens sent to Twitch and those the store holds to w.tokens, and returns them.
func (w *healthWorld) seen() []string {
	for _, r := range w.b.fake.Requests() {
		for _, k := range []string{"refresh_token", "code"} {
			w.tokens = append(w.tokens, r.Form[k]...)
		}
		w.tokens = append(w.tokens, strings.TrimPrefix(r.Authorization, "OAuth "), strings.TrimPrefix(r.Authorization, "Bearer "))
	}
	keys, _ := w.b.store.Keys(context.Background())
	for _, k := range keys {
		st := w.b.store.stored(k)
		w.tokens = append(w.tokens, st.AccessToken, st.RefreshToken)
	}
	return slices.DeleteFunc(w.tokens, func(s string) bool { return len(s) < 8 })
}

// TestHealthStates: one user in each state is counted in it, once; the users in doubt and whose
// grant is gone are listed with their error and last validation; nothing is read beside the probe.
func TestHealthStates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newHealthWorld(t)
		sent := w.b.fake.CountRequests("token")
		h := w.u.Health(t.Context(), HealthOptions{})
		want := HealthCounts{InDoubt: 1, Revoked: 1, Pending: 1, BackingOff: 1, Idle: 1, Fresh: 1}
		if h.States != want || h.Users != 6 {
			t.Errorf("States = %+v of %d users; want %+v of 6", h.States, h.Users, want)
		}
		if !h.Store.Reachable || h.Store.Error != "" || h.Running || h.Watching || h.ReadOnly {
			t.Errorf("Health = %+v; want the store reachable, Run not running", h)
		}
		if len(h.NeedAction) != 2 {
			t.Fatalf("NeedAction = %+v; want doubt and revoked", h.NeedAction)
		}
		doubt, revoked := h.NeedAction[0], h.NeedAction[1]
		if doubt.UserID != "doubt" || doubt.State != HealthInDoubt || doubt.Error == "" || !doubt.ValidatedAt.IsZero() {
			t.Errorf("NeedAction[0] = %+v; want doubt, in doubt, with its error and no validation read", doubt)
		}
		if revoked.UserID != "revoked" || revoked.State != HealthRevoked || !strings.Contains(revoked.Error, "log in again") ||
			!revoked.ValidatedAt.Equal(time.Unix(1_700_000_000, 0)) {
			t.Errorf("NeedAction[1] = %+v; want revoked, grant gone, with its error and validation", revoked)
		}
		if h.Lapsing != nil {
			t.Errorf("Lapsing = %+v without being asked for", h.Lapsing)
		}
		if n := w.b.fake.CountRequests("token") - sent; n != 0 {
			t.Errorf("Health sent %d requests to Twitch", n)
		}

		time.Sleep(5 * time.Minute) // the backoff ends: the user is idle, the next use refreshes
		if h := w.u.Health(t.Context(), HealthOptions{}); h.States.BackingOff != 0 || h.States.Idle != 2 {
			t.Errorf("after the backoff: States = %+v; want backoff idle", h.States)
		}
	})
}

// TestHealthLapsing: asked for, Health reads every user's record and lists the one whose refresh
// token lapses within the time given, with when; a confidential client's never lapse.
func TestHealthLapsing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newHealthWorld(t)
		saves := w.lossy.memStore.saves.Load()
		h := w.u.Health(t.Context(), HealthOptions{Lapsing: 7 * 24 * time.Hour})
		l := h.Lapsing
		if l == nil || l.Read != 6 || l.Unread != 0 || l.Within != 7*24*time.Hour || len(l.Users) != 1 || l.Users[0].UserID != "fresh" {
			t.Fatalf("Lapsing = %+v; want the 6 records read and fresh listed", l)
		}
		if want := w.b.store.stored("fresh").RefreshIssuedAt.Add(30 * 24 * time.Hour); !l.Users[0].Expiry.Equal(want) {
			t.Errorf("fresh lapses at %v; want %v", l.Users[0].Expiry, want)
		}
		if n := w.lossy.memStore.saves.Load() - saves; n != 0 {
			t.Errorf("Health wrote %d records", n)
		}

		w.lossy.down.Store(true)
		if l := w.u.Health(t.Context(), HealthOptions{Lapsing: time.Hour}).Lapsing; l.Unread != 6 || l.Error == "" {
			t.Errorf("store away: Lapsing = %+v; want every record unread, with the error", l)
		}
		w.lossy.down.Store(false)

		w.u.c.ClientSecret = "confidential"
		defer func() { w.u.c.ClientSecret = "" }()
		if l := w.u.Health(t.Context(), HealthOptions{Lapsing: 40 * 24 * time.Hour}).Lapsing; l.Read != 0 || len(l.Users) != 0 {
			t.Errorf("confidential client: Lapsing = %+v; want nothing read", l)
		}
	})
}

// TestHealthRunning: Health says whether Run runs and watches the store's changes.
func TestHealthRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := publicBubble(t)
		store := newWatchedStore()
		seedExpired(t, b.fake, store, "u")
		u := NewUserTokens(b.c, store)
		stop := run(t, u)
		time.Sleep(time.Second)
		synctest.Wait()
		if h := u.Health(t.Context(), HealthOptions{}); !h.Running || !h.Watching || h.Users != 1 {
			t.Errorf("while Run runs: Health = %+v; want running and watching, one user", h)
		}
		if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		if h := u.Health(t.Context(), HealthOptions{}); h.Running || h.Watching {
			t.Errorf("after Run: Health = %+v; want neither", h)
		}
	})
}

// TestHealthHandler: the handler serves Health as JSON: 200 while the store answers, with the
// users who need action in the body and no token anywhere in it; 503 when the store does not
// answer; 405 for another method, 400 for a bad lapsing.
func TestHealthHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newHealthWorld(t)
		hh := w.u.HealthHandler()
		serve := func(method, target string) *httptest.ResponseRecorder {
			rec := httptest.NewRecorder()
			hh.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), method, target, nil))
			return rec
		}
		var bodies []string
		for _, tc := range []struct {
			name, method, target string
			down                 bool
			status               int
			lapsing              int // users listed as lapsing; -1: not asked for
		}{
			{"reachable", http.MethodGet, "/health", false, http.StatusOK, -1},
			{"lapsing in days", http.MethodGet, "/health?lapsing=7d", false, http.StatusOK, 1},
			{"lapsing as a duration", http.MethodGet, "/health?lapsing=1h", false, http.StatusOK, 0},
			{"store away", http.MethodGet, "/health", true, http.StatusServiceUnavailable, -1},
		} {
			func() {
				w.lossy.down.Store(tc.down)
				defer w.lossy.down.Store(false)
				rec := serve(tc.method, tc.target)
				if rec.Code != tc.status || rec.Header().Get("Content-Type") != "application/json" {
					t.Fatalf("%s: %s %s = %d %q; want %d, JSON", tc.name, tc.method, tc.target, rec.Code, rec.Header().Get("Content-Type"), tc.status)
				}
				bodies = append(bodies, rec.Body.String())
				var h Health
				if err := json.Unmarshal(rec.Body.Bytes(), &h); err != nil {
					t.Fatalf("%s: body %s: %v", tc.name, rec.Body, err)
				}
				if h.Store.Reachable == tc.down || (tc.down && h.Store.Error == "") || h.Users != 6 || len(h.NeedAction) != 2 ||
					h.States != (HealthCounts{InDoubt: 1, Revoked: 1, Pending: 1, BackingOff: 1, Idle: 1, Fresh: 1}) {
					t.Errorf("%s: body %s", tc.name, rec.Body)
				}
				if (h.Lapsing == nil) != (tc.lapsing < 0) || (h.Lapsing != nil && len(h.Lapsing.Users) != tc.lapsing) {
					t.Errorf("%s: lapsing: %+v; want %d users", tc.name, h.Lapsing, tc.lapsing)
				}
				if !strings.Contains(rec.Body.String(), `"need_action":[{"user_id":"doubt","state":"in_doubt"`) {
					t.Errorf("%s: body %s; want the users in need listed", tc.name, rec.Body)
				}
			}()
		}
		for _, tc := range []struct{ method, target string }{
			{http.MethodPost, "/health"}, {http.MethodDelete, "/health"},
		} {
			if rec := serve(tc.method, tc.target); rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != http.MethodGet {
				t.Errorf("%s %s = %d, Allow %q; want 405, GET", tc.method, tc.target, rec.Code, rec.Header().Get("Allow"))
			}
		}
		for _, q := range []string{"7", "-1d", "0d", "soon", "-3h"} {
			if rec := serve(http.MethodGet, "/health?lapsing="+q); rec.Code != http.StatusBadRequest {
				t.Errorf("lapsing=%s: %d; want 400", q, rec.Code)
			}
		}
		tokens := w.seen()
		if len(tokens) < 12 {
			t.Fatalf("%d tokens seen; want every user's pair", len(tokens))
		}
		for _, body := range bodies {
			for _, tok := range tokens {
				if strings.Contains(body, tok) {
					t.Errorf("the body holds a token: %s", body)
				}
			}
		}
	})
}

// TestHealthHandlerLapsingShared: ?lapsing= reads every user's record one read at a time for the
// registry, and a whole read is served again for a minute to requests for the same window: a
// caller repeating it costs the store a read per user a minute, not a read per user a request.
func TestHealthHandlerLapsingShared(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newHealthWorld(t)
		hh := w.u.HealthHandler()
		get := func(lapsing string) *LapsingHealth {
			rec := httptest.NewRecorder()
			hh.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/health?lapsing="+lapsing, nil))
			var h Health
			if err := json.Unmarshal(rec.Body.Bytes(), &h); err != nil || h.Lapsing == nil || h.Lapsing.Read != 6 {
				t.Fatalf("lapsing=%s: %d %s; want the 6 records read", lapsing, rec.Code, rec.Body)
			}
			return h.Lapsing
		}
		reads := func(do func()) int64 {
			before := w.b.store.found.Load()
			do()
			return w.b.store.found.Load() - before
		}
		var first *LapsingHealth
		if n := reads(func() {
			var wg sync.WaitGroup
			for range 5 {
				wg.Go(func() { get("7d") })
			}
			wg.Wait()
			first = get("7d")
		}); n != 6 {
			t.Errorf("six requests for one window read %d records; want each of the 6 once", n)
		}
		if n := reads(func() { get("1h") }); n != 6 {
			t.Errorf("another window read %d records; want the 6", n)
		}
		time.Sleep(lapsingReuse)
		var again *LapsingHealth
		if n := reads(func() { again = get("7d") }); n != 6 || !again.At.After(first.At) {
			t.Errorf("a minute on: read %d records, at %v after %v; want the 6 read again", n, again.At, first.At)
		}
		if l := w.u.Health(t.Context(), HealthOptions{Lapsing: 7 * 24 * time.Hour}); l.Lapsing.Read != 6 {
			t.Errorf("Health itself: %+v; want its own read", l.Lapsing)
		}

		// A request that waits past its time for another's read says so, and reads nothing.
		if err := w.u.lapsingTurn.lock(t.Context()); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		if n := reads(func() {
			hh.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/health?lapsing=30d", nil))
		}); n != 0 {
			t.Errorf("a request that found a read under way read %d records", n)
		}
		w.u.lapsingTurn.unlock()
		var h Health
		if err := json.Unmarshal(rec.Body.Bytes(), &h); err != nil || h.Lapsing == nil || h.Lapsing.Unread != 6 ||
			!strings.Contains(h.Lapsing.Error, "another lapsing read is under way") {
			t.Errorf("a request that found a read under way: %d %s; want every record unread, and why", rec.Code, rec.Body)
		}

		// A read that the handler's time limit cuts short is served again too: a store too slow
		// for a whole read in time is not read anew at every request.
		time.Sleep(lapsingReuse)
		w.lossy.slow.Store(true)
		var cut [2]Health
		for i := range cut {
			rec := httptest.NewRecorder()
			hh.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/health?lapsing=7d", nil))
			if err := json.Unmarshal(rec.Body.Bytes(), &cut[i]); err != nil || cut[i].Lapsing == nil {
				t.Fatalf("slow store: %d %s", rec.Code, rec.Body)
			}
		}
		w.lossy.slow.Store(false)
		if l := cut[1].Lapsing; l.Unread == 0 || !l.At.Equal(cut[0].Lapsing.At) || w.lossy.slowLoads.Load() > int64(w.u.maxInFlight()) {
			t.Errorf("slow store: the second request got %+v, after %d reads; want the first's read, cut short, served again", l, w.lossy.slowLoads.Load())
		}
	})
}

// BenchmarkUserTokensHealth: Health (the default, probe, path) over 10,000 registered users, with
// ten of them in need of action; reported per call and per user.
func BenchmarkUserTokensHealth(b *testing.B) {
	store := newMemStore()
	users := ids(10000)
	for _, id := range users {
		store.Save(b.Context(), id, &StoredToken{AccessToken: "a" + id, RefreshToken: "r" + id,
			Expiry: time.Now().Add(time.Hour), Scopes: []Scope{ScopeChatRead}, UserID: id})
	}
	u := NewUserTokens(&Client{}, store)
	if err := u.Sync(b.Context()); err != nil {
		b.Fatal(err)
	}
	var once sync.Once
	for _, id := range users[:10] {
		src, _ := u.Source(id)
		err := errors.New("twitchoauth: the user's authorization is gone; log in again")
		src.state().revoked.Store(&err)
	}
	b.ReportAllocs()
	for b.Loop() {
		h := u.Health(b.Context(), HealthOptions{})
		once.Do(func() {
			if h.States.Fresh != len(users)-10 || len(h.NeedAction) != 10 {
				b.Fatalf("States = %+v", h.States)
			}
		})
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(users)), "ns/user")
}

// TestUserTokensCounts: Counts counts users as Health does, from memory, and tells a pending
// mark from a pending pair.
func TestUserTokensCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newHealthWorld(t)
		h := w.u.Health(t.Context(), HealthOptions{})
		c := w.u.Counts()
		if c.States != h.States || c.Users != h.Users {
			t.Errorf("Counts() = %+v; want Health's %d users, %+v", c, h.Users, h.States)
		}
		if c.PendingMarks != 1 || c.PendingPairs != 0 || c.Refreshing != 0 {
			t.Errorf("Counts() = %+v; want the one pending user's mark, nothing refreshing", c)
		}
	})
}

// TestUserTokensCountsAllocs: a gauge's Counts allocates nothing.
func TestUserTokensCountsAllocs(t *testing.T) {
	u := NewUserTokens(NewClient("app", ""), newMemStore())
	for _, id := range ids(100) {
		u.put(t.Context(), &StoredToken{AccessToken: "t" + id, UserID: id})
	}
	if n := testing.AllocsPerRun(10, func() { u.Counts() }); n != 0 {
		t.Errorf("Counts allocates %v times", n)
	}
}
