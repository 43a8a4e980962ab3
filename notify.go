package twitchoauth

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

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

	// ended, once the source has ended for good (see leave), holds why: from then on no change
	// is noted or handed out. done is made by Done and closed when the source ends; guarded by
	// mu, as the change of ended is.
	ended atomic.Pointer[error]
	done  chan struct{}
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
	if n.ended.Load() == nil {
		n.queued = append(n.queued, tok)
	}
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
				if n.ended.Load() != nil || tc.rejectedAlready(tok) {
					continue // never hand out a token Twitch has refused, or one of a source that ended
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

// leave ends the source for good: its user left the registry that made it, for the reason err,
// or, with a nil err, for the error its calls return now (a grant found gone). Done is closed, the
// changes not yet handed out are dropped, and every subscription ends, so that none is handed a
// token after leave returns. It does not take refreshing, which its caller may hold. Only the
// first call does anything.
func (tc *tokenCache) leave(err error) {
	if err == nil {
		if p := tc.revokedErr(); p != nil {
			err = *p
		} else {
			err = fmt.Errorf("twitchoauth: the user left the registry: %w", ErrTokenNotFound)
		}
	}
	n := tc.listen()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ended.Load() != nil {
		return
	}
	n.ended.Store(&err)
	n.queued = nil
	if n.done != nil {
		close(n.done)
	}
	for _, sub := range n.subs {
		sub.quit()
	}
	n.subs = nil
}

// subscription is one Subscribe: a queue of changes and the goroutine that hands them to fn.
type subscription struct {
	tc   *tokenCache
	fn   func(*oauth2.Token)
	mu   sync.Mutex
	q    []*oauth2.Token
	wake chan struct{} // one slot: q has changes
	done chan struct{} // closed by quit
	once sync.Once     // for quit
	last *oauth2.Token // the last token queued; guarded by mu
}

// quit ends the subscription: its goroutine hands fn nothing more, and returns.
func (s *subscription) quit() { s.once.Do(func() { close(s.done) }) }

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
				return // the subscription was stopped, or the source ended, since tok was queued
			default:
			}
			if s.tc.rejectedAlready(tok) {
				continue // Twitch refused it since it was queued: the grant is gone
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
//
// Once the source has ended ([UserTokenSource.Done] is closed), fn is called no more, not even
// with a change made before the end that it had not been handed yet (it was busy with the one
// before), and the subscription's goroutine ends; stop is still safe to call. Subscribing to a
// source that has ended starts nothing. To hear of the end, select on Done.
func (s *UserTokenSource) Subscribe(fn func(*oauth2.Token)) (stop func()) {
	n := s.listen()
	sub := &subscription{tc: &s.tokenCache, fn: fn, wake: make(chan struct{}, 1), done: make(chan struct{})}
	n.mu.Lock()
	if n.ended.Load() != nil {
		n.mu.Unlock()
		return func() {}
	}
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
		sub.quit()
	})
}

// Done returns a channel that is closed when the source ends for good: when its user leaves the
// [UserTokens] registry that made it, removed with [UserTokens.Remove], dropped because Twitch
// rejected or revoked their grant, or gone from the store (another replica removed them). From
// then on no subscriber (see [UserTokenSource.Subscribe]) is handed a token, and the source's
// calls fail with the error [UserTokenSource.Err] returns. Use it as a [context.Context]'s Done,
// in a select: a chat bot leaves its user's channel when Done is closed, and tells from Err why.
//
// The end is final. A token set on the source afterwards ([UserTokenSource.SetToken]) makes its
// calls work again, but Done stays closed and no subscriber hears of it; a new login of the user
// makes a new source (see [UserTokens.Source]). What is not an end: a grant found gone while the
// registry keeps the user ([UserTokens.KeepRevoked]), and a refresh whose answer was lost
// ([ErrRefreshInDoubt]), which the registry keeps until the pair turns up. The source may recover
// from either (a new login, SetToken, the pair in doubt stored by the replica that got it), and
// its subscribers then hear of the new token; [UserTokens.OnRevoked] tells of both. A source that
// no registry made never ends: its Done is never closed.
//
// Done costs nothing until it is called, and the same channel is returned each time. It is safe
// for concurrent use.
func (s *UserTokenSource) Done() <-chan struct{} {
	n := s.listen()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.done == nil {
		n.done = make(chan struct{})
		if n.ended.Load() != nil {
			close(n.done)
		}
	}
	return n.done
}

// Err returns nil until [UserTokenSource.Done] is closed, and then why the source ended: the
// error its calls returned when it ended. It Is [ErrTokenNotFound] for a user removed from the
// registry (with [UserTokens.Remove]) or from the store, and [ErrInvalidRefreshToken] for one
// whose grant is gone (Twitch rejected the refresh token, or the user revoked the app's
// authorization); never [ErrRefreshInDoubt], which is no end (see Done). It makes nothing.
func (s *UserTokenSource) Err() error {
	if x := s.more.Load(); x != nil {
		if n := x.notify.Load(); n != nil {
			if err := n.ended.Load(); err != nil {
				return *err
			}
		}
	}
	return nil
}
