package sqlstore

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// TestRecordLimit: a token whose JSON is twitchoauth.MaxStoredTokenSize bytes is stored and read
// back, plain and sealed (the limit is the JSON's before sealing, and after unsealing); a larger
// one is refused by Save and SaveIf, and nothing is written.
func TestRecordLimit(t *testing.T) {
	t.Parallel()
	dialects(t, func(t *testing.T, open func(t *testing.T) func(t *testing.T) *Store) {
		for _, sealed := range []bool{false, true} {
			t.Run(map[bool]string{false: "Plain", true: "Sealed"}[sealed], func(t *testing.T) {
				s := open(t)(t)
				if sealed {
					s.Keyring = testKeyring(t, "k1", "k1")
				}
				storetest.WantRecordLimit(t, t.Context(), s, func(st *twitchoauth.StoredToken) ([]byte, error) { return json.Marshal(st) })
			})
		}
	})
}

// TestSealedRowOverLimit: a sealed row whose token is larger than twitchoauth.MaxStoredTokenSize
// once unsealed (one written by hand: Save refuses it) is corrupt, as Save calls it: whether its
// sealed value alone is too long, or the value and the rest of the row together.
func TestSealedRowOverLimit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := sqliteStore(t, sqliteFile(t))
	s.Keyring = testKeyring(t, "k1", "k1")
	if _, err := s.Keys(ctx); err != nil {
		t.Fatal(err)
	}
	limit := twitchoauth.MaxStoredTokenSize
	for _, tc := range []struct {
		name          string
		access, login int // their lengths
	}{
		{"SealedValue", 2 * limit, 1},
		{"Together", limit - 100, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.name
			id, box, err := s.Keyring.Seal(key, strings.Repeat("s", tc.access), "sekrit-refresh")
			if err != nil {
				t.Fatal(err)
			}
			clear := `{"token":"","refresh":"","login":"` + strings.Repeat("x", tc.login) + `"}`
			if _, err := s.DB.ExecContext(ctx, "INSERT INTO twitchoauth_tokens (key, token, sealed, key_id) VALUES (?1, ?2, ?3, ?4)", key, clear, box, id); err != nil {
				t.Fatal(err)
			}
			_, err = s.Load(ctx, key)
			if !errors.Is(err, twitchoauth.ErrTokenCorrupt) || strings.Contains(err.Error(), "sss") || strings.Contains(err.Error(), "sekrit") {
				t.Errorf("Load of a sealed row of %d bytes unsealed: %.300v; want ErrTokenCorrupt, quoting nothing of it", tc.access+tc.login, err)
			}
		})
	}
}

// TestLongKeyErrors: the errors of every operation on a key of 1 MiB quote a short prefix of it,
// whatever makes them fail (no row, an unreadable row, a changed row, a canceled context, a
// closed database, a lost lease, a row sealed with a key ID as long).
func TestLongKeyErrors(t *testing.T) {
	t.Parallel()
	dialects(t, func(t *testing.T, open func(t *testing.T) func(t *testing.T) *Store) {
		connect := open(t)
		s := connect(t)
		ctx := t.Context()
		key := storetest.LongKey
		_, err := s.Load(ctx, key)
		storetest.WantShortError(t, "Load of a missing key", err)
		prev, next := &twitchoauth.StoredToken{AccessToken: "a"}, &twitchoauth.StoredToken{AccessToken: "b"}
		storetest.WantShortError(t, "SaveIf of a missing key", s.SaveIf(ctx, key, prev, next))
		if s.Dialect == Postgres {
			// PostgreSQL indexes a key of 8 KiB at most: a longer one is refused (shortly), and a
			// shorter one, still long, is stored.
			storetest.WantShortError(t, "Save of a key longer than PostgreSQL indexes", s.Save(ctx, key, prev))
			_, err := s.Lock(ctx, key, time.Minute)
			storetest.WantShortError(t, "Lock of a key longer than PostgreSQL indexes", err)
			key = key[:4<<10]
		}
		if err := s.Save(ctx, key, &twitchoauth.StoredToken{AccessToken: "c"}); err != nil {
			t.Fatalf("Save of a key of %d bytes: %.300v", len(key), err)
		}
		storetest.WantShortError(t, "SaveIf of a changed token", s.SaveIf(ctx, key, prev, next))

		l := storetest.WantShortKeyErrors(t, ctx, s, key, prev, next)
		if _, err := s.DB.ExecContext(ctx, s.placeholders("DELETE FROM "+s.Prefix+"locks")); err != nil {
			t.Fatal(err)
		}
		storetest.WantShortError(t, "Renew of a lost lease", l.Renew(ctx))

		closing := connect(t)
		l, err = closing.LockLease(ctx, key, time.Minute)
		if err != nil {
			t.Fatalf("LockLease of a key of %d bytes: %.300v", len(key), err)
		}
		closing.DB.Close()
		storetest.WantShortError(t, "Unlock on a closed database", l.Unlock())
		storetest.WantShortError(t, "Renew on a closed database", l.Renew(ctx))

		ins := s.placeholders("INSERT INTO " + s.Prefix + "tokens (key, token, sealed, key_id) VALUES ($1, $2, $3, $4)")
		for name, row := range map[string][]any{
			"unreadable":                {"sekrit-garbage", nil, nil},
			"too large":                 {`{"token":"sekrit","login":"` + strings.Repeat("x", twitchoauth.MaxStoredTokenSize) + `"}`, nil, nil},
			"sealed with a long key ID": {`{"token":""}`, []byte("sealed"), key},
		} {
			bad := name + key
			if _, err := s.DB.ExecContext(ctx, ins, append([]any{bad}, row...)...); err != nil {
				t.Fatal(err)
			}
			_, err := s.Load(ctx, bad)
			storetest.WantShortError(t, "Load of a row "+name, err)
			storetest.WantShortError(t, "SaveIf over a row "+name, s.SaveIf(ctx, bad, prev, next))
		}
		for _, name := range []string{"unreadable", "too large"} {
			if err := s.Delete(ctx, name+key); err != nil {
				t.Fatal(err)
			}
		}
		for _, name := range []string{"unreadable", "too large"} {
			if err := s.Delete(ctx, name+key); err != nil {
				t.Fatal(err)
			}
		}
		s.Keyring = testKeyring(t, "k1", "k1")
		_, err = s.Load(ctx, "sealed with a long key ID"+key)
		storetest.WantShortError(t, "Load with a Keyring of a row sealed with a long key ID", err)
		_, err = s.Reseal(ctx)
		storetest.WantShortError(t, "Reseal of a row it cannot open", err)
	})
}

// placeholders returns query, written with PostgreSQL's placeholders, in the Store's dialect.
func (s *Store) placeholders(query string) string {
	if s.Dialect == SQLite {
		return sqlitePlaceholders(query)
	}
	return query
}
