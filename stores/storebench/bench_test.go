package storebench

import (
	"testing"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
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

func benchRefresh(b *testing.B, store store, public bool) {
	src := refreshSource(b, store, public)
	tok, err := src.TokenContext(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if tok, err = src.ForceRefresh(b.Context(), tok); err != nil {
			b.Fatal(err)
		}
	}
}

// refreshSource starts the fake Twitch, stores a token it issued for a confidential client or a
// public one under key "u", and returns a source of that key.
func refreshSource(tb testing.TB, store store, public bool) *twitchoauth.UserTokenSource {
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
	return twitchoauth.NewStoreTokenSource(c, store, "u", nil)
}
