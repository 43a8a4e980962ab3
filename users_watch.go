package twitchoauth

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// How Run hears of the other replicas' work at once, over a store that reports its changes
// ([ChangeWatcher]): each changed key is read again, and what it holds taken up.

// watchRetry is how long Run waits before it watches again a store whose WatchChanges gave up.
const watchRetry = time.Minute

// watch runs the store's WatchChanges until ctx ends, taking each change up (see applyChanges).
// A watch that gives up is started again after watchRetry; Sync, every SyncEvery, covers the
// time between.
func (u *UserTokens) watch(ctx context.Context, cw ChangeWatcher) {
	q := &changeQueue{u: u, keys: map[string]struct{}{}, wake: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	wg.Go(func() { u.applyChanges(ctx, q) })
	defer wg.Wait()
	defer u.watching.Store(false)
	for {
		err := cw.WatchChanges(ctx, q.add)
		if ctx.Err() != nil {
			return
		}
		u.log(ctx, slog.LevelWarn, "twitchoauth: the store's change notifications stopped; listing it every SyncEvery meanwhile",
			slog.String("error", errString(err)))
		u.watching.Store(false)
		t := time.NewTimer(watchRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// changeQueue holds the changes a watch reported that Run has not taken up: each key once, however
// often it was reported meanwhile.
type changeQueue struct {
	u      *UserTokens
	mu     sync.Mutex
	keys   map[string]struct{}
	resync bool // an empty key was reported: look at everything
	wake   chan struct{}
}

// add is the watch's callback: it never blocks.
func (q *changeQueue) add(key string) {
	q.mu.Lock()
	if key == "" {
		q.resync = true
		q.u.watching.Store(false) // a gap, or the watch's start: not current until read again
	} else {
		q.keys[key] = struct{}{}
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take returns the keys reported since the last take, and whether everything must be looked at
// again: an empty key was reported, as the watch began or after a gap. Even the first is such: a
// user read before the watch began may have changed before it did.
func (q *changeQueue) take() (keys []string, resync bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for key := range q.keys {
		keys = append(keys, key)
	}
	clear(q.keys)
	resync, q.resync = q.resync, false
	return keys, resync
}

// applyChanges takes up the changes in q until ctx ends: the users whose record changed are read
// again, MaxInFlight at a time (see heard); after an empty key (the watch began, or came back after
// a gap) the store is listed and every registered user is read again.
func (u *UserTokens) applyChanges(ctx context.Context, q *changeQueue) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		}
		keys, resync := q.take()
		if resync {
			u.watching.Store(false) // until every user is read again
			if err := u.Sync(ctx); err != nil && ctx.Err() == nil {
				u.log(ctx, slog.LevelWarn, "twitchoauth: list the store's users after a gap in its notifications failed; will try again",
					slog.String("error", err.Error()))
			}
			keys = append(keys, u.Users()...)
		}
		u.readChanged(ctx, keys)
		if resync && ctx.Err() == nil {
			u.watching.Store(true)
		}
	}
}

// readChanged reads each key again (see heard), with up to MaxInFlight readers.
func (u *UserTokens) readChanged(ctx context.Context, keys []string) {
	if len(keys) == 0 {
		return
	}
	u.inParts(keys, func(part []string) {
		for _, key := range part {
			if ctx.Err() != nil {
				return
			}
			u.heard(ctx, key)
		}
	})
}

// heard takes up what the store holds for key, whose record changed: a user removed elsewhere is
// dropped; one added elsewhere is registered; a registered user's intents, a token another replica
// stored, and a mark resolved elsewhere are taken up, and a wait of the user's source (for another
// holder's pair, or a reader's for the writer's) ends at once.
func (u *UserTokens) heard(ctx context.Context, key string) {
	st, err := u.store.Load(ctx, key)
	u.mu.RLock()
	e := u.users[key]
	u.mu.RUnlock()
	switch {
	case errors.Is(err, ErrTokenNotFound):
		if e != nil {
			u.goneFromStore(ctx, e)
		}
	case err != nil:
		// Unreadable for now: the user's next use, validation or Sync reads it again.
	case e == nil:
		if st.UserID == key {
			u.addNew(ctx, []syncedUser{{u.newEntry(st), st.Intents}})
		}
	default:
		e.src.wakeWaiters() // first: a waiter holds the source's lock, which noteStored may take
		u.noteStored(ctx, e, &e.src, st)
	}
}

func errString(err error) string {
	if err == nil {
		return "returned without an error"
	}
	return err.Error()
}
