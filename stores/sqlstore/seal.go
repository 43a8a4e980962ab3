package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/twitchoauth/twitchoauth"
)

// ErrCannotUnseal is [twitchoauth.ErrCannotUnseal]: a row's tokens are sealed, and the Store
// cannot open them (it has no Keyring, its Keyring holds no key of the row's key ID, or that key
// does not open the row). The library never replaces such a row as if it held nothing, and the
// row reads again once the right key is in the Keyring.
var ErrCannotUnseal = twitchoauth.ErrCannotUnseal

// KeySize is [twitchoauth.KeySize]: AES-256 takes 32 bytes.
const KeySize = twitchoauth.KeySize

// Keyring is [twitchoauth.Keyring], which every store takes: the current key seals every row
// written, older ones open the rows they sealed until those are written again (at their next save,
// or by [Store.Reseal]). A row keeps the sealed pair in its sealed column and the key's ID in
// key_id, the same value and ID that [twitchoauth.FileStore] and stores/redisstore keep in a sealed
// record's "sealed" and "key_id".
type Keyring = twitchoauth.Keyring

// NewKeyring is [twitchoauth.NewKeyring].
func NewKeyring(current string, keys map[string][]byte) (*Keyring, error) {
	return twitchoauth.NewKeyring(current, keys)
}

// openRow opens the pair that row key's sealed holds, sealed with the key of keyID, and returns
// clear, the row's JSON, with the pair put back in it.
func (s *Store) openRow(key, keyID string, sealed []byte, clear []byte) ([]byte, error) {
	access, refresh, err := s.Keyring.Open(key, keyID, sealed)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(clear, &fields); err != nil || fields == nil {
		return clear, nil // DecodeStoredToken says what is wrong with it
	}
	fields["token"], _ = json.Marshal(access)
	fields["refresh"], _ = json.Marshal(refresh)
	return json.Marshal(fields)
}

// Reseal writes again, sealed with the Keyring's current key, every row that is not sealed with
// it: rows sealed with an older key, and rows written before the Store had a Keyring. Each row is
// rewritten as SaveIf does, only if no one wrote it since it was read (a row written meanwhile was
// sealed with the current key by its writer, or is read again). It returns how many rows it wrote.
// Once it returns without error, and every replica runs with the new Keyring, no row needs the
// older keys: drop them. Rows it cannot open are left as they are, and make its error: one line
// for all of them that Is [ErrCannotUnseal] (see [twitchoauth.JoinStoreErrors]).
func (s *Store) Reseal(ctx context.Context) (int, error) {
	if s.Keyring == nil {
		return 0, errors.New("sqlstore: reseal: the Store has no Keyring")
	}
	q, err := s.queries(ctx)
	if err != nil {
		return 0, err
	}
	keys, err := s.queryStrings(ctx, q.unsealed, s.Keyring.Current())
	if err != nil {
		return 0, fmt.Errorf("sqlstore: reseal: list rows: %w", err)
	}
	// Rows the Keyring cannot open make one line, however many.
	written, err := twitchoauth.ResealEach(ctx, keys, func(ctx context.Context, key string) (bool, error) {
		return s.reseal(ctx, q, key)
	})
	if err != nil {
		return written, fmt.Errorf("sqlstore: reseal: %w", err)
	}
	return written, nil
}

// reseal writes key's row again sealed with the current key, unless it already is; it reads the
// row again (a few times) when it was written between the read and the write.
func (s *Store) reseal(ctx context.Context, q *queries, key string) (bool, error) {
	for range 5 {
		r, err := s.read(ctx, q, key)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return false, nil // deleted meanwhile
		case err != nil:
			return false, err
		case r.keyID.Valid && r.keyID.String == s.Keyring.Current():
			return false, nil // written meanwhile
		}
		st, err := s.decode(key, r)
		if err != nil {
			return false, err
		}
		token, sealed, keyID, err := s.encode(key, st)
		if err != nil {
			return false, err
		}
		res, err := s.exec(ctx, q.saveIf, key, r.version, token, sealed, keyID)
		if err != nil {
			return false, err
		}
		if n, err := res.RowsAffected(); err != nil {
			return false, err
		} else if n == 1 {
			return true, nil
		}
	}
	return false, fmt.Errorf("the row of key %s kept changing: %w", twitchoauth.QuoteKey(key), twitchoauth.ErrTokenChanged)
}
