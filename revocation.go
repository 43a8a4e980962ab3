package twitchoauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"
)

// What an EventSub webhook (or a conduit's webhook shard) sends: the headers of each message, its
// types, and the subscription types of a user's authorization of the app.
const (
	eventSubIDHeader        = "Twitch-Eventsub-Message-Id"
	eventSubTimestampHeader = "Twitch-Eventsub-Message-Timestamp"
	eventSubSignatureHeader = "Twitch-Eventsub-Message-Signature"
	eventSubTypeHeader      = "Twitch-Eventsub-Message-Type"
	eventSubSubTypeHeader   = "Twitch-Eventsub-Subscription-Type"

	eventSubNotification = "notification"
	eventSubVerification = "webhook_callback_verification"
	eventSubRevocation   = "revocation"

	subAuthorizationRevoke = "user.authorization.revoke"
	subAuthorizationGrant  = "user.authorization.grant"

	// eventSubSignaturePrefix starts the signature header; the HMAC's hex follows.
	eventSubSignaturePrefix = "sha256="
	// minEventSubSecret and maxEventSubSecret bound a subscription's secret, as Twitch does.
	minEventSubSecret, maxEventSubSecret = 10, 100
	// eventSubMaxAge is how old a message may be (Twitch's advice against replays); its ID is
	// remembered as long.
	eventSubMaxAge = 10 * time.Minute
	// eventSubSkew is how far in the future a message's timestamp may lie (clocks differ).
	eventSubSkew = time.Minute
	// maxEventSubID bounds a message ID (Twitch's are UUIDs, 36 bytes).
	maxEventSubID = 128
	// maxSeenMessages caps how many message IDs are remembered: about 10 MB.
	maxSeenMessages = 50_000
	// seenSweepEvery is how often the IDs past their age are let go.
	seenSweepEvery = time.Minute
	// revocationTimeout bounds the store work for one revocation; it goes on if Twitch hangs up,
	// so that what is started is finished.
	revocationTimeout = time.Minute
	// revocationReadTimeout bounds the read of a message's body, counted from when the handler
	// starts: Twitch sends a few hundred bytes at once, and a client that trickles them holds a
	// connection and a goroutine.
	revocationReadTimeout = 10 * time.Second
)

// RevocationHandler returns the handler of an EventSub webhook callback (or of a conduit's webhook
// shard) subscribed, with an app token, to user.authorization.revoke, which Twitch sends when a
// user disconnects the app; the app must then forget them (Twitch cites GDPR and CCPA). It
// follows https://dev.twitch.tv/docs/eventsub/handling-webhook-events/; the subscription type is
// at https://dev.twitch.tv/docs/eventsub/eventsub-subscription-types/#userauthorizationrevoke.
// secret is the subscription's secret, 10 to 100 ASCII characters as Twitch requires; the handler
// keeps a copy. It panics, as [NewWebLogin] does, when the secret is not such a string or the
// registry was not made by [NewUserTokens]: a handler that could verify nothing must not start.
//
// A message must be a POST whose Twitch-Eventsub-Message-Signature is "sha256=" and the hex
// HMAC-SHA256, keyed with secret, of its Twitch-Eventsub-Message-Id, its
// Twitch-Eventsub-Message-Timestamp and its body, compared in constant time. It is refused, and
// nothing changes, when a header is missing or garbled or the body is not the JSON of its type
// (400), the body is over 1 MiB (413) or has not arrived whole 10 seconds after the handler
// started (408), the signature does not match (403), or the timestamp is 10 minutes old or more,
// or more than a minute ahead (403). Each refusal is logged through the Client's Logger, without
// the secret, the signature or the body.
//
// The handler bounds the read of the body itself, through [http.ResponseController]'s read
// deadline, so that a client trickling a body cannot hold a connection for longer than the
// server's ReadTimeout allows, or for ever when it has none. Behind a ResponseWriter that cannot
// set a read deadline (middleware's, without an Unwrap method), only the server's timeouts bound
// the read: set its ReadTimeout.
//
// What a verified message does depends on its Twitch-Eventsub-Message-Type:
//   - webhook_callback_verification is answered 200 with the challenge as text/plain, which
//     enables the subscription.
//   - revocation (Twitch ended the subscription, e.g. notification_failures_exceeded) is logged
//     and answered 204.
//   - notification of user.authorization.revoke for this app's client ID removes the user as
//     [UserTokens.Remove] does, but without a request to Twitch (which revoked the grant): from
//     the registry and, under the user's lock, from the store, also when only the store holds
//     the user (another replica added them). Their source fails from then on with an error that
//     Is [ErrInvalidRefreshToken], OnRevoked hears of it with that error, and the answer, 204,
//     comes once that is done. When the store fails, the answer is 500 and Twitch sends the
//     message again. With KeepRevoked, the user stays, in the registry and the store, and their
//     source fails in the same way. A token validated after the message was sent is a new
//     login's: it is kept. An add under way ([UserTokens.AddUserForToken] or AddUserForCode)
//     whose validation was asked for before the message was sent loses to it, however the two
//     interleave: the add fails, or the user is removed once it is done.
//   - any other notification (user.authorization.grant, another client's revocation) and any
//     other message type is answered 204 and changes nothing.
//
// Twitch sends a message again when it is unsure it was received. A notification whose message
// ID was handled in the last 10 minutes is answered 204 and not handled again, as Twitch asks, so
// that neither a retry nor a replay of a captured message removes a user who has logged in again
// since; one that arrives while the first is being handled waits for it. The IDs are remembered
// by this handler only, at most 50,000 of them: past that (a flood Twitch itself signed),
// notifications are answered 503 until the oldest are 10 minutes old.
//
// Mount it at the callback's path on an https server (Twitch calls port 443). It is safe for
// concurrent use.
func (u *UserTokens) RevocationHandler(secret []byte) http.Handler {
	if u == nil || u.c == nil || u.c.ClientID == "" {
		panic("twitchoauth: RevocationHandler: the registry has no Client with a client ID: create it with NewUserTokens")
	}
	if len(secret) < minEventSubSecret || len(secret) > maxEventSubSecret || !printableASCII(secret) {
		panic(fmt.Sprintf("twitchoauth: RevocationHandler: the secret is %d bytes; it must be the %d to %d ASCII characters "+
			"the subscription was created with", len(secret), minEventSubSecret, maxEventSubSecret))
	}
	return &revocationHandler{
		u:           u,
		secret:      slices.Clone(secret),
		now:         time.Now,
		seen:        seenMessages{ids: map[string]*seenMessage{}, max: maxSeenMessages},
		readTimeout: revocationReadTimeout,
	}
}

// printableASCII reports whether b is printable ASCII, as Twitch requires of a secret.
func printableASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// revocationHandler is the handler RevocationHandler returns.
type revocationHandler struct {
	u      *UserTokens
	secret []byte
	now    func() time.Time
	seen   seenMessages
	// readTimeout is how long the body may take to arrive: revocationReadTimeout.
	readTimeout time.Duration
}

func (h *revocationHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.refuse(w, r, http.StatusMethodNotAllowed, "not a POST", "")
		return
	}
	hd, problem := readEventSubHeaders(r.Header)
	if problem != "" {
		h.refuse(w, r, http.StatusBadRequest, problem, "")
		return
	}
	body, err := h.readBody(w, r)
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			h.refuse(w, r, http.StatusRequestEntityTooLarge, "the body is over 1 MiB", "")
		} else if errors.Is(err, os.ErrDeadlineExceeded) {
			h.refuse(w, r, http.StatusRequestTimeout, fmt.Sprintf("the body did not arrive within %v", h.readTimeout), "")
		} else {
			h.refuse(w, r, http.StatusBadRequest, "the body could not be read", "")
		}
		return
	}
	if !hmac.Equal(hd.signature, h.sign(hd, body)) {
		h.refuse(w, r, http.StatusForbidden, "the signature does not match (forged, or signed with another secret)", "")
		return
	}
	// From here on the message is Twitch's: its ID may be logged.
	now := h.now()
	expires := hd.sent.Add(eventSubMaxAge)
	switch {
	case !now.Before(expires):
		h.refuse(w, r, http.StatusForbidden, "the message is 10 minutes old or more (a replay?)", hd.id)
		return
	case hd.sent.Sub(now) > eventSubSkew:
		h.refuse(w, r, http.StatusForbidden, "the message's timestamp is in the future", hd.id)
		return
	}
	var msg eventSubMessage
	if json.Unmarshal(body, &msg) != nil {
		h.refuse(w, r, http.StatusBadRequest, "the body is not an EventSub message's JSON", hd.id)
		return
	}
	// The type headers are not signed: what is acted on is the body's subscription type (which
	// the header must name) and event; a message type changed in a replay changes nothing.
	if msg.Subscription.Type != hd.subType {
		h.refuse(w, r, http.StatusBadRequest, "the subscription type header is not the body's", hd.id)
		return
	}
	attrs := []slog.Attr{slog.String("message_id", hd.id), slog.String("subscription_type", hd.subType)}
	switch hd.msgType {
	case eventSubVerification:
		if msg.Challenge == "" {
			h.refuse(w, r, http.StatusBadRequest, "the verification carries no challenge", hd.id)
			return
		}
		h.u.log(ctx, slog.LevelInfo, "twitchoauth: EventSub subscription verified",
			append(attrs, slog.String("subscription_id", msg.Subscription.ID))...)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, msg.Challenge)
		return
	case eventSubRevocation:
		h.u.log(ctx, slog.LevelWarn, "twitchoauth: Twitch ended an EventSub subscription; create it again to hear of revoked users",
			append(attrs, slog.String("subscription_id", msg.Subscription.ID), slog.String("status", msg.Subscription.Status))...)
		w.WriteHeader(http.StatusNoContent)
		return
	case eventSubNotification:
	default:
		h.u.log(ctx, slog.LevelInfo, "twitchoauth: ignored an EventSub message of an unknown type", attrs...)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	switch msg.Subscription.Type {
	case subAuthorizationRevoke:
	case subAuthorizationGrant:
		// A user authorized the app: they are added when their login reaches the registry.
		h.u.log(ctx, slog.LevelDebug, "twitchoauth: a user authorized the app", attrs...)
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		h.u.log(ctx, slog.LevelInfo, "twitchoauth: ignored an EventSub notification the revocation handler does not handle", attrs...)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var ev authorizationEvent
	if json.Unmarshal(msg.Event, &ev) != nil || ev.ClientID == "" || ev.UserID == "" {
		h.refuse(w, r, http.StatusBadRequest, "the notification's event lacks a client ID or user ID", hd.id)
		return
	}
	if ev.ClientID != h.u.c.ClientID {
		h.u.log(ctx, slog.LevelInfo, "twitchoauth: ignored the revocation of another client's authorization",
			append(attrs, slog.String("client_id", ev.ClientID))...)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.revoke(w, r, hd, ev.UserID, now, expires)
}

// readBody reads r's body, at most 1 MiB, which must arrive whole within h.readTimeout: it sets
// the connection's read deadline, whatever the server's ReadTimeout. Once the body is read the
// deadline is taken off, so that the server's read in the background (which watches for the
// client hanging up while the handler works) does not time out and end the request's context.
// After a failed read it stays: before it answers, the server reads on to drain the body, which
// must fail at once rather than wait for the trickle. When
// w cannot set a deadline (a ResponseWriter that wraps the server's without an Unwrap method),
// only the server's timeouts bound the read.
func (h *revocationHandler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	rc := http.NewResponseController(w)
	bounded := rc.SetReadDeadline(time.Now().Add(h.readTimeout)) == nil
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodySize))
	if err == nil && bounded {
		rc.SetReadDeadline(time.Time{})
	}
	return body, err
}

// revoke handles a verified user.authorization.revoke notification of this app for userID, once
// per message ID.
func (h *revocationHandler) revoke(w http.ResponseWriter, r *http.Request, hd eventSubHeaders, userID string, now, expires time.Time) {
	m, err := h.seen.claim(r.Context(), hd.id, now, expires)
	switch {
	case errors.Is(err, errTooManyMessages):
		h.u.log(r.Context(), slog.LevelWarn, "twitchoauth: too many EventSub messages to remember; Twitch will send this one again",
			slog.String("message_id", hd.id))
		http.Error(w, "too many messages", http.StatusServiceUnavailable)
		return
	case err != nil:
		http.Error(w, "gave up waiting", http.StatusServiceUnavailable) // Twitch hung up
		return
	case m == nil:
		h.u.log(r.Context(), slog.LevelDebug, "twitchoauth: an EventSub message handled already",
			slog.String("message_id", hd.id), keyAttr("user_id", userID))
		w.WriteHeader(http.StatusNoContent)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), revocationTimeout)
	defer cancel()
	err = h.u.dropRevoked(ctx, userID, hd.sent)
	h.seen.finish(hd.id, m, err == nil)
	if err != nil {
		h.u.log(ctx, slog.LevelError, "twitchoauth: remove a user who revoked the app's authorization; Twitch will send it again",
			slog.String("message_id", hd.id), keyAttr("user_id", userID), slog.String("error", err.Error()))
		http.Error(w, "the user could not be removed", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// dropRevoked forgets userID, whose authorization of the app Twitch said at sent is gone: it
// deletes the user's stored token (unless KeepRevoked), under the user's lock, without a request
// to Twitch, and ends the user's source; then OnRevoked hears of it. It acts, as Remove does, on a
// user the registry knows or whose stored token names them, and leaves alone a token validated
// after sent, which a new login stored since.
func (u *UserTokens) dropRevoked(ctx context.Context, userID string, sent time.Time) error {
	// Before the lock: an add under way checks under it (see overtaken).
	u.revocations.record(userID, sent, time.Now())
	var (
		e      *userEntry
		stored bool // the store held the user's token
		newer  bool // the stored token outlived the revocation
	)
	err := withStored(ctx, u.c, u.store, userID, u.LockTTL, func(ctx context.Context, st *StoredToken, err error) error {
		u.mu.RLock()
		e = u.users[userID]
		u.mu.RUnlock()
		switch {
		case errors.Is(err, ErrTokenNotFound):
			return nil
		case e == nil && (err != nil || st.UserID != userID):
			return nil // not the user's token: left alone, as Remove does
		case err == nil && st.ValidatedAt.After(sent):
			newer = true
			return nil
		}
		stored = true
		if u.KeepRevoked {
			return nil
		}
		return u.store.Delete(ctx, userID)
	})
	if err != nil {
		return fmt.Errorf("twitchoauth: remove a revoked user: %w", err)
	}
	if newer {
		u.log(ctx, slog.LevelInfo, "twitchoauth: kept a user whose revocation came after a new login",
			keyAttr("user_id", userID))
		return nil
	}
	if e == nil && !stored {
		u.log(ctx, slog.LevelDebug, "twitchoauth: a user the registry does not hold revoked the app's authorization",
			keyAttr("user_id", userID))
		return nil
	}
	cause := revokedCause(userID)
	if e != nil {
		if u.KeepRevoked {
			if err := e.src.end(ctx, cause); err != nil {
				return fmt.Errorf("twitchoauth: end a revoked user's source: %w", err)
			}
		} else {
			u.forget(ctx, e, cause)
		}
	}
	u.log(ctx, slog.LevelWarn, "twitchoauth: a user revoked the app's authorization; they must log in again",
		keyAttr("user_id", userID))
	if f := u.OnRevoked; f != nil {
		f(userID, cause)
	}
	return nil
}

// revokedCause is the error a revoked user's source fails with, and OnRevoked hears.
func revokedCause(userID string) error {
	return fmt.Errorf("twitchoauth: user %q revoked the app's authorization (EventSub %s); they must log in again: %w",
		userID, subAuthorizationRevoke, ErrInvalidRefreshToken)
}

// revokedMidAddError is the error of an add of a user that a revocation Twitch sent after the
// add's validation was asked for overtook. It Is [ErrInvalidToken]: Twitch revoked the token.
type revokedMidAddError struct{ userID string }

func (e *revokedMidAddError) Error() string {
	return fmt.Sprintf("twitchoauth: add user: user %q revoked the app's authorization (EventSub %s) after their token "+
		"was sent to be validated; they must log in again: %v", e.userID, subAuthorizationRevoke, ErrInvalidToken)
}

func (e *revokedMidAddError) Is(target error) bool { return target == ErrInvalidToken }

// isRevokedMidAdd reports whether err is an add's that a revocation overtook.
func isRevokedMidAdd(err error) bool {
	var e *revokedMidAddError
	return errors.As(err, &e)
}

// overtaken ends e, the entry an add has just registered (or handed its token to), when a
// revocation of e's user that Twitch sent at or after validated, when the add's validation was
// asked for, was handled meanwhile: it may have found the user neither in the registry nor in the
// store, or have deleted the stored token before e was registered. It returns the add's error
// then, and nil otherwise. The revocation stands as if it had come after the add: the user is
// forgotten, or with KeepRevoked their source fails.
//
// dropRevoked records a revocation before it takes the user's lock, and an add checks for one
// under the lock, before it stores the token, and here, after it registered the user: a
// revocation either ends the add under the lock, or finds its stored token and deletes it, and
// then either finds e registered and ends it, or is seen here.
func (u *UserTokens) overtaken(ctx context.Context, e *userEntry, validated time.Time) error {
	userID := e.src.key
	if !u.revocations.since(userID, validated) {
		return nil
	}
	cause := revokedCause(userID)
	if u.KeepRevoked {
		if err := e.src.end(ctx, cause); err != nil {
			u.log(ctx, slog.LevelWarn, "twitchoauth: end a revoked user's source", keyAttr("user_id", userID),
				slog.String("error", err.Error()))
		}
	} else {
		u.forget(ctx, e, cause)
	}
	return &revokedMidAddError{userID}
}

// recentRevocations remembers the users whose user.authorization.revoke notifications were
// handled in the last 10 minutes, with the latest time Twitch sent one and the latest time one was
// handled, so that an add under way when one came does not keep the user (see
// overtaken). It holds at most
// maxSeenMessages users: past that, a revocation is not remembered, and the user an add kept
// meanwhile is found out at their next validation. The zero value is ready to use.
type recentRevocations struct {
	mu        sync.Mutex
	users     map[string]heardRevocation
	nextSweep time.Time
}

// heardRevocation is when Twitch sent a user's latest revocation, and when it was handled.
type heardRevocation struct{ sent, heard time.Time }

// record remembers that userID's revocation, sent at sent, is handled at now.
func (r *recentRevocations) record(userID string, sent, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.users == nil {
		r.users = map[string]heardRevocation{}
	}
	if !now.Before(r.nextSweep) || len(r.users) >= maxSeenMessages {
		for id, h := range r.users {
			if now.Sub(h.heard) >= eventSubMaxAge {
				delete(r.users, id)
			}
		}
		r.nextSweep = now.Add(seenSweepEvery)
	}
	h, ok := r.users[userID]
	if !ok && len(r.users) >= maxSeenMessages {
		return
	}
	if !ok || sent.After(h.sent) {
		h.sent = sent
	}
	if !ok || now.After(h.heard) {
		h.heard = now
	}
	r.users[userID] = h
}

// since reports whether a revocation of userID was handled in the last 10 minutes that wins over
// an add whose validation was asked for at t: one Twitch sent at or after t (the rule dropRevoked
// applies to a stored token), and handled after t. A validation asked for once the revocation was
// handled, which Twitch answered that the token is valid, is a new login's, also when Twitch's
// clock runs ahead of this one and its timestamp is later.
func (r *recentRevocations) since(userID string, t time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, ok := r.users[userID]
	return ok && !t.After(h.sent) && t.Before(h.heard) && time.Since(h.heard) < eventSubMaxAge
}

// sign returns the HMAC-SHA256 of a message: its ID, timestamp and body, as sent.
func (h *revocationHandler) sign(hd eventSubHeaders, body []byte) []byte {
	m := hmac.New(sha256.New, h.secret)
	m.Write([]byte(hd.id))
	m.Write([]byte(hd.timestamp))
	m.Write(body)
	return m.Sum(nil)
}

// refuse answers a message that is not acted on with status and logs why. id is the message's ID
// once its signature is checked; before, what the message says is not repeated.
func (h *revocationHandler) refuse(w http.ResponseWriter, r *http.Request, status int, why, id string) {
	attrs := []slog.Attr{slog.Int("status", status), slog.String("reason", why), slog.String("remote_addr", r.RemoteAddr)}
	if id != "" {
		attrs = append(attrs, slog.String("message_id", id))
	}
	h.u.log(r.Context(), slog.LevelWarn, "twitchoauth: refused an EventSub message", attrs...)
	http.Error(w, http.StatusText(status)+": "+why, status)
}
