package twitchoauth

import (
	"path/filepath"
	"testing"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// BenchmarkStoreRefresh measures one refresh of a stored token under its lock, in a FileStore,
// against the fake over loopback: for a confidential client (load, refresh, fenced save) and for
// a public one, whose write-ahead mark adds one fenced write. The difference is what the mark
// costs per refresh on files (each write is synced to disk).
func BenchmarkStoreRefresh(b *testing.B) {
	for _, public := range []bool{false, true} {
		b.Run(map[bool]string{false: "confidential", true: "public"}[public], func(b *testing.B) {
			c, fake := newTestClient(b)
			if public {
				c = publicClient(fake)
			}
			store := &FileStore{Path: filepath.Join(b.TempDir(), "tok.json")}
			access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, []string{"chat:read"}, 0)
			if err := store.Save(b.Context(), "u", &StoredToken{AccessToken: access, RefreshToken: refresh, UserID: faketwitch.UserID}); err != nil {
				b.Fatal(err)
			}
			src := NewStoreTokenSource(c, store, "u", nil)
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
