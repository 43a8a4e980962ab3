package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// The work under a store's lock: a lease taken, renewed while the work runs and counted from
// before it was asked for, and saves fenced against a holder whose lease ran out.

// withStoreLock runs fn holding key's lock, with a context that ends before the lock's lease does,
// so fn never works on under a lock another holder may have taken over. The lease is counted from
// before the lock was asked for (and a renewal from before it was sent), since it may have begun
// then: a late reply shortens the time fn gets, never lengthens it. When the store is a
// [LeaseLocker], the lease is renewed while fn runs; fn's context ends, with ErrLeaseLost as its
// cause, only when a renewal fails or comes too late. A failure to unlock does not fail what fn
// did (the lease ends the lock anyway); it is logged through c's Logger.
func withStoreLock(ctx context.Context, c *Client, store TokenStore, key string, ttl time.Duration, fn func(ctx context.Context) error) error {
	return withStoreLockWatch(ctx, c, store, key, ttl, nil, fn)
}

// withStoreLockWatch is withStoreLock, calling watch (if not nil) every lockWatchEvery while the
// lock is held by another: an error watch returns ends the wait for the lock, and is returned as
// it is. A refresh watches for the mark of a holder that may hold the lock for its whole lease
// (it died): the mark is waited out without the lock, and decided on within its own bound.
func withStoreLockWatch(ctx context.Context, c *Client, store TokenStore, key string, ttl time.Duration, watch func(ctx context.Context) error, fn func(ctx context.Context) error) error {
	if ttl <= 0 {
		ttl = DefaultLockTTL
	}
	k, err := takeLease(ctx, c, store, key, ttl, watch)
	var w *watchError
	if errors.As(err, &w) {
		return w.err
	}
	if err != nil {
		return fmt.Errorf("twitchoauth: lock stored token: %w", err)
	}
	defer k.unlock(ctx, c)

	valued := context.WithValue(ctx, unleasedKey{}, unleasedCtx{ctx: ctx, ttl: ttl, key: key, keeper: k})
	if !k.renewable {
		// Nothing to renew: the work stops at the lease's deadline, with no goroutine to keep it.
		lost := fmt.Errorf("%w: the store cannot renew it, and the work under it took too long", ErrLeaseLost)
		fnCtx, cancel := context.WithDeadlineCause(valued, k.deadline(), lost)
		defer cancel()
		err = fn(fnCtx)
		if err != nil && context.Cause(fnCtx) == lost && ctx.Err() == nil && !errors.Is(err, ErrLeaseLost) {
			err = fmt.Errorf("%w (%w)", lost, err)
		}
		return err
	}
	fnCtx, cancel := context.WithCancelCause(valued)
	defer cancel(nil)
	keepCtx, stopKeeping := context.WithCancel(fnCtx)
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		k.keep(keepCtx, cancel)
	}()
	err = fn(fnCtx)
	stopKeeping()
	<-kept
	if err != nil && k.lost != nil && ctx.Err() == nil && !errors.Is(err, ErrLeaseLost) {
		err = fmt.Errorf("%w (%w)", k.lost, err)
	}
	return err
}

// withStored is the store's read-modify-write of key's token: it runs fn holding key's lock (see
// withStoreLock) with the token stored under key as read under the lock (through the lock's own
// read when the store made one: see loadLocked). cur is nil when nothing is stored, or what is
// stored cannot be read, and then missing is the error that says which: one that Is
// ErrTokenNotFound or ErrTokenCorrupt. Any other failure of the read is returned, and fn is not
// called. What fn writes, it writes itself: a fenced save (saveIf, saveIfLast), a Save or a
// Delete.
func withStored(ctx context.Context, c *Client, store TokenStore, key string, ttl time.Duration, fn func(ctx context.Context, cur *StoredToken, missing error) error) error {
	return withStoredWatch(ctx, c, store, key, ttl, nil, fn)
}

// withStoredWatch is withStored, watching while another holds the lock as withStoreLockWatch does.
func withStoredWatch(ctx context.Context, c *Client, store TokenStore, key string, ttl time.Duration, watch func(ctx context.Context) error, fn func(ctx context.Context, cur *StoredToken, missing error) error) error {
	return withStoreLockWatch(ctx, c, store, key, ttl, watch, func(ctx context.Context) error {
		cur, err := loadLocked(ctx, store, key)
		if err != nil && !errors.Is(err, ErrTokenNotFound) && !errors.Is(err, ErrTokenCorrupt) {
			return err
		}
		return fn(ctx, cur, err)
	})
}

// maxLateLocks is how many times a lock granted late is given up and asked for again when the
// store cannot renew it.
const maxLateLocks = 3

// takeLease takes key's lock, making sure its lease leaves time for work. A lock granted a third
// of the ttl or more after it was asked for (its holder waited for another's, or the reply was
// slow) may have little of its lease left: it is renewed at once when the store can (a renewal
// that succeeds shows the lock was held throughout, however late it comes), and otherwise given up
// and asked for again, a few times. A lease that would end before work could start is an error.
func takeLease(ctx context.Context, c *Client, store TokenStore, key string, ttl time.Duration, watch func(ctx context.Context) error) (*leaseKeeper, error) {
	for attempt := 1; ; attempt++ {
		k := &leaseKeeper{ttl: ttl}
		sent, err := k.take(ctx, store, key, watch)
		if err != nil {
			return nil, err
		}
		k.extended(sent)
		switch {
		case time.Now().Before(k.renewAt):
		case k.renewable:
			rctx, cancel := context.WithTimeout(ctx, ttl)
			sent := time.Now()
			err := k.lease.Renew(rctx)
			cancel()
			if err != nil {
				k.unlock(ctx, c)
				return nil, leaseLost("renew a lock granted late", err)
			}
			k.extended(sent)
		case attempt < maxLateLocks:
			k.unlock(ctx, c)
			continue
		}
		if !time.Now().Before(k.deadline()) {
			k.unlock(ctx, c)
			return nil, fmt.Errorf("%w: the lock was granted too late to be used", ErrLeaseLost)
		}
		return k, nil
	}
}

// lockWatchEvery is how often a wait for a lock held by another calls its watch.
const lockWatchEvery = time.Second

// errLockWatch ends one ask for a lock, so that the wait's watch can look at the store.
var errLockWatch = errors.New("twitchoauth: time to look at the store while the lock is held")

// watchError carries the error of a lock wait's watch, which ended the wait.
type watchError struct{ err error }

func (w *watchError) Error() string { return w.err.Error() }
func (w *watchError) Unwrap() error { return w.err }

// take takes key's lock into k and returns when the ask that was granted was sent. With watch, or
// for a renewal holding a turn (which it gives back once another holder has had the lock a
// while, and then asks once more, as long as it takes), it asks for lockWatchEvery at a time,
// calling watch between the asks; an error of watch's ends the wait, as a *watchError.
func (k *leaseKeeper) take(ctx context.Context, store TokenStore, key string, watch func(ctx context.Context) error) (time.Time, error) {
	resume, paused := func(bool) {}, false
	locked := false // the wait ended holding the lock
	defer func() { resume(locked) }()
	// The hooks hear of the wait as one lock, not of each ask: an ask ended to look at the store
	// did not fail.
	heard := func(l Lease, _ error) Lease { return l }
	if o, ok := store.(*observedStore); ok {
		store = o.inner
		ctx, heard = o.lockWait(ctx, key)
	}
	sliced := watch != nil || holdsTurn(ctx)
	for {
		lctx, cancel := ctx, context.CancelFunc(func() {})
		if sliced {
			lctx, cancel = context.WithTimeoutCause(ctx, lockWatchEvery, errLockWatch)
		}
		sent := time.Now()
		var err error
		if ll, ok := store.(LeaseLocker); ok {
			k.renewable = true
			k.lease, err = ll.LockLease(lctx, key, k.ttl)
		} else {
			var unlock func() error
			unlock, err = store.Lock(lctx, key, k.ttl)
			k.lease = unlockOnly(unlock)
		}
		watching := err != nil && ctx.Err() == nil && context.Cause(lctx) == errLockWatch
		cancel()
		if !watching {
			k.lease, locked = heard(k.lease, err), err == nil
			return sent, err
		}
		if !paused { // another holder has had the lock a while: its wait is not this renewal's work
			resume, paused = waitingForLock(ctx), true
			sliced = watch != nil // the turn given back, only a watch needs the asks cut short
		}
		if watch == nil {
			continue
		}
		if err := watch(ctx); err != nil {
			heard(nil, err)
			return sent, &watchError{err}
		}
	}
}

// leaseKeeper keeps track of a held lease, and renews it when it can.
type leaseKeeper struct {
	lease     Lease
	renewable bool
	ttl       time.Duration
	expires   time.Time   // the latest the lease is sure to last until
	renewAt   time.Time   // when to renew it next
	lost      error       // why fn's context was ended; written by keep only
	released  atomic.Bool // the lease ended with the work's last save (see saveIfLast)
	releasing atomic.Bool // that save is under way: it ends the lease, or fails and ends the work
}

// extended records that the lease was taken or renewed by a request sent at sent.
func (k *leaseKeeper) extended(sent time.Time) {
	k.expires = sent.Add(k.ttl)
	k.renewAt = sent.Add(k.ttl / 3)
}

// deadline is when the work under the lease must have stopped: a tenth of the ttl before the
// lease may end, a margin for clocks and for the last request to come back.
func (k *leaseKeeper) deadline() time.Time { return k.expires.Add(-k.ttl / 10) }

// renew renews the lease, giving up at the deadline.
func (k *leaseKeeper) renew(ctx context.Context) error {
	ctx, cancel := context.WithDeadline(ctx, k.deadline())
	defer cancel()
	sent := time.Now()
	if err := k.lease.Renew(ctx); err != nil {
		return err
	}
	k.extended(sent)
	return nil
}

// unlock releases the lock, unless the work's last save did, logging a failure through c's Logger.
func (k *leaseKeeper) unlock(ctx context.Context, c *Client) {
	if k.released.Load() {
		return
	}
	if err := k.lease.Unlock(); err != nil && c.Logger != nil {
		c.Logger.LogAttrs(ctx, slog.LevelWarn, "twitchoauth: unlock stored token failed; its lease will end it",
			slog.String("error", err.Error()))
	}
}

// keep renews a renewable lease until ctx ends, and ends fn's context through cancel, recording
// why in k.lost, when the lease cannot be renewed before its deadline.
func (k *leaseKeeper) keep(ctx context.Context, cancel context.CancelCauseFunc) {
	for {
		next := k.deadline()
		if k.renewAt.Before(next) || k.releasing.Load() {
			next = k.renewAt
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if k.released.Load() {
			return // the work's last save ended the lease
		}
		if k.releasing.Load() {
			// The store may have ended the lease already, and its renewal would fail as lost; the
			// save is fenced, and needs the lease no more. Looked at again soon: it may fail, and
			// the work fall back to a SaveIf under the lease.
			k.renewAt = time.Now().Add(k.ttl / 20)
			continue
		}
		if time.Now().Before(k.deadline()) {
			// A renewal still waiting at the deadline (a store client that ignores the context's
			// deadline, as go-redis does by default) does not keep the work going past it.
			late := fmt.Errorf("%w: its renewal did not come back in time", ErrLeaseLost)
			stop := time.AfterFunc(time.Until(k.deadline()), func() { cancel(late) })
			err := k.renew(ctx)
			if !stop.Stop() {
				k.lost = late
				return
			}
			if err == nil {
				continue
			}
			if ctx.Err() != nil || k.released.Load() {
				return // the work is done, or its last save ended the lease
			}
			if !errors.Is(err, ErrLeaseLost) && time.Now().Before(k.deadline()) {
				k.renewAt = time.Now().Add(k.ttl / 20) // a passing failure: try again soon
				continue
			}
			k.lost = leaseLost("renew", err)
		} else {
			k.lost = fmt.Errorf("%w: it was not renewed in time", ErrLeaseLost)
		}
		cancel(k.lost)
		return
	}
}

// leaseLost returns ErrLeaseLost for a renewal that failed with err.
func leaseLost(what string, err error) error {
	if errors.Is(err, ErrLeaseLost) {
		return err
	}
	return fmt.Errorf("%w: %s: %w", ErrLeaseLost, what, err)
}

// unlockOnly is the Lease of a store that cannot renew its locks.
type unlockOnly func() error

func (u unlockOnly) Renew(context.Context) error { return errors.ErrUnsupported }
func (u unlockOnly) Unlock() error               { return u() }

// unleasedKey is the context key of what withStoreLock was called with.
type unleasedKey struct{}

type unleasedCtx struct {
	ctx    context.Context
	ttl    time.Duration
	key    string
	keeper *leaseKeeper // the lease held
}

// loadLocked loads key's token from store, under the lock withStoreLock took: from the read the
// store made as it took the lock ([LeaseReader]) when it has one, else with a Load.
func loadLocked(ctx context.Context, store TokenStore, key string) (*StoredToken, error) {
	if u, ok := ctx.Value(unleasedKey{}).(unleasedCtx); ok && u.key == key {
		if lr, ok := asOptional[LeaseReader](store); ok {
			if st, ok, err := lr.LeaseRead(u.keeper.lease); ok {
				return st, err
			}
		}
	}
	return store.Load(ctx, key)
}

// unleased returns a context for a fenced save (SaveIf) of the work under a lock: it ends with the
// context withStoreLock was given, or after a lease's ttl, but not with the lease. The fence makes
// the save safe after the lease ended, and a pair Twitch has just issued must not be lost because
// its lease ran out as the answer came back.
func unleased(ctx context.Context) (context.Context, context.CancelFunc) {
	if u, ok := ctx.Value(unleasedKey{}).(unleasedCtx); ok {
		return context.WithTimeout(u.ctx, u.ttl)
	}
	return context.WithCancel(ctx)
}

// saveIf stores next under key if the store still holds prev's pair: through the store's SaveIf
// when it has one (then even after the lease ended), else by a Load, a comparison and a Save
// under the lock, which fence off only a holder that finds its lease lost before it saves.
func saveIf(ctx context.Context, store TokenStore, key string, prev, next *StoredToken) error {
	if cs, ok := asConditionalSaver(store); ok {
		ctx, cancel := unleased(ctx)
		defer cancel()
		return cs.SaveIf(ctx, key, prev, next)
	}
	cur, err := store.Load(ctx, key)
	switch {
	case errors.Is(err, ErrTokenNotFound) || errors.Is(err, ErrTokenCorrupt):
		return fmt.Errorf("%w: %w", ErrTokenChanged, err)
	case err != nil:
		return err
	case !sameStored(cur, prev):
		return fmt.Errorf("%w: the store holds another pair", ErrTokenChanged)
	}
	return store.Save(ctx, key, next)
}

// saveIfLast is saveIf for the last write of the work under key's lock: when the store can store
// and end the lease in one step ([ReleasingSaver]), the lock is released with the save, and
// neither renewed nor unlocked after, unless the work writes more after it (keepLease).
func saveIfLast(ctx context.Context, store TokenStore, key string, prev, next *StoredToken) error {
	if u, ok := ctx.Value(unleasedKey{}).(unleasedCtx); ok && u.key == key && ctx.Value(keepLeaseKey{}) == nil {
		if rs, ok := asOptional[ReleasingSaver](store); ok {
			sctx, cancel := unleased(ctx)
			defer cancel()
			u.keeper.releasing.Store(true)
			err := rs.SaveIfUnlock(sctx, u.keeper.lease, key, prev, next)
			if err == nil {
				u.keeper.released.Store(true) // before releasing ends: keep never sees neither
			}
			u.keeper.releasing.Store(false)
			if !errors.Is(err, errors.ErrUnsupported) {
				return err
			}
		}
	}
	return saveIf(ctx, store, key, prev, next)
}

// keepLeaseKey is the context key of work under a lock that writes more after a refresh's save.
type keepLeaseKey struct{}

// keepLease returns ctx for a refresh under a lock whose work writes more after it: its save does
// not release the lock (see saveIfLast).
func keepLease(ctx context.Context) context.Context {
	return context.WithValue(ctx, keepLeaseKey{}, true)
}

// saveRefreshed stores next, the pair a refresh of prev has just given, unless the store no
// longer holds prev (another replica stored a pair after this one read prev: this one's lease
// ended meanwhile). Then it adopts the stored token when that is fresh and another pair (never
// prev's, whose refresh token the refresh spent), so that the replicas hold the same one; and
// otherwise stores next in place of it, if the store still holds what it found. It returns the
// token to use: the one it adopted, else next, also when next could not be stored (Twitch has
// issued it, and the old pair may be dead).
func saveRefreshed(ctx context.Context, store TokenStore, key string, prev, next *StoredToken) (*StoredToken, error) {
	err := saveIfLast(ctx, store, key, prev, next)
	if !errors.Is(err, ErrTokenChanged) {
		return next, err
	}
	lctx, cancel := ctx, context.CancelFunc(func() {})
	if _, ok := asConditionalSaver(store); ok {
		lctx, cancel = unleased(ctx)
	}
	defer cancel()
	cur, lerr := store.Load(lctx, key)
	if lerr != nil {
		return next, err // gone, say: this replica keeps its new pair, and does not bring it back
	}
	if fresh(cur.Token()) && cur.RefreshToken != prev.RefreshToken {
		return cur, nil
	}
	return next, saveIfLast(ctx, store, key, cur, next)
}
