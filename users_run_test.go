package twitchoauth

import (
	"context"
	"errors"
	"fmt"
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

// countTransport serves requests with the fake in memory (see memTransport) and counts what a
// scheduler must keep in bounds: requests in flight, failed answers, and when each access token
// was validated.
type countTransport struct {
	base     http.RoundTripper
	inFlight atomic.Int64
	maxSeen  atomic.Int64
	failures atomic.Int64

	mu        sync.Mutex
	validated map[string][]time.Time // by access token
}

func (ct *countTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	n := ct.inFlight.Add(1)
	defer ct.inFlight.Add(-1)
	for m := ct.maxSeen.Load(); n > m && !ct.maxSeen.CompareAndSwap(m, n); m = ct.maxSeen.Load() {
	}
	start := time.Now()
	resp, err := ct.base.RoundTrip(req)
	if (err != nil && req.Context().Err() == nil) || (err == nil && (resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests)) {
		ct.failures.Add(1)
	}
	if strings.HasSuffix(req.URL.Path, "/validate") && err == nil && resp.StatusCode == http.StatusOK {
		tok := strings.TrimPrefix(req.Header.Get("Authorization"), "OAuth ")
		ct.mu.Lock()
		ct.validated[tok] = append(ct.validated[tok], start)
		ct.mu.Unlock()
	}
	return resp, err
}

// timesUntil returns when tok was validated successfully, up to end.
func (ct *countTransport) timesUntil(tok string, end time.Time) []time.Time {
	return slices.DeleteFunc(ct.times(tok), func(at time.Time) bool { return at.After(end) })
}

// times returns when tok was validated successfully.
func (ct *countTransport) times(tok string) []time.Time {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return slices.Clone(ct.validated[tok])
}

// runBubble is a registry's world inside a synctest bubble: the fake, served in memory so that
// the bubble's clock drives it, and a store.
type runBubble struct {
	fake  *faketwitch.Server
	tr    *countTransport
	c     *Client
	store *memStore
}

// newRunBubble must be called inside synctest.Test.
func newRunBubble(t testing.TB) *runBubble {
	t.Helper()
	fake := faketwitch.New()
	tr := &countTransport{base: &memTransport{fake: fake}, validated: map[string][]time.Time{}}
	c := NewClient(faketwitch.ClientID, faketwitch.ClientSecret)
	c.AuthBaseURL = "http://fake.invalid/oauth2/"
	c.HTTPClient = &http.Client{Transport: tr}
	return &runBubble{fake: fake, tr: tr, c: c, store: newMemStore()}
}

// ids returns n user IDs.
func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(100000 + i)
	}
	return out
}

// run starts u.Run and returns a func that stops it and returns its error.
func run(t testing.TB, u *UserTokens) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	return sync.OnceValue(func() error {
		cancel()
		return <-done
	})
}

// TestUserTokensRunSchedule: Run validates each user once per period, every period, at a slot of
// its own spread over the period: never all at once, never more than MaxInFlight together.
func TestUserTokensRunSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newRunBubble(t)
		users := ids(300)
		seedStore(t, b.fake, b.store, users)
		b.fake.Fail("validate", faketwitch.Fault{Pass: true, Delay: 50 * time.Millisecond})
		u := NewUserTokens(b.c, b.store)
		u.MaxInFlight = 4
		const period = time.Hour
		if err := u.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		stop := run(t, u)
		time.Sleep(3*period + time.Second) // validations begun before 3 periods end
		end := start.Add(3 * period)
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
		perSecond := map[int64]int{}
		for _, id := range users {
			times := b.tr.timesUntil(b.store.stored(id).AccessToken, end)
			for _, at := range times {
				perSecond[at.Unix()]++
			}
			if len(times) != 3 {
				t.Errorf("user %s validated %d times in 3 periods, want 3", id, len(times))
				continue
			}
			if first := times[0].Sub(start); first > period {
				t.Errorf("user %s first validated after %v", id, first)
			}
			for i := 1; i < len(times); i++ {
				if gap := times[i].Sub(times[i-1]); gap < period-time.Second || gap > period+time.Second {
					t.Errorf("user %s: %v between validations, want %v", id, gap, period)
				}
			}
		}
		busiest := 0
		for _, n := range perSecond {
			busiest = max(busiest, n)
		}
		if busiest > 5 { // 300 users over 3600 s: a few in the same second at most
			t.Errorf("%d validations started in one second: not spread", busiest)
		}
		if m := b.tr.maxSeen.Load(); m > 4 {
			t.Errorf("%d requests in flight, want at most MaxInFlight = 4", m)
		}
		if n := b.tr.failures.Load(); n != 0 {
			t.Errorf("%d failed requests", n)
		}
	})
}

// TestUserTokensReplicasShareValidation: three replicas over one store validate each user once per
// period between them, not three times.
func TestUserTokensReplicasShareValidation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newRunBubble(t)
		users := ids(60)
		seedStore(t, b.fake, b.store, users)
		b.fake.Fail("validate", faketwitch.Fault{Pass: true, Delay: 50 * time.Millisecond})
		var stops []func() error
		for range 3 {
			u := NewUserTokens(b.c, b.store)
			if err := u.Sync(t.Context()); err != nil {
				t.Fatal(err)
			}
			stops = append(stops, run(t, u))
		}
		time.Sleep(3 * time.Hour)
		for _, stop := range stops {
			stop()
		}
		total := 0
		for _, id := range users {
			times := b.tr.times(b.store.stored(id).AccessToken)
			total += len(times)
			if len(times) < 2 || len(times) > 3 {
				t.Errorf("user %s validated %d times in 3 periods by 3 replicas, want 3 (2 at the edge)", id, len(times))
			}
			for i := 1; i < len(times); i++ {
				if gap := times[i].Sub(times[i-1]); gap < time.Hour-2*time.Minute {
					t.Errorf("user %s validated twice within %v", id, gap)
				}
			}
		}
		t.Logf("%d validations for %d users, 3 periods, 3 replicas", total, len(users))
	})
}

// TestUserTokensRunRefreshesRejected: a token Twitch killed before its Expiry is found by Run's
// validation, refreshed once, the new one validated and stored; OnRefresh hears of it.
func TestUserTokensRunRefreshesRejected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newRunBubble(t)
		seedStore(t, b.fake, b.store, []string{"100", "200"})
		dead := b.store.stored("100").AccessToken
		b.fake.ExpireAccessToken(dead)
		u := NewUserTokens(b.c, b.store)
		var refreshed atomic.Int32
		u.OnRefresh = func(userID string, tok *oauth2.Token) {
			if userID == "100" && tok.AccessToken != dead {
				refreshed.Add(1)
			}
		}
		if err := u.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		stop := run(t, u)
		time.Sleep(time.Hour + time.Second) // validations begun in the period end
		stop()
		st := b.store.stored("100")
		if st == nil || st.AccessToken == dead || st.ValidatedAt.IsZero() {
			t.Fatalf("stored %+v; want a new, validated token", st)
		}
		if n := b.fake.CountGrant("refresh_token"); n != 1 {
			t.Errorf("%d refreshes, want 1", n)
		}
		if len(b.tr.times(st.AccessToken)) != 1 {
			t.Error("the new token was not validated")
		}
		if n := refreshed.Load(); n != 1 {
			t.Errorf("OnRefresh called %d times for user 100, want 1", n)
		}
		src, _ := u.Source("100")
		if tok, err := src.Token(); err != nil || tok.AccessToken != st.AccessToken {
			t.Errorf("Token() = %v, %v", tok, err)
		}
	})
}

// TestUserTokensRunRevoked: a grant the user revoked is found by Run's validation: OnRevoked is
// called once, and the user leaves the registry and the store (unless KeepRevoked); other users
// go on being validated.
func TestUserTokensRunRevoked(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprint("KeepRevoked=", keep), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newRunBubble(t)
				seedStore(t, b.fake, b.store, []string{"100", "200"})
				gone := b.store.stored("100")
				b.fake.ExpireAccessToken(gone.AccessToken)
				b.fake.RevokeRefreshToken(gone.RefreshToken)
				log, logs := captureLog()
				b.c.Logger = log
				u := NewUserTokens(b.c, b.store)
				u.KeepRevoked = keep
				var calls []string
				var mu sync.Mutex
				u.OnRevoked = func(userID string, err error) {
					mu.Lock()
					defer mu.Unlock()
					if !errors.Is(err, ErrInvalidRefreshToken) {
						t.Errorf("OnRevoked err = %v, want ErrInvalidRefreshToken", err)
					}
					calls = append(calls, userID)
				}
				if err := u.Sync(t.Context()); err != nil {
					t.Fatal(err)
				}
				src, _ := u.Source("100")
				start := time.Now()
				stop := run(t, u)
				time.Sleep(3*time.Hour + time.Second) // validations begun in 3 periods end
				stop()
				if !slices.Equal(calls, []string{"100"}) {
					t.Errorf("OnRevoked calls %q, want one for user 100", calls)
				}
				if _, err := src.Token(); !errors.Is(err, ErrInvalidRefreshToken) {
					t.Errorf("revoked user's Token() err = %v", err)
				}
				if keep != (b.store.stored("100") != nil) || keep != slices.Contains(u.Users(), "100") {
					t.Errorf("KeepRevoked=%v: stored %v, users %q", keep, b.store.stored("100") != nil, u.Users())
				}
				if n := b.fake.CountGrant("refresh_token"); n != 1 {
					t.Errorf("%d refresh attempts for a revoked grant in 3 periods, want 1", n)
				}
				if n := len(b.tr.timesUntil(b.store.stored("200").AccessToken, start.Add(3*time.Hour))); n != 3 {
					t.Errorf("the other user validated %d times, want 3", n)
				}
				if out := logs.String(); strings.Contains(out, gone.AccessToken) || strings.Contains(out, gone.RefreshToken) {
					t.Errorf("the log holds a token:\n%s", out)
				}
			})
		})
	}
}

// TestUserTokensRevokedOnce: many callers that find a revoked grant together make one refresh
// attempt and one OnRevoked call.
func TestUserTokensRevokedOnce(t *testing.T) {
	c, fake := newTestClient(t)
	store := newMemStore()
	seedStore(t, fake, store, []string{"100"})
	st := store.stored("100")
	st.Expiry = time.Now().Add(-time.Minute) // expired: every caller must refresh
	store.Save(t.Context(), "100", st)
	fake.RevokeRefreshToken(st.RefreshToken)
	u := NewUserTokens(c, store)
	var calls atomic.Int32
	u.OnRevoked = func(_ string, err error) {
		calls.Add(1)
		// What it says to do agrees with UserTokens' doc: add the user again, not SetToken.
		if msg := err.Error(); !strings.Contains(msg, "AddUserForToken") || strings.Contains(msg, "SetToken") {
			t.Errorf("OnRevoked's error says %q; want it to say to add the user again", msg)
		}
	}
	if err := u.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	src, _ := u.Source("100")
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := src.Token(); !errors.Is(err, ErrInvalidRefreshToken) {
				t.Errorf("Token() err = %v", err)
			}
		})
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("OnRevoked called %d times, want 1", n)
	}
	if n := fake.CountGrant("refresh_token"); n != 1 {
		t.Errorf("%d refresh attempts, want 1", n)
	}
	if store.stored("100") != nil {
		t.Error("the revoked user is still stored")
	}
	// A new login brings the user back.
	if _, err := u.AddUserForToken(t.Context(), newUser(fake, "100", 0)); err != nil {
		t.Fatal(err)
	}
	again, _ := u.Source("100")
	if _, err := again.Token(); err != nil {
		t.Errorf("after a new login: %v", err)
	}
}

// TestUserTokensRunTransient: validations that fail for a while (Twitch answers 503) are retried
// after a backoff; no user is dropped, and each is validated once Twitch answers again.
func TestUserTokensRunTransient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newRunBubble(t)
		users := ids(20)
		seedStore(t, b.fake, b.store, users)
		b.fake.Fail("validate", faketwitch.Fault{Status: http.StatusServiceUnavailable, Count: 30})
		u := NewUserTokens(b.c, b.store)
		if err := u.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		stop := run(t, u)
		time.Sleep(time.Hour + 15*time.Minute)
		stop()
		if got := u.Users(); !slices.Equal(got, users) {
			t.Errorf("users after failures: %q", got)
		}
		for _, id := range users {
			st := b.store.stored(id)
			if st == nil || len(b.tr.times(st.AccessToken)) == 0 || st.ValidatedAt.IsZero() {
				t.Errorf("user %s never validated after Twitch came back", id)
			}
		}
		if n := b.fake.CountGrant("refresh_token"); n != 0 {
			t.Errorf("%d refreshes for an outage of validate", n)
		}
	})
}

// TestUserTokensRunPicksUpChanges: a user added while Run runs is validated in its slot; a user
// removed is validated no more; a second Run at the same time is refused.
func TestUserTokensRunPicksUpChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newRunBubble(t)
		seedStore(t, b.fake, b.store, []string{"100", "200"})
		u := NewUserTokens(b.c, b.store)
		if err := u.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		stop := run(t, u)
		synctest.Wait()
		if err := u.Run(t.Context()); err == nil {
			t.Error("a second Run while one runs was not refused")
		}
		tok := newUser(b.fake, "300", 0)
		if _, err := u.AddUserForToken(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
		removed := b.store.stored("200").AccessToken
		if err := u.Remove(t.Context(), "200", false); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Hour)
		stop()
		// Added: validated on the way in, then by Run in each period after the first.
		if n := len(b.tr.times(tok.AccessToken)); n < 3 {
			t.Errorf("user added while running validated %d times in 3 periods", n)
		}
		if n := len(b.tr.times(removed)); n != 0 {
			t.Errorf("removed user validated %d times", n)
		}
	})
}

// TestUserTokensSyncReplicas: a user one replica adds is seen by another after Sync, with its
// intents; one it removes is dropped there too; keys that hold no user are left alone.
func TestUserTokensSyncReplicas(t *testing.T) {
	c, fake := newTestClient(t)
	store := newMemStore()
	a, b := NewUserTokens(c, store), NewUserTokens(c, store)
	if _, err := a.AddUserForToken(t.Context(), newUser(fake, "100", 0), "chat"); err != nil {
		t.Fatal(err)
	}
	// The storage helper's token under its own key is no user of the registry.
	store.Save(t.Context(), "bot", &StoredToken{AccessToken: "x", UserID: "100"})
	if err := b.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := b.Users(); !slices.Equal(got, []string{"100"}) {
		t.Fatalf("replica b's users %q", got)
	}
	src, err := b.SourceForIntent("chat")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Token(); err != nil {
		t.Fatal(err)
	}
	if err := a.Remove(t.Context(), "100", false); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := b.Users(); len(got) != 0 {
		t.Errorf("replica b still has %q", got)
	}
	if _, err := src.Token(); !errors.Is(err, ErrTokenNotFound) {
		t.Errorf("removed user's source on replica b: err = %v", err)
	}
}

// TestUserTokensRunLeavesExpiredAlone: a token that has expired is neither validated nor
// refreshed by Run (a user the bot no longer calls Helix for costs no requests); its next use
// refreshes it.
func TestUserTokensRunLeavesExpiredAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newRunBubble(t)
		seedStore(t, b.fake, b.store, []string{"100"})
		st := b.store.stored("100")
		st.Expiry = time.Now().Add(-time.Minute)
		b.store.Save(t.Context(), "100", st)
		u := NewUserTokens(b.c, b.store)
		if err := u.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		stop := run(t, u)
		time.Sleep(2 * time.Hour)
		stop()
		if n := b.fake.CountRequests("validate") + b.fake.CountRequests("token"); n != 0 {
			t.Errorf("%d requests for an expired token nobody used", n)
		}
		src, _ := u.Source("100")
		if tok, err := src.Token(); err != nil || tok.AccessToken == st.AccessToken {
			t.Errorf("Token() = %v, %v; want a refreshed token", tok, err)
		}
	})
}

// TestUserTokensConcurrentChanges: users added, removed, looked up, refreshed and synced from many
// goroutines while Run validates every few milliseconds: no race, no deadlock, and in the end the
// registry and the store agree.
func TestUserTokensConcurrentChanges(t *testing.T) {
	c, fake := newTestClient(t)
	store := newMemStore()
	u := NewUserTokens(c, store)
	u.ValidateEvery = 50 * time.Millisecond
	u.SyncEvery = 10 * time.Millisecond
	u.MaxInFlight = 3
	stop := run(t, u)
	users := ids(20)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 30 {
				id := users[(w*7+i)%len(users)]
				switch i % 5 {
				case 0, 1:
					if _, err := u.AddUserForToken(t.Context(), newUser(fake, id, 0), "chatbot:"+id, "chat"); err != nil {
						t.Error(err)
					}
				case 2:
					if err := u.Remove(t.Context(), id, i%2 == 0); err != nil {
						t.Error(err)
					}
				case 3:
					if src, err := u.Source(id); err == nil {
						src.ForceRefresh(t.Context(), nil) // may find the user removed meanwhile
					}
				case 4:
					if err := u.Sync(t.Context()); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
	if err := u.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	stored, _ := store.Keys(t.Context())
	slices.Sort(stored)
	if got := u.Users(); !slices.Equal(got, stored) {
		t.Errorf("registry has %q, store %q", got, stored)
	}
	if src, err := u.SourceForIntent("chat"); err == nil {
		if _, err := src.Token(); err != nil {
			t.Errorf("the chat user's token: %v", err)
		}
	}
}
