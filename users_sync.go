package twitchoauth

import (
	"context"
	"errors"
	"fmt"
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
		u.index.Store(nil)                               // it keeps the map replaced
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
	u.inParts(unknown, func(part []string) {
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

// forgetTimeout bounds forget's wait for a renewal under way: longer than a public client's
// refresh, which is seen to its answer (30 s).
const forgetTimeout = time.Minute

// update changes the token stored for userID with fn, under the user's lock; fn reports whether
// it changed anything. A user with no stored token is left alone.
func (u *UserTokens) update(ctx context.Context, userID string, fn func(st *StoredToken) bool) error {
	return withStored(ctx, u.c, u.store, userID, u.LockTTL, func(ctx context.Context, st *StoredToken, missing error) error {
		if errors.Is(missing, ErrTokenNotFound) {
			return nil
		}
		if missing != nil {
			return missing
		}
		next := *st
		next.Intents = slices.Clone(st.Intents)
		if !fn(&next) {
			return nil
		}
		return saveIf(ctx, u.store, userID, st, &next)
	})
}
