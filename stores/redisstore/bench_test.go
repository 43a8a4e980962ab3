package redisstore

import (
	"fmt"
	"testing"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// BenchmarkStoreRefresh measures one refresh of a stored token under its lock in Redis, against
// the fake over loopback: for a confidential client (lock, load, refresh, fenced save, unlock) and
// for a public one, whose write-ahead mark adds one fenced write (a Lua script). The difference is
// what the mark costs per refresh on Redis.
func BenchmarkStoreRefresh(b *testing.B) {
	srv := startRedis(b)
	for _, public := range []bool{false, true} {
		b.Run(map[bool]string{false: "confidential", true: "public"}[public], func(b *testing.B) {
			c, fake := storetest.Twitch(b)
			if public {
				c, fake = storetest.PublicTwitch(b)
			}
			store := &Store{Client: newClient(b, srv.Addr), Prefix: "bench:" + b.Name() + ":"}
			access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, []string{"chat:read"}, 0)
			st := &twitchoauth.StoredToken{AccessToken: access, RefreshToken: refresh, UserID: faketwitch.UserID}
			if err := store.Save(b.Context(), "u", st); err != nil {
				b.Fatal(err)
			}
			src := twitchoauth.NewStoreTokenSource(c, store, "u", nil)
			tok, err := src.Token()
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if tok, err = src.ForceRefresh(b.Context(), tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSave measures one write of a token over loopback: Save (a plain write) and SaveIf
// (the fenced write, a Lua script), each replacing the pair it wrote before.
func BenchmarkSave(b *testing.B) {
	srv := startRedis(b)
	store := &Store{Client: newClient(b, srv.Addr), Prefix: "bench:"}
	tok := func(i int) *twitchoauth.StoredToken {
		return &twitchoauth.StoredToken{AccessToken: fmt.Sprintf("a%d", i), RefreshToken: fmt.Sprintf("r%d", i), UserID: "u"}
	}
	b.Run("Save", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if err := store.Save(b.Context(), "save", tok(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("SaveIf", func(b *testing.B) {
		prev := tok(0)
		if err := store.Save(b.Context(), "saveif", prev); err != nil {
			b.Fatal(err)
		}
		for i := 1; b.Loop(); i++ {
			next := tok(i)
			if err := store.SaveIf(b.Context(), "saveif", prev, next); err != nil {
				b.Fatal(err)
			}
			prev = next
		}
	})
}
