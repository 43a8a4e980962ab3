package sqlstore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/twitchoauth/twitchoauth"
)

// ErrCannotUnseal: a row's tokens are sealed, and the Store cannot open them: it has no Keyring,
// its Keyring holds no key of the row's key ID, or the key of that ID does not open the row (it is
// not the key that sealed it, or the row was altered or copied from another key's row). It is
// not [twitchoauth.ErrTokenCorrupt]: the library never replaces such a row as if it held nothing,
// and the row reads again once the right key is in the Keyring.
var ErrCannotUnseal = errors.New("sqlstore: cannot open the sealed token")

// KeySize is the size of a Keyring key: AES-256 takes 32 bytes.
const KeySize = 32

// sealOverhead is what sealing adds to the sealed pair's JSON: the nonce and GCM's tag.
const sealOverhead = 12 + 16

// validKeyID is what a key ID may be: short, printable and plain, so that it can be logged.
var validKeyID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Keyring holds the keys a [Store] seals rows with: the current one, which seals every row
// written, and older ones, which open the rows they sealed until those are written again (at
// their next save, or by [Store.Reseal]). Each key has an ID, stored beside every row it seals,
// so that keys can rotate: add a new key as current and keep the old one; once no row is sealed
// with the old key (Reseal returns), drop it.
//
// Sealing is AES-256-GCM with a random 96-bit nonce per write, over the access and refresh tokens
// (the rest of the row, such as the user ID, login, scopes and expiry, stays readable), with the
// row's key as additional data, so that a sealed value moved to another row does not open.
// A Keyring is safe for concurrent use, and never shows its keys: printing it shows the IDs.
type Keyring struct {
	current string
	aeads   map[string]cipher.AEAD
}

// NewKeyring returns a Keyring that seals with the key of ID current and opens rows sealed with
// any of keys, by ID. Each key must be KeySize (32) random bytes, such as `openssl rand -base64
// 32` gives, decoded; IDs are 1 to 64 letters, digits, '.', '_' or '-'. The keys are copied. Its
// errors name the IDs, never the keys.
func NewKeyring(current string, keys map[string][]byte) (*Keyring, error) {
	if _, ok := keys[current]; !ok {
		return nil, fmt.Errorf("sqlstore: keyring: no key has the current ID %s", twitchoauth.QuoteKey(current))
	}
	k := &Keyring{current: current, aeads: make(map[string]cipher.AEAD, len(keys))}
	for id, key := range keys {
		if !validKeyID.MatchString(id) {
			return nil, fmt.Errorf("sqlstore: keyring: key ID %s is not 1 to 64 letters, digits, '.', '_' or '-'", twitchoauth.QuoteKey(id))
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("sqlstore: keyring: key %q is %d bytes, want %d (AES-256)", id, len(key), KeySize)
		}
		if subtle.ConstantTimeCompare(key, make([]byte, KeySize)) == 1 {
			return nil, fmt.Errorf("sqlstore: keyring: key %q is all zeros: not a key", id)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: keyring: key %q: cannot make its cipher", id)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: keyring: key %q: cannot make its cipher", id)
		}
		k.aeads[id] = aead
	}
	return k, nil
}

// Current returns the ID of the key that seals the rows written.
func (k *Keyring) Current() string { return k.current }

// IDs returns the IDs of the keys that open rows, sorted.
func (k *Keyring) IDs() []string { return slices.Sorted(maps.Keys(k.aeads)) }

// String names the keys by ID, never showing one.
func (k *Keyring) String() string {
	if k == nil {
		return "sqlstore.Keyring(nil)"
	}
	return fmt.Sprintf("sqlstore.Keyring(current %q, keys %s)", k.current, strings.Join(k.IDs(), ","))
}

// GoString is String, so that %#v shows no key either.
func (k *Keyring) GoString() string { return k.String() }

// secret is what a sealed row seals.
type secret struct {
	Token   string `json:"token"`
	Refresh string `json:"refresh"`
}

// additionalData binds a sealed value to its row's key and the ID of the key that sealed it.
func additionalData(keyID, key string) []byte {
	return []byte("twitchoauth/sqlstore sealed token v1\x00" + keyID + "\x00" + key)
}

// seal seals the pair of row key with the current key, and returns that key's ID and the nonce
// followed by the ciphertext.
func (k *Keyring) seal(key, access, refresh string) (string, []byte, error) {
	plain, err := json.Marshal(secret{access, refresh})
	if err != nil {
		return "", nil, err
	}
	aead := k.aeads[k.current]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	rand.Read(nonce) // never fails; see crypto/rand.Read
	return k.current, aead.Seal(nonce, nonce, plain, additionalData(k.current, key)), nil
}

// open opens the pair that row key's sealed holds, sealed with the key of keyID, and returns
// clear, the row's JSON, with the pair put back in it.
func (k *Keyring) open(key, keyID string, sealed []byte, clear []byte) ([]byte, error) {
	if k == nil {
		return nil, fmt.Errorf("%w: the row is sealed with key %s, and the Store has no Keyring", ErrCannotUnseal, twitchoauth.QuoteKey(keyID))
	}
	aead, ok := k.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("%w: the row is sealed with key %s, which the Keyring does not hold", ErrCannotUnseal, twitchoauth.QuoteKey(keyID))
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("%w: the sealed value is %d bytes, too short", ErrCannotUnseal, len(sealed))
	}
	n := aead.NonceSize()
	plain, err := aead.Open(nil, sealed[:n], sealed[n:], additionalData(keyID, key))
	if err != nil {
		return nil, fmt.Errorf("%w: key %s does not open it (another key under that ID, or a row altered or moved)", ErrCannotUnseal, twitchoauth.QuoteKey(keyID))
	}
	var sec secret
	if err := json.Unmarshal(plain, &sec); err != nil {
		return nil, fmt.Errorf("%w: what it seals is not a pair", ErrCannotUnseal)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(clear, &fields); err != nil || fields == nil {
		return clear, nil // DecodeStoredToken says what is wrong with it
	}
	fields["token"], _ = json.Marshal(sec.Token)
	fields["refresh"], _ = json.Marshal(sec.Refresh)
	return json.Marshal(fields)
}

// Reseal writes again, sealed with the Keyring's current key, every row that is not sealed with
// it: rows sealed with an older key, and rows written before the Store had a Keyring. Each row is
// rewritten as SaveIf does, only if no one wrote it since it was read (a row written meanwhile was
// sealed with the current key by its writer, or is read again). It returns how many rows it wrote.
// Once it returns without error, and every replica runs with the new Keyring, no row needs the
// older keys: drop them. Rows it cannot open are left as they are, and make its error.
func (s *Store) Reseal(ctx context.Context) (int, error) {
	if s.Keyring == nil {
		return 0, errors.New("sqlstore: reseal: the Store has no Keyring")
	}
	q, err := s.queries(ctx)
	if err != nil {
		return 0, err
	}
	keys, err := s.queryStrings(ctx, q.unsealed, s.Keyring.current)
	if err != nil {
		return 0, fmt.Errorf("sqlstore: reseal: list rows: %w", err)
	}
	written := 0
	var errs []error
	for _, key := range keys {
		done, err := s.reseal(ctx, q, key)
		if err != nil {
			if ctx.Err() != nil {
				return written, fmt.Errorf("sqlstore: reseal: %w", err)
			}
			errs = append(errs, err)
		}
		if done {
			written++
		}
	}
	if err := errors.Join(errs...); err != nil {
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
		case r.keyID.Valid && r.keyID.String == s.Keyring.current:
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
