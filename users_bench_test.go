package twitchoauth

import (
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// BenchmarkUserTokensSync adds 10,000 users from stored pairs (a replica starting over a store
// that holds them), reported per user; "floor" is the least such a registry must do: a map of the
// users' tokens.
func BenchmarkUserTokensSync(b *testing.B) {
	store := newMemStore()
	users := ids(10000)
	for _, id := range users {
		store.Save(b.Context(), id, &StoredToken{AccessToken: "a" + id, RefreshToken: "r" + id,
			Expiry: time.Now().Add(time.Hour), Scopes: []Scope{ScopeChatRead}, UserID: id})
	}
	b.Run("Sync", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			u := NewUserTokens(&Client{}, store)
			if err := u.Sync(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(users)), "ns/user")
	})
	b.Run("floor", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m := map[string]*oauth2.Token{}
			for _, id := range users {
				m[id] = &oauth2.Token{AccessToken: "a", RefreshToken: "r"}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(users)), "ns/user")
	})
}
