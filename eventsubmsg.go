package twitchoauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"
)

// EventSub webhook messages: their headers and body, and the message IDs already handled, which
// a replay must not act on again.

// eventSubMessage is the body of an EventSub webhook message: a challenge's, a revocation's or a
// notification's.
type eventSubMessage struct {
	Challenge    string `json:"challenge"`
	Subscription struct {
		ID      string `json:"id"`
		Type    string `json:"type"`
		Version string `json:"version"`
		Status  string `json:"status"`
	} `json:"subscription"`
	Event json.RawMessage `json:"event"`
}

// authorizationEvent is the event of user.authorization.revoke (and .grant); the login and name
// may be null.
type authorizationEvent struct {
	ClientID string `json:"client_id"`
	UserID   string `json:"user_id"`
}

// eventSubHeaders are a message's headers, checked to be there once each.
type eventSubHeaders struct {
	id, timestamp, msgType, subType string
	sent                            time.Time
	signature                       []byte
}

// readEventSubHeaders reads a message's headers; problem says what is wrong with them.
func readEventSubHeaders(h http.Header) (hd eventSubHeaders, problem string) {
	one := func(name string) string {
		if v := h.Values(name); len(v) == 1 {
			return v[0]
		}
		return ""
	}
	var sig string
	for _, f := range []struct {
		name string
		to   *string
	}{
		{eventSubIDHeader, &hd.id},
		{eventSubTimestampHeader, &hd.timestamp},
		{eventSubSignatureHeader, &sig},
		{eventSubTypeHeader, &hd.msgType},
		{eventSubSubTypeHeader, &hd.subType},
	} {
		if *f.to = one(f.name); *f.to == "" {
			return hd, "header " + f.name + " is missing or repeated"
		}
	}
	if len(hd.id) > maxEventSubID || strings.ContainsFunc(hd.id, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return hd, "header " + eventSubIDHeader + " is not a message ID"
	}
	t, err := time.Parse(time.RFC3339Nano, hd.timestamp)
	if err != nil {
		return hd, "header " + eventSubTimestampHeader + " is not an RFC 3339 time"
	}
	hd.sent = t
	hexSig, ok := strings.CutPrefix(sig, eventSubSignaturePrefix)
	if hd.signature, err = hex.DecodeString(hexSig); !ok || err != nil || len(hd.signature) != sha256.Size {
		return hd, "header " + eventSubSignatureHeader + " is not sha256= and 64 hex digits"
	}
	return hd, ""
}

// errTooManyMessages: seenMessages holds as many IDs as it may.
var errTooManyMessages = errors.New("twitchoauth: too many EventSub messages to remember")

// seenMessages remembers the IDs of the messages handled, until they are too old to be accepted
// again, so that each is handled once. It holds at most max IDs.
type seenMessages struct {
	mu        sync.Mutex
	ids       map[string]*seenMessage
	max       int
	nextSweep time.Time
}

// seenMessage is a message being handled, or handled.
type seenMessage struct {
	expires time.Time     // when the message becomes too old to be accepted
	done    chan struct{} // closed once it was handled, or failed
	handled bool          // guarded by seenMessages.mu
}

// claim returns a new seenMessage for id, which the caller must finish, or nil when a message of
// that ID was handled already. When one is being handled, it waits for it: if that one fails,
// the caller gets to handle the message. now is the time the message's age was checked at, so
// that an ID is remembered for as long as the message is accepted.
func (s *seenMessages) claim(ctx context.Context, id string, now, expires time.Time) (*seenMessage, error) {
	for {
		s.mu.Lock()
		if !now.Before(s.nextSweep) || len(s.ids) >= s.max {
			s.sweep(now)
		}
		m := s.ids[id]
		if m == nil {
			if len(s.ids) >= s.max {
				s.mu.Unlock()
				return nil, errTooManyMessages
			}
			m = &seenMessage{expires: expires, done: make(chan struct{})}
			s.ids[id] = m
			s.mu.Unlock()
			return m, nil
		}
		handled, done := m.handled, m.done
		s.mu.Unlock()
		if handled {
			return nil, nil
		}
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// finish records the end of m's handling: a message not handled is forgotten, so that Twitch's
// next try of it is handled.
func (s *seenMessages) finish(id string, m *seenMessage, handled bool) {
	s.mu.Lock()
	m.handled = handled
	if !handled && s.ids[id] == m {
		delete(s.ids, id)
	}
	s.mu.Unlock()
	close(m.done)
}

// sweep lets go of the IDs of handled messages too old to be accepted again; s.mu is held.
func (s *seenMessages) sweep(now time.Time) {
	for id, m := range s.ids {
		if m.handled && !now.Before(m.expires) {
			delete(s.ids, id)
		}
	}
	s.nextSweep = now.Add(seenSweepEvery)
}
