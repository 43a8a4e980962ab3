package twitchoauth

// The words every store and source shares: what a store keeps (StoredToken), what a store is
// (TokenStore and its optional interfaces), and the write-ahead mark of a refresh (SpendMark).
// Below the stores and the sources that build on them; it reaches up to neither.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/oauth2"
)

// DefaultLockTTL is how long a [TokenStore] lock lives unless released: longer than a validate,
// refresh and validate at the default HTTP timeouts, short enough that a crashed holder does not
// block the others for long.
const DefaultLockTTL = 2 * time.Minute

var (
	// ErrTokenNotFound: the store holds no token under the key.
	ErrTokenNotFound = errors.New("twitchoauth: no stored token")
	// ErrTokenCorrupt: what the store holds under the key is not a token (unreadable JSON, or no
	// access token in it).
	ErrTokenCorrupt = errors.New("twitchoauth: stored token is unreadable")
)

// StoredToken is what a [TokenStore] keeps for one user. Its JSON form is the token file: the keys
// "token" and "refresh" are pyTwitchAPI's, so each library reads the other's file; the others are
// what this package knows besides.
type StoredToken struct {
	AccessToken  string    `json:"token"`
	RefreshToken string    `json:"refresh"`
	Expiry       time.Time `json:"expiry,omitzero"`
	Scopes       []Scope   `json:"scopes,omitempty"`
	UserID       string    `json:"user_id,omitempty"`
	Login        string    `json:"login,omitempty"`
	ClientID     string    `json:"client_id,omitempty"`
	// ValidatedAt is when Twitch last said the token was valid: replicas of a [UserTokens] read
	// it to validate each token once per period between them, not once each.
	ValidatedAt time.Time `json:"validated_at,omitzero"`
	// Intents are what a [UserTokens] uses the user's token for ("chat", ...), shared by replicas.
	Intents []string `json:"intents,omitempty"`
	// RefreshIssuedAt is when the refresh token was issued (a public client's lapses after 30
	// days unused); zero when unknown.
	RefreshIssuedAt time.Time `json:"refresh_issued_at,omitzero"`
	// Spending, when set, is the write-ahead mark of a refresh: a holder is sending (or has sent)
	// this refresh token to Twitch, and has not stored the new pair yet. See [SpendMark].
	Spending *SpendMark `json:"spending,omitempty"`
}

// DecodeStoredToken reads a token in the token file's JSON format. Its error Is ErrTokenCorrupt
// and never repeats the data, which holds secrets. A record sealed by a store's [Keyring] is not
// opened: its error Is [ErrCannotUnseal] (read it with [Keyring.DecodeStoredToken]).
func DecodeStoredToken(data []byte) (*StoredToken, error) {
	return (*Keyring)(nil).DecodeStoredToken("", data)
}

// corruptJSON is the error of a record that is not the JSON of a token: it Is ErrTokenCorrupt
// and says where, never what.
func corruptJSON(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("%w: not valid JSON (at byte %d)", ErrTokenCorrupt, syn.Offset)
	case errors.As(err, &typ):
		return fmt.Errorf("%w: %q is not a %s", ErrTokenCorrupt, typ.Field, typ.Type)
	default:
		return fmt.Errorf("%w: a value has the wrong form", ErrTokenCorrupt)
	}
}

// Token returns the stored token as an *oauth2.Token whose scopes [TokenScopes] reads.
func (st *StoredToken) Token() *oauth2.Token {
	tok := oauth2.Token{AccessToken: st.AccessToken, RefreshToken: st.RefreshToken, TokenType: "bearer", Expiry: st.Expiry}
	return withScopes(&tok, st.Scopes) // a copy of tok: tok stays on the stack
}

// withToken returns a copy of st holding tok's pair, expiry and (when it names them) scopes, and
// no spending mark; a refresh token other than st's is recorded as issued now.
func (st StoredToken) withToken(tok *oauth2.Token) *StoredToken {
	if tok.RefreshToken != st.RefreshToken {
		st.RefreshIssuedAt = time.Now().Round(0)
	}
	st.AccessToken, st.RefreshToken, st.Expiry = tok.AccessToken, tok.RefreshToken, tok.Expiry
	if scopes := TokenScopes(tok); scopes != nil {
		st.Scopes = scopes
	}
	st.Spending = nil
	return &st
}

// withValidation returns a copy of st completed with what Twitch's validation said.
func (st StoredToken) withValidation(v *Validation) *StoredToken {
	st.Scopes, st.UserID, st.Login, st.ClientID = v.Scopes, v.UserID, v.Login, v.ClientID
	if v.ExpiresIn != 0 { // negative: already expired
		st.Expiry = time.Now().Add(v.ExpiresIn)
	}
	return &st
}

// TokenStore keeps users' tokens under keys (usually the user ID) and locks a key while one
// process reads, refreshes and writes its token, so that replicas sharing a login never refresh
// it twice. [FileStore] is the default; implement it on a shared store (Redis, a database) for
// programs that run as several replicas, and run the store test suite against it
// (twitchoauthtest.TestTokenStore, as the file and Redis stores do). Implementations must be safe
// for concurrent use. Encode tokens with [json.Marshal] and decode them with [DecodeStoredToken],
// so that every store holds the token file's format.
//
// A store shared by replicas should also implement the optional interfaces this package looks
// for: [LeaseLocker], so that a lease is renewed while a slow refresh is in flight instead of
// running out under it, and [ConditionalSaver], so that a replica whose lease ended anyway never
// overwrites a newer pair with an older one; and [KeyLister], so that replicas see each other's
// users.
type TokenStore interface {
	// Load returns the token stored under key: an error that Is ErrTokenNotFound when there is
	// none, and one that Is ErrTokenCorrupt when what is there is not a token.
	Load(ctx context.Context, key string) (*StoredToken, error)
	// Save stores tok under key, replacing what was there in one step: a reader sees the old
	// token or the new one, never a mix.
	Save(ctx context.Context, key string, tok *StoredToken) error
	// Lock takes key's lock, waiting until it is free or ctx is done (then it returns an error
	// that Is ctx's error). Locks of different keys are independent. The lock is a lease: it
	// ends after ttl unless unlock ends it first, so a holder that died blocks the others for
	// ttl at most; a ttl <= 0 means DefaultLockTTL. Unlock may be called after ctx is done and
	// more than once; after the lease has ended it must leave alone a lock another holder has
	// taken since, and return nil.
	Lock(ctx context.Context, key string, ttl time.Duration) (unlock func() error, err error)
	// Delete removes the token stored under key; a key with no token is not an error.
	Delete(ctx context.Context, key string) error
}

// KeyLister is a [TokenStore] that can list its keys. [UserTokens] lists them to find the users
// other replicas added and to drop those they removed; over a store without it, a registry knows
// the users added to it and no others. [FileStore] and stores/redisstore implement it.
type KeyLister interface {
	// Keys returns every key a token is stored under, in no particular order.
	Keys(ctx context.Context) ([]string, error)
}

// A [TokenStore] may do more than its four methods: the optional interfaces below, which this
// package finds by type assertion, make replicas sharing a login safer. [FileStore] implements
// them; run the store test suite (twitchoauthtest.TestTokenStore) against a store that does.

var (
	// ErrTokenChanged: [ConditionalSaver.SaveIf] stored nothing, because the store no longer
	// holds the pair the caller read (another replica stored a newer one, or it is gone).
	ErrTokenChanged = errors.New("twitchoauth: stored token changed since it was read")
	// ErrLeaseLost: the lease of a store's lock ended, or would have ended, before the work
	// under it did; another holder may have the lock. Work still in flight is stopped.
	ErrLeaseLost = errors.New("twitchoauth: lost the lease of the stored token's lock")
)

// LeaseLocker is a [TokenStore] whose locks can be renewed while they are held. The work under a
// lock (a validation, a refresh and a save) may outlast the lease when Twitch answers slowly:
// with a LeaseLocker, this package renews the lease every third of its ttl while the work goes
// on, and stops the work only when a renewal fails. Without it, the work is stopped before the
// lease ends.
//
// A store may also read or write under a lease in fewer round trips ([LeaseReader],
// [ReleasingSaver]), in place of its Load or SaveIf. A store that wraps another and changes what
// those do must not pass on those two of the inner store's; one that embeds the inner store as a
// [TokenStore] or [LeaseLocker] interface, as wrappers do, does not.
type LeaseLocker interface {
	// LockLease takes key's lock as [TokenStore.Lock] does, and returns the lease.
	LockLease(ctx context.Context, key string, ttl time.Duration) (Lease, error)
}

// Lease is a lock held through [LeaseLocker.LockLease].
type Lease interface {
	// Renew extends the lease to the ttl it was taken with, counted from no earlier than the
	// call. When the lease has already ended (the lock may be another's since), it returns an
	// error that Is ErrLeaseLost and extends nothing. Any other error (the store cannot be
	// reached) leaves the lease as it was, and Renew may be called again.
	Renew(ctx context.Context) error
	// Unlock ends the lease as the unlock function of [TokenStore.Lock] does: it may be called
	// after ctx is done and more than once, and after the lease has ended it leaves alone a lock
	// another holder has taken since, and returns nil.
	Unlock() error
}

// LeaseReader is a [LeaseLocker] whose LockLease reads key's token in the same round trip as it
// takes the lock: a refresh under the lock then reads nothing more. The package asks for the read
// once, right after the lock is taken.
type LeaseReader interface {
	LeaseLocker
	// LeaseRead returns the token key held as lease's lock was taken, or Load's error then, and
	// true; false when lease is not one this store's LockLease returned with such a read, when it
	// gave it already (it is given once), or when the read found no token: a lock taken after
	// waiting may have been read before a token was first stored meanwhile, so the caller loads
	// the key instead.
	LeaseRead(lease Lease) (*StoredToken, bool, error)
}

// ReleasingSaver is a [LeaseLocker] that can make the last write of the work under a lease and end
// the lease in one step: a refresh then stores its new pair and releases the lock in one commit
// instead of two. The package uses it for a refresh's save of the pair Twitch gave.
type ReleasingSaver interface {
	LeaseLocker
	// SaveIfUnlock stores next under key as [ConditionalSaver.SaveIf] does, where lease is key's
	// lock as this store's LockLease returned it, and when it stores it, ends the lease in the
	// same step, as Unlock would; the lease's Unlock then does nothing and returns nil. When it
	// stores nothing (its error Is ErrTokenChanged), the lease is as it was, and still ended by
	// Unlock. Another error may come after the store did both (a reply lost): Unlock must then
	// leave alone a lock another holder has taken since, as it must after a lease ran out. A
	// lease that is not this store's lock of key gives errors.ErrUnsupported, and nothing is done.
	SaveIfUnlock(ctx context.Context, lease Lease, key string, prev, next *StoredToken) error
}

// ConditionalSaver is a [TokenStore] that can store a token only if what it holds is still the
// token the caller read: a fence, so that a replica whose lease ended while it refreshed (a
// stalled process, a lock lost in a failover) never overwrites a newer pair with an older one,
// and two holders never both mark one refresh token as theirs to spend (see [SpendMark]).
type ConditionalSaver interface {
	// SaveIf stores next under key as Save does, but only if the token stored there still holds
	// prev's access and refresh tokens and prev's spending mark (the same Spending.Refresh and
	// Spending.Holder, or no mark when prev has none), checked and replaced in one step.
	// Otherwise, also when nothing (or no readable token) is stored under key, it stores nothing
	// and returns an error that Is ErrTokenChanged.
	SaveIf(ctx context.Context, key string, prev, next *StoredToken) error
}

// ChangeWatcher is a [TokenStore] that reports which of its records changed, so that replicas
// sharing it hear of each other's work at once instead of at their next read: a token another
// replica refreshed, a user added or removed elsewhere, a spending mark resolved. [UserTokens.Run]
// watches a store that implements it (stores/redisstore through pub/sub, stores/sqlstore through
// PostgreSQL's LISTEN/NOTIFY and SQLite's data_version, [FileStore] by polling the files).
type ChangeWatcher interface {
	// WatchChanges calls changed with the key of each record saved or deleted through any client
	// of the store, this one included, until ctx ends; it then returns ctx's error. It returns
	// sooner only with an error that will not pass (a store that cannot be watched as it is set
	// up); a store it cannot reach is tried again, with a backoff.
	//
	// Once it watches, and again each time it watches anew after a time in which changes may have
	// been missed (the connection or the store was lost), it calls changed with the empty key "":
	// the caller then looks again at every key it cares about (and lists the store), since a
	// change made meanwhile is found that way, not by a notification. Calls come one at a time,
	// in the order the store reports them; changed must not block for long. A key may be reported
	// more than once for one change, or for a write that changed nothing. A notification carries
	// the key only, never a token.
	WatchChanges(ctx context.Context, changed func(key string)) error
}

// samePair reports whether a and b hold the same access and refresh tokens.
func samePair(a, b *StoredToken) bool {
	return a.AccessToken == b.AccessToken && a.RefreshToken == b.RefreshToken
}

// SpendMark is the write-ahead mark of a refresh, kept in the stored token while a holder spends
// its refresh token: from just before the token is sent until the new pair is stored in its place.
// A stored token with a mark on its refresh token that stays there means a holder sent it and died
// or lost the store before storing what Twitch answered.
type SpendMark struct {
	// Refresh is the hex SHA-256 of the refresh token being spent (never the token itself).
	Refresh string `json:"refresh_sha256"`
	// At is when the holder marked it, just before sending it, by the holder's clock.
	At time.Time `json:"at"`
	// Holder names the source that spends it: a random ID of its process, and the source's
	// number in it.
	Holder string `json:"holder"`
}

// RefreshTokenHash is what a [SpendMark] names refresh token rt by: its SHA-256, in hex.
func RefreshTokenHash(rt string) string {
	sum := sha256.Sum256([]byte(rt))
	return hex.EncodeToString(sum[:])
}

// sameMark reports whether a and b are the same mark, or both none.
func sameMark(a, b *SpendMark) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Refresh == b.Refresh && a.Holder == b.Holder
}

// sameStored reports whether a and b hold the same pair and the same mark: what a fenced save
// compares.
func sameStored(a, b *StoredToken) bool { return samePair(a, b) && sameMark(a.Spending, b.Spending) }

// Matches reports whether st holds prev's access and refresh tokens and prev's spending mark (the
// same Spending.Refresh and Spending.Holder, or none when prev has none): the comparison
// [ConditionalSaver.SaveIf] makes before it stores. A store whose SaveIf reads the stored token
// and writes in one step (a transaction, a version column) can compare with it.
func (st *StoredToken) Matches(prev *StoredToken) bool { return sameStored(st, prev) }

// MaxStoredTokenSize is the largest encoded record a store takes: 64 KiB, where a token is a few
// hundred bytes. Save (and [ConditionalSaver.SaveIf]) refuses a larger record, writing nothing,
// with an error that gives its size and this limit and never quotes it; Load calls a larger one
// corrupt ([ErrTokenCorrupt]). [FileStore]'s record is the token file, and its Load fails on a
// larger file with a read error instead, so that a large file at its path, which is no token
// file, never makes the storage helper start a login that would replace it.
const MaxStoredTokenSize = 64 << 10

// QuoteKey is how a store quotes key in an error or a log line: %q of the key when it is at most
// 64 bytes, else %q of its first 32 bytes (cut at a rune boundary) followed by "… (N bytes)", so
// that a long key never makes a long message.
func QuoteKey(key string) string {
	short, cut := cutKey(key)
	if !cut {
		return fmt.Sprintf("%q", short)
	}
	return fmt.Sprintf("%q… (%d bytes)", short, len(key))
}

// keyAttr is key as a log attribute: whole when it is at most 64 bytes, else its first 32 bytes
// and its length, as QuoteKey has them.
func keyAttr(name, key string) slog.Attr {
	short, cut := cutKey(key)
	if cut {
		short = fmt.Sprintf("%s… (%d bytes)", short, len(key))
	}
	return slog.String(name, short)
}

// cutKey returns key when it is at most 64 bytes, else its first 32 bytes (cut at a rune
// boundary), and whether it cut it.
func cutKey(key string) (string, bool) {
	const whole, prefix = 64, 32
	if len(key) <= whole {
		return key, false
	}
	cut := prefix
	// Back off over the continuation bytes (10xxxxxx) of a rune the cut would split; a UTF-8
	// rune has three at most.
	for i := 0; i < 3 && key[cut]&0xc0 == 0x80; i++ {
		cut--
	}
	return key[:cut], true
}
