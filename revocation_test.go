package twitchoauth

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// revocationSecret is the subscription's secret in these tests.
const revocationSecret = "webhook-secret-0123456789"

// revocationMessage is an EventSub message as Twitch sends it to a webhook.
type revocationMessage struct {
	id, msgType, subType string
	sent                 time.Time
	body                 []byte
}

// revokeBody is the body of a user.authorization.revoke notification.
func revokeBody(clientID, userID string) []byte {
	return fmt.Appendf(nil, `{"subscription":{"id":"f1c2a387-161a-49f9-a165-0f21d7a4e1c4","status":"enabled",`+
		`"type":"user.authorization.revoke","version":"1","condition":{"client_id":%q},`+
		`"transport":{"method":"webhook","callback":"https://example.com/webhooks/callback"},`+
		`"created_at":"2019-11-16T10:11:12.634234626Z","cost":0},`+
		`"event":{"client_id":%q,"user_id":%q,"user_login":null,"user_name":null}}`, clientID, clientID, userID)
}

// revokeMessage is the notification that userID revoked clientID's authorization, sent now.
func revokeMessage(clientID, userID string) revocationMessage {
	return revocationMessage{id: rand.Text(), msgType: eventSubNotification, subType: subAuthorizationRevoke,
		sent: time.Now(), body: revokeBody(clientID, userID)}
}

// grantMessage is the notification that userID authorized clientID.
func grantMessage(clientID, userID string) revocationMessage {
	m := revokeMessage(clientID, userID)
	m.subType = subAuthorizationGrant
	m.body = []byte(strings.ReplaceAll(string(m.body), subAuthorizationRevoke, subAuthorizationGrant))
	return m
}

// challengeMessage is the verification of a new subscription to user.authorization.revoke.
func challengeMessage(challenge string) revocationMessage {
	return revocationMessage{id: rand.Text(), msgType: eventSubVerification, subType: subAuthorizationRevoke, sent: time.Now(),
		body: fmt.Appendf(nil, `{"challenge":%q,"subscription":{"id":"f1c2a387-161a-49f9-a165-0f21d7a4e1c4",`+
			`"status":"webhook_callback_verification_pending","type":"user.authorization.revoke","version":"1",`+
			`"cost":0,"condition":{"client_id":"x"},"transport":{"method":"webhook","callback":"https://example.com/cb"},`+
			`"created_at":"2019-11-16T10:11:12.634234626Z"}}`, challenge)}
}

// signature returns the signature header of m made with secret.
func (m revocationMessage) signature(secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(m.id + m.sent.UTC().Format(time.RFC3339Nano)))
	mac.Write(m.body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// request returns m as Twitch posts it, signed with secret.
func (m revocationMessage) request(secret string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/eventsub", bytes.NewReader(m.body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(eventSubIDHeader, m.id)
	req.Header.Set(eventSubTimestampHeader, m.sent.UTC().Format(time.RFC3339Nano))
	req.Header.Set(eventSubSignatureHeader, m.signature(secret))
	req.Header.Set(eventSubTypeHeader, m.msgType)
	req.Header.Set(eventSubSubTypeHeader, m.subType)
	req.Header.Set("Twitch-Eventsub-Message-Retry", "0")
	req.Header.Set("Twitch-Eventsub-Subscription-Version", "1")
	return req
}

// revocationStore is a memStore whose Delete fails while failing is above zero.
type revocationStore struct {
	*memStore
	failing atomic.Int32
}

func (s *revocationStore) Delete(ctx context.Context, key string) error {
	if s.failing.Load() > 0 {
		s.failing.Add(-1)
		return errors.New("store unreachable")
	}
	return s.memStore.Delete(ctx, key)
}

// revocationFixture is a registry holding user 100 (intent "chat"), whose source src was taken
// before any message, and its revocation handler.
type revocationFixture struct {
	c     *Client
	fake  *faketwitch.Server
	store *revocationStore
	u     *UserTokens
	h     http.Handler
	src   *UserTokenSource
	logs  *syncBuffer

	mu      sync.Mutex
	revoked []string // OnRevoked's users
	causes  []error  // and errors
}

func newRevocationFixture(t *testing.T) *revocationFixture {
	t.Helper()
	f := &revocationFixture{store: &revocationStore{memStore: newMemStore()}}
	f.c, f.fake = newTestClient(t)
	f.c.Logger, f.logs = captureLog()
	f.u = NewUserTokens(f.c, f.store)
	f.u.OnRevoked = func(userID string, err error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.revoked = append(f.revoked, userID)
		f.causes = append(f.causes, err)
	}
	if _, err := f.u.AddUserForToken(t.Context(), newUser(f.fake, "100", 0), "chat"); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.src, err = f.u.Source("100"); err != nil {
		t.Fatal(err)
	}
	f.h = f.u.RevocationHandler([]byte(revocationSecret))
	return f
}

// serve sends req to the handler and returns its answer.
func (f *revocationFixture) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func (f *revocationFixture) revokedUsers() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.revoked)
}

// assertKept checks that user 100 is registered, stored and usable, that OnRevoked was not
// called, and that nothing was revoked at Twitch.
func (f *revocationFixture) assertKept(t *testing.T) {
	t.Helper()
	if !slices.Contains(f.u.Users(), "100") {
		t.Error("user 100 left the registry")
	}
	if f.store.stored("100") == nil {
		t.Error("user 100's token left the store")
	}
	if _, err := f.src.Token(); err != nil {
		t.Errorf("user 100's source fails: %v", err)
	}
	if got := f.revokedUsers(); len(got) != 0 {
		t.Errorf("OnRevoked called for %q", got)
	}
	if n := f.fake.CountRequests("revoke"); n != 0 {
		t.Errorf("%d requests to Twitch's revoke endpoint", n)
	}
}

// assertRemoved checks that user 100 is gone from the registry and the store, that its source
// fails with an error that Is ErrInvalidRefreshToken, that OnRevoked heard of it once with such an
// error, and that nothing was revoked at Twitch.
func (f *revocationFixture) assertRemoved(t *testing.T) {
	t.Helper()
	if slices.Contains(f.u.Users(), "100") {
		t.Error("user 100 is still registered")
	}
	if _, err := f.u.SourceForIntent("chat"); !errors.Is(err, ErrTokenNotFound) {
		t.Errorf("SourceForIntent(chat) err = %v, want ErrTokenNotFound", err)
	}
	if f.store.stored("100") != nil {
		t.Error("user 100's token is still stored")
	}
	if _, err := f.src.Token(); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Errorf("user 100's source: err = %v, want ErrInvalidRefreshToken", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Equal(f.revoked, []string{"100"}) {
		t.Errorf("OnRevoked called for %q, want once for 100", f.revoked)
	} else if err := f.causes[0]; !errors.Is(err, ErrInvalidRefreshToken) || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("OnRevoked err = %v, want one that says the user revoked and Is ErrInvalidRefreshToken", err)
	}
	if n := f.fake.CountRequests("revoke"); n != 0 {
		t.Errorf("%d requests to Twitch's revoke endpoint; Twitch revoked the grant already", n)
	}
}

// revocationAttacks are messages the handler must refuse, with the status it answers, for user
// 100 of the fixture's client. Each has everything right but what it is named after.
func revocationAttacks() []struct {
	name   string
	status int
	req    func() *http.Request
} {
	ok := func() revocationMessage { return revokeMessage(faketwitch.ClientID, "100") }
	without := func(header string) func() *http.Request {
		return func() *http.Request {
			req := ok().request(revocationSecret)
			req.Header.Del(header)
			return req
		}
	}
	with := func(header, value string) func() *http.Request {
		return func() *http.Request {
			req := ok().request(revocationSecret)
			req.Header.Set(header, value)
			return req
		}
	}
	signedBody := func(body string) func() *http.Request {
		return func() *http.Request {
			m := ok()
			m.body = []byte(body)
			return m.request(revocationSecret)
		}
	}
	oversize := func(knownLength bool) func() *http.Request {
		return func() *http.Request {
			m := ok()
			m.body = append(m.body, bytes.Repeat([]byte(" "), maxBodySize)...) // still JSON
			req := m.request(revocationSecret)
			if !knownLength {
				req.ContentLength = -1
			}
			return req
		}
	}
	return []struct {
		name   string
		status int
		req    func() *http.Request
	}{
		{"bad signature", http.StatusForbidden, func() *http.Request {
			m := ok()
			req := m.request(revocationSecret)
			sig := []byte(m.signature(revocationSecret))
			if sig[len(sig)-1] == '0' { // another hex digit
				sig[len(sig)-1] = '1'
			} else {
				sig[len(sig)-1] = '0'
			}
			req.Header.Set(eventSubSignatureHeader, string(sig))
			return req
		}},
		{"signature of another body", http.StatusForbidden, func() *http.Request {
			m := ok()
			req := m.request(revocationSecret)
			m.body = revokeBody(faketwitch.ClientID, "200")
			req.Header.Set(eventSubSignatureHeader, m.signature(revocationSecret))
			return req
		}},
		{"signature with another secret", http.StatusForbidden, func() *http.Request {
			return ok().request("another-secret-0123456789")
		}},
		{"signature with no secret", http.StatusForbidden, func() *http.Request { return ok().request("") }},
		{"challenge with another secret", http.StatusForbidden, func() *http.Request {
			return challengeMessage("pogchamp").request("another-secret-0123456789")
		}},
		{"missing message ID", http.StatusBadRequest, without(eventSubIDHeader)},
		{"missing timestamp", http.StatusBadRequest, without(eventSubTimestampHeader)},
		{"missing signature", http.StatusBadRequest, without(eventSubSignatureHeader)},
		{"missing message type", http.StatusBadRequest, without(eventSubTypeHeader)},
		{"missing subscription type", http.StatusBadRequest, without(eventSubSubTypeHeader)},
		{"repeated signature", http.StatusBadRequest, func() *http.Request {
			req := ok().request(revocationSecret)
			req.Header.Add(eventSubSignatureHeader, req.Header.Get(eventSubSignatureHeader))
			return req
		}},
		{"garbled timestamp", http.StatusBadRequest, with(eventSubTimestampHeader, "yesterday")},
		{"signature of another algorithm", http.StatusBadRequest, with(eventSubSignatureHeader, "md5=0123456789abcdef0123456789abcdef")},
		{"signature not hex", http.StatusBadRequest, with(eventSubSignatureHeader, "sha256="+strings.Repeat("zz", 32))},
		{"signature too short", http.StatusBadRequest, with(eventSubSignatureHeader, "sha256=abcd")},
		{"message ID too long", http.StatusBadRequest, func() *http.Request {
			m := ok()
			m.id = strings.Repeat("a", maxEventSubID+1)
			return m.request(revocationSecret)
		}},
		{"old timestamp", http.StatusForbidden, func() *http.Request {
			m := ok()
			m.sent = time.Now().Add(-eventSubMaxAge - time.Second)
			return m.request(revocationSecret)
		}},
		{"future timestamp", http.StatusForbidden, func() *http.Request {
			m := ok()
			m.sent = time.Now().Add(5 * time.Minute)
			return m.request(revocationSecret)
		}},
		{"oversize body", http.StatusRequestEntityTooLarge, oversize(true)},
		{"oversize body of unknown length", http.StatusRequestEntityTooLarge, oversize(false)},
		{"body not JSON", http.StatusBadRequest, signedBody(`user_id=100`)},
		{"JSON with trailing garbage", http.StatusBadRequest, signedBody(string(revokeBody(faketwitch.ClientID, "100")) + "}")},
		{"field of the wrong type", http.StatusBadRequest, signedBody(strings.Replace(string(revokeBody(faketwitch.ClientID, "100")),
			`"cost":0`, `"cost":0,"id":7`, 1))},
		{"event missing", http.StatusBadRequest, signedBody(`{"subscription":{"type":"user.authorization.revoke","version":"1"}}`)},
		{"event without user ID", http.StatusBadRequest, signedBody(`{"subscription":{"type":"user.authorization.revoke"},` +
			`"event":{"client_id":"` + faketwitch.ClientID + `","user_id":""}}`)},
		{"event not an object", http.StatusBadRequest, signedBody(`{"subscription":{"type":"user.authorization.revoke"},"event":["100"]}`)},
		{"user ID a number", http.StatusBadRequest, signedBody(`{"subscription":{"type":"user.authorization.revoke"},` +
			`"event":{"client_id":"` + faketwitch.ClientID + `","user_id":100}}`)},
		{"subscription type header not the body's", http.StatusBadRequest, with(eventSubSubTypeHeader, "channel.follow")},
		{"notification sent as a challenge", http.StatusBadRequest, with(eventSubTypeHeader, eventSubVerification)},
		{"GET", http.StatusMethodNotAllowed, func() *http.Request {
			req := ok().request(revocationSecret)
			req.Method = http.MethodGet
			return req
		}},
	}
}

// TestRevocationHandlerRefuses: a message that is forged, garbled, too old or too new, or too
// large is answered 4xx and changes nothing.
func TestRevocationHandlerRefuses(t *testing.T) {
	for _, tc := range revocationAttacks() {
		t.Run(tc.name, func(t *testing.T) {
			f := newRevocationFixture(t)
			rec := f.serve(tc.req())
			if rec.Code != tc.status {
				t.Errorf("status %d, want %d (%q)", rec.Code, tc.status, rec.Body)
			}
			f.assertKept(t)
			if !strings.Contains(f.logs.String(), "refused an EventSub message") {
				t.Errorf("the refusal was not logged: %q", f.logs)
			}
		})
	}
}

// TestRevocationHandlerSecretNeverShown: no log line and no answer shows the secret, a signature
// or the body of a message, whatever the message.
func TestRevocationHandlerSecretNeverShown(t *testing.T) {
	f := newRevocationFixture(t)
	const marker = "body-marker-d41d8cd98f00b204"
	var answers, signatures []string
	send := func(req *http.Request) {
		signatures = append(signatures, req.Header.Get(eventSubSignatureHeader))
		rec := f.serve(req)
		answers = append(answers, rec.Header().Get("Content-Type")+"\n"+rec.Body.String())
	}
	for _, tc := range revocationAttacks() {
		send(tc.req())
	}
	withMarker := func(m revocationMessage) revocationMessage {
		m.body = []byte(strings.Replace(string(m.body), `"user_name":null`, `"user_name":"`+marker+`"`, 1))
		return m
	}
	send(withMarker(revokeMessage("another-client", "100")).request(revocationSecret))
	send(withMarker(grantMessage(faketwitch.ClientID, "100")).request(revocationSecret))
	send(withMarker(revokeMessage(faketwitch.ClientID, "100")).request("another-secret-0123456789"))
	f.store.failing.Store(1)
	send(withMarker(revokeMessage(faketwitch.ClientID, "100")).request(revocationSecret)) // 500
	send(withMarker(revokeMessage(faketwitch.ClientID, "100")).request(revocationSecret)) // removed
	logs := f.logs.String()
	if !strings.Contains(logs, "refused an EventSub message") || !strings.Contains(logs, "revoked the app's authorization") {
		t.Fatalf("the log lacks the refusals or the removal: %s", logs)
	}
	for _, secret := range []string{revocationSecret, hex.EncodeToString([]byte(revocationSecret)), marker} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log shows %q:\n%s", secret, logs)
		}
		for _, a := range answers {
			if strings.Contains(a, secret) {
				t.Errorf("an answer shows %q: %q", secret, a)
			}
		}
	}
	for _, sig := range signatures {
		hexSig := strings.TrimPrefix(sig, "sha256=")
		if len(hexSig) < 16 {
			continue
		}
		if strings.Contains(logs, hexSig) {
			t.Errorf("the log shows a signature %q", sig)
		}
		for _, a := range answers {
			if strings.Contains(a, hexSig) {
				t.Errorf("an answer shows a signature %q", sig)
			}
		}
	}
}

// TestRevocationHandlerChallenge: a subscription's verification is answered with its challenge,
// as text/plain.
func TestRevocationHandlerChallenge(t *testing.T) {
	f := newRevocationFixture(t)
	const challenge = "pogchamp-kappa-360noscope-vohiyo"
	rec := f.serve(challengeMessage(challenge).request(revocationSecret))
	if rec.Code != http.StatusOK {
		t.Errorf("status %d, want 200", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/plain" {
		t.Errorf("Content-Type %q, want text/plain", ct)
	}
	if got := rec.Body.String(); got != challenge {
		t.Errorf("body %q, want exactly the challenge %q", got, challenge)
	}
	// A challenge Twitch sends again (its answer was lost) is answered again.
	m := challengeMessage(challenge)
	for range 2 {
		if rec := f.serve(m.request(revocationSecret)); rec.Code != http.StatusOK || rec.Body.String() != challenge {
			t.Errorf("challenge sent again: %d %q", rec.Code, rec.Body)
		}
	}
	f.assertKept(t)
}

// TestRevocationHandlerRevokes: the notification that a user revoked the app removes them from the
// registry and the store, without a request to Twitch, and OnRevoked hears of it.
func TestRevocationHandlerRevokes(t *testing.T) {
	f := newRevocationFixture(t)
	rec := f.serve(revokeMessage(faketwitch.ClientID, "100").request(revocationSecret))
	if rec.Code != http.StatusNoContent {
		t.Errorf("status %d, want 204 (%q)", rec.Code, rec.Body)
	}
	f.assertRemoved(t)
	if _, err := f.u.Source("100"); !errors.Is(err, ErrTokenNotFound) {
		t.Errorf("Source(100) err = %v, want ErrTokenNotFound", err)
	}
}

// TestRevocationHandlerRetried: Twitch sends the same message again, after it was handled (the
// answer was lost) or while it is being handled: it is answered 204, and OnRevoked is called once.
func TestRevocationHandlerRetried(t *testing.T) {
	f := newRevocationFixture(t)
	m := revokeMessage(faketwitch.ClientID, "100")
	for i := range 3 {
		if rec := f.serve(m.request(revocationSecret)); rec.Code != http.StatusNoContent {
			t.Errorf("delivery %d: status %d, want 204", i+1, rec.Code)
		}
	}
	f.assertRemoved(t)
}

// TestRevocationHandlerReplayed: a captured message sent again after the user logged in again is
// answered 204, as Twitch asks for a message handled already, and changes nothing. Twitch's clock
// is 30 seconds ahead of this one, so the new login's token was validated before the message's
// timestamp: only the message ID tells the replay apart.
func TestRevocationHandlerReplayed(t *testing.T) {
	f := newRevocationFixture(t)
	m := revokeMessage(faketwitch.ClientID, "100")
	m.sent = m.sent.Add(30 * time.Second)
	if rec := f.serve(m.request(revocationSecret)); rec.Code != http.StatusNoContent {
		t.Fatalf("status %d, want 204", rec.Code)
	}
	f.assertRemoved(t)

	// The user logs in again.
	f.mu.Lock()
	f.revoked, f.causes = nil, nil
	f.mu.Unlock()
	if _, err := f.u.AddUserForToken(t.Context(), newUser(f.fake, "100", 0), "chat"); err != nil {
		t.Fatal(err)
	}
	f.src, _ = f.u.Source("100")

	if rec := f.serve(m.request(revocationSecret)); rec.Code != http.StatusNoContent {
		t.Errorf("replay: status %d, want 204", rec.Code)
	}
	f.assertKept(t)
}

// TestRevocationHandlerNewLogin: a notification sent before the user's token was last validated
// (the user logged in again while it was on its way) leaves the user alone.
func TestRevocationHandlerNewLogin(t *testing.T) {
	f := newRevocationFixture(t)
	m := revokeMessage(faketwitch.ClientID, "100")
	m.sent = m.sent.Add(-time.Minute)
	if rec := f.serve(m.request(revocationSecret)); rec.Code != http.StatusNoContent {
		t.Errorf("status %d, want 204", rec.Code)
	}
	f.assertKept(t)
}

// TestRevocationHandlerIgnores: a grant, another client's revocation, the end of a subscription,
// another subscription type and an unknown message type are acknowledged and change nothing.
func TestRevocationHandlerIgnores(t *testing.T) {
	other := revokeMessage("another-client-id", "100")
	ended := revokeMessage(faketwitch.ClientID, "100")
	ended.msgType = eventSubRevocation
	ended.body = []byte(`{"subscription":{"id":"f1c2a387-161a-49f9-a165-0f21d7a4e1c4","status":"authorization_revoked",` +
		`"type":"user.authorization.revoke","version":"1","cost":0,"condition":{"client_id":"x"},` +
		`"transport":{"method":"webhook","callback":"https://example.com/cb"},"created_at":"2019-11-16T10:11:12.634234626Z"}}`)
	follow := revokeMessage(faketwitch.ClientID, "100")
	follow.subType = "channel.follow"
	follow.body = []byte(strings.ReplaceAll(string(follow.body), subAuthorizationRevoke, "channel.follow"))
	unknown := revokeMessage(faketwitch.ClientID, "100")
	unknown.msgType = "something_new"
	for _, tc := range []struct {
		name string
		m    revocationMessage
		log  string
	}{
		{"grant", grantMessage(faketwitch.ClientID, "100"), "authorized the app"},
		{"another client's revocation", other, "another client"},
		{"subscription ended", ended, "authorization_revoked"},
		{"another subscription type", follow, "does not handle"},
		{"unknown message type", unknown, "unknown type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRevocationFixture(t)
			if rec := f.serve(tc.m.request(revocationSecret)); rec.Code != http.StatusNoContent {
				t.Errorf("status %d, want 204 (%q)", rec.Code, rec.Body)
			}
			f.assertKept(t)
			if !strings.Contains(f.logs.String(), tc.log) {
				t.Errorf("the log lacks %q: %s", tc.log, f.logs)
			}
		})
	}
}

// TestRevocationHandlerStoreFailure: when the store fails, the answer is 500 and the user stays;
// Twitch's next try of the same message removes them.
func TestRevocationHandlerStoreFailure(t *testing.T) {
	f := newRevocationFixture(t)
	f.store.failing.Store(1)
	m := revokeMessage(faketwitch.ClientID, "100")
	if rec := f.serve(m.request(revocationSecret)); rec.Code != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", rec.Code)
	}
	f.assertKept(t)
	if rec := f.serve(m.request(revocationSecret)); rec.Code != http.StatusNoContent {
		t.Errorf("retry: status %d, want 204", rec.Code)
	}
	f.assertRemoved(t)
}

// TestRevocationHandlerStoreOnly: a user the registry does not know (another replica added it) is
// removed from the store; a token stored under the user's ID for someone else is left alone.
func TestRevocationHandlerStoreOnly(t *testing.T) {
	f := newRevocationFixture(t)
	seedStore(t, f.fake, f.store, []string{"300", "400"})
	foreign := f.store.stored("400")
	foreign.UserID = "999"
	if err := f.store.Save(t.Context(), "400", foreign); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"300", "400", "500"} {
		if rec := f.serve(revokeMessage(faketwitch.ClientID, id).request(revocationSecret)); rec.Code != http.StatusNoContent {
			t.Errorf("user %s: status %d, want 204", id, rec.Code)
		}
	}
	if f.store.stored("300") != nil {
		t.Error("user 300's token is still stored")
	}
	if f.store.stored("400") == nil {
		t.Error("the token stored under 400 for another user was deleted")
	}
	if got := f.revokedUsers(); !slices.Equal(got, []string{"300"}) {
		t.Errorf("OnRevoked called for %q, want 300", got)
	}
	if !slices.Contains(f.u.Users(), "100") {
		t.Error("user 100 left the registry")
	}
}

// TestRevocationHandlerKeepRevoked: with KeepRevoked, the user stays in the registry and the
// store, with their source failing.
func TestRevocationHandlerKeepRevoked(t *testing.T) {
	f := newRevocationFixture(t)
	f.u.KeepRevoked = true
	if rec := f.serve(revokeMessage(faketwitch.ClientID, "100").request(revocationSecret)); rec.Code != http.StatusNoContent {
		t.Errorf("status %d, want 204", rec.Code)
	}
	if !slices.Contains(f.u.Users(), "100") || f.store.stored("100") == nil {
		t.Error("the user was removed although KeepRevoked is set")
	}
	if _, err := f.src.Token(); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Errorf("source err = %v, want ErrInvalidRefreshToken", err)
	}
	if got := f.revokedUsers(); !slices.Equal(got, []string{"100"}) {
		t.Errorf("OnRevoked called for %q, want 100", got)
	}
}

// TestRevocationHandlerRetriedMeanwhile: a message Twitch sends again while the first delivery is
// still being handled waits for it; when the first fails, the second removes the user.
func TestRevocationHandlerRetriedMeanwhile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &gatedDeletes{memStore: newMemStore(), gate: make(chan error)}
		c := NewClient(faketwitch.ClientID, faketwitch.ClientSecret)
		u := NewUserTokens(c, store)
		var revoked atomic.Int32
		u.OnRevoked = func(string, error) { revoked.Add(1) }
		st := &StoredToken{AccessToken: "access", RefreshToken: "refresh", Expiry: time.Now().Add(time.Hour),
			UserID: "100", ClientID: faketwitch.ClientID}
		if err := store.Save(t.Context(), "100", st); err != nil {
			t.Fatal(err)
		}
		if err := u.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		h := u.RevocationHandler([]byte(revocationSecret))
		m := revokeMessage(faketwitch.ClientID, "100")
		codes := make(chan int, 2)
		deliver := func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, m.request(revocationSecret))
			codes <- rec.Code
		}
		go deliver()
		synctest.Wait() // the first is in Delete
		go deliver()
		synctest.Wait() // the second waits for the first
		select {
		case code := <-codes:
			t.Errorf("a delivery was answered %d before the first was handled", code)
			store.gate <- errors.New("store unreachable")
			<-codes
			return
		default:
		}
		store.gate <- errors.New("store unreachable")
		if code := <-codes; code != http.StatusInternalServerError {
			t.Errorf("first delivery: %d, want 500", code)
		}
		store.gate <- nil
		if code := <-codes; code != http.StatusNoContent {
			t.Errorf("second delivery: %d, want 204", code)
		}
		if store.stored("100") != nil || slices.Contains(u.Users(), "100") || revoked.Load() != 1 {
			t.Errorf("stored %v, users %q, OnRevoked %d times; want the user gone and one call",
				store.stored("100"), u.Users(), revoked.Load())
		}
	})
}

// gatedDeletes is a memStore whose Delete waits for, and returns, an error sent on gate.
type gatedDeletes struct {
	*memStore
	gate chan error
}

func (s *gatedDeletes) Delete(ctx context.Context, key string) error {
	if err := <-s.gate; err != nil {
		return err
	}
	return s.memStore.Delete(ctx, key)
}

// TestRevocationHandlerRemembersBounded: the message IDs remembered are capped; past the cap,
// messages are answered 503, until the IDs are old enough to be let go.
func TestRevocationHandlerRemembersBounded(t *testing.T) {
	c, _ := newTestClient(t)
	u := NewUserTokens(c, newMemStore())
	h := u.RevocationHandler([]byte(revocationSecret)).(*revocationHandler)
	h.seen.max = 3
	now := time.Now()
	h.now = func() time.Time { return now }
	send := func(sent time.Time) int {
		m := revokeMessage(faketwitch.ClientID, rand.Text())
		m.sent = sent
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, m.request(revocationSecret))
		return rec.Code
	}
	for i := range 3 {
		if code := send(now); code != http.StatusNoContent {
			t.Fatalf("message %d: %d, want 204", i+1, code)
		}
	}
	if code := send(now); code != http.StatusServiceUnavailable {
		t.Errorf("past the cap: %d, want 503", code)
	}
	now = now.Add(eventSubMaxAge)
	if code := send(now); code != http.StatusNoContent {
		t.Errorf("once the IDs are 10 minutes old: %d, want 204", code)
	}
	if n := len(h.seen.ids); n != 1 {
		t.Errorf("%d IDs remembered, want 1", n)
	}
}

// TestRevocationHandlerPanics: a handler that could verify nothing does not start.
func TestRevocationHandlerPanics(t *testing.T) {
	c, _ := newTestClient(t)
	u := NewUserTokens(c, newMemStore())
	for _, tc := range []struct {
		name   string
		u      *UserTokens
		secret []byte
	}{
		{"empty secret", u, nil},
		{"short secret", u, []byte("too-short")},
		{"long secret", u, bytes.Repeat([]byte("a"), maxEventSubSecret+1)},
		{"secret not ASCII", u, []byte("sécret-0123456789")},
		{"registry not made by NewUserTokens", &UserTokens{}, []byte(revocationSecret)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatal("no panic")
				}
				if msg := fmt.Sprint(r); len(tc.secret) > 0 && strings.Contains(msg, string(tc.secret)) {
					t.Errorf("the panic shows the secret: %s", msg)
				}
			}()
			tc.u.RevocationHandler(tc.secret)
		})
	}
}

// TestRevocationHandlerSlowBody: a body trickled slower than the handler's bound is cut off at the
// bound by the handler itself, on a server with no timeouts of its own: the answer is 408, and
// nothing changes.
func TestRevocationHandlerSlowBody(t *testing.T) {
	f := newRevocationFixture(t)
	h := f.h.(*revocationHandler)
	h.readTimeout = 300 * time.Millisecond
	srv := httptest.NewServer(h) // no ReadTimeout
	t.Cleanup(srv.Close)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	m := revokeMessage(faketwitch.ClientID, "100")
	var head bytes.Buffer
	fmt.Fprintf(&head, "POST /eventsub HTTP/1.1\r\nHost: example.com\r\nContent-Length: %d\r\n", len(m.body))
	for name, values := range m.request(revocationSecret).Header {
		for _, v := range values {
			fmt.Fprintf(&head, "%s: %s\r\n", name, v)
		}
	}
	head.WriteString("\r\n")
	start := time.Now()
	if _, err := conn.Write(head.Bytes()); err != nil {
		t.Fatal(err)
	}
	// The body, a byte every 50 ms: whole after 20 s.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := range m.body {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := conn.Write(m.body[i : i+1]); err != nil {
				return
			}
		}
	})

	// A guard, so that a handler that waits for the whole body fails the test rather than hangs it.
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer within 5 s of the headers, with a bound of %v: %v", h.readTimeout, err)
	}
	resp.Body.Close()
	if took := time.Since(start); resp.StatusCode != http.StatusRequestTimeout || took < h.readTimeout {
		t.Errorf("status %d after %v; want 408 once the bound of %v passed", resp.StatusCode, took, h.readTimeout)
	}
	f.assertKept(t)
	if !strings.Contains(f.logs.String(), "refused an EventSub message") {
		t.Errorf("the refusal was not logged: %q", f.logs)
	}
}

// hookedTransport calls the hook armed for the path's last segment (at most once) when Twitch's
// answer to such a request has come, before handing it over: what the hook does happens while the
// request is in flight.
type hookedTransport struct {
	base  http.RoundTripper
	hooks sync.Map // "validate" → *atomic.Pointer[func()]
}

func (t *hookedTransport) arm(endpoint string, hook func()) {
	p := &atomic.Pointer[func()]{}
	p.Store(&hook)
	t.hooks.Store(endpoint, p)
}

func (t *hookedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if p, ok := t.hooks.Load(req.URL.Path[strings.LastIndex(req.URL.Path, "/")+1:]); ok && err == nil {
		if hook := p.(*atomic.Pointer[func()]).Swap(nil); hook != nil {
			(*hook)()
		}
	}
	return resp, err
}

// unlockHookStore is a memStore that calls afterUnlock, once it is set, when a lock is let go, once.
type unlockHookStore struct {
	*memStore
	afterUnlock atomic.Pointer[func()]
}

func (s *unlockHookStore) Lock(ctx context.Context, key string, ttl time.Duration) (func() error, error) {
	unlock, err := s.memStore.Lock(ctx, key, ttl)
	if err != nil {
		return nil, err
	}
	return func() error {
		err := unlock()
		if hook := s.afterUnlock.Swap(nil); hook != nil {
			(*hook)()
		}
		return err
	}, nil
}

// TestRevocationDuringAdd: a user.authorization.revoke notification Twitch sent after
// AddUserForToken asked Twitch to validate the user's token wins over the add, however it
// interleaves with it: heard while the validation is in flight, heard after the add, or heard
// between the add's store write and its registration. The user ends up neither registered nor
// stored, also after Twitch's retry of the notification.
func TestRevocationDuringAdd(t *testing.T) {
	for _, when := range []string{"while validating", "after the add", "between store and registry"} {
		t.Run(when, func(t *testing.T) {
			c, fake := newTestClient(t)
			rt := &hookedTransport{base: http.DefaultTransport}
			c.HTTPClient = &http.Client{Transport: rt}
			store := &unlockHookStore{memStore: newMemStore()}
			u := NewUserTokens(c, store)
			var mu sync.Mutex
			var revoked []string
			u.OnRevoked = func(userID string, err error) {
				mu.Lock()
				defer mu.Unlock()
				revoked = append(revoked, userID)
			}
			h := u.RevocationHandler([]byte(revocationSecret))
			deliver := func(m revocationMessage) {
				t.Helper()
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, m.request(revocationSecret))
				if rec.Code != http.StatusNoContent {
					t.Errorf("delivery: status %d, want 204 (%q)", rec.Code, rec.Body)
				}
			}
			tok := newUser(fake, "200", 0)

			var m revocationMessage // sent once the validation was asked for
			switch when {
			case "while validating":
				rt.arm("validate", func() {
					m = revokeMessage(faketwitch.ClientID, "200")
					deliver(m)
				})
			case "after the add":
				rt.arm("validate", func() { m = revokeMessage(faketwitch.ClientID, "200") })
			case "between store and registry":
				rt.arm("validate", func() {
					hook := func() {
						m = revokeMessage(faketwitch.ClientID, "200")
						deliver(m)
					}
					store.afterUnlock.Store(&hook)
				})
			}
			_, err := u.AddUserForToken(t.Context(), tok, "chat")
			if when == "after the add" {
				if err != nil {
					t.Fatal(err)
				}
				deliver(m)
			} else if !errors.Is(err, ErrInvalidToken) || !strings.Contains(fmt.Sprint(err), "revoked") {
				t.Errorf("AddUserForToken err = %v; want one that says the user revoked the app and Is ErrInvalidToken", err)
			}
			deliver(m) // Twitch's retry
			if slices.Contains(u.Users(), "200") || store.stored("200") != nil {
				t.Errorf("users %q, stored %v; want user 200 neither registered nor stored", u.Users(), store.stored("200") != nil)
			}
			if _, err := u.SourceForIntent("chat"); !errors.Is(err, ErrTokenNotFound) {
				t.Errorf("SourceForIntent(chat) err = %v, want ErrTokenNotFound", err)
			}
			if when != "while validating" {
				mu.Lock()
				if !slices.Equal(revoked, []string{"200"}) {
					t.Errorf("OnRevoked called for %q, want once for 200", revoked)
				}
				mu.Unlock()
			}
		})
	}
}

// TestRecentRevocations: a user's latest revocation is remembered for 10 minutes after it was
// handled, and only a validation asked for at or before the time Twitch sent it, and before it
// was handled, loses to it.
func TestRecentRevocations(t *testing.T) {
	var r recentRevocations
	now := time.Now()
	r.record("100", now.Add(-time.Second), now.Add(-time.Millisecond))
	r.record("100", now.Add(-time.Minute), now) // an older one, handled later
	r.record("200", now, now.Add(-eventSubMaxAge))
	r.record("400", now.Add(30*time.Second), now) // Twitch's clock runs ahead
	for _, tc := range []struct {
		user      string
		validated time.Time
		want      bool
	}{
		{"100", now.Add(-2 * time.Second), true},
		{"100", now.Add(-time.Second), true},
		{"100", now.Add(-time.Second / 2), false},
		{"200", now.Add(-time.Minute), false}, // handled 10 minutes ago: let go
		{"300", now.Add(-time.Hour), false},
		{"400", now.Add(-time.Second), true},
		{"400", now.Add(time.Second), false}, // a login after the revocation was handled
	} {
		if got := r.since(tc.user, tc.validated); got != tc.want {
			t.Errorf("since(%s, now%+v) = %v, want %v", tc.user, tc.validated.Sub(now), got, tc.want)
		}
	}
	r.record("300", now, now.Add(seenSweepEvery)) // sweeps
	if _, ok := r.users["200"]; ok || len(r.users) != 3 {
		t.Errorf("after a sweep: %v; want 100, 300 and 400 only", r.users)
	}
}
