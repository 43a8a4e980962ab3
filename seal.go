package twitchoauth

// Tokens sealed at rest: the Keyring every store takes, the sealed record's format, and the
// error of a record that does not open. Below the stores, beside the words they share (store.go).

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ErrCannotUnseal: a stored token is sealed, and the store cannot open it: it has no [Keyring],
// its Keyring holds no key of the record's key ID, or the key of that ID does not open the record
// (it is not the key that sealed it, or the record was altered or copied from another key's). It
// is neither [ErrTokenCorrupt] nor [ErrTokenNotFound]: nothing in this package replaces or deletes
// such a record as if it held nothing, and the record reads again once the right key is in the
// Keyring. The errors that say so are [*UnsealError]s.
var ErrCannotUnseal = errors.New("twitchoauth: cannot open the sealed token")

// KeySize is the size of a [Keyring] key: AES-256 takes 32 bytes.
const KeySize = 32

// SealOverhead is what sealing adds to the sealed pair's JSON: the 12-byte nonce and GCM's 16-byte
// tag.
const SealOverhead = 12 + 16

// Keyring holds the keys a store seals tokens with: the current one, which seals every record
// written, and older ones, which open the records they sealed until those are written again (at
// their next save, or by the store's Reseal). Each key has an ID, stored beside every record it
// seals, so that keys can rotate: add a new key as current and keep the old one; once no record
// is sealed with the old key (Reseal returns), drop it. [FileStore], stores/redisstore and
// stores/sqlstore each take one in their Keyring field.
//
// Sealing is AES-256-GCM with a random 96-bit nonce per write, over the access and refresh tokens
// (the rest of the record, such as the user ID, login, scopes, expiry and spending mark, stays
// readable), with the record's key and the sealing key's ID as additional data, so that a sealed
// value moved to another record does not open. Every store seals the same value: a record copied
// from one store to another under the same key opens there too.
//
// A Keyring is safe for concurrent use, and never shows its keys: printing it shows the IDs. A nil
// *Keyring seals nothing: its [Keyring.EncodeStoredToken] writes the token file's plain JSON and
// its [Keyring.DecodeStoredToken] reads plain records and refuses sealed ones.
type Keyring struct {
	current string
	aeads   map[string]cipher.AEAD
	ids     []string // sorted
}

// NewKeyring returns a Keyring that seals with the key of ID current and opens records sealed
// with any of keys, by ID. Each key must be KeySize (32) random bytes, such as `openssl rand
// -base64 32` gives, decoded; IDs are 1 to 64 letters, digits, '.', '_' or '-'. The keys are
// copied. Its errors name the IDs, never the keys.
func NewKeyring(current string, keys map[string][]byte) (*Keyring, error) {
	if _, ok := keys[current]; !ok {
		return nil, fmt.Errorf("twitchoauth: keyring: no key has the current ID %s", QuoteKey(current))
	}
	k := &Keyring{current: current, aeads: make(map[string]cipher.AEAD, len(keys))}
	for id, key := range keys {
		if !validKeyID(id) {
			return nil, fmt.Errorf("twitchoauth: keyring: key ID %s is not 1 to 64 letters, digits, '.', '_' or '-'", QuoteKey(id))
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("twitchoauth: keyring: key %q is %d bytes, want %d (AES-256)", id, len(key), KeySize)
		}
		if subtle.ConstantTimeCompare(key, make([]byte, KeySize)) == 1 {
			return nil, fmt.Errorf("twitchoauth: keyring: key %q is all zeros: not a key", id)
		}
		block, err := aes.NewCipher(key) // copies the key into its schedule
		if err != nil {
			return nil, fmt.Errorf("twitchoauth: keyring: key %q: cannot make its cipher", id)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("twitchoauth: keyring: key %q: cannot make its cipher", id)
		}
		k.aeads[id] = aead
	}
	k.ids = slices.Sorted(maps.Keys(k.aeads))
	return k, nil
}

// validKeyID reports whether id may be a key ID: short, printable and plain, so that it can be
// logged.
func validKeyID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Current returns the ID of the key that seals the records written.
func (k *Keyring) Current() string { return k.current }

// IDs returns the IDs of the keys that open records, sorted.
func (k *Keyring) IDs() []string { return slices.Clone(k.ids) }

// String names the keys by ID, never showing one.
func (k *Keyring) String() string {
	if k == nil {
		return "twitchoauth.Keyring(nil)"
	}
	return fmt.Sprintf("twitchoauth.Keyring(current %q, keys %s)", k.current, strings.Join(k.ids, ","))
}

// GoString is String, so that %#v shows no key either.
func (k *Keyring) GoString() string { return k.String() }

// sealedPair is what a sealed record seals.
type sealedPair struct {
	Token   string `json:"token"`
	Refresh string `json:"refresh"`
}

// sealPrefix starts the additional data of every sealed value. It names sqlstore, where sealing
// began, and stays as it is, so that every value sealed since still opens.
const sealPrefix = "twitchoauth/sqlstore sealed token v1\x00"

// additionalData binds a sealed value to its record's key and the ID of the key that sealed it.
func additionalData(keyID, key string) []byte {
	ad := make([]byte, 0, len(sealPrefix)+len(keyID)+1+len(key))
	return append(append(append(append(ad, sealPrefix...), keyID...), 0), key...)
}

// Seal seals the pair of the record of key with the current key, and returns that key's ID and
// the sealed value: the nonce followed by the ciphertext and tag. It is what a store that keeps
// the sealed value and its key ID apart from the rest of the token (stores/sqlstore's columns)
// writes; [Keyring.EncodeStoredToken] writes the whole record.
func (k *Keyring) Seal(key, access, refresh string) (keyID string, sealed []byte, err error) {
	if k == nil {
		return "", nil, errors.New("seal token: no Keyring")
	}
	plain, err := json.Marshal(sealedPair{access, refresh})
	if err != nil {
		return "", nil, fmt.Errorf("seal token: %w", err)
	}
	aead := k.aeads[k.current]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	rand.Read(nonce) // never fails; see crypto/rand.Read
	return k.current, aead.Seal(nonce, nonce, plain, additionalData(k.current, key)), nil
}

// Open opens the pair that the record of key holds in sealed, sealed with the key of keyID. Its
// error is an [*UnsealError], which Is [ErrCannotUnseal], and names the key IDs, never a key or a
// token. Open of a nil Keyring fails so too: the store has no Keyring.
func (k *Keyring) Open(key, keyID string, sealed []byte) (access, refresh string, err error) {
	fail := func(reason unsealReason) (string, string, error) {
		e := &UnsealError{Count: 1, Key: key, reason: reason}
		if keyID != "" {
			e.KeyIDs = []string{keyID}
		}
		if k != nil {
			e.Held = k.IDs()
		}
		return "", "", e
	}
	if k == nil {
		return fail(noKeyring)
	}
	aead, ok := k.aeads[keyID]
	switch {
	case !ok:
		return fail(unknownKey)
	case len(sealed) < aead.NonceSize()+aead.Overhead():
		return fail(altered)
	}
	n := aead.NonceSize()
	plain, err := aead.Open(nil, sealed[:n], sealed[n:], additionalData(keyID, key))
	if err != nil {
		return fail(wrongKey)
	}
	var p sealedPair
	if err := json.Unmarshal(plain, &p); err != nil {
		return fail(altered)
	}
	return p.Token, p.Refresh, nil
}

// sealedRecord is a sealed record as the JSON stores write it: the token file's JSON with an
// empty pair, followed by the sealed value (base64) and the ID of the key that sealed it.
type sealedRecord struct {
	*StoredToken
	Sealed []byte `json:"sealed"`
	KeyID  string `json:"key_id"`
}

// readRecord is a record as read: a plain token, or a sealed one when Sealed or KeyID is there.
type readRecord struct {
	StoredToken
	Sealed *string `json:"sealed"`
	KeyID  *string `json:"key_id"`
}

// EncodeStoredToken returns the record of tok stored under key, as [FileStore] and
// stores/redisstore write it. Without a Keyring (k is nil), it is tok's JSON, the token file's
// format. With one, it is that JSON with an empty pair ("token" and "refresh" are ""), followed by
// "sealed", the pair sealed as [Keyring.Seal] seals it (base64), and "key_id", the ID of the key
// that sealed it:
//
//	{"token":"","refresh":"","expiry":"…","user_id":"42",…,"sealed":"…","key_id":"2026-01"}
//
// It does not check the record's size: the store does, against [MaxStoredTokenSize]. Its errors
// (a nil token) are bare: the store says what it was doing.
func (k *Keyring) EncodeStoredToken(key string, tok *StoredToken) ([]byte, error) {
	return k.encodeRecord(key, tok, json.Marshal)
}

// encodeRecord is EncodeStoredToken with the marshal function of the store's format.
func (k *Keyring) encodeRecord(key string, tok *StoredToken, marshal func(any) ([]byte, error)) ([]byte, error) {
	if tok == nil {
		return nil, errors.New("nil token")
	}
	if k == nil {
		return marshal(tok)
	}
	id, sealed, err := k.Seal(key, tok.AccessToken, tok.RefreshToken)
	if err != nil {
		return nil, err
	}
	clear := *tok
	clear.AccessToken, clear.RefreshToken = "", ""
	return marshal(sealedRecord{&clear, sealed, id})
}

// DecodeStoredToken reads the record of key that [Keyring.EncodeStoredToken] wrote, sealed or
// not: a plain record as the package's DecodeStoredToken reads it, a sealed one opened with the
// key of its key ID. A record it cannot open (k is nil, it holds no key of that ID, the key does
// not open it, or the sealed value was altered) is an [*UnsealError], which Is [ErrCannotUnseal]
// and never [ErrTokenCorrupt]; a record that is not a token Is ErrTokenCorrupt. No error repeats
// the data, which holds secrets.
func (k *Keyring) DecodeStoredToken(key string, data []byte) (*StoredToken, error) {
	var r readRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, corruptJSON(err)
	}
	if r.Sealed == nil && r.KeyID == nil {
		if r.AccessToken == "" {
			return nil, fmt.Errorf("%w: it holds no \"token\"", ErrTokenCorrupt)
		}
		return &r.StoredToken, nil
	}
	keyID := ""
	if r.KeyID != nil {
		keyID = *r.KeyID
	}
	sealed, err := base64.StdEncoding.DecodeString(deref(r.Sealed))
	if err != nil || r.Sealed == nil || r.KeyID == nil {
		return nil, &UnsealError{Count: 1, Key: key, KeyIDs: nonEmpty(keyID), Held: k.heldIDs(), reason: altered}
	}
	if r.StoredToken.AccessToken, r.StoredToken.RefreshToken, err = k.Open(key, keyID, sealed); err != nil {
		return nil, err
	}
	if r.AccessToken == "" {
		return nil, fmt.Errorf("%w: it holds no \"token\"", ErrTokenCorrupt)
	}
	return &r.StoredToken, nil
}

// SealedKeyID returns the ID of the key that sealed the record data, as the JSON stores write it,
// and true; or "" and false when data is not a sealed record. It opens nothing: a store's Reseal
// asks it which records to write again.
func SealedKeyID(data []byte) (string, bool) {
	var r struct {
		KeyID *string `json:"key_id"`
	}
	if json.Unmarshal(data, &r) != nil || r.KeyID == nil {
		return "", false
	}
	return *r.KeyID, true
}

// heldIDs returns the IDs of k's keys, nil when k is nil.
func (k *Keyring) heldIDs() []string {
	if k == nil {
		return nil
	}
	return k.IDs()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func nonEmpty(id string) []string {
	if id == "" {
		return nil
	}
	return []string{id}
}
