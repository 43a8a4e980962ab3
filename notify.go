package twitchoauth

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"golang.org/x/oauth2"
)

// maxQueued caps the changes a subscriber that has not taken them yet is owed: past it, the oldest
// are dropped (a newer token makes them moot).
const maxQueued = 64

// notifier hands the changes of a source's token to its listeners, in the order they happened. It
// exists only once someone listens: a source without listeners pays one nil pointer.
type notifier struct {
	// mu guards queued, which changes are appended to holding the source's refreshing lock, so
	// in the order they happened.
	mu     sync.Mutex
	queued []*oauth2.Token
	// delivering is held by the goroutine handing queued changes out; the others leave it to
	// that one, so that no Token caller waits for a listener.
	delivering sync.Mutex
	// The source's listener, if it hears changes (a registry's OnRefresh), hears each from the
	// goroutine delivering it; subs are the subscriptions, each with a goroutine of its own.
	subs []*subscription // copied on write; guarded by mu
}

// listen returns tc's notifier, making it if need be.
func (tc *tokenCache) listen() *notifier {
	x := tc.state()
	for {
		if n := x.notify.Load(); n != nil {
			return n
		}
		x.notify.CompareAndSwap(nil, &notifier{})
	}
}

// noteChange records that tok is now the token held and persisted; refreshing is held. It is
// handed out when the lock is released (see unlock).
func (tc *tokenCache) noteChange(tok *oauth2.Token) {
	if tok == nil {
		return
	}
	n := tc.state().notify.Load()
	if n == nil {
		if tc.listener == nil || !tc.listener.hearsChanges() {
			return
		}
		n = tc.listen() // made on the first change, not for each of a registry's sources
	}
	n.mu.Lock()
	n.queued = append(n.queued, tok)
	n.mu.Unlock()
}

// deliver hands the recorded changes out in order, unless another goroutine is doing so (it
// takes these too). Refreshing is not held.
func (tc *tokenCache) deliver() {
	x := tc.more.Load()
	if x == nil {
		return
	}
	n := x.notify.Load()
	if n == nil {
		return
	}
	for {
		n.mu.Lock()
		empty := len(n.queued) == 0
		n.mu.Unlock()
		if empty || !n.delivering.TryLock() {
			return
		}
		for {
			n.mu.Lock()
			batch := n.queued
			n.queued = nil
			subs := n.subs
			n.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for _, tok := range batch {
				if tc.rejectedAlready(tok) {
					continue // never hand out a token Twitch has refused
				}
				if l := tc.listener; l != nil {
					tc.safely(func() { l.changed(tok) })
				}
				for _, s := range subs {
					s.push(tok)
				}
			}
		}
		n.delivering.Unlock()
	}
}

// rejectedAlready reports whether Twitch has said tok is invalid since it was recorded.
func (tc *tokenCache) rejectedAlready(tok *oauth2.Token) bool {
	cur := tc.cur.Load()
	return cur != nil && cur != tok && cur.AccessToken == tok.AccessToken && !fresh(cur)
}

// safely calls fn, logging a panic through the Client's Logger instead of letting it end the
// program or lose what the caller was doing.
func (tc *tokenCache) safely(fn func()) {
	defer func() {
		if r := recover(); r != nil && tc.c.Logger != nil {
			tc.c.Logger.LogAttrs(context.Background(), slog.LevelError, "twitchoauth: a token listener panicked",
				slog.String("panic", fmt.Sprint(r)))
		}
	}()
	fn()
}

// subscription is one Subscribe: a queue of changes and the goroutine that hands them to fn.
type subscription struct {
	tc   *tokenCache
	fn   func(*oauth2.Token)
	mu   sync.Mutex
	q    []*oauth2.Token
	wake chan struct{} // one slot: q has changes
	done chan struct{} // closed by stop
	last *oauth2.Token // the last token queued; guarded by mu
}

func (s *subscription) push(tok *oauth2.Token) {
	s.mu.Lock()
	if tok == s.last {
		s.mu.Unlock()
		return // the token it was first handed, noted as a change just before
	}
	s.last = tok
	if len(s.q) == maxQueued {
		s.q = slices.Delete(s.q, 0, 1)
	}
	s.q = append(s.q, tok)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run hands the queued changes to fn, one at a time, until stop.
func (s *subscription) run() {
	for {
		select {
		case <-s.done:
			return
		case <-s.wake:
		}
		for {
			s.mu.Lock()
			if len(s.q) == 0 {
				s.mu.Unlock()
				break
			}
			tok := s.q[0]
			s.q = slices.Delete(s.q, 0, 1)
			s.mu.Unlock()
			select {
			case <-s.done:
				return
			default:
			}
			s.tc.safely(func() { s.fn(tok) })
		}
	}
}

// Subscribe calls fn with the token the source holds now, when it holds one it would hand out,
// and then after every change of it: a refresh, a token handed over by [UserTokenSource.SetToken]
// (or a registry's AddUserForToken), and a token another replica refreshed and stored, which this
// source took up. Calls come in the order of the changes, one at a time, each once the store (or
// onRefresh) has the pair, and never with a token Twitch has refused. Use it to keep a long-lived
// connection's credentials current, with nothing to read first: an IRC client's password, an
// EventSub WebSocket's subscriptions.
//
// fn runs in a goroutine of the subscription's own, which Subscribe starts and stop ends: a slow
// fn holds no Token caller, and a panic in fn is logged and the next change delivered. A
// subscriber that falls 64 changes behind loses the oldest. stop ends the subscription: fn is not
// called after stop returns, except for a call already under way, which stop does not wait for.
// stop may be called more than once.
func (s *UserTokenSource) Subscribe(fn func(*oauth2.Token)) (stop func()) {
	n := s.listen()
	sub := &subscription{tc: &s.tokenCache, fn: fn, wake: make(chan struct{}, 1), done: make(chan struct{})}
	n.mu.Lock()
	n.subs = append(slices.Clip(n.subs), sub)
	// Under n.mu, so that a change noted from now on is queued after it.
	if tok := s.cur.Load(); fresh(tok) {
		sub.push(tok)
	}
	n.mu.Unlock()
	go sub.run()
	return sync.OnceFunc(func() {
		n.mu.Lock()
		n.subs = slices.DeleteFunc(slices.Clone(n.subs), func(x *subscription) bool { return x == sub })
		n.mu.Unlock()
		close(sub.done)
	})
}
