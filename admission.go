package twitchoauth

import "context"

// A registry's renewals take turns: at most maxRenewals of them work at once, the others wait for
// a turn before they make anything (before the lock of the user's token, too: a caller that finds
// another renewing the same token gives its turn back while it waits). Ten thousand users whose
// tokens expire together then cost ten thousand parked goroutines with small stacks, not ten
// thousand renewals half made, each with its request built and its stack grown, queued for the
// transport's connections (64 a host by default). A renewal gives its turn back while it waits for
// another holder (the key's lock, another holder's mark), so that a wait of seconds never holds up
// the users behind it; granted the lock, it takes a turn back only if one is free, so that it
// never holds the lock queued for a turn.

// maxRenewals is how many renewals work at once: twice the default transport's connections to a
// host, so that a renewal's store work overlaps another's request. A renewal granted a lock it
// waited for goes on without a turn when none is free (see waitingForLock), so that many more
// work at once only while as many waited for other holders.
const maxRenewals = 2 * maxConnsPerHost

// turnKey is the context key of a renewal's *turn.
type turnKey struct{}

// turn is a renewal's claim on one of its registry's turns (a channel holding a value per
// renewal at work); only the renewal's goroutine uses it.
type turn struct {
	turns chan struct{}
	held  bool
}

// admit waits for one of turns, unless later is set (another caller renews the same token: this
// one takes a turn only if it must renew after all, see haveTurn), and returns the context the
// renewal works with, which carries the turn, and the func that gives it back. It fails only when
// ctx ends first. With nil turns (a source of no registry), it returns at once.
func admit(ctx context.Context, turns chan struct{}, later bool) (context.Context, func(), error) {
	if turns == nil {
		return ctx, func() {}, nil
	}
	if later {
		t := &turn{turns: turns}
		return context.WithValue(ctx, turnKey{}, t), t.give, nil
	}
	// The turn is made once it is had: a waiter holds nothing. A waiter parks on the least stack
	// it can: a ctx that never ends (Token's) waits in a plain send, whose frames are a third of
	// a select's, and the renewal's own frames come after the turn (see refreshAdmitted). Parked
	// within a quarter of the goroutine's stack, it keeps (or is shrunk back to) the least stack,
	// 2 KB: ten thousand callers of Token park in 22 MB of stacks, not 40.
	if done := ctx.Done(); done == nil {
		turns <- struct{}{}
	} else {
		select {
		case turns <- struct{}{}:
		case <-done:
			return ctx, func() {}, ctx.Err()
		}
	}
	t := &turn{turns: turns, held: true}
	return context.WithValue(ctx, turnKey{}, t), t.give, nil
}

// take waits for a turn, or for ctx to end.
func (t *turn) take(ctx context.Context) error {
	if t.held {
		return nil
	}
	select {
	case t.turns <- struct{}{}:
		t.held = true
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// give gives the turn back, if it is held.
func (t *turn) give() {
	if t.held {
		t.held = false
		<-t.turns
	}
}

// haveTurn takes a turn again for the renewal of ctx when it gave its turn back (it waited for
// another caller's renewal of the same token), or waits for ctx to end.
func haveTurn(ctx context.Context) error {
	if t, _ := ctx.Value(turnKey{}).(*turn); t != nil {
		return t.take(ctx)
	}
	return nil
}

// waitingForOthers gives back the turn of the renewal of ctx, if it holds one, while it waits for
// another holder; the func it returns takes a turn again. When ctx ends first, the renewal goes on
// without one: it is about to end.
func waitingForOthers(ctx context.Context) (resume func()) {
	t, _ := ctx.Value(turnKey{}).(*turn)
	if t == nil || !t.held {
		return func() {}
	}
	t.give()
	return func() { t.take(ctx) }
}

// waitingForLock is waitingForOthers for a wait for the key's lock (see take). The func it
// returns is told whether the wait ended holding the lock: then it takes a turn again only if one
// is free, and otherwise lets the renewal go on without one, since queued for a turn with the
// lock held it would hold up the key's other holders (another replica's renewal, a save) and
// spend its lease waiting. Without the lock, it waits for a turn, as waitingForOthers's does.
func waitingForLock(ctx context.Context) (resume func(locked bool)) {
	t, _ := ctx.Value(turnKey{}).(*turn)
	if t == nil || !t.held {
		return func(bool) {}
	}
	t.give()
	return func(locked bool) {
		if !locked {
			t.take(ctx)
			return
		}
		select {
		case t.turns <- struct{}{}:
			t.held = true
		default:
		}
	}
}

// holdsTurn reports whether the renewal of ctx holds a turn.
func holdsTurn(ctx context.Context) bool {
	t, _ := ctx.Value(turnKey{}).(*turn)
	return t != nil && t.held
}
