package twitchoauth

import (
	"testing"
	"time"
)

// BenchmarkSeal measures sealing and opening one record as the JSON stores write it, and the pair
// alone as stores/sqlstore writes it; "plain" is the record without a Keyring, for comparison.
func BenchmarkSeal(b *testing.B) {
	k := sealTestKeyring(b, "k1", "k1")
	tok := &StoredToken{AccessToken: "0123456789abcdefghijklmnopqrst", RefreshToken: "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcd",
		Expiry: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Scopes: []Scope{ScopeChatRead, ScopeChatEdit},
		UserID: "12345678", Login: "somebot", ClientID: "abcdefghijklmnopqrstuvwxyz0123", ValidatedAt: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	for _, kr := range []struct {
		name string
		k    *Keyring
	}{{"plain", nil}, {"sealed", k}} {
		data, err := kr.k.EncodeStoredToken("12345678", tok)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("EncodeStoredToken/"+kr.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := kr.k.EncodeStoredToken("12345678", tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("DecodeStoredToken/"+kr.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := kr.k.DecodeStoredToken("12345678", data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	id, sealed, _ := k.Seal("12345678", tok.AccessToken, tok.RefreshToken)
	b.Run("Seal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			k.Seal("12345678", tok.AccessToken, tok.RefreshToken)
		}
	})
	b.Run("Open", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := k.Open("12345678", id, sealed); err != nil {
				b.Fatal(err)
			}
		}
	})
}
