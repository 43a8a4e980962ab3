package twitchoauth

import (
	"container/heap"
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Run validates every user's token once per ValidateEvery until ctx is done, and returns ctx's
// error then (or at once, an error when Run is already running). It is one goroutine with a pool
// of MaxInFlight workers, and one more that lists the store every SyncEvery (reading the users it
// finds new with up to MaxInFlight readers of its own meanwhile); over a store that reports its
// changes ([ChangeWatcher]), one more watches it and reads each changed user again with up to
// MaxInFlight readers, so that what another replica did reaches this one at once. All are ended
// before it returns; it starts none per user. On a reader replica (ReadOnly), Run only lists and
// watches the store.
//
// Each user has a slot in the period, derived from the user ID and spread evenly over it (see
// [UserTokens] for how replicas share the work), so that 10,000 users added at once are validated
// a few at a time, never together. A token Twitch rejects (401) is refreshed, and the new one is
// validated; a refresh token Twitch rejects makes the grant gone (see OnRevoked). A transient
// failure (network, 5xx, 429, the store) is retried after a backoff that grows from a 120th of
// the period to a quarter of it; the user is never dropped for it. A token that has expired is
// not validated, nor refreshed only to be validated: the next use refreshes it. A public client's
// refresh token, which Twitch lets lapse after 30 days unused, is renewed at the user's first
// slot 20 days after it was issued (see [UserTokens.RefreshTokenExpiry]), so a user the bot has
// not needed for weeks is not lost. A retry comes no sooner than Twitch's Retry-After. A pair a
// source could not store is stored first. Users added or removed while it runs are picked up (a
// removed user is let go of at once), and the store is listed every SyncEvery for other replicas'
// users.
func (u *UserTokens) Run(ctx context.Context) error {
	u.mu.Lock()
	if u.running {
		u.mu.Unlock()
		return errors.New("twitchoauth: UserTokens.Run is already running")
	}
	u.running = true
	if u.ReadOnly {
		u.mu.Unlock()
		return u.runReader(ctx)
	}
	var due dueHeap
	for _, e := range u.users {
		due = append(due, e)
	}
	u.added, u.gone, u.hurry = nil, nil, nil
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		for _, e := range due {
			e.index = -1 // before running is cleared: a Run started next owns the entries
		}
		u.running, u.added, u.gone, u.hurry = false, nil, nil, nil
		u.mu.Unlock()
	}()

	now := time.Now()
	for i, e := range due {
		e.failures = 0
		e.due = u.nextDue(e, now, 0)
		if e.src.Pending() || e.src.inDoubt() {
			e.due = now // a pair kept before Run started is stored first; a doubt looked at again
		}
		e.index = int32(i)
	}
	heap.Init(&due)

	workers := u.maxInFlight()
	work := make(chan *userEntry, workers)
	type result struct {
		e   *userEntry
		out outcome
	}
	// Results come back on a list. A worker wakes Run only when Run waits for one (every worker
	// is busy, or nothing else is due) or the outcome asks for a prompt retry; otherwise Run takes
	// them up at its next wake-up, for the next user's slot: paced validations cost one
	// goroutine wake-up each, not two.
	var (
		resMu     sync.Mutex
		results   []result
		needsWake bool // Run waits for a result; guarded by resMu
	)
	resWake := make(chan struct{}, 1)
	var probing atomic.Bool // users are parked: a result may be the probe that finds the store back
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for e := range work {
				r := result{e, u.validateUser(ctx, e)}
				prompt := r.out != validated || e.src.Pending() || probing.Load()
				resMu.Lock()
				results = append(results, r)
				wake := needsWake || prompt
				resMu.Unlock()
				if wake {
					select {
					case resWake <- struct{}{}:
					default:
					}
				}
			}
		})
	}
	wg.Go(func() { u.syncLoop(ctx) })
	if cw, ok := asChangeWatcher(u.store); ok {
		wg.Go(func() { u.watch(ctx, cw) })
	}
	defer wg.Wait()
	defer close(work)

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	inFlight := 0
	var batch []result
	// Users whose source holds a pair (or a mark to take back) the store did not take wait off the
	// schedule, parked, while one of them a second is tried as a probe of the store: the first
	// pass that finds the store answering again puts them all back, due at once. So each is stored
	// within a second or so of the store's return, without a request per user per second while it
	// is away.
	var parked []*userEntry
	var probeAt time.Time
	for {
		resMu.Lock()
		batch, results = results, batch[:0]
		resMu.Unlock()
		storeBack := false
		for _, r := range batch {
			inFlight--
			if r.out == dropped || r.e.removed.Load() {
				continue
			}
			now := time.Now()
			if r.e.src.Pending() {
				parked = append(parked, r.e)
				continue
			}
			storeBack = storeBack || r.out == validated
			if r.out == retry && r.e.src.inDoubt() {
				// In doubt: the store is read again for the pair soon, whatever the failures.
				r.e.due = now.Add(doubtRecheck)
				heap.Push(&due, r.e)
				continue
			}
			if r.out == retry {
				r.e.failures++
				r.e.due = now.Add(u.backoff(int(r.e.failures)))
				// Never sooner than Twitch asked (Retry-After), nor than the source's own
				// floor after a failed refresh.
				r.e.due = latest(r.e.due, now.Add(r.e.wait), r.e.floor())
			} else {
				r.e.failures = 0
				// The slot after the one just passed, or the token's refresh, a minute on at the
				// soonest: a token Twitch issues for less than keepFreshAhead is not refreshed
				// over and over.
				r.e.due = u.nextDue(r.e, now, time.Minute)
			}
			heap.Push(&due, r.e)
		}
		clear(batch) // let go of the entries

		u.mu.Lock()
		added, gone, hurry := u.added, u.gone, u.hurry
		u.added, u.gone, u.hurry = nil, nil, nil
		u.mu.Unlock()
		// Added first, so that a user added and gone, or added and hurried, in one pass is
		// treated as both.
		now := time.Now()
		for _, e := range added {
			e.failures = 0
			e.due = u.nextDue(e, now, 0)
			heap.Push(&due, e)
		}
		for _, e := range gone {
			if e.index >= 0 {
				heap.Remove(&due, int(e.index)) // let go of it now, not at its slot
			}
		}
		for _, e := range hurry {
			if soon := now.Add(time.Second); e.index >= 0 && e.due.After(soon) {
				e.due = soon // its pending pair is stored then, not at its slot
				heap.Fix(&due, int(e.index))
			}
		}
		if storeBack && len(parked) > 0 {
			for _, e := range parked {
				e.due = now
				heap.Push(&due, e)
			}
			clear(parked)
			parked = parked[:0]
		}
		for inFlight < workers && len(parked) > 0 && !now.Before(probeAt) {
			e := parked[0]
			parked = parked[1:]
			probeAt = now.Add(time.Second)
			if e.removed.Load() {
				continue
			}
			inFlight++
			work <- e
		}
		for inFlight < workers && due.Len() > 0 && !due[0].due.After(now) {
			e := heap.Pop(&due).(*userEntry)
			if e.removed.Load() {
				continue
			}
			inFlight++
			work <- e
		}
		probing.Store(len(parked) > 0)
		var wait <-chan time.Time
		if inFlight < workers && (due.Len() > 0 || len(parked) > 0) {
			next := probeAt
			if due.Len() > 0 && (len(parked) == 0 || due[0].due.Before(next)) {
				next = due[0].due
			}
			timer.Reset(next.Sub(now))
			wait = timer.C
		}
		resMu.Lock()
		needsWake = inFlight > 0 && wait == nil // a result is what Run waits for
		waiting := len(results) > 0
		resMu.Unlock()
		if waiting {
			timer.Stop()
			continue // results came meanwhile: take them up now
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-resWake:
		case <-u.wake:
		case <-wait:
		}
		timer.Stop()
	}
}

// scheduling reports whether Run's schedule takes entries added, gone and hurried: Run runs,
// on a replica that validates; u.mu is held.
func (u *UserTokens) scheduling() bool { return u.running && !u.ReadOnly }

// runReader is Run on a reader replica: it lists and watches the store, and validates nothing.
func (u *UserTokens) runReader(ctx context.Context) error {
	defer func() {
		u.mu.Lock()
		u.running = false
		u.mu.Unlock()
	}()
	var wg sync.WaitGroup
	wg.Go(func() { u.syncLoop(ctx) })
	if cw, ok := asChangeWatcher(u.store); ok {
		wg.Go(func() { u.watch(ctx, cw) })
	}
	<-ctx.Done()
	wg.Wait()
	return ctx.Err()
}

// syncLoop runs Sync now and every SyncEvery until ctx is done.
func (u *UserTokens) syncLoop(ctx context.Context) {
	every := u.SyncEvery
	if every <= 0 {
		every = defaultSyncEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := u.Sync(ctx); err != nil && ctx.Err() == nil {
			u.log(ctx, slog.LevelWarn, "twitchoauth: list the store's users failed; will try again",
				slog.String("error", err.Error()))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
