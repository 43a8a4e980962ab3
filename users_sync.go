package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Sync lists the store and registers the users other replicas added, and drops those removed
// from the store. Run calls it every SyncEvery; call it at start-up to load the users the store
// holds before Run. Keys that hold no user of the registry (a token stored under another name,
// such as the storage helper's key "") are left alone. Over a store that cannot list its keys
// (not a [KeyLister]), it does nothing.
func (u *UserTokens) Sync(ctx context.Context) error {
	kl, ok := asKeyLister(u.store)
	if !ok {
		return nil
	}
	keys, err := kl.Keys(ctx)
	if err != nil {
		return fmt.Errorf("twitchoauth: list stored users: %w", err)
	}
	var unknown []string
	u.mu.Lock()
	held, listed := len(u.users), 0 // registered users, and how many of them the listing holds
	if held == 0 && len(keys) > 0 {
		u.users = make(map[string]*userEntry, len(keys)) // empty: made again at its size, not grown step by step
	}
	u.syncs++
	for _, key := range keys {
		switch e := u.users[key]; {
		case key == "":
		case e == nil:
			unknown = append(unknown, key)
		case e.synced != u.syncs: // a store may list a key twice
			e.synced = u.syncs
			listed++
		}
	}
	u.mu.Unlock()
	// New users are read by MaxInFlight workers, each its share of the keys, and registered in
	// batches: a replica that starts over 10,000 stored users does not wait for 10,000 round
	// trips in a row, nor starts a goroutine for each, nor takes the registry's lock for each.
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	workers := min(u.maxInFlight(), len(unknown))
	for w := range workers {
		part := unknown[w*len(unknown)/workers : (w+1)*len(unknown)/workers]
		wg.Go(func() {
			batch := make([]syncedUser, 0, min(len(part), syncBatch))
			for _, key := range part {
				st, err := u.store.Load(ctx, key)
				switch {
				case errors.Is(err, ErrTokenNotFound):
				case err != nil && !errors.Is(err, ErrTokenCorrupt):
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				case err != nil || st.UserID != key:
					// Not a user of the registry; read again at each Sync, as few stores hold any.
				default:
					// Made outside the registry's lock; dropped if the user was added meanwhile.
					if batch = append(batch, syncedUser{u.newEntry(st), st.Intents}); len(batch) == cap(batch) {
						u.addNew(ctx, batch)
						batch = batch[:0]
					}
				}
			}
			u.addNew(ctx, batch)
		})
	}
	wg.Wait()
	// A registered user the listing lacks may have been removed by another replica. When every
	// user registered before the listing is in it, none is gone (a user added since then was
	// not in the listing, and is not looked at).
	if listed < held {
		errs = append(errs, u.dropUnlisted(ctx, keys)...)
	}
	// Tokens a Keyring cannot open make one line, however many: a wrong key fails them all.
	if err := JoinStoreErrors(errs...); err != nil {
		return fmt.Errorf("twitchoauth: sync stored users: %w", err)
	}
	return nil
}

// syncBatch is how many users a Sync worker registers under one lock.
const syncBatch = 256

// syncedUser is a user Sync found in the store, to be registered unless the registry has them.
type syncedUser struct {
	e       *userEntry
	intents []string
}

// addNew registers the users of batch the registry does not have.
func (u *UserTokens) addNew(ctx context.Context, batch []syncedUser) {
	if len(batch) == 0 {
		return
	}
	h := u.c.hooks()
	var added []string
	u.mu.Lock()
	for _, n := range batch {
		if u.users[n.e.src.key] != nil {
			continue
		}
		u.registerLocked(n.e)
		u.setIntentsLocked(n.e, n.intents)
		if h != nil && h.UserChange != nil {
			added = append(added, n.e.src.key)
		}
	}
	u.mu.Unlock()
	u.poke()
	for _, id := range added {
		u.c.userChange(ctx, id, UserAdded)
	}
}

// dropUnlisted forgets the registered users missing from keys, a listing of the store, that the
// store no longer holds: one missing from the listing may have been added since it was taken.
func (u *UserTokens) dropUnlisted(ctx context.Context, keys []string) (errs []error) {
	listed := make(map[string]bool, len(keys))
	for _, key := range keys {
		listed[key] = true
	}
	u.mu.RLock()
	var gone []*userEntry
	for id, e := range u.users {
		if !listed[id] {
			gone = append(gone, e)
		}
	}
	u.mu.RUnlock()
	for _, e := range gone {
		_, err := u.store.Load(ctx, e.src.key)
		switch {
		case errors.Is(err, ErrTokenNotFound):
			u.forget(ctx, e, fmt.Errorf("twitchoauth: user %s was removed from the store: %w", QuoteKey(e.src.key), ErrTokenNotFound))
		case err != nil && !errors.Is(err, ErrTokenCorrupt):
			errs = append(errs, err)
		}
	}
	return errs
}

// put registers st's user, or updates the user's intents, and returns the entry and the intents
// it took from other users (by user ID).
func (u *UserTokens) put(ctx context.Context, st *StoredToken) (e *userEntry, losers map[string][]string) {
	u.mu.Lock()
	e = u.users[st.UserID]
	isNew := e == nil
	if isNew {
		e = u.newEntry(st)
		u.registerLocked(e)
	}
	losers = u.setIntentsLocked(e, st.Intents)
	u.mu.Unlock()
	if isNew {
		u.poke()
		u.c.userChange(ctx, st.UserID, UserAdded)
	}
	return e, losers
}

// registerLocked adds e, a new entry, to the registry, and to Run's schedule if it runs; u.mu is
// held.
func (u *UserTokens) registerLocked(e *userEntry) {
	u.users[e.src.key] = e
	if u.scheduling() {
		u.added = append(u.added, e)
	}
}

// setIntentsLocked makes intents e's, taking them from other users; u.mu is held. It returns what
// it took, by user ID.
func (u *UserTokens) setIntentsLocked(e *userEntry, intents []string) map[string][]string {
	for _, in := range e.intents {
		if u.intents[in] == e.src.key && !slices.Contains(intents, in) {
			delete(u.intents, in)
		}
	}
	var losers map[string][]string
	for _, in := range intents {
		prev := u.intents[in]
		if prev != "" && prev != e.src.key {
			if p := u.users[prev]; p != nil {
				p.intents = slices.DeleteFunc(slices.Clone(p.intents), func(s string) bool { return s == in })
			}
			if losers == nil {
				losers = map[string][]string{}
			}
			losers[prev] = append(losers[prev], in)
		}
		u.intents[in] = e.src.key
	}
	e.intents = slices.Clone(intents)
	return losers
}

// forget removes e from the registry and, with a non-nil err, ends its source with err.
func (u *UserTokens) forget(ctx context.Context, e *userEntry, err error) {
	u.mu.Lock()
	removed := u.users[e.src.key] == e
	if removed {
		delete(u.users, e.src.key)
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

// forgetTimeout bounds forget's wait for a renewal under way: longer than a public client's
// refresh, which is seen to its answer (30 s).
const forgetTimeout = time.Minute

// soon asks Run to pass over e within a second (its source holds a pair to store, or its
// refresh token is in doubt).
func (u *UserTokens) soon(e *userEntry) {
	u.mu.Lock()
	if !u.scheduling() {
		u.mu.Unlock()
		return
	}
	u.hurry = append(u.hurry, e)
	u.mu.Unlock()
	u.poke()
}

// poke tells Run that added, gone or hurry has entries.
func (u *UserTokens) poke() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
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
	err = withStoreLock(ctx, u.c, u.store, e.src.key, u.LockTTL, func(ctx context.Context) error {
		st, err := u.store.Load(ctx, e.src.key)
		switch {
		case errors.Is(err, ErrTokenNotFound):
			return nil
		case err != nil && !errors.Is(err, ErrTokenCorrupt):
			return err
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

// update changes the token stored for userID with fn, under the user's lock; fn reports whether
// it changed anything. A user with no stored token is left alone.
func (u *UserTokens) update(ctx context.Context, userID string, fn func(st *StoredToken) bool) error {
	return withStoreLock(ctx, u.c, u.store, userID, u.LockTTL, func(ctx context.Context) error {
		st, err := u.store.Load(ctx, userID)
		if errors.Is(err, ErrTokenNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		next := *st
		next.Intents = slices.Clone(st.Intents)
		if !fn(&next) {
			return nil
		}
		return saveIf(ctx, u.store, userID, st, &next)
	})
}

// mergeIntents returns had with the intents of add it lacks appended, without duplicates.
func mergeIntents(had, add []string) []string {
	var out []string
	for _, in := range slices.Concat(had, add) {
		if in != "" && !slices.Contains(out, in) {
			out = append(out, in)
		}
	}
	return out
}
