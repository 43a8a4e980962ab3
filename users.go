package twitchoauth

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// Defaults of [UserTokens].
const (
	defaultValidateEvery = time.Hour
	defaultMaxInFlight   = 8
	defaultSyncEvery     = time.Minute
)

// UserTokens keeps the tokens of many users in one service: a bot account and every broadcaster
// who connected it (twurple: RefreshingAuthProvider). Each user has one [UserTokenSource], part of
// the user's entry (a few words until it first refreshes) and shared by every caller; tokens live
// in a [TokenStore] under the user's ID, and [UserTokens.Run] is the one goroutine that validates
// them all, as Twitch requires hourly. It is safe for concurrent use. Set its fields before calling
// any method.
//
// Users are added with a token ([UserTokens.AddUserForToken]) or an authorization code
// ([UserTokens.AddUserForCode]), optionally with intents: what the program uses their token for,
// such as "chat" for the account the bot chats as, or "chatbot:<channel id>". An intent belongs
// to one user at a time; giving it to a user takes it from the one who had it.
//
// A rejected grant (the user disconnected the app or changed their password) ends the user's
// source for good: its calls fail with an error that Is [ErrInvalidRefreshToken], OnRevoked is
// called once, and the user is removed from the registry and the store unless KeepRevoked is set.
// Twitch also says so itself, through EventSub's user.authorization.revoke: mount
// [UserTokens.RevocationHandler] to hear of it at once, not at the next refresh.
// Add the user again after a new login (rather than calling SetToken on the old source, which
// the registry no longer holds).
//
// The users' renewals take turns: at most 128 work at once, and the others wait for a turn before
// they make anything, so that 10,000 users whose tokens expire together cost 10,000 parked
// goroutines, not 10,000 half-made refreshes queued for the 64 connections the default transport
// keeps to Twitch. A renewal waiting for another holder (another caller's renewal of the same
// token, the store's lock, another replica's mark) gives its turn back meanwhile.
//
// # Where each behaviour lives
//
//   - Adding users (users_add.go): [UserTokens.AddUserForToken], [UserTokens.AddUserForCode].
//   - Finding them (users.go): [UserTokens.Source], [UserTokens.SourceForIntent],
//     [UserTokens.Intents], [UserTokens.Users].
//   - Removing and revoking (users_revoke.go): [UserTokens.Remove], and a grant found gone;
//     hearing it from Twitch (revocation.go): [UserTokens.RevocationHandler].
//   - Syncing with the store (users_sync.go): [UserTokens.Sync]; hearing other replicas at once
//     (users_watch.go).
//   - Running and scheduling (users_run.go, users_schedule.go): [UserTokens.Run],
//     [UserTokens.RefreshTokenExpiry].
//   - Validating (users_validate.go): what Run does with each user in its slot.
//   - Operating (health.go, audit.go): [UserTokens.Health], [UserTokens.HealthHandler],
//     [UserTokens.Counts], [UserTokens.Audit].
//
// # Replicas
//
// Several replicas of a service can share one store (e.g. Redis, see stores/redisstore):
//   - Over a store that reports its changes ([ChangeWatcher]: Redis, PostgreSQL, SQLite and
//     FileStore do), what one replica does reaches the others at once while Run runs: a token it
//     refreshed (OnRefresh and subscribers hear it), a user it added or removed, a mark it
//     resolved. Otherwise, and after a gap in the notifications, a user added on one replica is
//     seen by the others when Run lists the store's keys every SyncEvery ([UserTokens.Sync] does
//     it at once), and a user removed is dropped the same way. Intents travel with the token in
//     the store.
//   - A replica may be a reader (ReadOnly) that never refreshes, beside a writer (KeepFresh) that
//     keeps every token fresh; see stores/README.md for which deployment suits which service.
//   - A token is refreshed once across replicas: a refresh takes the user's lock in the store,
//     adopts a fresh token another replica stored, and only otherwise refreshes and saves.
//   - Validation is spread, not done once per replica: every replica validates a user in the same
//     slot of the period, derived from the user ID (so slots are spread evenly over the period),
//     shifted by up to a minute of jitter of its own. The store records when a token was last
//     validated (StoredToken.ValidatedAt): the first replica to reach the slot takes the user's
//     lock, validates, and saves the time; the others read it, find the token validated within
//     a tenth of the period, and skip. Each replica reads each user's stored token once per
//     period.
type UserTokens struct {
	// ValidateEvery is how often each token is validated. Defaults to an hour (Twitch requires
	// apps to validate their tokens hourly).
	ValidateEvery time.Duration
	// MaxInFlight caps the validations (and the refreshes they lead to) Run sends at once.
	// Defaults to 8.
	MaxInFlight int
	// SyncEvery is how often Run lists the store to find users other replicas added or removed.
	// Defaults to a minute.
	SyncEvery time.Duration
	// OnRefresh, if set, is called with every new token of a user, once the store holds it: the
	// first one, when AddUserForToken or AddUserForCode adds the user; one a refresh got; one
	// another replica refreshed and stored, which this one took up; and one handed over for a
	// user already registered. It is for the program's own use, such as a chat connection's
	// password (see also [UserTokenSource.Subscribe]). Calls for one user come in the order of
	// the changes, one at a time, never with a token Twitch refused; a panic is logged. It is
	// called by the goroutine that made or found the change, after the source's lock is
	// released: it must not block for long.
	OnRefresh func(userID string, tok *oauth2.Token)
	// OnRevoked, if set, is called once when a user's grant is found gone (a refresh token Twitch
	// rejected, typically after a validation said 401): the user must log in again. It is called
	// after the user was removed (unless KeepRevoked), synchronously by the goroutine that found
	// it; it must not block for long. A panic in it is logged, and changes nothing.
	//
	// It is also called when a public client's refresh token may have been spent without its new
	// pair being stored (see [UserTokenSource]): then err Is [ErrRefreshInDoubt] (it Is
	// [ErrInvalidRefreshToken] too, so test for the doubt first). That user is not gone: they are
	// kept, store and all, and their calls fail until the pair turns up: stored by the holder that
	// spent the refresh token (a replica cut off from the store, storing it once the store answers
	// again), or its mark taken back by a holder that never sent it. Every replica takes that up
	// within a pass of Run, OnRefresh and subscribers hear of the token, and OnRecovered is called;
	// only if it never comes does the user need a new login. A program that alerts on OnRevoked
	// should hold an in-doubt alert until OnRecovered has had a few minutes to come.
	OnRevoked func(userID string, err error)
	// OnRecovered, if set, is called once when a user whose refresh token was in doubt (OnRevoked
	// was called with an error that Is [ErrRefreshInDoubt]) is usable again without a new login.
	// It is called after the source's lock is released, by the goroutine that found it; it must
	// not block for long. A panic in it is logged.
	OnRecovered func(userID string)
	// ReadOnly makes this replica a reader: it never sends a refresh token, nor a validation
	// (which may lead to one), and so needs neither the client secret's use nor the store's locks.
	// Its sources hand out the token the store holds until that token expires (a reader cannot
	// renew it sooner); one that has expired, or that an API refused, is read from the store again,
	// waiting up to ReaderWait for a writer's new pair, and otherwise fails with an error that Is
	// [ErrNoFreshToken]. Run on a reader only lists and watches the store. Another replica, the
	// writer, keeps everyone's tokens fresh: set KeepFresh on it. AddUserForToken, AddUserForCode
	// and Remove with revoke, which may refresh, are refused. Defaults to false.
	ReadOnly bool
	// ReaderWait is how long a reader's source waits for a writer's new pair when the stored token
	// has expired. Defaults to 10 seconds.
	ReaderWait time.Duration
	// KeepFresh makes Run refresh each user's token before it expires (10 minutes before), whether
	// or not this process uses it, so that reader replicas always find a live token in the store.
	// Set it on the writer of readers. Defaults to false: a token is refreshed when it is used.
	KeepFresh bool
	// LockTTL is how long a user's lock in the store lives unless released: a replica that dies
	// holding it, or is cut off from the store before it can release it, blocks that user's
	// refreshes and validations on the other replicas for LockTTL at most. It does not bound the
	// wait for another holder's refresh: a refresh token another holder marked as being spent is
	// waited for without the lock, and decided on (its pair, or in doubt) within 35 seconds of the
	// mark, whatever LockTTL. Defaults to [DefaultLockTTL].
	LockTTL time.Duration
	// KeepRevoked keeps a user whose grant is gone in the registry and the store, with its source
	// failing until a new token is added. Defaults to false: such a user is removed from both.
	KeepRevoked bool

	c     *Client
	store TokenStore
	seed  uint64 // this replica's jitter

	mu    sync.RWMutex
	users map[string]*userEntry
	// index holds users for Source to read without u.mu, until users next changes; lookup fills
	// it again. misses counts the lookups made under u.mu while it is empty.
	index   atomic.Pointer[userIndex]
	misses  atomic.Int64
	intents map[string]string // intent to user ID
	running bool              // Run is running
	syncs   uint32            // Syncs begun
	added   []*userEntry      // entries added while Run runs, not yet scheduled
	gone    []*userEntry      // entries forgotten while Run runs, not yet taken off its schedule
	hurry   []*userEntry      // entries whose source holds a pair to store, to pass over soon
	wake    chan struct{}     // tells Run that added, gone or hurry has entries
	turns   chan struct{}     // the renewals at work, one value each (see admit)
	// watching is set while Run watches the store's changes with no gap since it last read every
	// user: what the entries last read is what the store holds.
	watching atomic.Bool

	revocations recentRevocations // the revocations RevocationHandler handled lately

	appOnce sync.Once
	app     *AppTokenSource // the audits' app token source when they bring none (see appTokens)

	lapsingTurn lazyLock       // held by HealthHandler's lapsing read (see lapsingServed)
	lapsingLast *LapsingHealth // its last whole read; guarded by lapsingTurn
}

// userEntry is one registered user. The user's source is part of it, made with it: its key is the
// user ID, and e is its listener.
type userEntry struct {
	src     UserTokenSource
	intents []string // guarded by UserTokens.mu
	removed atomic.Bool
	synced  uint32 // the last Sync whose listing held the user; guarded by UserTokens.mu
	// validatedAt is the stored ValidatedAt as last read (Unix nanoseconds): while the store's
	// changes are watched, a validation another replica made is known without a read.
	validatedAt atomic.Int64

	// Owned by Run's scheduler.
	index    int32 // in Run's schedule (a heap), or -1
	failures int32
	due      time.Time
	wait     time.Duration // how long Twitch asked to wait after the last failure; set by the worker

	u *UserTokens // the registry
}

// newEntry returns the entry of st's user, whose source starts from st's token.
func (u *UserTokens) newEntry(st *StoredToken) *userEntry {
	e := &userEntry{index: -1, u: u}
	e.src.init(u.c, st.Token())
	e.src.store, e.src.key, e.src.listener = u.store, st.UserID, e
	return e
}

// revoked hears from e's source that its grant is gone.
func (e *userEntry) revoked(ctx context.Context, err error) { e.u.revoked(ctx, e, err) }

// recovered hears from e's source that a refresh token in doubt is settled: the user is usable.
func (e *userEntry) recovered() {
	e.u.c.userChange(context.Background(), e.src.key, UserRecovered)
	if f := e.u.OnRecovered; f != nil {
		e.src.safely(func() { f(e.src.key) })
	}
}

// hearsChanges reports whether the registry's OnRefresh wants e's changes.
func (e *userEntry) hearsChanges() bool { return e.u.OnRefresh != nil }

// changed hands a change of e's token to OnRefresh.
func (e *userEntry) changed(tok *oauth2.Token) {
	if f := e.u.OnRefresh; f != nil {
		f(e.src.key, tok)
	}
}

// turns returns the registry's renewal turns (see admit).
func (e *userEntry) turns() chan struct{} { return e.u.turns }

// pendingKept hears from e's source that it holds a pair the store did not take: Run stores it
// soon, not at e's next slot.
func (e *userEntry) pendingKept() { e.u.soon(e) }

// NewUserTokens returns a registry of c's users whose tokens live in store. A nil store means a
// [FileStore] in the working directory: user 12345's token in user_token.12345.json.
func NewUserTokens(c *Client, store TokenStore) *UserTokens {
	if store == nil {
		store = &FileStore{}
	}
	return &UserTokens{
		c:       c,
		store:   observeStore(c.hooks(), store),
		seed:    rand.Uint64(),
		users:   map[string]*userEntry{},
		intents: map[string]string{},
		wake:    make(chan struct{}, 1),
		turns:   make(chan struct{}, maxRenewals),
	}
}

// Source returns the user's token source, the same one for every call. Its error Is
// [ErrTokenNotFound] when the user is not registered (a user another replica added is known after
// the next [UserTokens.Sync]). It does no I/O, and takes no lock and allocates nothing while the
// registry's users stay the same.
// Run validates the source's token: do not start KeepValidated on it.
func (u *UserTokens) Source(userID string) (*UserTokenSource, error) {
	var e *userEntry
	if ix := u.index.Load(); ix != nil {
		e = ix.m[userID]
	} else {
		e = u.lookup(userID)
	}
	if e == nil {
		return nil, notRegistered(userID)
	}
	return &e.src, nil
}

// userIndex is the registry's users as Source reads them without u.mu: a map no one changes
// once it is in the index.
type userIndex struct{ m map[string]*userEntry }

// lookup finds a user under u.mu, for Source while the index is empty. Once a quarter as many
// lookups as there are users have been made so, it puts the users' map in the index: the next
// change copies the map first (see writableLocked), so that a registry whose users change often
// copies it at most once every so many lookups, which cost about as much.
func (u *UserTokens) lookup(userID string) *userEntry {
	u.mu.RLock()
	defer u.mu.RUnlock()
	if n := u.misses.Add(1); n > int64(len(u.users)/4) && u.misses.CompareAndSwap(n, 0) {
		// Under the read lock: no change comes between here and the map's use as the index,
		// and a change, which takes the write lock, finds the map in the index.
		u.index.CompareAndSwap(nil, &userIndex{m: u.users})
	}
	return u.users[userID]
}

// writableLocked returns u.users, ready for a change; u.mu is held for writing. While Source
// reads the map as the index, the change goes to a copy, and the index is emptied.
func (u *UserTokens) writableLocked() map[string]*userEntry {
	if u.index.Load() != nil {
		u.index.Store(nil)
		u.users = maps.Clone(u.users)
	}
	return u.users
}

// inParts splits keys into up to MaxInFlight parts, runs work on each in a goroutine of its own,
// and returns when every part is done: reads of many users' records go MaxInFlight at a time,
// without a goroutine for each user.
func (u *UserTokens) inParts(keys []string, work func(part []string)) {
	workers := min(u.maxInFlight(), len(keys))
	var wg sync.WaitGroup
	for w := range workers {
		part := keys[w*len(keys)/workers : (w+1)*len(keys)/workers]
		wg.Go(func() { work(part) })
	}
	wg.Wait()
}

// notRegistered is Source's error for a user not registered.
func notRegistered(userID string) error {
	return fmt.Errorf("%w: user %s is not registered", ErrTokenNotFound, QuoteKey(userID))
}

// SourceForIntent returns the source of the user who has intent, e.g. "chat". Its error Is
// [ErrTokenNotFound] when no registered user has it.
func (u *UserTokens) SourceForIntent(intent string) (*UserTokenSource, error) {
	u.mu.RLock()
	e := u.users[u.intents[intent]]
	u.mu.RUnlock()
	if e == nil {
		return nil, fmt.Errorf("%w: no user has intent %q", ErrTokenNotFound, intent)
	}
	return &e.src, nil
}

// Intents returns the user's intents (nil for a user not registered).
func (u *UserTokens) Intents(userID string) []string {
	u.mu.RLock()
	defer u.mu.RUnlock()
	if e := u.users[userID]; e != nil {
		return slices.Clone(e.intents)
	}
	return nil
}

// Users returns the IDs of the registered users, sorted.
func (u *UserTokens) Users() []string {
	u.mu.RLock()
	ids := make([]string, 0, len(u.users))
	for id := range u.users {
		ids = append(ids, id)
	}
	u.mu.RUnlock()
	slices.Sort(ids)
	return ids
}

func (u *UserTokens) log(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) {
	if l := u.c.Logger; l != nil {
		l.LogAttrs(ctx, level, msg, attrs...)
	}
}
