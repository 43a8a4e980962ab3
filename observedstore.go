package twitchoauth

import (
	"context"
	"time"
)

// observedStore is a TokenStore whose operations its Client's hooks hear of. It has every
// optional interface's methods, but the package finds them through the as… functions below, which
// say whether the store underneath has them.
type observedStore struct {
	inner TokenStore
	h     *Hooks
}

// observeStore returns store, or store wrapped so that h hears of its operations when h has a
// store hook.
func observeStore(h *Hooks, store TokenStore) TokenStore {
	if h == nil || (h.StoreStart == nil && h.StoreEnd == nil) || store == nil {
		return store
	}
	if o, ok := store.(*observedStore); ok && o.h == h {
		return store
	}
	return &observedStore{inner: store, h: h}
}

// start tells the hooks that op on key begins.
func (o *observedStore) start(ctx context.Context, op StoreOp, key string) (context.Context, time.Time) {
	if o.h.StoreStart != nil {
		ctx = o.h.StoreStart(ctx, StoreEvent{Op: op, Key: key})
	}
	return ctx, time.Now()
}

// end tells the hooks that op on key, begun at start, ended with err.
func (o *observedStore) end(ctx context.Context, op StoreOp, key string, start time.Time, err error) {
	if o.h.StoreEnd != nil {
		o.h.StoreEnd(ctx, StoreEvent{Op: op, Key: key, Duration: time.Since(start), Err: err})
	}
}

func (o *observedStore) Load(ctx context.Context, key string) (*StoredToken, error) {
	ctx, start := o.start(ctx, StoreLoad, key)
	st, err := o.inner.Load(ctx, key)
	o.end(ctx, StoreLoad, key, start, err)
	return st, err
}

func (o *observedStore) Save(ctx context.Context, key string, tok *StoredToken) error {
	ctx, start := o.start(ctx, StoreSave, key)
	err := o.inner.Save(ctx, key, tok)
	o.end(ctx, StoreSave, key, start, err)
	return err
}

func (o *observedStore) Delete(ctx context.Context, key string) error {
	ctx, start := o.start(ctx, StoreDelete, key)
	err := o.inner.Delete(ctx, key)
	o.end(ctx, StoreDelete, key, start, err)
	return err
}

func (o *observedStore) Lock(ctx context.Context, key string, ttl time.Duration) (func() error, error) {
	lctx, start := o.start(ctx, StoreLock, key)
	unlock, err := o.inner.Lock(lctx, key, ttl)
	o.end(lctx, StoreLock, key, start, err)
	if err != nil {
		return nil, err
	}
	octx := context.WithoutCancel(ctx) // only the parent of the unlock's span
	return func() error {
		uctx, start := o.start(octx, StoreUnlock, key)
		err := unlock()
		o.end(uctx, StoreUnlock, key, start, err)
		return err
	}, nil
}

// SaveIf is the underlying store's; only asConditionalSaver hands it out.
func (o *observedStore) SaveIf(ctx context.Context, key string, prev, next *StoredToken) error {
	ctx, start := o.start(ctx, StoreSaveIf, key)
	err := o.inner.(ConditionalSaver).SaveIf(ctx, key, prev, next)
	o.end(ctx, StoreSaveIf, key, start, err)
	return err
}

// LockLease is the underlying store's, heard as a Lock. It is here for the interfaces that embed
// LeaseLocker (LeaseReader, ReleasingSaver): the package's waits for a lock ask the store
// underneath (see lockWait).
func (o *observedStore) LockLease(ctx context.Context, key string, ttl time.Duration) (Lease, error) {
	lctx, heard := o.lockWait(ctx, key)
	l, err := o.inner.(LeaseLocker).LockLease(lctx, key, ttl)
	if l = heard(l, err); err != nil {
		return nil, err
	}
	return l, nil
}

// lockWait begins a wait for key's lock, which may ask the store underneath many times (see
// take): the hooks hear of the wait as one Lock, from its first ask to the end of its last. It
// returns the context to ask under, and the func that ends the Lock with the wait's error and
// returns the lease granted wrapped, so that the hooks hear of its renewals and its unlock.
func (o *observedStore) lockWait(ctx context.Context, key string) (context.Context, func(Lease, error) Lease) {
	lctx, start := o.start(ctx, StoreLock, key)
	return lctx, func(l Lease, err error) Lease {
		o.end(lctx, StoreLock, key, start, err)
		if err != nil {
			return l
		}
		return &observedLease{inner: l, o: o, key: key, ctx: context.WithoutCancel(ctx)}
	}
}

// LeaseRead is the underlying store's, of the lease an observed lease wraps; only asOptional
// hands it out.
func (o *observedStore) LeaseRead(lease Lease) (*StoredToken, bool, error) {
	if l, ok := lease.(*observedLease); ok {
		lease = l.inner
	}
	return o.inner.(LeaseReader).LeaseRead(lease)
}

// SaveIfUnlock is the underlying store's, of the lease an observed lease wraps, heard as a
// save_if (the release comes with it, and no unlock is heard after); only asOptional hands it out.
func (o *observedStore) SaveIfUnlock(ctx context.Context, lease Lease, key string, prev, next *StoredToken) error {
	if l, ok := lease.(*observedLease); ok {
		lease = l.inner
	}
	ctx, start := o.start(ctx, StoreSaveIf, key)
	err := o.inner.(ReleasingSaver).SaveIfUnlock(ctx, lease, key, prev, next)
	o.end(ctx, StoreSaveIf, key, start, err)
	return err
}

// Keys is the underlying store's; only asKeyLister hands it out.
func (o *observedStore) Keys(ctx context.Context) ([]string, error) {
	ctx, start := o.start(ctx, StoreKeys, "")
	keys, err := o.inner.(KeyLister).Keys(ctx)
	o.end(ctx, StoreKeys, "", start, err)
	return keys, err
}

// WatchChanges is the underlying store's, unobserved: it lasts as long as Run.
func (o *observedStore) WatchChanges(ctx context.Context, changed func(key string)) error {
	return o.inner.(ChangeWatcher).WatchChanges(ctx, changed)
}

// observedLease is a Lease whose Renew and Unlock its store's hooks hear of.
type observedLease struct {
	inner Lease
	o     *observedStore
	key   string
	ctx   context.Context // the parent of the spans of Unlock, which takes no context
}

func (l *observedLease) Renew(ctx context.Context) error {
	ctx, start := l.o.start(ctx, StoreRenew, l.key)
	err := l.inner.Renew(ctx)
	l.o.end(ctx, StoreRenew, l.key, start, err)
	return err
}

func (l *observedLease) Unlock() error {
	ctx, start := l.o.start(l.ctx, StoreUnlock, l.key)
	err := l.inner.Unlock()
	l.o.end(ctx, StoreUnlock, l.key, start, err)
	return err
}

// under returns the store an observed store wraps, or store itself.
func under(store TokenStore) TokenStore {
	if o, ok := store.(*observedStore); ok {
		return o.inner
	}
	return store
}

// asOptional returns store as T, one of the optional store interfaces, if the store underneath
// is one: an observed store has every optional method, but only the underlying store's work.
func asOptional[T any](store TokenStore) (T, bool) {
	var zero T
	if _, ok := under(store).(T); !ok {
		return zero, false
	}
	v, ok := store.(T)
	return v, ok
}

// asConditionalSaver, asKeyLister and asChangeWatcher are asOptional's, by name.
func asConditionalSaver(store TokenStore) (ConditionalSaver, bool) {
	return asOptional[ConditionalSaver](store)
}

func asKeyLister(store TokenStore) (KeyLister, bool) { return asOptional[KeyLister](store) }

func asChangeWatcher(store TokenStore) (ChangeWatcher, bool) { return asOptional[ChangeWatcher](store) }
