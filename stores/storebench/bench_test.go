package storebench

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
	"github.com/twitchoauth/twitchoauth/stores/redisstore"
	"github.com/twitchoauth/twitchoauth/stores/sqlstore"
)

// BenchmarkStores measures, on each store, the three operations a program's tokens cost it:
//   - Load: one stored token read and decoded;
//   - SaveIf: one fenced save, written only if the stored token is still the one read;
//   - Refresh: one refresh under the key's lock against the fake Twitch over loopback, which
//     answers at once: for a confidential client (lock, load, refresh, fenced save, unlock), and
//     for a public one, whose write-ahead mark adds one fenced save.
func BenchmarkStores(b *testing.B) {
	for _, s := range stores {
		b.Run(s.name, func(b *testing.B) {
			s.open(b) // skips here, once, when the store's program is missing
			b.Run("Load", func(b *testing.B) { benchLoad(b, s.open(b)) })
			b.Run("SaveIf", func(b *testing.B) { benchSaveIf(b, s.open(b)) })
			b.Run("Refresh", func(b *testing.B) {
				b.Run("confidential", func(b *testing.B) { benchRefresh(b, s.open(b), false) })
				b.Run("public", func(b *testing.B) { benchRefresh(b, s.open(b), true) })
			})
		})
	}
}

func benchLoad(b *testing.B, store store) {
	if err := store.Save(b.Context(), "u", benchToken(0)); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := store.Load(b.Context(), "u"); err != nil {
			b.Fatal(err)
		}
	}
}

func benchSaveIf(b *testing.B, store store) {
	prev := benchToken(0)
	if err := store.Save(b.Context(), "u", prev); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		next := benchToken(i)
		if err := store.SaveIf(b.Context(), "u", prev, next); err != nil {
			b.Fatal(err)
		}
		prev = next
	}
}

// benchRefresh measures refreshes, interleaved with the floors they are compared with in the
// same loop: the refresh's own HTTP call (the same refresh grant, posted with a bare net/http
// client to the same fake) and the store's unit of cost (floorOf). Beside ns/op it reports each
// floor's time and the refresh's cost above its HTTP call in units of the store's floor
// ("commits/op" on SQL, "gets/op" on Redis, "syncs/op" on files).
func benchRefresh(b *testing.B, store store, public bool) {
	src, fake := refreshSource(b, store, public)
	tok, err := src.TokenContext(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	unit, floor := floorOf(b, store)
	httpFloor := httpFloorOf(b, fake)
	var refreshes, https, floors time.Duration
	for b.Loop() {
		start := time.Now()
		if tok, err = src.ForceRefresh(b.Context(), tok); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		httpFloor()
		end := time.Now()
		floor()
		refreshes, https, floors = refreshes+mid.Sub(start), https+end.Sub(mid), floors+time.Since(end)
	}
	n := float64(b.N)
	b.ReportMetric(float64(refreshes.Nanoseconds())/n, "refresh-ns/op")
	b.ReportMetric(float64(https.Nanoseconds())/n, "http-ns/op")
	b.ReportMetric(float64(floors.Nanoseconds())/n, unit+"-ns/op")
	b.ReportMetric(float64((refreshes-https).Nanoseconds())/float64(floors.Nanoseconds()), unit+"s/op")
}

// floorOf returns the name of store's unit of cost and one of it: a committed single-row UPDATE
// on SQL (fsync on, as the store runs), a GET on Redis, a synced atomic file write on files.
func floorOf(b *testing.B, st store) (string, func()) {
	ctx := b.Context()
	switch s := st.(type) {
	case *sqlstore.Store:
		table := s.Prefix + "floor"
		if _, err := s.DB.ExecContext(ctx, "CREATE TABLE "+table+" (k integer PRIMARY KEY, v bigint NOT NULL)"); err != nil {
			b.Fatal(err)
		}
		if _, err := s.DB.ExecContext(ctx, "INSERT INTO "+table+" (k, v) VALUES (1, 0)"); err != nil {
			b.Fatal(err)
		}
		update := "UPDATE " + table + " SET v = v + 1 WHERE k = 1"
		return "commit", func() {
			if _, err := s.DB.ExecContext(ctx, update); err != nil {
				b.Fatal(err)
			}
		}
	case *redisstore.Store:
		if err := s.Client.Set(ctx, s.Prefix+"floor", "x", 0).Err(); err != nil {
			b.Fatal(err)
		}
		return "get", func() {
			if err := s.Client.Get(ctx, s.Prefix+"floor").Err(); err != nil {
				b.Fatal(err)
			}
		}
	}
	fs := twitchoauth.NewFileStore(b.TempDir())
	tok := benchToken(0)
	return "sync", func() {
		if err := fs.Save(ctx, "floor", tok); err != nil {
			b.Fatal(err)
		}
	}
}

// httpFloorOf returns one refresh posted to fake with a bare net/http client, its answer read:
// a confidential client's, whose refresh token works again.
func httpFloorOf(b *testing.B, fake *faketwitch.Server) func() {
	_, refresh := fake.IssueToken(faketwitch.ClientID, faketwitch.UserID, []string{"chat:read"}, 0)
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	b.Cleanup(hc.CloseIdleConnections)
	endpoint := fake.BaseURL() + "token"
	body := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh},
		"client_id": {faketwitch.ClientID}, "client_secret": {faketwitch.ClientSecret}}.Encode()
	return func() {
		resp, err := hc.Post(endpoint, "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Contains(data, []byte("access_token")) {
			b.Fatalf("floor refresh: %d, %v", resp.StatusCode, err)
		}
	}
}

// refreshSource starts the fake Twitch, stores a token it issued for a confidential client or a
// public one under key "u", and returns a source of that key.
func refreshSource(tb testing.TB, store store, public bool) (*twitchoauth.UserTokenSource, *faketwitch.Server) {
	tb.Helper()
	twitch := storetest.Twitch
	if public {
		twitch = storetest.PublicTwitch
	}
	c, fake := twitch(tb)
	access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, []string{"chat:read"}, 0)
	st := &twitchoauth.StoredToken{AccessToken: access, RefreshToken: refresh, UserID: faketwitch.UserID, ClientID: c.ClientID}
	if err := store.Save(tb.Context(), "u", st); err != nil {
		tb.Fatal(err)
	}
	return twitchoauth.NewStoreTokenSource(c, store, "u", nil), fake
}
