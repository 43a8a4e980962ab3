package twitchoauth

import (
	"context"
	"errors"
	"time"

	"golang.org/x/oauth2"
)

// Twitch's verdicts on a tokenCache's tokens: validation, and whether a token an API refused (401)
// is dead, asked once for the requests refused together.

// recheckAfter is how long Twitch's verdict that a token is still valid stands: 401s that a Helix
// endpoint answers meanwhile (a missing scope) are passed on without asking again.
const recheckAfter = time.Minute

// validate asks Twitch whether tok is valid and records the verdict. A token Twitch rejects is
// marked so that it is never handed out again, and the error Is [ErrInvalidToken].
func (tc *tokenCache) validate(ctx context.Context, tok *oauth2.Token) (*Validation, error) {
	checking := &tc.state().checking
	if err := checking.lock(ctx); err != nil {
		return nil, err
	}
	defer checking.unlock()
	return tc.validateLocked(ctx, tok)
}

// validateQuiet is validate for a caller that keeps no verdict for later 401s (Run's hourly
// validation): unless the cache has its state already, it makes none, so that a registry's users
// that are only validated cost nothing more.
func (tc *tokenCache) validateQuiet(ctx context.Context, tok *oauth2.Token) (*Validation, error) {
	if tc.more.Load() != nil {
		return tc.validate(ctx, tok)
	}
	v, err := tc.c.ValidateToken(ctx, tok.AccessToken)
	if errors.Is(err, ErrInvalidToken) {
		tc.markRejected(tok)
	}
	return v, err
}

// validateLocked is validate with checking held.
func (tc *tokenCache) validateLocked(ctx context.Context, tok *oauth2.Token) (*Validation, error) {
	v, err := tc.c.ValidateToken(ctx, tok.AccessToken)
	switch {
	case err == nil:
		tc.state().checked, tc.state().checkedOK, tc.state().checkedAt = tok, true, time.Now()
	case errors.Is(err, ErrInvalidToken):
		tc.state().checked, tc.state().checkedOK, tc.state().checkedAt = tok, false, time.Now()
		tc.markRejected(tok)
	}
	return v, err
}

// rejected reports whether Twitch says tok, which an API refused with 401, is invalid. It asks at
// most once for requests refused together, and not again within recheckAfter of a "valid"
// verdict. When Twitch cannot be asked (an outage, ctx ended), it reports false: without a
// verdict, nothing is renewed.
func (tc *tokenCache) rejected(ctx context.Context, tok *oauth2.Token) bool {
	checking := &tc.state().checking
	if checking.lock(ctx) != nil {
		return false
	}
	defer checking.unlock()
	if tc.state().checked == tok && (!tc.state().checkedOK || time.Since(tc.state().checkedAt) < recheckAfter) {
		return !tc.state().checkedOK
	}
	if cur := tc.cur.Load(); cur != tok && !sameAccess(cur, tok) {
		return true // already replaced: the caller retries with the new token
	}
	_, err := tc.validateLocked(ctx, tok)
	return errors.Is(err, ErrInvalidToken)
}
