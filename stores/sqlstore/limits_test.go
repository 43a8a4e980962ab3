package sqlstore

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

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
			id, box, err := s.Keyring.seal(key, strings.Repeat("s", tc.access), "sekrit-refresh")
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
