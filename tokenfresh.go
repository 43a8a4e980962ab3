package twitchoauth

import (
	"math"
	"time"

	"golang.org/x/oauth2"
)

// The current token of a tokenCache: published together with when it stops being fresh, so that
// Token tells a fresh token from the cache alone, and never handed out again once Twitch refused it.

// expiryMargin is how long before its Expiry a token counts as expired, so that a request sent with
// it does not arrive after it died.
const expiryMargin = time.Minute

// init sets the cache's Client and first token (nil: none yet), before the cache is shared.
func (tc *tokenCache) init(c *Client, tok *oauth2.Token) {
	tc.c = c
	tc.cur.Store(tok) // not shared yet: no reader to tell
	if tc.reader() {
		tc.until.Store(liveUntil(tok)) // a reader cannot renew it sooner
	} else {
		tc.until.Store(freshUntil(tok))
	}
}

// publish makes tok the current token.
func (tc *tokenCache) publish(tok *oauth2.Token) {
	x := tc.state()
	x.curMu.Lock()
	tc.write(tok)
	x.curMu.Unlock()
}

// publishIf makes tok the current token if old is.
func (tc *tokenCache) publishIf(old, tok *oauth2.Token) {
	x := tc.state()
	x.curMu.Lock()
	if tc.cur.Load() == old {
		tc.write(tok)
	}
	x.curMu.Unlock()
}

// write sets cur and until together, for cached: ver is odd meanwhile. Writers are ordered by
// curMu, or the cache is not shared yet.
func (tc *tokenCache) write(tok *oauth2.Token) {
	tc.ver.Add(1)
	tc.cur.Store(tok)
	if tc.reader() {
		tc.until.Store(liveUntil(tok)) // a reader cannot renew it sooner
	} else {
		tc.until.Store(freshUntil(tok))
	}
	tc.ver.Add(1)
}

// plain reports whether handing out a fresh token takes nothing more than returning it: no pair
// waits to be persisted, and no TokenServed hook is to be called (see token).
func (tc *tokenCache) plain() bool {
	if tc.pending.Load() {
		return false
	}
	h := tc.c.Hooks
	return h == nil || h.TokenServed == nil
}

// cached returns the current token if it is fresh, telling so from until, without reading the
// token: a registry's many tokens are seldom in the CPU's caches. It returns nil when the token
// is not fresh, or is being replaced. UserTokenSource.TokenContext writes the same reads out in
// itself, for speed: a change here is made there too.
func (tc *tokenCache) cached() *oauth2.Token {
	// The clock first: reading it waits for the loads before it, and those of the cache that
	// follow can overlap what the caller does next.
	now := time.Now().UnixNano()
	v := tc.ver.Load()
	tok, until := tc.cur.Load(), tc.until.Load()
	if v&1 != 0 || tc.ver.Load() != v || now >= until {
		return nil
	}
	return tok
}

// freshUntil returns when tok stops being fresh (see fresh), in wall clock Unix nanoseconds: 0
// for no token, the largest time for one that does not expire.
func freshUntil(tok *oauth2.Token) int64 {
	if tok == nil || tok.AccessToken == "" {
		return 0
	}
	switch sec := tok.Expiry.Unix(); {
	case tok.Expiry.IsZero() || sec >= maxNanoSeconds:
		return math.MaxInt64
	case sec <= -maxNanoSeconds:
		return 0
	}
	return tok.Expiry.Add(-expiryMargin).UnixNano()
}

// liveUntil is freshUntil without the margin: when tok expires, which a reader replica, unable
// to renew it sooner, hands it out until.
func liveUntil(tok *oauth2.Token) int64 {
	if u := freshUntil(tok); u == 0 || u == math.MaxInt64 {
		return u
	}
	return tok.Expiry.UnixNano()
}

// maxNanoSeconds bounds the Unix seconds whose nanoseconds (less the margin) an int64 holds.
const maxNanoSeconds = math.MaxInt64/int64(time.Second) - 3600

// fresh reports whether tok can be used now. It compares wall clock times (Round(0) drops the
// monotonic reading, which Before would otherwise prefer): the monotonic clock stops while the
// machine sleeps, and a bot on a laptop woken hours later must not trust a token that died
// meanwhile.
func fresh(tok *oauth2.Token) bool {
	return tok != nil && tok.AccessToken != "" &&
		(tok.Expiry.IsZero() || time.Now().Round(0).Add(expiryMargin).Before(tok.Expiry))
}

// markRejected makes sure tok, which Twitch said is invalid, is never handed out again: while it
// is the current token, it is replaced by a copy that has expired, which keeps its refresh token
// for the refresh that must follow.
func (tc *tokenCache) markRejected(tok *oauth2.Token) {
	dead := *tok
	dead.Expiry = time.Unix(1, 0)
	tc.publishIf(tok, &dead)
}

// sameAccess reports whether a and b hold the same access token.
func sameAccess(a, b *oauth2.Token) bool {
	return a != nil && b != nil && a.AccessToken == b.AccessToken
}
