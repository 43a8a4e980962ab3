package twitchoauth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// A refresh token is spent by sending it: a public client's works once, and sending a spent one
// again is refused and may end the user's whole authorization (twitchdev/issues#903). So that a
// refresh token is never lost nor sent twice, whatever fails and whenever:
//
//   - Write-ahead (public clients): before a source sends the stored refresh token, it marks it as
//     being spent (StoredToken.Spending: the token's hash, when, and which source), fenced and
//     under the key's lock. A source that finds another's mark on the refresh token it would send
//     does not send it: it waits (a bounded time) for that holder to store the new pair.
//   - Pending pair: a pair Twitch issued that the store did not take is kept in memory and stored
//     (fenced, in place of the marked pair) before the source does anything else with the store:
//     at the next Token, at the next refresh, and at each pass of UserTokens.Run.
//   - A refresh token whose answer was lost (sent whole, then the connection dropped or the read
//     timed out) may have been spent. A public client's is never sent again: the source fails with
//     a [RefreshInDoubtError] until the new pair turns up in the store or a new login is set. A
//     confidential client's refresh token works more than once: it is not marked, a refresh of it
//     ends with the caller's context as any request does, and it is sent again at the next refresh.
//     A request that never left (the dial was refused) is sent again for either kind.

// Timings of the write-ahead mark and the pending pair.
const (
	// refreshTimeout bounds a public client's refresh, counted from its mark: once sent, a refresh
	// is seen to its end however the caller's context and the lease go (an answer thrown away may
	// be the only copy of the user's new pair), but never past the mark's time plus refreshTimeout.
	refreshTimeout = 30 * time.Second
	// markSaveTime is what a mark's holder has, after its refresh's bound, to store the new pair.
	markSaveTime = 5 * time.Second
	// defaultMarkBound is how long after its time a mark may still give way to its holder's pair:
	// the refresh's own bound and a save. A source that finds another holder's mark older than
	// that does not wait for it.
	defaultMarkBound = refreshTimeout + markSaveTime
	// minSendTime is the least time a refresh must have left before its bound for it to be sent:
	// a mark that took longer to write is taken back instead.
	minSendTime = 10 * time.Second
	// flushTimeout bounds a write of a pending pair that a Token call makes.
	flushTimeout = 5 * time.Second
	// doubtRecheck is how often a source whose refresh token is in doubt reads the store again
	// for the pair that would end the doubt.
	doubtRecheck = 30 * time.Second
)

// markDeadline is when a source stops waiting for the holder of mark m, of which bound is the
// markBound: bound after the mark's time, or after now when the mark's time is ahead of this
// clock.
func markDeadline(m *SpendMark, bound time.Duration) time.Time {
	at := m.At
	if now := time.Now(); at.After(now) {
		at = now
	}
	return at.Add(bound)
}

// processID names this process in the marks of its sources.
var processID = sync.OnceValue(func() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
})

// sourceSerial numbers the sources of this process.
var sourceSerial atomic.Uint64

// holder names s in its marks.
func (s *UserTokenSource) holder() string {
	return processID() + "-" + strconv.FormatUint(s.state().serial, 10)
}

// pendingSave is a pair Twitch issued that was not stored yet: next, to be stored in place of prev
// (fenced); or, with no prev, what rebase makes of the token stored by then (nil: superseded), as
// for a user added with a token whose refresh the store did not take; or, for a source without a
// store, tok, to be handed to onRefresh again.
type pendingSave struct {
	prev, next *StoredToken
	rebase     func(cur *StoredToken) *StoredToken // cur is nil when nothing is stored
	tok        *oauth2.Token
	retryAt    atomic.Int64 // Unix nanoseconds: a Token call tries again no earlier
	tries      int          // guarded by refreshing
	err        error        // the last try's error; guarded by refreshing
}

// takesBackMark reports whether p takes back a mark (next is prev without it), rather than
// storing a pair.
func (p *pendingSave) takesBackMark() bool {
	return p.tok == nil && p.prev != nil && p.next.RefreshToken == p.prev.RefreshToken
}

// holds reports whether p is the pair of tok.
func (p *pendingSave) holds(tok *oauth2.Token) bool {
	if p.tok != nil {
		return p.tok == tok
	}
	return p.next != nil && p.next.AccessToken == tok.AccessToken
}

// setPending makes p (nil: none) the pair to persist; refreshing is held.
func (tc *tokenCache) setPending(p *pendingSave) {
	tc.state().pending.Store(p)
	tc.pending.Store(p != nil)
}

// settlePending ends p's wait to be persisted, unless another pair took its place; refreshing is
// held.
func (tc *tokenCache) settlePending(p *pendingSave) {
	if tc.state().pending.CompareAndSwap(p, nil) {
		tc.pending.Store(false)
	}
}

// keepPending records p, to be stored at the next chance.
func (tc *tokenCache) keepPending(p *pendingSave) {
	p.retryAt.Store(time.Now().Add(time.Second).UnixNano())
	tc.setPending(p)
	if l := tc.listener; l != nil {
		l.pendingKept()
	}
}

// flushSoon stores the pending pair when its retry time has come and no renewal is under way.
// It is what Token does besides returning the cached token; it waits flushTimeout at most.
func (tc *tokenCache) flushSoon(ctx context.Context, owner renewer) {
	p := tc.pendingPair()
	if p == nil || time.Now().UnixNano() < p.retryAt.Load() {
		return
	}
	if !tc.state().refreshing.tryLock() {
		return
	}
	defer tc.unlock()
	ctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	owner.flushLocked(ctx, false)
}

// FlushPending stores a pair Twitch issued that the store did not take when it was refreshed
// (or, for a source without a store, hands it to onRefresh again), if the source holds one. The
// source does this itself before anything else it does with the store, and at most every few
// seconds from Token; [UserTokens.Run] does it for its users with a backoff. It returns nil when
// nothing is pending.
func (s *UserTokenSource) FlushPending(ctx context.Context) error {
	if s.pendingPair() == nil {
		return nil
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	return s.flushLocked(ctx, true)
}

// Pending reports whether the source holds a pair that is not stored yet.
func (s *UserTokenSource) Pending() bool { return s.pendingPair() != nil }

// flushLocked stores the pending pair, if any; refreshing is held. Unless now is set, it tries
// no earlier than the pending pair's backoff allows, and returns the last try's error until then.
func (s *UserTokenSource) flushLocked(ctx context.Context, now bool) error {
	p := s.pendingPair()
	if p == nil {
		return nil
	}
	if !now && p.err != nil && time.Now().UnixNano() < p.retryAt.Load() {
		return p.err
	}
	var err error
	switch {
	case s.store == nil && s.state().onRefresh != nil:
		err = s.state().onRefresh(p.tok)
	case s.store == nil:
	case p.prev == nil:
		err = withStored(ctx, s.c, s.store, s.key, s.lockTTL(), func(ctx context.Context, cur *StoredToken, missing error) error {
			if missing != nil {
				return s.store.Save(ctx, s.key, p.rebase(nil))
			}
			next := p.rebase(cur)
			if next == nil {
				return fmt.Errorf("%w: another token was stored meanwhile", ErrTokenChanged)
			}
			return saveIf(ctx, s.store, s.key, cur, next)
		})
	default:
		if cs, ok := asConditionalSaver(s.store); ok {
			err = cs.SaveIf(ctx, s.key, p.prev, p.next)
		} else {
			err = withStoreLock(ctx, s.c, s.store, s.key, s.lockTTL(), func(ctx context.Context) error {
				return saveIf(ctx, s.store, s.key, p.prev, p.next)
			})
		}
	}
	takeBack := p.takesBackMark()
	if errors.Is(err, ErrTokenChanged) && s.store != nil && p.next != nil {
		// A write whose reply was lost may have been made: then what the store holds is p's.
		if cur, lerr := s.store.Load(ctx, s.key); lerr == nil && sameStored(cur, p.next) {
			err = nil
		}
	}
	switch {
	case err == nil && takeBack:
		s.log(ctx, slog.LevelInfo, "twitchoauth: took back a spending mark whose write's reply was lost (nothing was sent)")
	case err == nil:
		s.log(ctx, slog.LevelInfo, "twitchoauth: stored the refreshed token the store had not taken")
	case errors.Is(err, ErrTokenChanged) && takeBack:
		// The mark's write was never made, or the record changed since: nothing to take back.
	case errors.Is(err, ErrTokenChanged):
		// Replaced meanwhile (a new login's token, or the user removed): the pending pair is
		// superseded; it stays in use until it expires, then the stored one is taken up.
		s.log(ctx, slog.LevelInfo, "twitchoauth: the stored token changed before the refreshed one could be stored; keeping the stored one")
	default:
		p.tries++
		p.err = fmt.Errorf("twitchoauth: store the refreshed token (kept in memory until it is stored): %w", err)
		p.retryAt.Store(time.Now().Add(backoff(p.tries, 0)).UnixNano())
		return p.err
	}
	if f := s.state().floor.Load(); f != nil && p.err != nil && f.err == p.err {
		s.state().floor.Store(nil) // the backoff was this pair's: it is stored now
	}
	s.settlePending(p)
	// The pair is stored now: the listeners hear of it, if it is still the one held.
	if cur := s.cur.Load(); err == nil && !takeBack && cur != nil && p.holds(cur) {
		s.noteChange(cur)
	}
	return nil
}

// spend refreshes st, the stored token, whose key's lock is held (ctx is the lock's). A public
// client's refresh token is marked first (see the top of this file); a confidential client's,
// which Twitch lets be used again, is not. It returns the stored token now in force; or reread, a
// stored token that changed under it, for the caller to look at again; or an error, after which
// the stored token is as it was (less a mark that could not be removed: that removal is pending).
// A refreshed pair the store did not take is returned, and pending. Another holder's mark on the
// refresh token is a *heldMark error: the caller waits it out without the lock (see awaitMark).
func (s *UserTokenSource) spend(ctx context.Context, st *StoredToken) (next, reread *StoredToken, err error) {
	if s.c.ClientSecret != "" {
		tok, err := s.c.RefreshAccessToken(ctx, st.RefreshToken)
		if err != nil {
			return nil, nil, err
		}
		return s.saveSpent(ctx, st, st.withToken(carryScopes(tok, st.Token()))), nil, nil
	}
	hash := RefreshTokenHash(st.RefreshToken)
	if err := s.mayMark(st, hash); err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("twitchoauth: refresh: %w", err)
	}
	marked := *st
	marked.Spending = &SpendMark{Refresh: hash, At: time.Now().UTC().Round(0), Holder: s.holder()}
	switch err := saveIf(ctx, s.store, s.key, st, &marked); {
	case errors.Is(err, ErrTokenChanged):
		cur, err := s.store.Load(ctx, s.key)
		return nil, cur, err
	case err != nil:
		// The write may have been made though its reply was lost. The refresh token was never
		// sent: the mark is taken back (fenced: only this source's, on this refresh token) before
		// anything else, as a pending pair is stored, so that no holder takes it for spent.
		s.keepPending(&pendingSave{prev: &marked, next: st})
		return nil, nil, fmt.Errorf("twitchoauth: mark the refresh token as being spent (nothing was sent; a mark the store may hold is taken back once it answers): %w", err)
	}
	// The refresh must be over by the time other holders stop waiting for the mark.
	by := marked.Spending.At.Add(refreshTimeout)
	var tok *oauth2.Token
	if time.Until(by) < minSendTime {
		err = fmt.Errorf("twitchoauth: refresh: writing the mark took too long; nothing was sent: %w", context.DeadlineExceeded)
	} else {
		tok, err = s.c.sendRefresh(ctx, st.RefreshToken, by)
	}
	switch {
	case err == nil:
		s.state().sent = hash
		return s.saveSpent(ctx, &marked, marked.withToken(carryScopes(tok, st.Token()))), nil, nil
	case errors.Is(err, ErrRefreshInDoubt):
		s.state().doubt, s.state().sent = hash, hash // the mark stays: it tells every other holder the same
		return nil, nil, inDoubt(err, hash, s.holder())
	}
	// Twitch did not take it: it answered with an error, or the request never left. The mark goes.
	uctx, cancel := unleased(ctx)
	defer cancel()
	if uerr := saveIf(uctx, s.store, s.key, &marked, st); uerr != nil && !errors.Is(uerr, ErrTokenChanged) {
		s.keepPending(&pendingSave{prev: &marked, next: st})
	}
	return nil, nil, err
}

// mayMark returns why the refresh token of st, whose hash is hash, must not be marked and sent
// now, or nil: another holder's mark on it (a *heldMark, to be waited out), or this source sent it
// already (it may be spent). A mark of this source's that it never sent (the reply to its write
// was lost) is no obstacle: marking the refresh token again replaces it.
func (s *UserTokenSource) mayMark(st *StoredToken, hash string) error {
	m := st.Spending
	switch {
	case s.state().sent == hash:
		reason, at := "this source sent it and its new pair was not stored", time.Time{}
		if s.state().doubt == hash {
			reason = "the answer to its refresh was lost"
		}
		if m != nil {
			at = m.At
		}
		return &RefreshInDoubtError{Reason: reason, Sent: at, hash: hash, holder: s.holder()}
	case m == nil || m.Refresh != hash || m.Holder == s.holder():
		return nil
	}
	return &heldMark{st: st}
}

// heldMark is the error of a refresh that found another holder's mark on the stored refresh
// token: st, the stored token, is waited for without the lock (see renew).
type heldMark struct{ st *StoredToken }

func (h *heldMark) Error() string {
	return "twitchoauth: another holder is spending the stored refresh token"
}

// inDoubt returns err, a *RefreshInDoubtError, naming the refresh token in doubt (its hash) and
// the holder whose mark is on it, so that the doubt can be seen to end.
func inDoubt(err error, hash, holder string) error {
	var d *RefreshInDoubtError
	if errors.As(err, &d) {
		d.hash, d.holder = hash, holder
	}
	return err
}

// saveSpent stores next, the pair a refresh of prev got, in place of prev, and returns the stored
// token to use: next, or a fresh one another holder stored (see saveRefreshed). When the store does
// not take it, it is kept pending, and used.
func (s *UserTokenSource) saveSpent(ctx context.Context, prev, next *StoredToken) *StoredToken {
	use, err := saveRefreshed(ctx, s.store, s.key, prev, next)
	if err != nil {
		s.keepPending(&pendingSave{prev: prev, next: next})
		s.log(ctx, slog.LevelWarn, "twitchoauth: the store did not take the refreshed token; it is kept and stored later",
			slog.String("error", err.Error()))
		return next
	}
	return use
}

// sendRefresh sends refresh token rt as the client's kind wants it. A confidential client's
// refresh ends with ctx, as any request does. A public client's, once sent, is seen through to its
// answer even when ctx ends (see refreshTimeout), until by at the latest (zero: refreshTimeout from
// now); an answer lost even so gives a *RefreshInDoubtError, whose refresh token must not be sent
// again.
func (c *Client) sendRefresh(ctx context.Context, rt string, by time.Time) (*oauth2.Token, error) {
	if c.ClientSecret != "" {
		return c.RefreshAccessToken(ctx, rt)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("twitchoauth: refresh: %w", err)
	}
	sent := time.Now()
	if by.IsZero() {
		by = sent.Add(refreshTimeout)
	}
	rctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), by)
	defer cancel()
	tok, err := c.RefreshAccessToken(rctx, rt)
	if errors.Is(err, errAnswerLost) {
		return nil, &RefreshInDoubtError{Reason: "the answer to its refresh was lost", Sent: sent, hash: RefreshTokenHash(rt)}
	}
	return tok, err
}

// awaitMark waits, without the key's lock (its holder may need it to store its pair), for the
// holder of the mark on st to store its new pair or take the mark back: until the stored token
// changes (it returns it), or the mark's bound has passed (it returns nil: the refresh token is in
// doubt), or ctx ends. A store that cannot be read when the bound has passed gives its error: the
// pair may be there.
func (s *UserTokenSource) awaitMark(ctx context.Context, st *StoredToken) (*StoredToken, error) {
	deadline := markDeadline(st.Spending, s.markBound())
	if !time.Now().Before(deadline) {
		return nil, nil
	}
	s.log(ctx, slog.LevelInfo, "twitchoauth: another holder is spending the refresh token; waiting for its new pair",
		keyAttr("key", s.key), slog.Time("until", deadline))
	resume := waitingForOthers(ctx) // the users behind this one need not wait too
	defer resume()
	changes := s.storeChanges() // a store that reports its changes ends the wait at once
	pause := 50 * time.Millisecond
	for {
		t := time.NewTimer(min(pause, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("twitchoauth: wait for another holder's refresh: %w", context.Cause(ctx))
		case <-changes:
			t.Stop()
		case <-t.C:
		}
		cur, err := s.store.Load(ctx, s.key)
		switch {
		case err == nil && !sameStored(cur, st):
			return cur, nil
		case errors.Is(err, ErrTokenNotFound):
			return nil, err
		case !time.Now().Before(deadline) && err != nil:
			return nil, fmt.Errorf("twitchoauth: wait for another holder's refresh: %w", err)
		case !time.Now().Before(deadline):
			return nil, nil
		}
		pause = min(2*pause, time.Second)
	}
}

// markBound is how long after its time another holder's mark may still give way to its pair.
func (s *UserTokenSource) markBound() time.Duration {
	if b := s.state().markBound; b > 0 {
		return b
	}
	return defaultMarkBound
}

// backoff is the wait before try n+1 (from 1) after a transient failure: a second, doubled each
// time up to a minute, and never less than what the server asked for (after).
func backoff(n int, after time.Duration) time.Duration {
	d := time.Second
	for i := 1; i < n && d < time.Minute; i++ {
		d *= 2
	}
	return max(min(d, time.Minute), after)
}
