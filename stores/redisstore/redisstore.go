// Package redisstore keeps twitchoauth tokens in Redis, so that several replicas of a bot share
// one login and never send the same refresh token twice.
//
// [Store] implements [twitchoauth.TokenStore]: tokens are JSON values in the format of the token
// file, and each key has a lock with a lease, so a replica that takes it and dies blocks the others
// only until the lease ends. Every replica points at the same Redis and uses the same key (usually
// the user ID); a bot that logs in one user wires it into the storage helper:
//
//	rdb := redis.NewClient(&redis.Options{Addr: "redis:6379"})
//	defer rdb.Close()
//	h := twitchoauth.NewUserAuthenticationStorageHelper(c, scopes)
//	h.Store = redisstore.New(rdb)
//	h.StoreKey = userID
//	src, err := h.Bind(ctx)
//
// A service that holds many broadcasters' tokens makes a source per user from one Store:
//
//	store := redisstore.New(rdb)
//	src := twitchoauth.NewStoreTokenSource(c, store, userID, nil)
//
// When a token expires, the source takes the user's lock, reloads the token, adopts a fresh one
// another replica stored, and only otherwise refreshes and saves the new pair before releasing it.
// The lease of the lock is renewed while the refresh is in flight, and the save replaces only the
// pair that was read, so a replica whose lease ran out can never overwrite a newer one.
//
// Each write of a token publishes its key on the Pub/Sub channel Prefix+"changes"
// ("twitchoauth:changes" by default), in the same step as the write; [Store.WatchChanges] reports
// those keys, so that replicas hear of each other's refreshes and of users added or removed
// elsewhere within a millisecond on loopback. After any gap in its subscription (a lost
// connection, a restarted server) it reports the empty key: the messages of the gap are lost, and
// the caller looks at every key again.
//
// Run Redis with AOF persistence (appendonly yes): a restart from an older RDB snapshot brings
// spent refresh tokens back, and the users refreshed since must log in again. See the README.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/leasepoll"
)

// DefaultPrefix starts every key a [Store] uses unless its Prefix says otherwise.
const DefaultPrefix = "twitchoauth:"

// releaseScript deletes a lock only while it still holds the owner value of the one releasing it,
// in one step, so a holder whose lease ran out never frees the lock of the one that took it over.
var releaseScript = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then
	return redis.call("del", KEYS[1])
else
	return 0
end`)

// renewScript extends a lock's expiry only while it still holds the owner value of the one
// renewing it, in one step: a holder whose lease ran out never extends another's.
var renewScript = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then
	return redis.call("pexpire", KEYS[1], ARGV[2])
else
	return 0
end`)

// The scripts that write a token publish the store's key of what they changed (ARGV[2] of
// saveScript and deleteScript, ARGV[7] of saveIfScript) on the store's channel (ARGV[1], ARGV[1],
// ARGV[6]) in the same step as the write, for [Store.WatchChanges]. The PUBLISH runs with
// redis.pcall: one that Redis refuses (an ACL user without the channel) never fails a write that
// is already made.

// saveScript sets a token to ARGV[3] and publishes its key.
var saveScript = redis.NewScript(`redis.call("set", KEYS[1], ARGV[3])
redis.pcall("publish", ARGV[1], ARGV[2])
return 1`)

// deleteScript deletes a token and, when there was one, publishes its key. It returns how many
// keys it deleted.
var deleteScript = redis.NewScript(`local n = redis.call("del", KEYS[1])
if n > 0 then
	redis.pcall("publish", ARGV[1], ARGV[2])
end
return n`)

// saveIfScript replaces a plain token only while it holds the access and refresh tokens of ARGV[1]
// and ARGV[2] and the spending mark of ARGV[3] and ARGV[4] (its refresh hash and holder; "" and ""
// for none), in one step (a missing "refresh" counts as ""). It returns 1 when it stored ARGV[5]
// (and published its key), 0 when the token changed or is missing or unreadable, and 2, storing
// nothing, when the token is sealed: its pair is not there to compare (see swapScript). Given a
// second key, a lock, it also deletes that lock when it stored and the lock holds ARGV[8] (see
// SaveIfUnlock).
var saveIfScript = redis.NewScript(`local cur = redis.call("get", KEYS[1])
if not cur then
	return 0
end
local ok, t = pcall(cjson.decode, cur)
if not ok or type(t) ~= "table" then
	return 0
end
if t["sealed"] ~= nil or t["key_id"] ~= nil then
	return 2
end
local function str(v)
	if type(v) == "string" then
		return v
	end
	return ""
end
local mark, hash, holder = t["spending"], "", ""
if type(mark) == "table" then
	hash, holder = str(mark["refresh_sha256"]), str(mark["holder"])
end
if t["token"] ~= ARGV[1] or str(t["refresh"]) ~= ARGV[2] or hash ~= ARGV[3] or holder ~= ARGV[4] then
	return 0
end
redis.call("set", KEYS[1], ARGV[5])
redis.pcall("publish", ARGV[6], ARGV[7])
if KEYS[2] and redis.call("get", KEYS[2]) == ARGV[8] then
	redis.call("del", KEYS[2])
end
return 1`)

// swapScript replaces a token only while its value is still ARGV[1], byte for byte, sets it to
// ARGV[2] and publishes its key (ARGV[4]) on the channel ARGV[3], in one step. It returns 1 when
// it stored, 0 when the value changed or is gone. A sealed value is never written twice (each
// sealing has a nonce of its own), so a value that is the one read was written by no one since.
// Given a second key, a lock, it also deletes that lock when it stored and the lock holds ARGV[5].
var swapScript = redis.NewScript(`if redis.call("get", KEYS[1]) ~= ARGV[1] then
	return 0
end
redis.call("set", KEYS[1], ARGV[2])
redis.pcall("publish", ARGV[3], ARGV[4])
if KEYS[2] and redis.call("get", KEYS[2]) == ARGV[5] then
	redis.call("del", KEYS[2])
end
return 1`)

// Store is a [twitchoauth.TokenStore] in Redis. The token of key k is the string value at
// Prefix+"token:"+k, holding the JSON of [twitchoauth.StoredToken] (the token file's format) with
// no expiry; its lock is Prefix+"lock:"+k. Each write of a token publishes k on the Pub/Sub
// channel Prefix+"changes". Each command names a single key, so a Store works on a Redis Cluster
// too; only SaveIfUnlock names two, and only over one server. A Store is safe for concurrent use;
// replicas each make their own.
//
// Store also implements [twitchoauth.LeaseLocker] (a lease that can be renewed while a slow
// refresh is in flight), [twitchoauth.ConditionalSaver] (a save that a replica whose lease ran
// out cannot make over a newer pair), [twitchoauth.KeyLister] (so that replicas' registries
// see each other's users) and [twitchoauth.ChangeWatcher] (so that they hear of each other's
// writes at once).
type Store struct {
	// Client is the Redis connection: a *redis.Client, *redis.ClusterClient or
	// *redis.Ring. Store does not close it.
	Client redis.UniversalClient
	// Prefix starts every key, so that one Redis can serve several apps. Defaults to
	// DefaultPrefix (also when empty).
	Prefix string
	// Keyring, if set, seals the access and refresh tokens of every token written with its current
	// key, and opens tokens sealed with any of its keys; tokens written before it was set are read
	// as they are, and sealed at their next write. Defaults to none: the token file's plain JSON.
	Keyring *twitchoauth.Keyring

	// watchPing is how long WatchChanges waits with nothing received before it pings Redis.
	// Defaults to defaultWatchPing; the tests shorten it.
	watchPing time.Duration
}

var (
	_ twitchoauth.LeaseLocker      = (*Store)(nil)
	_ twitchoauth.LeaseReader      = (*Store)(nil)
	_ twitchoauth.ReleasingSaver   = (*Store)(nil)
	_ twitchoauth.ConditionalSaver = (*Store)(nil)
	_ twitchoauth.KeyLister        = (*Store)(nil)
	_ twitchoauth.ChangeWatcher    = (*Store)(nil)
)

// New returns a Store on client with the default prefix.
func New(client redis.UniversalClient) *Store {
	return &Store{Client: client, Prefix: DefaultPrefix}
}

// prefix returns the prefix of every key: Prefix, or DefaultPrefix when it is empty.
func (s *Store) prefix() string {
	if s.Prefix == "" {
		return DefaultPrefix
	}
	return s.Prefix
}

// tokenKey returns the Redis key of key's token.
func (s *Store) tokenKey(key string) string { return s.prefix() + "token:" + key }

// lockKey returns the Redis key of key's lock.
func (s *Store) lockKey(key string) string { return s.prefix() + "lock:" + key }

// Load returns the token stored under key. The error Is [twitchoauth.ErrTokenNotFound] when there
// is none and [twitchoauth.ErrTokenCorrupt] when the value is not a token (it is never quoted in
// the error); any other error is Redis's, such as a refused connection.
func (s *Store) Load(ctx context.Context, key string) (*twitchoauth.StoredToken, error) {
	rkey := s.tokenKey(key)
	data, err := s.Client.Get(ctx, rkey).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: redis key %s does not exist", twitchoauth.ErrTokenNotFound, twitchoauth.QuoteKey(rkey))
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: load token: %w", redisError(ctx, err))
	}
	return s.decode(key, rkey, data)
}

// decode reads the token stored under key, at Redis key rkey, opening it when it is sealed. Its
// errors describe what is wrong without quoting the value, which may hold a token.
func (s *Store) decode(key, rkey string, data []byte) (*twitchoauth.StoredToken, error) {
	if len(data) > twitchoauth.MaxStoredTokenSize {
		return nil, fmt.Errorf("%w: redis key %s holds %d bytes, more than the %d of a token", twitchoauth.ErrTokenCorrupt, twitchoauth.QuoteKey(rkey), len(data), twitchoauth.MaxStoredTokenSize)
	}
	st, err := s.Keyring.DecodeStoredToken(key, data)
	if err != nil {
		return nil, fmt.Errorf("redis key %s: %w", twitchoauth.QuoteKey(rkey), err)
	}
	return st, nil
}

// encode returns the value of key's tok: its JSON, sealed when the Store has a Keyring (see
// [twitchoauth.Keyring.EncodeStoredToken]), no more than [twitchoauth.MaxStoredTokenSize] bytes,
// which Load reads, or an error that gives its size (never its contents, which hold secrets).
func (s *Store) encode(key string, tok *twitchoauth.StoredToken) ([]byte, error) {
	data, err := s.Keyring.EncodeStoredToken(key, tok)
	if err != nil {
		return nil, err
	}
	if len(data) > twitchoauth.MaxStoredTokenSize {
		return nil, fmt.Errorf("the token's JSON is %d bytes, more than the %d a store takes", len(data), twitchoauth.MaxStoredTokenSize)
	}
	return data, nil
}

// Save stores tok under key with a single SET and no expiry, replacing what was there: a reader
// sees the old token or the new one, never a mix. A Lua script runs the SET and publishes key on
// the store's channel (see [Store.WatchChanges]) in one step. A token whose JSON is larger than
// [twitchoauth.MaxStoredTokenSize] is refused, and nothing is written; SaveIf refuses it too.
func (s *Store) Save(ctx context.Context, key string, tok *twitchoauth.StoredToken) error {
	if tok == nil {
		return errors.New("redisstore: save token: nil token")
	}
	data, err := s.encode(key, tok)
	if err != nil {
		return fmt.Errorf("redisstore: save token: %w", err)
	}
	if err := saveScript.Run(ctx, s.Client, []string{s.tokenKey(key)}, s.changesChannel(), key, data).Err(); err != nil {
		return fmt.Errorf("redisstore: save token: %w", redisError(ctx, err))
	}
	return nil
}

// Lock takes key's lock, waiting until it is free or ctx is done; the error then Is ctx.Err().
//
// The lock is the key Prefix+"lock:"+key, set with SET NX PX to a random value that names this
// holder, so it expires after ttl (a ttl of zero or less means [twitchoauth.DefaultLockTTL]) even
// if unlock is never called. While another holder has it, Lock polls with jittered backoff from
// 5 ms up to 100 ms. A Redis error ends the wait at once: Lock never polls a server it cannot
// reach.
//
// unlock deletes the lock only if it still holds this holder's value, atomically (a Lua script),
// with a context of its own, so it works after ctx ended. When the lease already ran out, whether
// or not another holder took the lock since, unlock leaves the key alone and returns nil: the
// caller's work is done, and nothing it could do would undo an overlap. Calling unlock again does
// nothing and returns the first call's result. Its only errors are Redis's; the lease ends the lock
// then.
func (s *Store) Lock(ctx context.Context, key string, ttl time.Duration) (unlock func() error, err error) {
	l, err := s.lock(ctx, key, ttl, false)
	if err != nil {
		return nil, err
	}
	return l.unlock, nil
}

// LockLease takes key's lock as Lock does and returns its lease, which Renew extends. Over one
// server (a *redis.Client, Sentinel's included) the SET that takes the lock goes in one pipeline
// with a GET of key's token, which runs right after it and which the lease gives once
// ([Store.LeaseRead]): a refresh under the lock reads nothing more. A Cluster or a Ring sends the
// two to their nodes at once, and the GET may run before the SET, reading the token as it was
// before the last holder's save: there no read goes with the lock, and the work under it loads
// the token.
func (s *Store) LockLease(ctx context.Context, key string, ttl time.Duration) (twitchoauth.Lease, error) {
	l, err := s.lock(ctx, key, ttl, s.oneServer())
	if err != nil {
		return nil, err // not a Lease holding a nil *lease
	}
	return l, nil
}

func (s *Store) lock(ctx context.Context, key string, ttl time.Duration, load bool) (*lease, error) {
	if ttl <= 0 {
		ttl = twitchoauth.DefaultLockTTL
	}
	ttl = max(ttl, time.Millisecond) // PX counts milliseconds
	lkey := s.lockKey(key)
	owner := newOwner()
	var read *redis.StringCmd // the GET that went with the try that took the lock
	try := func() (bool, error) {
		if load {
			read = redis.NewStringCmd(ctx, "get", s.tokenKey(key))
		}
		return s.tryLock(ctx, lkey, owner, ttl, read)
	}
	abandon := func(err error) { s.abandon(ctx, lkey, owner, err) }
	if err := leasepoll.Poll(ctx, try, abandon); err != nil {
		return nil, fmt.Errorf("redisstore: lock %s: %w", twitchoauth.QuoteKey(lkey), redisError(ctx, err))
	}
	l := &lease{s: s, key: key, lkey: lkey, owner: owner, ttl: ttl, unlock: s.unlocker(ctx, lkey, owner)}
	if read != nil {
		l.read.Store(read)
	}
	return l, nil
}

// tryLock tries once to take the lock. The client may resend a SET whose reply it lost, which
// then fails because the first one took the lock: the lock holding owner's value means it is held.
// With read, that command (a GET) goes in the same pipeline, its answer in read.
func (s *Store) tryLock(ctx context.Context, lkey, owner string, ttl time.Duration, read *redis.StringCmd) (bool, error) {
	var ok bool
	var err error
	if read == nil {
		ok, err = s.Client.SetNX(ctx, lkey, owner, ttl).Result()
	} else {
		// The SET's answer alone says whether the lock was taken: a GET that fails (or finds no
		// token) leaves no read, and the work under the lock loads the key.
		var set *redis.BoolCmd
		s.Client.Pipelined(ctx, func(p redis.Pipeliner) error {
			set = p.SetNX(ctx, lkey, owner, ttl)
			p.Process(ctx, read)
			return nil
		})
		ok, err = set.Result()
	}
	if err != nil || ok {
		return ok, err
	}
	held, err := s.Client.Get(ctx, lkey).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil // released meanwhile: the next try may take it
	}
	return err == nil && held == owner, err
}

// abandon releases, as well as it can, a lock that a failed SET may have taken after all: a SET
// whose reply timed out, or was cut off when ctx ended, may have reached the server.
func (s *Store) abandon(ctx context.Context, lkey, owner string, err error) {
	var nerr net.Error
	if ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &nerr) && nerr.Timeout()) {
		return // the server answered, or was never reached
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	releaseScript.Run(ctx, s.Client, []string{lkey}, owner)
}

// unlocker returns the release of the lock lkey held as owner.
func (s *Store) unlocker(ctx context.Context, lkey, owner string) func() error {
	return leasepoll.Unlocker(ctx, func(ctx context.Context) error {
		// 0 means the lease ran out: the lock is gone or another's, and is left alone.
		if err := releaseScript.Run(ctx, s.Client, []string{lkey}, owner).Err(); err != nil {
			return fmt.Errorf("redisstore: unlock %s: %w", twitchoauth.QuoteKey(lkey), redisError(ctx, err))
		}
		return nil
	})
}

// lease is a lock held as owner.
type lease struct {
	s      *Store
	key    string
	lkey   string
	owner  string
	ttl    time.Duration
	unlock func() error
	read   atomic.Pointer[redis.StringCmd] // the GET that went with the lock, until LeaseRead gives it
	saved  atomic.Bool                     // SaveIfUnlock stored its token and released the lock
}

// oneServer reports whether the Store's client talks to one server (a *redis.Client, Sentinel's
// failover client included), which runs a pipeline's or a script's commands in order, and so can
// read with the lock (LockLease) and release it with the save (SaveIfUnlock).
func (s *Store) oneServer() bool {
	_, ok := s.Client.(*redis.Client)
	return ok
}

// LeaseRead gives, once, the token key held as the lock held was taken by this Store's
// LockLease, as Load would have returned it then; see [twitchoauth.LeaseReader]. A lease of
// another Store, a lock taken by Lock, and a read that found no token or failed give none.
func (s *Store) LeaseRead(held twitchoauth.Lease) (*twitchoauth.StoredToken, bool, error) {
	l, ok := held.(*lease)
	if !ok || l.s != s {
		return nil, false, nil
	}
	read := l.read.Swap(nil)
	if read == nil {
		return nil, false, nil
	}
	data, err := read.Bytes()
	if err != nil {
		// None, or a failed read: the caller loads the key.
		return nil, false, nil
	}
	rkey := s.tokenKey(l.key)
	st, err := s.decode(l.key, rkey, data)
	return st, true, err
}

// Renew sets the lock to expire ttl from now, the ttl it was taken with, if it still holds this
// holder's value (a Lua script: PEXPIRE only then). Otherwise the lease has run out, and the lock is
// gone or another's: the error then Is [twitchoauth.ErrLeaseLost]. Any other error is Redis's.
func (l *lease) Renew(ctx context.Context) error {
	n, err := renewScript.Run(ctx, l.s.Client, []string{l.lkey}, l.owner, l.ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("redisstore: renew lock %s: %w", twitchoauth.QuoteKey(l.lkey), redisError(ctx, err))
	}
	if n == 0 {
		return fmt.Errorf("redisstore: renew lock %s: %w", twitchoauth.QuoteKey(l.lkey), twitchoauth.ErrLeaseLost)
	}
	return nil
}

// Unlock releases the lock as the unlock function of Lock does; after a SaveIfUnlock that stored
// its token, it has nothing to release.
func (l *lease) Unlock() error {
	if l.saved.Load() {
		return nil
	}
	return l.unlock()
}

// SaveIf stores next under key, as Save does, only if the stored token still holds prev's access
// and refresh tokens and its spending mark. Over a plain token, without a Keyring, a Lua script
// reads the value, compares them (cjson decodes it), sets the new one and publishes key, in one
// step. With a Keyring, or over a sealed token, SaveIf reads the value, opens and compares it
// here, and a Lua script sets the new value only while the stored one is still, byte for byte, the
// one read (each sealing has a nonce of its own, so a value rewritten since never compares equal);
// a value written in between is read and compared again (a few times), so that a write that kept
// the pair and the mark (a Reseal) does not fail it. Either way, no token in the clear is sent to
// Redis when the Store has a Keyring. When the tokens differ, or nothing readable is stored, it
// stores nothing and the error Is [twitchoauth.ErrTokenChanged]; a sealed token the Keyring cannot
// open is an error that Is [twitchoauth.ErrCannotUnseal], and is left as it is. Any other error is
// Redis's.
func (s *Store) SaveIf(ctx context.Context, key string, prev, next *twitchoauth.StoredToken) error {
	return s.saveIf(ctx, key, nil, prev, next)
}

// SaveIfUnlock stores next under key as SaveIf does and, when it stores it, releases held, key's
// lock as this Store's LockLease took it, in the same script; the lease's Unlock then does
// nothing. When it stores nothing, the lock is held as before. The script names the token's key
// and the lock's, which a Redis Cluster or Ring may keep on different nodes: on a client other
// than a *redis.Client (one server, or Sentinel's failover client), and for a lease of another
// Store or key, it does nothing and returns errors.ErrUnsupported (see
// [twitchoauth.ReleasingSaver]), and the refresh saves and unlocks in two steps.
func (s *Store) SaveIfUnlock(ctx context.Context, held twitchoauth.Lease, key string, prev, next *twitchoauth.StoredToken) error {
	l, ok := held.(*lease)
	if !s.oneServer() || !ok || l.s != s || l.key != key {
		return fmt.Errorf("redisstore: save token: %w: not a lock this Store took on key %s, on one server", errors.ErrUnsupported, twitchoauth.QuoteKey(key))
	}
	if err := s.saveIf(ctx, key, l, prev, next); err != nil {
		return err
	}
	l.saved.Store(true)
	return nil
}

// saveIf is SaveIf; with a lease, the script that stores next also releases it (SaveIfUnlock).
func (s *Store) saveIf(ctx context.Context, key string, l *lease, prev, next *twitchoauth.StoredToken) error {
	if prev == nil || next == nil {
		return errors.New("redisstore: save token: SaveIf needs the token it replaces and a new one")
	}
	data, err := s.encode(key, next)
	if err != nil {
		return fmt.Errorf("redisstore: save token: %w", err)
	}
	rkey := s.tokenKey(key)
	if s.Keyring == nil {
		var hash, holder string
		if m := prev.Spending; m != nil {
			hash, holder = m.Refresh, m.Holder
		}
		keys, args := []string{rkey}, []any{prev.AccessToken, prev.RefreshToken, hash, holder, data, s.changesChannel(), key}
		if l != nil {
			keys, args = append(keys, l.lkey), append(args, l.owner)
		}
		n, err := saveIfScript.Run(ctx, s.Client, keys, args...).Int()
		switch {
		case err != nil:
			return fmt.Errorf("redisstore: save token: %w", redisError(ctx, err))
		case n == 1:
			return nil
		case n == 0:
			return fmt.Errorf("%w: redis key %s holds another pair", twitchoauth.ErrTokenChanged, twitchoauth.QuoteKey(rkey))
		}
		// Sealed: opening it below says why it cannot be.
	}
	for range saveIfReads {
		cur, err := s.Client.Get(ctx, rkey).Bytes()
		if errors.Is(err, redis.Nil) {
			return fmt.Errorf("%w: redis key %s does not exist", twitchoauth.ErrTokenChanged, twitchoauth.QuoteKey(rkey))
		}
		if err != nil {
			return fmt.Errorf("redisstore: save token: %w", redisError(ctx, err))
		}
		st, err := s.decode(key, rkey, cur)
		switch {
		case errors.Is(err, twitchoauth.ErrTokenCorrupt):
			return fmt.Errorf("%w: %w", twitchoauth.ErrTokenChanged, err)
		case err != nil:
			return err
		case !st.Matches(prev):
			return fmt.Errorf("%w: redis key %s holds another pair", twitchoauth.ErrTokenChanged, twitchoauth.QuoteKey(rkey))
		}
		if done, err := s.swap(ctx, key, rkey, cur, data, l); err != nil || done {
			return err
		}
	}
	return fmt.Errorf("%w: redis key %s kept being written while it was compared", twitchoauth.ErrTokenChanged, twitchoauth.QuoteKey(rkey))
}

// saveIfReads is how many times SaveIf and Reseal read a value that is written between their read
// and their write before they give up.
const saveIfReads = 5

// swap sets key's token, at rkey, to data if it still holds cur, and publishes key (and with a
// lease, releases it); it reports whether it did.
func (s *Store) swap(ctx context.Context, key, rkey string, cur, data []byte, l *lease) (bool, error) {
	keys, args := []string{rkey}, []any{cur, data, s.changesChannel(), key}
	if l != nil {
		keys, args = append(keys, l.lkey), append(args, l.owner)
	}
	n, err := swapScript.Run(ctx, s.Client, keys, args...).Int()
	if err != nil {
		return false, fmt.Errorf("redisstore: save token: %w", redisError(ctx, err))
	}
	return n == 1, nil
}

// redisError returns ctx's error in place of the client's when ctx ended, so that errors.Is
// matches context.Canceled and context.DeadlineExceeded whatever the client reported.
func redisError(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}

// newOwner returns a random value naming one holder of a lock: 128 bits, in hex.
func newOwner() string {
	var b [16]byte
	rand.Read(b[:]) // never fails; see crypto/rand.Read
	return hex.EncodeToString(b[:])
}

// Delete removes key's token with one DEL and, when there was one, publishes key on the store's
// channel, in one step (a Lua script); a key with no token is not an error. A lock held on the key
// stays until its holder releases it or its lease ends.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := deleteScript.Run(ctx, s.Client, []string{s.tokenKey(key)}, s.changesChannel(), key).Err(); err != nil {
		return fmt.Errorf("redisstore: delete token: %w", redisError(ctx, err))
	}
	return nil
}

// Keys returns the key of every token under Prefix, found with SCAN (on every master of a Redis
// Cluster), which never blocks the server the way KEYS does. A key saved or deleted while it runs
// may or may not be listed.
func (s *Store) Keys(ctx context.Context) ([]string, error) {
	pattern := globEscape(s.tokenKey("")) + "*"
	seen := map[string]bool{}
	var mu sync.Mutex
	scan := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			seen[strings.TrimPrefix(iter.Val(), s.tokenKey(""))] = true
			mu.Unlock()
		}
		return iter.Err()
	}
	var err error
	if cc, ok := s.Client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, s.Client)
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: list tokens: %w", redisError(ctx, err))
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	return keys, nil
}

// globEscape quotes the characters SCAN's MATCH pattern gives a meaning to.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
