package twitchoauth

import (
	"context"
	"errors"

	"golang.org/x/oauth2"
)

// Handing a token cache a token from outside its renewals: a new login's, another replica's, or
// none (the grant is gone), and settling a doubt over its refresh token.

// set makes tok the current token and ends a terminal state and a backoff; refreshing is held.
func (tc *tokenCache) set(tok *oauth2.Token) {
	tc.publish(tok)
	tc.state().lastErr = nil
	tc.state().revoked.Store(nil)
	tc.state().floor.Store(nil)
	tc.state().failures = 0
}

// adopt makes tok, which another replica stored, the current token unless the grant is gone here
// or tok is already current. It waits for a renewal under way; it must not be called holding a
// store lock (a renewal takes refreshing, then the store's lock).
func (tc *tokenCache) adopt(ctx context.Context, tok *oauth2.Token) error {
	if err := tc.lock(ctx); err != nil {
		return err
	}
	cur := tc.cur.Load()
	// Never backwards: a token read from the store before this source refreshed is older than
	// the one it holds. A grant in doubt ends with a pair of another refresh token.
	revoked := tc.state().revoked.Load()
	doubtEnds := revoked != nil && errors.Is(*revoked, ErrRefreshInDoubt) && cur != nil && tok.RefreshToken != cur.RefreshToken
	changed := (revoked == nil || doubtEnds) && !sameAccess(cur, tok) && (!fresh(cur) || tok.Expiry.After(cur.Expiry))
	if changed {
		tc.set(tok)
		tc.noteChange(tok)
		if doubtEnds {
			tc.state().settled = true
		}
	}
	tc.unlock()
	return nil
}

// settleDoubt ends a doubt over the refresh token (the state a [RefreshInDoubtError] made); the
// listener hears of it once refreshing, which is held, is released.
func (tc *tokenCache) settleDoubt() {
	tc.state().revoked.Store(nil)
	tc.state().lastErr = nil
	tc.state().settled = true
}

// inDoubt reports whether the source's refresh token is in doubt; it makes nothing.
func (tc *tokenCache) inDoubt() bool {
	err := tc.revokedErr()
	return err != nil && errors.Is(*err, ErrRefreshInDoubt)
}

// end makes the state terminal with err, without a request, as a revoked grant does, and stops
// handing out the current token; the listener is not told. A token set later ends it.
func (tc *tokenCache) end(ctx context.Context, err error) error {
	if lerr := tc.lock(ctx); lerr != nil {
		return lerr
	}
	defer tc.unlock()
	tc.state().revoked.Store(&err)
	if cur := tc.cur.Load(); cur != nil {
		tc.markRejected(cur)
	}
	return nil
}

// replace makes tok the current token, ending a terminal state, without persisting it (the caller
// has). It waits for a renewal under way.
func (tc *tokenCache) replace(ctx context.Context, tok *oauth2.Token) error {
	if err := tc.lock(ctx); err != nil {
		return err
	}
	tc.set(tok)
	tc.noteChange(tok)
	tc.unlock()
	return nil
}
