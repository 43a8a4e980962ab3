package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Removing users from a registry, revoking their grant at Twitch when asked, and what follows a
// grant found gone.

// Remove forgets the user: it deletes their token from the store and from the registry, and their
// source fails from then on with an error that Is [ErrTokenNotFound]; the registry lets go of it at
// once. With revoke, it first revokes the token at Twitch (refreshing an expired one to do so), so
// that the grant is gone for good; a grant that is already gone is no error. Removing a user who
// is not there does nothing. It acts only on a user the registry knows or whose stored token
// names that user ID: a token stored under userID for another user (or none, such as the storage
// helper's file) is left alone, with an error, and so is an empty userID. When the store or Twitch
// fails, the user stays and the error is returned.
func (u *UserTokens) Remove(ctx context.Context, userID string, revoke bool) error {
	if userID == "" {
		return errors.New("twitchoauth: remove user: no user ID")
	}
	if revoke && u.ReadOnly {
		return fmt.Errorf("twitchoauth: remove user: revoking may refresh, and %w; remove with revoke on the writer", errReadOnly)
	}
	u.mu.RLock()
	known := u.users[userID] != nil
	u.mu.RUnlock()
	err := withStored(ctx, u.c, u.store, userID, u.LockTTL, func(ctx context.Context, st *StoredToken, err error) error {
		switch {
		case errors.Is(err, ErrTokenNotFound):
			return nil
		case !known && (err != nil || st.UserID != userID):
			return fmt.Errorf("%w: the token stored under %s is not that user's, and the registry does not know the user", ErrTokenNotFound, QuoteKey(userID))
		}
		if revoke && err == nil { // a corrupt record holds nothing to revoke
			if err := u.revokeStored(ctx, userID, st); err != nil {
				return err
			}
		}
		return u.store.Delete(ctx, userID)
	})
	if err != nil {
		return fmt.Errorf("twitchoauth: remove user: %w", err)
	}
	u.mu.RLock()
	e := u.users[userID]
	u.mu.RUnlock()
	if e != nil {
		u.forget(ctx, e, fmt.Errorf("twitchoauth: user %s was removed: %w", QuoteKey(userID), ErrTokenNotFound))
	}
	return nil
}

// revokeStored revokes the grant of the token stored for userID, whose lock is held. Revoking an
// access token ends its refresh token too; when the stored access token is dead already (expired,
// or killed early), the refresh token is traded for a live one to revoke.
func (u *UserTokens) revokeStored(ctx context.Context, userID string, st *StoredToken) error {
	if fresh(st.Token()) {
		err := u.c.RevokeToken(ctx, st.AccessToken)
		if err == nil || !errors.Is(err, ErrInvalidToken) {
			return err
		}
	}
	if st.RefreshToken == "" {
		return nil
	}
	if st.Spending != nil {
		return fmt.Errorf("%w: the stored refresh token is being spent by another holder; remove the user again once its new pair is stored", ErrRefreshInDoubt)
	}
	tok, err := u.c.sendRefresh(ctx, st.RefreshToken, time.Time{})
	switch {
	case errors.Is(err, ErrInvalidRefreshToken) && !errors.Is(err, ErrRefreshInDoubt):
		return nil // the grant is gone already
	case err != nil:
		return err
	}
	if rerr := u.c.RevokeToken(ctx, tok.AccessToken); rerr != nil && !errors.Is(rerr, ErrInvalidToken) {
		// The refresh spent the stored refresh token: the new pair is stored in its place, so
		// that nothing sends the spent one again, and the user can be removed again.
		if serr := saveIf(ctx, u.store, userID, st, st.withToken(carryScopes(tok, st.Token()))); serr != nil {
			return errors.Join(rerr, fmt.Errorf("twitchoauth: store the pair the refresh before the revocation got: %w", serr))
		}
		return rerr
	}
	return nil
}

// forget removes e from the registry and, with a non-nil err, ends its source with err.
func (u *UserTokens) forget(ctx context.Context, e *userEntry, err error) {
	u.mu.Lock()
	removed := u.users[e.src.key] == e
	if removed {
		delete(u.writableLocked(), e.src.key)
		for _, in := range e.intents {
			if u.intents[in] == e.src.key {
				delete(u.intents, in)
			}
		}
	}
	if !e.removed.Swap(true) && u.scheduling() {
		u.gone = append(u.gone, e) // Run takes it off its schedule, so nothing holds it
	}
	u.mu.Unlock()
	u.poke()
	if removed {
		u.c.userChange(ctx, e.src.key, UserRemoved)
	}
	if err != nil {
		// Not cut short by the caller's ctx (Remove's, say, once the store has dropped the user):
		// a removed user's source must stop handing out its token. It waits for a renewal under
		// way, which ends on its own.
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), forgetTimeout)
		defer cancel()
		if eerr := e.src.end(ectx, err); eerr != nil {
			u.log(ctx, slog.LevelWarn, "twitchoauth: end a removed user's source", keyAttr("user_id", e.src.key),
				slog.String("error", eerr.Error()))
		}
	}
	e.src.leave(err) // the source ended for good: its subscribers hear of it, and get nothing more
}

// revoked handles a grant found gone, in the goroutine of the call that found it: unless
// KeepRevoked, the user leaves the store and the registry (see removeRevoked); then OnRevoked
// hears of it. The store work runs under the caller's ctx, so a caller that gives up is not held
// by it: what it leaves undone, Run's next pass over the user finishes.
func (u *UserTokens) revoked(ctx context.Context, e *userEntry, cause error) {
	if !u.KeepRevoked && !errors.Is(cause, ErrRefreshInDoubt) {
		// A grant in doubt is kept, store and all: its new pair may yet be stored.
		relogin, err := u.removeRevoked(ctx, e)
		if relogin {
			return // a new login's token was stored meanwhile: the source took it up
		}
		if err != nil {
			u.log(ctx, slog.LevelWarn, "twitchoauth: remove a revoked user from the store; Run will try again",
				keyAttr("user_id", e.src.key), slog.String("error", err.Error()))
		}
	}
	if errors.Is(cause, ErrRefreshInDoubt) {
		u.c.userChange(ctx, e.src.key, UserInDoubt)
	} else {
		u.c.userChange(ctx, e.src.key, UserRevoked)
	}
	if errors.Is(cause, ErrRefreshInDoubt) {
		u.soon(e) // Run looks at the store for the pair every doubtRecheck
		u.log(ctx, slog.LevelWarn, "twitchoauth: a user's refresh token is in doubt; they are kept, and usable again if its new pair turns up",
			keyAttr("user_id", e.src.key))
		cause = fmt.Errorf("twitchoauth: user %s: kept, and usable again if the pair turns up; else add them again after a new login: %w", QuoteKey(e.src.key), cause)
	} else {
		u.log(ctx, slog.LevelWarn, "twitchoauth: a user's authorization is gone; they must log in again", keyAttr("user_id", e.src.key))
		cause = fmt.Errorf("twitchoauth: user %s: after a new login, add them again (AddUserForToken or AddUserForCode): %w", QuoteKey(e.src.key), cause)
	}
	if f := u.OnRevoked; f != nil {
		e.src.safely(func() { f(e.src.key, cause) })
	}
}

// removeRevoked deletes the stored token of e, whose source (s) found its grant gone, and forgets
// e, unless a new login stored a fresh token meanwhile: then s takes that token up, and relogin
// is true. A new login handed to this registry while it runs (AddUserForToken) keeps e.
func (u *UserTokens) removeRevoked(ctx context.Context, e *userEntry) (relogin bool, err error) {
	s := &e.src
	dead := s.cur.Load()
	var newer *StoredToken
	err = withStored(ctx, u.c, u.store, e.src.key, u.LockTTL, func(ctx context.Context, st *StoredToken, err error) error {
		switch {
		case errors.Is(err, ErrTokenNotFound):
			return nil
		case err == nil && fresh(st.Token()) && !sameAccess(st.Token(), dead):
			newer = st
			return nil
		}
		return u.store.Delete(ctx, e.src.key)
	})
	if err != nil {
		return false, err
	}
	if newer != nil {
		return true, s.replace(ctx, newer.Token())
	}
	// Forgotten only while the source is still revoked: a new token set since keeps the user.
	if err := s.lock(ctx); err != nil {
		return false, err
	}
	defer s.unlock()
	if s.revokedErr() != nil {
		u.forget(ctx, e, nil)
	}
	return false, nil
}
