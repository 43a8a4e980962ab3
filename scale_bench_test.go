package twitchoauth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// The benchmarks in this file measure the registry at 10,000 users, each beside its floor in
// the same run: what the least a program doing the same job must spend. README's "At scale"
// table gives their ratios.

// BenchmarkUserTokensHeap measures the heap each user costs once registered from stored pairs
// (Sync) and asked for once (Source): the store's copy, the registry's entry, the source and the
// token, reported as B/user; source-B/user is what the first Source calls added; registry-B/user
// is what the registry holds (B/user less the in-memory store's copy, which a shared store keeps
// out of the process). "floor" is a map of the same tokens. The token strings exist before either
// is measured: both share them.
func BenchmarkUserTokensHeap(b *testing.B) {
	users := ids(scaleUsers)
	access, refresh, logins := make([]string, len(users)), make([]string, len(users)), make([]string, len(users))
	for i, id := range users {
		access[i] = "access-" + id + "-0123456789abcdefghijk"
		refresh[i] = "refresh-" + id + "-0123456789abcdefghijklmnopqrstuvwxyz0123456"
		logins[i] = "user" + id
	}
	expiry := time.Now().Add(4 * time.Hour)
	scopes := []Scope{ScopeChatRead, ScopeChatEdit}
	b.Run("UserTokens", func(b *testing.B) {
		var perUser, perSource, perStored float64
		for b.Loop() {
			base := liveHeap()
			store := newMemStore()
			for i, id := range users {
				store.Save(b.Context(), id, &StoredToken{AccessToken: access[i], RefreshToken: refresh[i], Expiry: expiry,
					Scopes: scopes, UserID: id, Login: logins[i], ClientID: faketwitch.ClientID})
			}
			stored := liveHeap()
			perStored = float64(stored-base) / scaleUsers
			u := NewUserTokens(&Client{}, store)
			if err := u.Sync(b.Context()); err != nil {
				b.Fatal(err)
			}
			synced := liveHeap()
			for _, id := range users {
				if _, err := u.Source(id); err != nil {
					b.Fatal(err)
				}
			}
			end := liveHeap()
			perUser = float64(end-base) / scaleUsers
			perSource = float64(end-synced) / scaleUsers
			runtime.KeepAlive(u)
		}
		b.ReportMetric(perUser, "B/user")
		b.ReportMetric(perSource, "source-B/user")
		b.ReportMetric(perUser-perStored, "registry-B/user")
	})
	b.Run("floor", func(b *testing.B) {
		var perUser float64
		for b.Loop() {
			base := liveHeap()
			m := map[string]*oauth2.Token{}
			for i, id := range users {
				m[id] = &oauth2.Token{AccessToken: access[i], RefreshToken: refresh[i], Expiry: expiry}
			}
			perUser = float64(liveHeap()-base) / scaleUsers
			runtime.KeepAlive(m)
		}
		b.ReportMetric(perUser, "B/user")
	})
}

// BenchmarkUserTokensMassRefresh asks for 10,000 users' tokens at once, all expired: each is
// refreshed once. It reports the time per user and the TCP connections the fake accepted
// (conns/op). "floor" sends the same 10,000 refreshes with a bare net/http client, one goroutine
// each, and reads their answers.
func BenchmarkUserTokensMassRefresh(b *testing.B) {
	report := func(b *testing.B, conns int) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/scaleUsers, "ns/user")
		b.ReportMetric(float64(conns)/float64(b.N), "conns/op")
	}
	for _, run := range []struct {
		name string
		f    func(testing.TB, *faketwitch.Server, *memStore)
	}{{"UserTokens", massRefresh}, {"floor", massRefreshFloor}} {
		b.Run(run.name, func(b *testing.B) {
			conns := 0
			for range b.N {
				b.StopTimer()
				fake, store := expiredUsers(b)
				b.StartTimer()
				run.f(b, fake, store)
				b.StopTimer()
				conns += fake.Connections()
				fake.Close()
				b.StartTimer()
			}
			report(b, conns)
		})
	}
}

// expiredUsers starts the fake, and stores scaleUsers users' pairs it issued, each expired.
func expiredUsers(tb testing.TB) (*faketwitch.Server, *memStore) {
	fake := faketwitch.New()
	fake.Start()
	store := newMemStore()
	seedStore(tb, fake, store, ids(scaleUsers))
	for _, id := range ids(scaleUsers) {
		st := store.stored(id)
		st.Expiry = time.Now().Add(-time.Minute)
		store.Save(context.Background(), id, st)
	}
	return fake, store
}

// massRefresh asks a registry over store, with the package's default HTTP client, for every
// user's token at once, one goroutine each.
func massRefresh(tb testing.TB, fake *faketwitch.Server, store *memStore) {
	c := NewClient(faketwitch.ClientID, faketwitch.ClientSecret) // the package's default HTTP client
	c.AuthBaseURL = fake.BaseURL()
	u := NewUserTokens(c, store)
	if err := u.Sync(context.Background()); err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, id := range ids(scaleUsers) {
		wg.Go(func() {
			src, err := u.Source(id)
			if err == nil {
				_, err = src.Token()
			}
			if err != nil {
				tb.Error(err)
			}
		})
	}
	wg.Wait()
}

// massRefreshFloor sends the same refreshes with a bare net/http client, one goroutine each, and
// reads their answers.
func massRefreshFloor(tb testing.TB, fake *faketwitch.Server, store *memStore) {
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer hc.CloseIdleConnections()
	endpoint := fake.BaseURL() + "token"
	var wg sync.WaitGroup
	for _, id := range ids(scaleUsers) {
		refresh := store.stored(id).RefreshToken
		wg.Go(func() {
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh},
				"client_id": {faketwitch.ClientID}, "client_secret": {faketwitch.ClientSecret}}
			resp, err := hc.Post(endpoint, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
			if err != nil {
				tb.Error(err)
				return
			}
			defer resp.Body.Close()
			var tok struct {
				AccessToken  string `json:"access_token"`
				RefreshToken string `json:"refresh_token"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.RefreshToken == "" {
				tb.Errorf("refresh: %d, %v", resp.StatusCode, err)
			}
		})
	}
	wg.Wait()
}

// BenchmarkUserTokensTokenRotating takes a fresh token from the source of each of 10,000 users
// in turn, as a bot does before each Helix call, so that each lookup misses the CPU's caches.
// "floor" is time.Now, which telling whether a token is still fresh takes at least; "floor_map"
// adds what finding the user takes at least: a plain map lookup, and reading the time the token
// stays fresh from what it finds.
func BenchmarkUserTokensTokenRotating(b *testing.B) {
	store := newMemStore()
	users := ids(scaleUsers)
	for _, id := range users {
		store.Save(b.Context(), id, &StoredToken{AccessToken: "a" + id, RefreshToken: "r", Expiry: time.Now().Add(time.Hour), UserID: id})
	}
	u := NewUserTokens(&Client{}, store)
	if err := u.Sync(b.Context()); err != nil {
		b.Fatal(err)
	}
	for _, id := range users {
		u.Source(id) // made on first use
	}
	b.Run("UserTokens", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			src, err := u.Source(users[i%len(users)])
			if err != nil {
				b.Fatal(err)
			}
			if _, err := src.Token(); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("floor", func(b *testing.B) {
		var t time.Time
		for b.Loop() {
			t = time.Now()
		}
		runtime.KeepAlive(t)
	})
	// The same lookup and floor_map's, in alternating rounds of 1,000 in one loop, so that both
	// meet the same load: "x-floor_map" is the ratio of their times.
	b.Run("interleaved", func(b *testing.B) {
		m := untilMap(users)
		const round = 1000
		var ours, floor time.Duration
		fresh, i, j := 0, 0, 0
		for b.Loop() {
			start := time.Now()
			for range round {
				src, err := u.Source(users[i%len(users)])
				if err != nil {
					b.Fatal(err)
				}
				if _, err := src.Token(); err != nil {
					b.Fatal(err)
				}
				i++
			}
			mid := time.Now()
			for range round {
				if time.Now().UnixNano() < m[users[j%len(users)]].until {
					fresh++
				}
				j++
			}
			ours, floor = ours+mid.Sub(start), floor+time.Since(mid)
		}
		runtime.KeepAlive(fresh)
		n := float64(b.N * round)
		b.ReportMetric(float64(ours.Nanoseconds())/n, "lookup-ns")
		b.ReportMetric(float64(floor.Nanoseconds())/n, "floor_map-ns")
		b.ReportMetric(float64(ours)/float64(floor), "x-floor_map")
	})
	b.Run("floor_map", func(b *testing.B) {
		m := untilMap(users)
		fresh := 0
		i := 0
		for b.Loop() {
			if time.Now().UnixNano() < m[users[i%len(users)]].until {
				fresh++
			}
			i++
		}
		runtime.KeepAlive(fresh)
	})
}

// untilEntry is a floor_map entry: when the user's token stops being fresh (Unix nanoseconds).
type untilEntry struct{ until int64 }

// untilMap returns the floor_map of users, each fresh for an hour. The lookups that read it are
// written out in each loop, as the registry's are, so that neither pays a call the other does not.
func untilMap(users []string) map[string]*untilEntry {
	m := map[string]*untilEntry{}
	for _, id := range users {
		m[id] = &untilEntry{until: time.Now().Add(time.Hour).UnixNano()}
	}
	return m
}

// countValidations counts the validations answered 200 through a transport.
type countValidations struct {
	base http.RoundTripper
	mu   sync.Mutex
	n    int
	want int
	done chan struct{} // closed when n reaches want
}

func (c *countValidations) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusOK && strings.HasSuffix(r.URL.Path, "/validate") {
		c.mu.Lock()
		if c.n++; c.n == c.want {
			close(c.done)
		}
		c.mu.Unlock()
	}
	return resp, err
}

// await makes the transport close the returned channel after n more validations.
func (c *countValidations) await(n int) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n, c.want, c.done = 0, n, make(chan struct{})
	return c.done
}

// bareValidate validates access as a program without this package would: a GET, its JSON read.
func bareValidate(ctx context.Context, hc *http.Client, endpoint, access string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "OAuth "+access)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var v struct {
		ClientID  string   `json:"client_id"`
		Login     string   `json:"login"`
		UserID    string   `json:"user_id"`
		Scopes    []string `json:"scopes"`
		ExpiresIn int      `json:"expires_in"`
	}
	return json.NewDecoder(resp.Body).Decode(&v)
}
