package storebench

import (
	"errors"
	"testing"

	"github.com/twitchoauth/twitchoauth/stores/sqlstore"
)

// TestStoresOpen checks the benchmarks' harness: each store opens (its server started), takes a
// Save, a Load, a SaveIf and a refresh under the lock, and the SQL stores run with the
// durability the README states.
func TestStoresOpen(t *testing.T) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			store := s.open(t)
			ctx := t.Context()
			first, second := benchToken(1), benchToken(2)
			if err := store.Save(ctx, "u", first); err != nil {
				t.Fatal(err)
			}
			got, err := store.Load(ctx, "u")
			if err != nil {
				t.Fatal(err)
			}
			if !got.Matches(first) {
				t.Fatalf("Load returned another token than the one saved")
			}
			if err := store.SaveIf(ctx, "u", first, second); err != nil {
				t.Fatal(err)
			}
			if err := store.SaveIf(ctx, "u", first, benchToken(3)); err == nil {
				t.Fatal("SaveIf over a token that has changed since it was read succeeded")
			}
			for _, public := range []bool{false, true} {
				src, _ := refreshSource(t, store, public)
				tok, err := src.TokenContext(ctx)
				if err != nil {
					t.Fatal(err)
				}
				next, err := src.ForceRefresh(ctx, tok)
				if err != nil {
					t.Fatal(err)
				}
				if next.AccessToken == tok.AccessToken {
					t.Errorf("public %v: ForceRefresh kept the access token", public)
				}
				if got, err := store.Load(ctx, "u"); err != nil || got.AccessToken != next.AccessToken {
					t.Errorf("public %v: the store does not hold the refreshed token (err %v)", public, err)
				}
			}
			if sq, ok := store.(*sqlstore.Store); ok {
				checkDurability(t, sq)
			}
		})
	}
}

// checkDurability checks the settings the README states: PostgreSQL with fsync and synchronous
// commits on, SQLite in WAL mode with synchronous FULL.
func checkDurability(t *testing.T, s *sqlstore.Store) {
	t.Helper()
	want := map[string]string{"SHOW fsync": "on", "SHOW synchronous_commit": "on"}
	if s.Dialect == sqlstore.SQLite {
		want = map[string]string{"PRAGMA journal_mode": "wal", "PRAGMA synchronous": "2"} // 2: FULL
	}
	for query, value := range want {
		var got string
		if err := s.DB.QueryRowContext(t.Context(), query).Scan(&got); err != nil {
			t.Fatal(errors.Join(errors.New(query), err))
		}
		if got != value {
			t.Errorf("%s: %s, want %s", query, got, value)
		}
	}
}
