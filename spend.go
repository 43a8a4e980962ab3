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
	// refreshTimeout bounds a refresh request. Once sent, a refresh is seen to its end however
	// the caller's context and the lease go: an answer thrown away may be a public client's only
	// copy of the user's new pair.
	refreshTimeout = 30 * time.Second
	// maxMarkWait is the longest a source waits for another holder's mark to give way to the new
	// pair: longer than a refresh request may take.
	maxMarkWait = 45 * time.Second
	// flushTimeout bounds a write of a pending pair that a Token call makes.
	flushTimeout = 5 * time.Second
	// doubtRecheck is how often a source whose refresh token is in doubt reads the store again
	// for the pair that would end the doubt.
	doubtRecheck = 30 * time.Second
)

// markWait is how long a source with lock ttl waits for another holder's mark: maxMarkWait, or
// half the ttl when that is shorter (the mark's holder renews its lease for as long as its
// refresh runs).
func markWait(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		ttl = DefaultLockTTL
	}
	return min(maxMarkWait, ttl/2)
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

// holds reports whether p is the pair of tok.
func (p *pendingSave) holds(tok *oauth2.Token) bool {
	if p.tok != nil {
		return p.tok == tok
	}
	return p.next != nil && p.next.AccessToken == tok.AccessToken
}

// keepPending records p, to be stored at the next chance.
func (tc *tokenCache) keepPending(p *pendingSave) {
	p.retryAt.Store(time.Now().Add(time.Second).UnixNano())
	tc.state().pending.Store(p)
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
		err = withStoreLock(ctx, s.c, s.store, s.key, s.state().lockTTL, func(ctx context.Context) error {
			cur, err := s.store.Load(ctx, s.key)
			switch {
			case errors.Is(err, ErrTokenNotFound) || errors.Is(err, ErrTokenCorrupt):
				return s.store.Save(ctx, s.key, p.rebase(nil))
			case err != nil:
				return err
			}
			next := p.rebase(cur)
			if next == nil {
				return fmt.Errorf("%w: another token was stored meanwhile", ErrTokenChanged)
			}
			return saveIf(ctx, s.store, s.key, cur, next)
		})
	default:
		if cs, ok := s.store.(ConditionalSaver); ok {
			err = cs.SaveIf(ctx, s.key, p.prev, p.next)
		} else {
			err = withStoreLock(ctx, s.c, s.store, s.key, s.state().lockTTL, func(ctx context.Context) error {
				return saveIf(ctx, s.store, s.key, p.prev, p.next)
			})
		}
	}
	switch {
	case err == nil:
		s.log(ctx, slog.LevelInfo, "twitchoauth: stored the refreshed token the store had not taken")
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
	s.state().pending.CompareAndSwap(p, nil)
	// The pair is stored now: the listeners hear of it, if it is still the one held.
	refreshed := p.tok != nil || p.prev == nil || p.next.RefreshToken != p.prev.RefreshToken // not a mark taken back
	if cur := s.cur.Load(); err == nil && refreshed && cur != nil && p.holds(cur) {
		s.noteChange(cur)
	}
	return nil
}

// spend refreshes st, the stored token, whose key's lock is held (ctx is the lock's). A public
// client's refresh token is marked first (see the top of this file); a confidential client's,
// which Twitch lets be used again, is not. It returns the stored token now in force; or reread, a
// stored token that changed under it, for the caller to look at again; or an error, after which
// the stored token is as it was (less a mark that could not be removed: that removal is pending).
// A refreshed pair the store did not take is returned, and pending.
func (s *UserTokenSource) spend(ctx context.Context, st *StoredToken) (next, reread *StoredToken, err error) {
	if s.c.ClientSecret != "" {
		tok, err := s.c.RefreshAccessToken(ctx, st.RefreshToken)
		if err != nil {
			return nil, nil, err
		}
		return s.saveSpent(ctx, st, st.withToken(carryScopes(tok, st.Token()))), nil, nil
	}
	hash := RefreshTokenHash(st.RefreshToken)
	if m := st.Spending; m != nil && m.Refresh == hash {
		switch {
		case m.Holder != s.holder():
			cur, err := s.awaitMark(ctx, st)
			if err != nil || cur != nil {
				return nil, cur, err
			}
			return nil, nil, &RefreshInDoubtError{Reason: "another holder sent it and never stored the new pair", Sent: m.At}
		case s.state().doubt == hash:
			return nil, nil, &RefreshInDoubtError{Reason: "the answer to its refresh was lost", Sent: m.At}
		default:
			// This source's own mark, which nothing it holds explains (its pending pair would
			// have been stored before this): the refresh token may have been spent.
			return nil, nil, &RefreshInDoubtError{Reason: "this source sent it and its new pair was not stored", Sent: m.At}
		}
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
		return nil, nil, fmt.Errorf("twitchoauth: mark the refresh token as being spent (nothing was sent): %w", err)
	}
	tok, err := s.c.sendRefresh(ctx, st.RefreshToken)
	switch {
	case err == nil:
		return s.saveSpent(ctx, &marked, marked.withToken(carryScopes(tok, st.Token()))), nil, nil
	case errors.Is(err, ErrRefreshInDoubt):
		s.state().doubt = hash // the mark stays: it tells every other holder the same
		return nil, nil, err
	}
	// Twitch did not take it: it answered with an error, or the request never left. The mark goes.
	uctx, cancel := unleased(ctx)
	defer cancel()
	if uerr := saveIf(uctx, s.store, s.key, &marked, st); uerr != nil && !errors.Is(uerr, ErrTokenChanged) {
		s.keepPending(&pendingSave{prev: &marked, next: st})
	}
	return nil, nil, err
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
// answer (refreshTimeout at most) even when ctx ends (see refreshTimeout); an answer lost even so
// gives a *RefreshInDoubtError, whose refresh token must not be sent again.
func (c *Client) sendRefresh(ctx context.Context, rt string) (*oauth2.Token, error) {
	if c.ClientSecret != "" {
		return c.RefreshAccessToken(ctx, rt)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("twitchoauth: refresh: %w", err)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
	defer cancel()
	sent := time.Now()
	tok, err := c.RefreshAccessToken(rctx, rt)
	if errors.Is(err, errAnswerLost) {
		return nil, &RefreshInDoubtError{Reason: "the answer to its refresh was lost", Sent: sent}
	}
	return tok, err
}

// awaitMark waits for the holder of the mark on st to store its new pair: until the stored token
// changes (it returns it), or markWait has passed since the mark was made (it returns nil), or ctx
// ends.
func (s *UserTokenSource) awaitMark(ctx context.Context, st *StoredToken) (*StoredToken, error) {
	wait := markWait(s.state().lockTTL)
	now := time.Now()
	deadline := now.Add(wait)
	if at := st.Spending.At; at.Before(now) {
		deadline = at.Add(wait)
	}
	if !now.Before(deadline) {
		return nil, nil
	}
	s.log(ctx, slog.LevelInfo, "twitchoauth: another holder is spending the refresh token; waiting for its new pair",
		slog.String("key", s.key))
	pause := 50 * time.Millisecond
	for {
		t := time.NewTimer(min(pause, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("twitchoauth: wait for another holder's refresh: %w", context.Cause(ctx))
		case <-t.C:
		}
		cur, err := s.store.Load(ctx, s.key)
		if err != nil {
			return nil, err
		}
		if !sameStored(cur, st) {
			return cur, nil
		}
		if !time.Now().Before(deadline) {
			return nil, nil
		}
		pause = min(2*pause, time.Second)
	}
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
