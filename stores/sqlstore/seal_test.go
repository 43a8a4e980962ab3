package sqlstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// testKey derives a 32-byte test key from its ID.
func testKey(id string) []byte {
	k := sha256.Sum256([]byte("sqlstore test key " + id))
	return k[:]
}

// testKeyring returns a Keyring that seals with current and opens the keys of ids.
func testKeyring(t testing.TB, current string, ids ...string) *Keyring {
	t.Helper()
	keys := map[string][]byte{}
	for _, id := range ids {
		keys[id] = testKey(id)
	}
	k, err := NewKeyring(current, keys)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestNewKeyring(t *testing.T) {
	key := testKey("k1")
	for _, tc := range []struct {
		name    string
		current string
		keys    map[string][]byte
		want    string
	}{
		{"no current", "k2", map[string][]byte{"k1": key}, `current ID "k2"`},
		{"short", "k1", map[string][]byte{"k1": key[:16]}, "16 bytes, want 32"},
		{"long", "k1", map[string][]byte{"k1": append(bytes.Clone(key), 1)}, "33 bytes, want 32"},
		{"zeros", "k1", map[string][]byte{"k1": make([]byte, 32)}, "all zeros"},
		{"bad id", "a b", map[string][]byte{"a b": key}, "is not 1 to 64"},
		{"empty id", "", map[string][]byte{"": key}, "is not 1 to 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewKeyring(tc.current, tc.keys)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewKeyring: %v, want an error saying %q", err, tc.want)
			}
			for _, k := range tc.keys {
				if len(k) > 4 && (strings.Contains(err.Error(), string(k)) || strings.Contains(err.Error(), fmt.Sprintf("%x", k[:4]))) {
					t.Errorf("the error shows the key: %v", err)
				}
			}
		})
	}
	k := testKeyring(t, "2026-01", "2025-01", "2026-01")
	if k.Current() != "2026-01" || fmt.Sprint(k.IDs()) != "[2025-01 2026-01]" {
		t.Errorf("Current %q, IDs %q", k.Current(), k.IDs())
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		out := fmt.Sprintf(format, k)
		if strings.Contains(out, fmt.Sprintf("%x", testKey("2026-01")[:4])) || strings.Contains(out, string(testKey("2026-01")[:4])) {
			t.Errorf("Sprintf(%q, keyring) shows a key: %s", format, out)
		}
	}
}

// TestSealedRows: with a Keyring, the row holds neither token in the clear, only the rest of the
// token; the sealed value opens in its own row only; a Store without the key cannot read it, says
// so without ErrTokenCorrupt, and never overwrites it through SaveIf; no error or log line shows a
// token or a key.
func TestSealedRows(t *testing.T) {
	t.Parallel()
	dialects(t, func(t *testing.T, open func(t *testing.T) func(t *testing.T) *Store) {
		connect := open(t)
		ctx := t.Context()
		s := connect(t)
		s.Keyring = testKeyring(t, "k1", "k1")
		tok := &twitchoauth.StoredToken{AccessToken: "sekrit-access", RefreshToken: "sekrit-refresh", UserID: "42", Login: "bot",
			Expiry: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
		for _, key := range []string{"42", "43"} {
			if err := s.Save(ctx, key, tok); err != nil {
				t.Fatal(err)
			}
		}
		var token, keyID string
		var sealed []byte
		q := "SELECT token, sealed, key_id FROM " + s.Prefix + "tokens WHERE key = '42'"
		if err := s.DB.QueryRowContext(ctx, q).Scan(&token, &sealed, &keyID); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(token, "sekrit") || bytes.Contains(sealed, []byte("sekrit")) || keyID != "k1" {
			t.Errorf("row: token %s, sealed %q, key %q; want the pair sealed with k1", token, sealed, keyID)
		}
		if !strings.Contains(token, `"login":"bot"`) || !strings.Contains(token, `"expiry":"2030-01-02T03:04:05Z"`) {
			t.Errorf("row's clear JSON %s; want the rest of the token readable", token)
		}
		if got, err := connect(t).loadWith(ctx, s.Keyring, "42"); err != nil || got.AccessToken != "sekrit-access" || got.RefreshToken != "sekrit-refresh" || got.Login != "bot" {
			t.Errorf("Load = %+v, %v", got, err)
		}

		// Moved to another row: does not open there.
		upd := "UPDATE " + s.Prefix + "tokens SET sealed = $1 WHERE key = '43'"
		if s.Dialect == SQLite {
			upd = sqlitePlaceholders(upd)
		}
		if _, err := s.DB.ExecContext(ctx, upd, sealed); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&logs, nil))
		check := func(what string, err error) {
			t.Helper()
			logger.Error(what, "error", err)
			if !errors.Is(err, ErrCannotUnseal) || errors.Is(err, twitchoauth.ErrTokenCorrupt) || errors.Is(err, twitchoauth.ErrTokenChanged) {
				t.Errorf("%s: %v; want ErrCannotUnseal alone", what, err)
			}
		}
		_, err := connect(t).loadWith(ctx, s.Keyring, "43")
		check("Load of a sealed value moved from another row", err)
		_, err = connect(t).loadWith(ctx, nil, "42")
		check("Load without a Keyring", err)
		_, err = connect(t).loadWith(ctx, testKeyring(t, "k2", "k2"), "42")
		check("Load without the row's key", err)
		wrong, err := NewKeyring("k1", map[string][]byte{"k1": testKey("other")})
		if err != nil {
			t.Fatal(err)
		}
		_, err = connect(t).loadWith(ctx, wrong, "42")
		check("Load with another key under the row's key ID", err)
		other := connect(t)
		other.Keyring = testKeyring(t, "k2", "k2")
		check("SaveIf without the row's key", other.SaveIf(ctx, "42", tok, &twitchoauth.StoredToken{AccessToken: "new"}))
		if got, err := connect(t).loadWith(ctx, s.Keyring, "42"); err != nil || got.AccessToken != "sekrit-access" {
			t.Errorf("the row after SaveIf without its key: %+v, %v; want it as it was", got, err)
		}
		if out := logs.String(); strings.Contains(out, "sekrit") || strings.Contains(out, fmt.Sprintf("%x", testKey("k1")[:4])) {
			t.Errorf("the errors show a token or a key:\n%s", out)
		}
	})
}

// loadWith loads key through s with keyring k.
func (s *Store) loadWith(ctx context.Context, k *Keyring, key string) (*twitchoauth.StoredToken, error) {
	s.Keyring = k
	return s.Load(ctx, key)
}

// TestKeyRotation: rows sealed with an old key and rows written before sealing stay readable
// once the Keyring has a new current key; a save writes them under the new key; Reseal writes
// the rest, after which a Keyring without the old key reads every row.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	dialects(t, func(t *testing.T, open func(t *testing.T) func(t *testing.T) *Store) {
		connect := open(t)
		ctx := t.Context()
		plain := connect(t)
		old := connect(t)
		old.Keyring = testKeyring(t, "2025", "2025")
		tok := func(i int) *twitchoauth.StoredToken {
			return &twitchoauth.StoredToken{AccessToken: fmt.Sprint("a", i), RefreshToken: fmt.Sprint("r", i), UserID: fmt.Sprint(i)}
		}
		for i := range 10 {
			store := old
			if i < 3 {
				store = plain // written before sealing was on
			}
			if err := store.Save(ctx, fmt.Sprint(i), tok(i)); err != nil {
				t.Fatal(err)
			}
		}
		rotated := connect(t)
		rotated.Keyring = testKeyring(t, "2026", "2025", "2026")
		for i := range 10 {
			if got, err := rotated.Load(ctx, fmt.Sprint(i)); err != nil || got.AccessToken != tok(i).AccessToken {
				t.Fatalf("row %d after rotation: %+v, %v", i, got, err)
			}
		}
		// The next save writes a row under the new key.
		if err := rotated.SaveIf(ctx, "5", tok(5), tok(50)); err != nil {
			t.Fatal(err)
		}
		if id := keyIDOf(t, rotated, "5"); id != "2026" {
			t.Errorf("row 5 after a save sealed with %q, want 2026", id)
		}
		n, err := rotated.Reseal(ctx)
		if err != nil || n != 9 {
			t.Errorf("Reseal = %d, %v; want the 9 other rows", n, err)
		}
		if n, err := rotated.Reseal(ctx); err != nil || n != 0 {
			t.Errorf("Reseal again = %d, %v; want nothing to do", n, err)
		}
		only := connect(t)
		only.Keyring = testKeyring(t, "2026", "2026")
		for i := range 10 {
			want := tok(i)
			if i == 5 {
				want = tok(50)
			}
			if got, err := only.Load(ctx, fmt.Sprint(i)); err != nil || got.AccessToken != want.AccessToken || got.RefreshToken != want.RefreshToken {
				t.Errorf("row %d without the old key: %+v, %v", i, got, err)
			}
		}
		if _, err := plain.Reseal(ctx); err == nil {
			t.Error("Reseal without a Keyring succeeded")
		}
	})
}

// keyIDOf returns the ID of the key that sealed key's row ("" for none).
func keyIDOf(t *testing.T, s *Store, key string) string {
	t.Helper()
	q := "SELECT coalesce(key_id, '') FROM " + s.Prefix + "tokens WHERE key = $1"
	if s.Dialect == SQLite {
		q = sqlitePlaceholders(q)
	}
	var id string
	if err := s.DB.QueryRowContext(t.Context(), q, key).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestSealingSuite runs the sealing suite on PostgreSQL and on SQLite files: a tampered row
// refused, a wrong key refused with one summary error and nothing overwritten, SaveIf against a
// stale pair refused, and a key rotated under concurrent refreshes, after which no issued token is
// in the SQLite file or its -wal, nor in PostgreSQL's data files and WAL.
func TestSealingSuite(t *testing.T) {
	t.Parallel()
	t.Run("Postgres", func(t *testing.T) {
		t.Parallel()
		srv := needPostgres(t)
		storetest.RunSealing(t, func(t *testing.T) storetest.SealedBackend {
			prefix := uniquePrefix()
			admin := pgStore(t, srv, prefix)
			return storetest.SealedBackend{
				Connect: func(t *testing.T, k *Keyring) storetest.SealedStore {
					s := pgStore(t, srv, prefix)
					s.Keyring = k
					return s
				},
				Tamper: func(t *testing.T, key string) { tamperRow(t, admin, key) },
				AtRest: func(t *testing.T) []string {
					if _, err := admin.DB.ExecContext(t.Context(), "CHECKPOINT"); err != nil {
						t.Fatal(err)
					}
					return []string{filepath.Join(srv.DataDir(), "base"), filepath.Join(srv.DataDir(), "pg_wal")}
				},
			}
		})
	})
	t.Run("SQLite", func(t *testing.T) {
		t.Parallel()
		storetest.RunSealing(t, func(t *testing.T) storetest.SealedBackend {
			path := sqliteFile(t)
			admin := sqliteStore(t, path)
			return storetest.SealedBackend{
				Connect: func(t *testing.T, k *Keyring) storetest.SealedStore {
					s := sqliteStore(t, path)
					s.Keyring = k
					return s
				},
				Tamper: func(t *testing.T, key string) { tamperRow(t, admin, key) },
				// The file, its -wal (not checkpointed: what it holds is on disk too) and -shm.
				AtRest: func(t *testing.T) []string { return []string{filepath.Dir(path)} },
			}
		})
	})
}

// tamperRow changes one byte of the sealed value of key's row.
func tamperRow(t *testing.T, s *Store, key string) {
	t.Helper()
	var sealed []byte
	if err := s.DB.QueryRowContext(t.Context(), s.placeholders("SELECT sealed FROM "+s.Prefix+"tokens WHERE key = $1"), key).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	sealed[len(sealed)/2] ^= 1
	if _, err := s.DB.ExecContext(t.Context(), s.placeholders("UPDATE "+s.Prefix+"tokens SET sealed = $1 WHERE key = $2"), sealed, key); err != nil {
		t.Fatal(err)
	}
}
