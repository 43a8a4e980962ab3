package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/oauth2"
)

// Reader replicas ([UserTokens.ReadOnly]): sources that never refresh, handing out the token the
// store holds, and waiting a bounded time for a writer's new pair.

// Defaults of reader replicas and their writer.
const (
	defaultReaderWait = 10 * time.Second
	// keepFreshAhead is how long before a token expires a KeepFresh writer refreshes it.
	keepFreshAhead = 10 * time.Minute
	// readerPoll is how often a reader waiting for a writer's pair reads the store when the store
	// does not report its changes (or a report is lost).
	readerPoll = time.Second
)

// errReadOnly refuses what a reader does not do.
var errReadOnly = errors.New("twitchoauth: this replica only reads tokens (UserTokens.ReadOnly)")

// reader reports whether s belongs to a reader replica; it makes nothing.
func (tc *tokenCache) reader() bool {
	e, ok := tc.listener.(*userEntry)
	return ok && e.u.ReadOnly
}

// live reports whether tok has not expired: what a reader hands out, since it cannot renew it
// before its Expiry.
func live(tok *oauth2.Token) bool {
	return tok != nil && tok.AccessToken != "" && (tok.Expiry.IsZero() || time.Now().Before(tok.Expiry))
}

// renewRead is a reader's renew: the token the store holds, if it is live and not stale (the one
// an API refused); otherwise it waits for a writer's new pair (the registry tells it of a change
// at once over a store that reports them) up to the registry's ReaderWait, and then fails with an
// error that Is ErrNoFreshToken. It sends nothing to Twitch.
func (s *UserTokenSource) renewRead(ctx context.Context, stale *oauth2.Token) (*oauth2.Token, error) {
	if stale == nil {
		if cur := s.cur.Load(); cur != nil && cur.Expiry.Equal(time.Unix(1, 0)) {
			stale = cur // refused by Twitch (see markRejected): its stored twin will not do
		}
	}
	wait := defaultReaderWait
	if e, ok := s.listener.(*userEntry); ok && e.u.ReaderWait > 0 {
		wait = e.u.ReaderWait
	}
	deadline := time.Now().Add(wait)
	changes := s.storeChanges()
	for {
		st, err := s.store.Load(ctx, s.key)
		if err != nil {
			return nil, err
		}
		if tok := st.Token(); live(tok) && (stale == nil || tok.AccessToken != stale.AccessToken) {
			s.publish(tok)
			return tok, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("twitchoauth: the stored token expired %v ago and no writer stored a new one within %v: %w",
				time.Since(st.Expiry).Round(time.Second), wait, ErrNoFreshToken)
		}
		t := time.NewTimer(min(readerPoll, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("twitchoauth: wait for the writer's new token: %w", ctx.Err())
		case <-changes:
			t.Stop()
		case <-t.C:
		}
	}
}
