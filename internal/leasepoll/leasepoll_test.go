package leasepoll

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestPollBackoff: while the lock is another's, the waits between tries double from FirstWait up
// to MaxWait, each within half of its value either way; the try that takes it ends the poll.
func TestPollBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const busy = 8
		var tries []time.Time
		try := func() (bool, error) {
			tries = append(tries, time.Now())
			return len(tries) > busy, nil
		}
		abandon := func(err error) { t.Errorf("abandon(%v) after tries that failed on no error", err) }
		if err := Poll(t.Context(), try, abandon); err != nil {
			t.Fatal(err)
		}
		if len(tries) != busy+1 {
			t.Fatalf("%d tries, want %d", len(tries), busy+1)
		}
		wait := FirstWait
		for i := 1; i < len(tries); i++ {
			if got := tries[i].Sub(tries[i-1]); got < wait/2 || got >= wait/2+wait {
				t.Errorf("wait %d: %v, want [%v, %v)", i, got, wait/2, wait/2+wait)
			}
			wait = min(2*wait, MaxWait)
		}
	})
}

// TestPollError: an error of a try ends the poll at once, after abandon is given it.
func TestPollError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		failed := errors.New("connection refused")
		var tries int
		try := func() (bool, error) {
			tries++
			if tries == 3 {
				return false, failed
			}
			return false, nil
		}
		var abandoned []error
		err := Poll(t.Context(), try, func(err error) { abandoned = append(abandoned, err) })
		if !errors.Is(err, failed) {
			t.Errorf("Poll: %v, want %v", err, failed)
		}
		if tries != 3 {
			t.Errorf("%d tries, want 3", tries)
		}
		if len(abandoned) != 1 || !errors.Is(abandoned[0], failed) {
			t.Errorf("abandon given %v, want [%v]", abandoned, failed)
		}
	})
}

// TestPollContextEnds: a poll whose context ends while it waits returns the context's error, and
// abandons nothing (no try was in flight).
func TestPollContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		err := Poll(ctx, func() (bool, error) { return false, nil }, func(err error) { t.Errorf("abandon(%v)", err) })
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Poll: %v, want %v", err, context.DeadlineExceeded)
		}
		if took := time.Since(start); took != time.Second {
			t.Errorf("Poll returned after %v, want 1s", took)
		}
	})
}

type ctxKey struct{}

// TestUnlocker: the release runs once, after the lock's context ended, with a context of its own
// that keeps the lock context's values and ends UnlockTimeout after the call; a second call
// returns the first one's result.
func TestUnlocker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.WithValue(t.Context(), ctxKey{}, "v"))
		failed := errors.New("release failed")
		var calls int
		unlock := Unlocker(ctx, func(ctx context.Context) error {
			calls++
			if err := ctx.Err(); err != nil {
				t.Errorf("release's context: %v", err)
			}
			if v := ctx.Value(ctxKey{}); v != "v" {
				t.Errorf("release's context holds %v, want the lock context's value", v)
			}
			if deadline, ok := ctx.Deadline(); !ok || deadline.Sub(time.Now()) != UnlockTimeout {
				t.Errorf("release's deadline: %v (%v), want %v from now", deadline, ok, UnlockTimeout)
			}
			return failed
		})
		cancel()
		time.Sleep(time.Minute) // the lock was held a while
		for range 2 {
			if err := unlock(); !errors.Is(err, failed) {
				t.Errorf("unlock: %v, want %v", err, failed)
			}
		}
		if calls != 1 {
			t.Errorf("release ran %d times, want once", calls)
		}
	})
}
