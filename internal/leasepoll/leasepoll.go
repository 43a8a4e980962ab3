// Package leasepoll is the waiting of the stores' locks with a lease, the part that is the same
// in every store: poll a lock another holder has, with jittered backoff, until it is free or the
// caller gives up, and release a lock once, even after the caller's context ended. What a try
// and a release send is the store's.
package leasepoll

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Lock polling: the first wait, and the longest; each wait is jittered around its value.
const (
	FirstWait = 5 * time.Millisecond
	MaxWait   = 100 * time.Millisecond
)

// UnlockTimeout bounds the release of a lock, which runs even after the caller's context ended.
const UnlockTimeout = 5 * time.Second

// Poll takes a lock: it calls try, which tries once to take it, until try reports it taken (Poll
// then returns nil). While another holder has it, Poll waits between tries with jittered backoff
// from FirstWait up to MaxWait, until ctx is done: the error is then ctx.Err(). An error of try
// ends the wait at once, so a store that cannot be reached is never polled: Poll calls abandon
// with it, which releases, as well as it can, a lock the failed try may have taken after all
// (one cut off when ctx ended, or whose reply was lost), and returns it.
func Poll(ctx context.Context, try func() (taken bool, err error), abandon func(err error)) error {
	wait := FirstWait
	for {
		taken, err := try()
		if err != nil {
			abandon(err)
			return err
		}
		if taken {
			return nil
		}
		t := time.NewTimer(wait/2 + rand.N(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, MaxWait)
	}
}

// Unlocker returns the unlock function of a lock taken under ctx: its first call runs release
// with a context of its own, which keeps ctx's values but not its end, so that it works after ctx
// ended, and which ends after UnlockTimeout. Calling it again does nothing and returns the first
// call's result.
func Unlocker(ctx context.Context, release func(ctx context.Context) error) func() error {
	ctx = context.WithoutCancel(ctx)
	return sync.OnceValue(func() error {
		ctx, cancel := context.WithTimeout(ctx, UnlockTimeout)
		defer cancel()
		return release(ctx)
	})
}
