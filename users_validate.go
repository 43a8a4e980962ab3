package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Validating one user's token in its slot of Run's period, and what the outcome makes of the user.

// outcome is what one validation of a user came to.
type outcome int

const (
	validated outcome = iota // validated here, or by another replica within the period
	retry                    // a transient failure: try again after a backoff
	dropped                  // the user is gone: revoked or removed
)

// validateUser validates e's token unless another replica did within half a period, refreshing
// it when Twitch rejects it.
func (u *UserTokens) validateUser(ctx context.Context, e *userEntry) outcome {
	e.wait = 0
	src := &e.src
	// A refreshed pair the store did not take is stored before anything else; a store that does
	// not answer holds the worker flushTimeout at most (the user is tried again as a probe).
	fctx, cancel := context.WithTimeout(ctx, flushTimeout)
	err := src.FlushPending(fctx)
	cancel()
	if err != nil {
		return u.failed(ctx, e, "store", err)
	}
	if err := src.revokedErr(); err != nil && !errors.Is(*err, ErrRefreshInDoubt) {
		return u.failed(ctx, e, "refresh", *err) // the grant is gone: finish the user's removal
	}
	// Over a store whose changes are watched, a validation another replica made this slot is
	// known without reading the store.
	if at := e.validatedAt.Load(); u.watching.Load() && at != 0 && u.recent(time.Unix(0, at)) && !u.refreshDueNow(src) {
		return validated
	}
	refreshed := false
	for range 4 { // a refresh, or another replica's token to adopt, makes another round
		st, err := u.store.Load(ctx, e.src.key)
		switch {
		case errors.Is(err, ErrTokenNotFound):
			return u.goneFromStore(ctx, e)
		case err != nil:
			return u.failed(ctx, e, "load", err)
		}
		u.noteStored(ctx, e, src, st)
		if src.revokedErr() != nil {
			return retry // in doubt still: look again for the pair after a backoff
		}
		// A writer of readers refreshes a token before it expires, used or not.
		if at, ok := u.refreshDue(st.Token()); ok && !refreshed && !time.Now().Before(at) {
			if _, err := src.ForceRefresh(ctx, st.Token()); err != nil {
				return u.failed(ctx, e, "refresh", err)
			}
			refreshed = true
			continue
		}
		if u.recent(st.ValidatedAt) {
			return validated
		}
		// A public client's refresh token lapses after 30 days unused: renewed well before.
		if u.lapsing(st) && !refreshed {
			u.log(ctx, slog.LevelInfo, "twitchoauth: renewing a refresh token before it lapses unused",
				keyAttr("user_id", e.src.key))
			if _, err := src.ForceRefresh(ctx, src.cur.Load()); err != nil {
				return u.failed(ctx, e, "refresh", err)
			}
			refreshed = true
			continue
		}
		// An expired token has nothing to validate: it is refreshed when next used, not here.
		if !fresh(src.cur.Load()) && !fresh(st.Token()) && !refreshed {
			return validated
		}
		// tok is the source's current token, which validate marks if Twitch rejects it.
		tok, err := src.TokenContext(ctx)
		if err != nil {
			return u.failed(ctx, e, "refresh", err)
		}
		var verdict error
		var newer *StoredToken
		err = withStored(ctx, u.c, u.store, e.src.key, u.LockTTL, func(ctx context.Context, st *StoredToken, missing error) error {
			switch {
			case missing != nil:
				return missing
			case u.recent(st.ValidatedAt):
				return nil
			case fresh(st.Token()) && st.AccessToken != tok.AccessToken:
				newer = st // another replica's: adopt it, then validate it
				return nil
			}
			if _, verdict = src.validateQuiet(ctx, tok); verdict != nil || st.AccessToken != tok.AccessToken {
				return nil
			}
			// Fenced: a replica whose lease lapsed must not put back a pair another has replaced.
			next := *st
			next.ValidatedAt = time.Now()
			if err := saveIf(ctx, u.store, e.src.key, st, &next); !errors.Is(err, ErrTokenChanged) {
				return err
			}
			return nil
		})
		switch {
		case errors.Is(err, ErrTokenNotFound):
			return u.goneFromStore(ctx, e)
		case err != nil:
			return u.failed(ctx, e, "validate", err)
		case newer != nil:
			continue // the next round adopts it
		case verdict == nil:
			return validated
		case !errors.Is(verdict, ErrInvalidToken) || refreshed:
			return u.failed(ctx, e, "validate", verdict)
		}
		// Twitch rejected the token (validate marked it): refresh it, then validate the new one.
		u.log(ctx, slog.LevelInfo, "twitchoauth: a user's token is no longer valid; refreshing",
			keyAttr("user_id", e.src.key))
		if _, err := src.ForceRefresh(ctx, tok); err != nil {
			return u.failed(ctx, e, "refresh", err)
		}
		refreshed = true
	}
	return retry
}

// noteStored brings e up to date with what the store holds: the intents, a doubt over the
// refresh token that the store shows over, and a fresh token another replica stored.
func (u *UserTokens) noteStored(ctx context.Context, e *userEntry, src *UserTokenSource, st *StoredToken) {
	e.validatedAt.Store(st.ValidatedAt.UnixNano())
	u.mu.Lock()
	if u.users[e.src.key] == e && !slices.Equal(e.intents, st.Intents) {
		u.setIntentsLocked(e, st.Intents)
	}
	u.mu.Unlock()
	if src.inDoubt() {
		src.settleFrom(ctx, st)
	}
	switch stored, cur := st.Token(), src.cur.Load(); {
	case fresh(stored) && !sameAccess(stored, cur):
		src.adopt(ctx, stored)
	case !live(stored) && sameAccess(stored, cur) && live(cur):
		// The store says the token held here is dead (an expiry written there): it is not handed
		// out again, and the next use renews it (a reader waits for its writer's).
		src.markRejected(cur)
	}
}

// goneFromStore drops e, whose token another replica deleted.
func (u *UserTokens) goneFromStore(ctx context.Context, e *userEntry) outcome {
	u.forget(ctx, e, fmt.Errorf("twitchoauth: user %s was removed from the store: %w", QuoteKey(e.src.key), ErrTokenNotFound))
	return dropped
}

// failed sorts a failed validation: the grant gone (OnRevoked was called) or a transient failure.
func (u *UserTokens) failed(ctx context.Context, e *userEntry, step string, err error) outcome {
	e.wait = retryAfterOf(err)
	switch {
	case errors.Is(err, ErrRefreshInDoubt):
		return retry // kept, store and all (OnRevoked was told): its new pair may yet be stored
	case errors.Is(err, ErrInvalidRefreshToken):
		if u.KeepRevoked {
			return validated // the source fails without a request until a new token comes
		}
		// The call that found the grant gone may have given up before removing the user.
		switch relogin, rerr := u.removeRevoked(ctx, e); {
		case relogin:
			return retry
		case rerr != nil:
			u.log(ctx, slog.LevelWarn, "twitchoauth: remove a revoked user from the store; will try again",
				keyAttr("user_id", e.src.key), slog.String("error", rerr.Error()))
			return retry
		}
		return dropped
	case e.removed.Load():
		return dropped // removed meanwhile: nothing to report
	case ctx.Err() != nil:
		return retry
	}
	u.log(ctx, slog.LevelWarn, "twitchoauth: validation failed; will try again", keyAttr("user_id", e.src.key),
		slog.String("step", step), slog.String("error", err.Error()))
	return retry
}
