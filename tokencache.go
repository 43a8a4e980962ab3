package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// tokenCache is what [UserTokenSource] and [AppTokenSource] share: the current token, read without
// a lock; one renewal at a time, whose result (or failure) the callers that waited for it share;
// the terminal state of a revoked grant; and Twitch's verdicts on tokens an API refused.
//
// Only what Token's fast path reads lives here. The rest (locks, errors, backoff, listeners) is a
// cacheState made on first need, so that each of a registry's many sources, most of which do
// nothing but hand out a fresh token, costs a few words.
//
// Its behaviours, by file: serving and renewing the token (this file); publishing it and telling
// whether it is fresh (tokenfresh.go); taking a token from outside, ending and settling
// (tokenset.go); Twitch's verdicts on a token an API refused (tokenverdict.go); subscribers
// (notify.go); a renewed pair kept until the store takes it (spend.go); a reader replica's
// sources (reader.go); the Helix client (helix.go).
type tokenCache struct {
	// cur is the cached token, read without a lock; until is when it stops being fresh (wall
	// clock Unix nanoseconds, with the margin), so that Token need not read the token itself.
	// ver is odd while they are written (see publish and cached).
	cur   atomic.Pointer[oauth2.Token]
	until atomic.Int64
	ver   atomic.Uint32
	// pending is set while the cacheState holds a pair to persist (see setPending), so that the
	// fast path of TokenContext learns it without reaching for the cacheState.
	pending atomic.Bool

	c    *Client
	more atomic.Pointer[cacheState] // made on first need; see state
	// listener, if set, hears what the cache's keeper must act on (a registry's entry). It is
	// set before the cache is shared.
	listener sourceListener
}

// cacheState is the part of a tokenCache made on first need: by a renewal, a verdict, a
// listener, or a setting of the source.
type cacheState struct {
	// refreshing is a lock held across a renewal: a one-slot channel, so that a caller waiting
	// for another's renewal can give up when its ctx ends.
	refreshing lazyLock
	attempts   atomic.Uint64 // renewals finished so far; written under refreshing
	lastErr    error         // the last renewal's error, unless its caller's ctx ended; guarded by refreshing

	// revoked, once set, is the error of a refresh Twitch rejected (the grant is gone), or of the
	// user's removal (see end): every call returns it without a request until a new token is set.
	revoked atomic.Pointer[error]

	// checking is a one-slot lock held while Twitch is asked whether a token an API refused (401)
	// is still valid, so that requests refused together ask once. A "valid" verdict is kept for
	// recheckAfter: further 401s with that token within it ask nothing.
	checking  lazyLock
	checked   *oauth2.Token // the token last asked about; guarded by checking
	checkedOK bool          // whether Twitch said it was valid
	checkedAt time.Time

	// pending is a renewed token not yet persisted (see spend.go); the owner's flushLocked
	// persists it. It is nil for a cache that persists nothing.
	pending atomic.Pointer[pendingSave]

	// floor, once a renewal failed for a reason that may pass (an outage, a 429), holds its
	// error until the backoff (or the wait Twitch asked for) has passed: calls meanwhile get it
	// without a request. failures counts the failures in a row; guarded by refreshing.
	floor    atomic.Pointer[floorState]
	failures int
	// recheckAt (Unix nanoseconds) is when a grant in doubt (ErrRefreshInDoubt) may be looked
	// at again: the new pair may have been stored since.
	recheckAt atomic.Int64

	// notify, once someone listens, hands each change of the token to the listeners (see
	// notify.go): changes are noted holding refreshing, and handed out as it is released.
	notify atomic.Pointer[notifier]

	// curMu orders the writers of cur and until (see publish); it is never held for longer.
	curMu sync.Mutex

	app bool // the cache holds an app token, not a user's; set before the cache is shared

	// A UserTokenSource's own.
	onRefresh func(*oauth2.Token) error // set before the source is shared
	lockTTL   time.Duration             // the store lock's ttl (0: DefaultLockTTL); set before the source is shared
	serial    uint64                    // the source's number in its process, in the marks it writes (see spend.go)
	markBound time.Duration             // how long another holder's mark may still give way to its pair (0: defaultMarkBound); set before the source is shared
	doubt     string                    // the hash of a refresh token whose answer was lost; guarded by refreshing
	sent      string                    // the hash of the refresh token this source last sent; guarded by refreshing
	settled   bool                      // a doubt ended, for the listener to hear as refreshing is released; guarded by refreshing

	// changes, once a wait on the store made it, tells that wait the stored token changed (the
	// registry heard so from the store): one slot, so a change is never lost while the waiter
	// reads.
	changes atomic.Pointer[chan struct{}]
}

// storeChanges returns the channel that tells a wait on the store that it changed, making it if
// need be.
func (tc *tokenCache) storeChanges() <-chan struct{} {
	x := tc.state()
	if p := x.changes.Load(); p != nil {
		return *p
	}
	ch := make(chan struct{}, 1)
	if x.changes.CompareAndSwap(nil, &ch) {
		return ch
	}
	return *x.changes.Load()
}

// wakeWaiters tells a wait on the store, if one listens, that the stored token changed.
func (tc *tokenCache) wakeWaiters() {
	if x := tc.more.Load(); x != nil {
		if p := x.changes.Load(); p != nil {
			select {
			case *p <- struct{}{}:
			default:
			}
		}
	}
}

// state returns tc's cacheState, making it if need be.
func (tc *tokenCache) state() *cacheState {
	if x := tc.more.Load(); x != nil {
		return x
	}
	x := &cacheState{serial: sourceSerial.Add(1)}
	if tc.more.CompareAndSwap(nil, x) {
		return x
	}
	return tc.more.Load()
}

// revokedErr returns the terminal state's error, or nil; it makes nothing.
func (tc *tokenCache) revokedErr() *error {
	if x := tc.more.Load(); x != nil {
		return x.revoked.Load()
	}
	return nil
}

// pendingPair returns the pair not yet persisted, or nil; it makes nothing.
func (tc *tokenCache) pendingPair() *pendingSave {
	if x := tc.more.Load(); x != nil {
		return x.pending.Load()
	}
	return nil
}

// backedOff returns the backoff under way, or nil; it makes nothing.
func (tc *tokenCache) backedOff() *floorState {
	if x := tc.more.Load(); x != nil {
		return x.floor.Load()
	}
	return nil
}

// isApp reports whether tc holds an app token.
func (tc *tokenCache) isApp() bool {
	x := tc.more.Load()
	return x != nil && x.app
}

// sourceListener hears what a source cannot settle alone. revoked is called once each time the
// grant is found gone (revoked is set), after the lock is released; recovered once each time a
// grant in doubt is settled, after the lock is released and the new token (if any) handed out;
// pendingKept when a renewed pair could not be persisted and is kept pending, holding the lock,
// so it must not block; changed with each change of the token, in order, as subscribers are (see
// notify.go), if hearsChanges says so.
type sourceListener interface {
	revoked(ctx context.Context, err error)
	recovered()
	pendingKept()
	hearsChanges() bool
	changed(tok *oauth2.Token)
	turns() chan struct{} // the turns the cache's renewals take (see admit), or nil
}

// renewer is what a tokenCache's owner does for it, holding refreshing: renew gets a new token in
// place of stale (nil: the current one, found wanting) and publishes it in cur itself;
// flushLocked persists the pending token, trying whatever the backoff says when now is set. Not
// holding refreshing: newerStored takes up a live token that another replica stored in place of
// stale, and returns it (nil: none, or nothing is stored).
type renewer interface {
	renew(ctx context.Context, stale *oauth2.Token) (*oauth2.Token, error)
	flushLocked(ctx context.Context, now bool) error
	newerStored(ctx context.Context, stale *oauth2.Token) *oauth2.Token
}

// floorState is the error every call gets without a request until a time.
type floorState struct {
	until time.Time
	err   error
}

// token returns the cached token while it is fresh, and renews it otherwise. With a renewed token
// not yet persisted, it tries to persist it (now and then; see flushSoon).
func (tc *tokenCache) token(ctx context.Context, owner renewer) (*oauth2.Token, error) {
	tok := tc.cached()
	if tok == nil {
		if tok = tc.cur.Load(); !fresh(tok) { // being replaced, or not fresh
			tok = nil
		}
	}
	if tok != nil {
		if tc.pendingPair() != nil {
			tc.flushSoon(ctx, owner)
		}
		if h := tc.c.Hooks; h != nil && h.TokenServed != nil {
			h.TokenServed(ctx, userOf(owner), tc.isApp())
		}
		return tok, nil
	}
	tok, err := tc.refresh(ctx, nil, owner)
	if err == nil {
		if h := tc.c.Hooks; h != nil && h.TokenServed != nil {
			h.TokenServed(ctx, userOf(owner), tc.isApp())
		}
	}
	return tok, err
}

// renewObserved is owner.renew, which c's hooks hear of.
func (tc *tokenCache) renewObserved(ctx context.Context, stale *oauth2.Token, owner renewer) (*oauth2.Token, error) {
	h := tc.c.hooks()
	if h == nil || (h.RefreshStart == nil && h.RefreshEnd == nil) {
		return owner.renew(ctx, stale)
	}
	e := RefreshEvent{UserID: userOf(owner), App: tc.isApp()}
	if h.RefreshStart != nil {
		ctx = h.RefreshStart(ctx, e)
	}
	start := time.Now()
	tok, err := owner.renew(ctx, stale)
	if h.RefreshEnd != nil {
		e.Duration, e.Err = time.Since(start), err
		e.Outcome, e.Status = refreshOutcome(ctx, err)
		h.RefreshEnd(ctx, e)
	}
	return tok, err
}

// userOf returns the user (store key) of a cache's owner: "" for an app token or a source
// without a store.
func userOf(owner renewer) string {
	if s, ok := owner.(*UserTokenSource); ok && s.store != nil {
		return s.key
	}
	return ""
}

// forceRefresh renews the token unless another caller already replaced stale (nil: the current
// token).
func (tc *tokenCache) forceRefresh(ctx context.Context, stale *oauth2.Token, owner renewer) (*oauth2.Token, error) {
	if stale == nil {
		stale = tc.cur.Load()
		if stale == nil {
			stale = &oauth2.Token{}
		}
	}
	return tc.refresh(ctx, stale, owner)
}

// refresh gets a new token unless the cached one will do: it is fresh and, when stale is given,
// not stale. Waiting for another caller's renewal ends when ctx does. Callers that waited for the
// lock while an attempt failed get that attempt's error instead of trying again at once, unless it
// failed because its own caller's ctx ended. A refresh token Twitch rejects makes the state
// terminal (see revoked).
func (tc *tokenCache) refresh(ctx context.Context, stale *oauth2.Token, owner renewer) (*oauth2.Token, error) {
	recheck := false
	if err := tc.revokedErr(); err != nil {
		if recheck = tc.mayRecheck(*err); !recheck {
			return nil, *err
		}
	}
	if f := tc.backedOff(); f != nil && time.Now().Before(f.until) {
		return nil, f.err
	}
	var turns chan struct{}
	if tc.listener != nil {
		turns = tc.listener.turns()
	}
	// A caller that finds the token being renewed waits for that renewal without a turn.
	busy := false
	if m := tc.more.Load(); m != nil {
		busy = m.refreshing.held()
	}
	ctx, done, err := admit(ctx, turns, busy)
	if err != nil {
		return nil, fmt.Errorf("twitchoauth: refresh: wait for a turn: %w", err)
	}
	return tc.refreshAdmitted(ctx, stale, recheck, owner, done)
}

// refreshAdmitted is refresh once admitted; done gives the turn back. It is a function of its
// own so that refresh's frame, under which thousands of callers may wait for a turn, stays small.
func (tc *tokenCache) refreshAdmitted(ctx context.Context, stale *oauth2.Token, recheck bool, owner renewer, done func()) (*oauth2.Token, error) {
	defer done()
	seen := tc.state().attempts.Load()
	if !tc.state().refreshing.tryLock() {
		// Another caller renews this token: its renewal is not this caller's work, and most
		// often leaves nothing to do (refreshHeld takes a turn again only to renew).
		waitingForOthers(ctx)
		if err := tc.lock(ctx); err != nil {
			return nil, err
		}
	}
	tok, revoked, err := tc.refreshHeld(ctx, stale, seen, recheck, owner)
	tc.unlock()
	if revoked && tc.listener != nil {
		tc.listener.revoked(ctx, err)
	}
	return tok, err
}

// refreshHeld is refresh with refreshing held. It reports whether it found the grant gone.
func (tc *tokenCache) refreshHeld(ctx context.Context, stale *oauth2.Token, seen uint64, recheck bool, owner renewer) (tok *oauth2.Token, revoked bool, err error) {
	wasRevoked := tc.state().revoked.Load()
	if wasRevoked != nil && !recheck {
		return nil, false, *wasRevoked
	}
	if tok := tc.cur.Load(); fresh(tok) && (stale == nil || tok.AccessToken != stale.AccessToken) && wasRevoked == nil {
		return tok, false, nil
	}
	if tc.state().attempts.Load() != seen && tc.state().lastErr != nil {
		return nil, false, tc.state().lastErr
	}
	if f := tc.state().floor.Load(); f != nil && time.Now().Before(f.until) {
		return nil, false, f.err
	}
	if err := haveTurn(ctx); err != nil {
		return nil, false, fmt.Errorf("twitchoauth: refresh: wait for a turn: %w", err)
	}
	tok, err = tc.renewObserved(ctx, stale, owner)
	tc.state().lastErr = err
	if ctx.Err() != nil {
		tc.state().lastErr = nil
	}
	switch {
	case err == nil:
		tc.state().failures = 0
		tc.state().floor.Store(nil)
		if p := tc.state().pending.Load(); tok != nil && (p == nil || !p.holds(tok)) {
			tc.noteChange(tok) // a pending one is noted once it is stored
		}
		if wasRevoked != nil && tok != nil {
			tc.settleDoubt() // the pair in doubt turned up
		}
	case wasRevoked != nil:
		err = *wasRevoked // still in doubt: the same error, reported once
		tok = nil
	case errors.Is(err, ErrInvalidRefreshToken):
		if !errors.Is(err, ErrRefreshInDoubt) {
			err = fmt.Errorf("twitchoauth: the user's authorization is gone; log in again: %w", err)
		}
		tc.state().revoked.Store(&err)
		tc.state().recheckAt.Store(time.Now().Add(doubtRecheck).UnixNano())
		revoked = true
		if cur := tc.cur.Load(); cur != nil {
			tc.markRejected(cur) // the grant's access token dies with it
		}
	case isTransient(ctx, err):
		tc.state().failures++
		tc.state().floor.Store(&floorState{until: time.Now().Add(backoff(tc.state().failures, retryAfterOf(err))), err: err})
	}
	tc.state().attempts.Add(1)
	return tok, revoked, err
}

// mayRecheck reports whether a grant in doubt, with error err, is due to be looked at again, and
// if so makes the next look wait doubtRecheck.
func (tc *tokenCache) mayRecheck(err error) bool {
	if !errors.Is(err, ErrRefreshInDoubt) {
		return false
	}
	at, now := tc.state().recheckAt.Load(), time.Now().UnixNano()
	return now >= at && tc.state().recheckAt.CompareAndSwap(at, time.Now().Add(doubtRecheck).UnixNano())
}

// lock takes refreshing, or gives up when ctx ends.
func (tc *tokenCache) lock(ctx context.Context) error {
	if err := tc.state().refreshing.lock(ctx); err != nil {
		return fmt.Errorf("twitchoauth: wait for token refresh: %w", err)
	}
	return nil
}

// unlock releases refreshing, and hands out the changes noted under it; then the listener hears
// of a doubt settled under it.
func (tc *tokenCache) unlock() {
	st := tc.state()
	settled := st.settled
	st.settled = false
	st.refreshing.unlock()
	tc.deliver()
	if settled && tc.listener != nil {
		tc.listener.recovered()
	}
}

// lazyLock is a lock a waiter can give up on when its ctx ends: a one-slot channel, made on first
// use, so that the many sources of a registry that never refresh or validate pay a pointer.
type lazyLock struct{ p atomic.Pointer[chan struct{}] }

// lock takes l, or gives up with ctx's error when ctx ends first.
func (l *lazyLock) lock(ctx context.Context) error {
	select {
	case l.ch() <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tryLock takes l if it is free, and reports whether it did.
func (l *lazyLock) tryLock() bool {
	select {
	case l.ch() <- struct{}{}:
		return true
	default:
		return false
	}
}

// unlock releases l, which is held.
func (l *lazyLock) unlock() { <-l.ch() }

// held reports whether l is held now, without making its channel.
func (l *lazyLock) held() bool {
	p := l.p.Load()
	return p != nil && len(*p) > 0
}

// ch returns the lock's channel, making it if need be.
func (l *lazyLock) ch() chan struct{} {
	if p := l.p.Load(); p != nil {
		return *p
	}
	ch := make(chan struct{}, 1)
	if l.p.CompareAndSwap(nil, &ch) {
		return ch
	}
	return *l.p.Load()
}
