package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// missingScopeBody is what Helix answers a token that lacks the endpoint's scope.
const missingScopeBody = `{"error":"Unauthorized","status":401,"message":"Missing scope: moderator:read:chatters"}`

// getAll sends n GET requests at once through hc and returns their statuses and bodies.
func getAll(t *testing.T, hc *http.Client, url string, n int) (statuses []int, bodies []string) {
	t.Helper()
	statuses, bodies = make([]int, n), make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := hc.Get(url)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			statuses[i], bodies[i] = resp.StatusCode, string(b)
		})
	}
	wg.Wait()
	return statuses, bodies
}

// TestHTTPClientMissingScope: a Helix 401 for a token that is still valid (a missing scope) is
// passed on untouched, costs one validation however many requests see it, and spends no refresh.
func TestHTTPClientMissingScope(t *testing.T) {
	c, fake := newTestClient(t)
	access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, []string{"chat:read"}, 0)
	var persisted atomic.Int32
	src := NewUserTokenSource(c, &oauth2.Token{AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(time.Hour)},
		func(*oauth2.Token) error { persisted.Add(1); return nil })
	helix := newHelixServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, missingScopeBody)
	})
	hc := src.HTTPClient()
	for round := range 2 { // together, then once more: the verdict stands
		statuses, bodies := getAll(t, hc, helix+"/helix/chat/chatters", 20)
		for i := range statuses {
			if statuses[i] != http.StatusUnauthorized || bodies[i] != missingScopeBody {
				t.Fatalf("round %d: request %d got %d %q; want Helix's 401 untouched", round, i, statuses[i], bodies[i])
			}
		}
	}
	if n := fake.CountGrant("refresh_token"); n != 0 {
		t.Errorf("%d refreshes for a token that lacks a scope, want 0", n)
	}
	if n := persisted.Load(); n != 0 {
		t.Errorf("onRefresh called %d times, want 0", n)
	}
	if n := fake.CountRequests("validate"); n != 1 {
		t.Errorf("%d validations for 40 refused requests with one token, want 1", n)
	}
	if tok, err := src.Token(); err != nil || tok.AccessToken != access {
		t.Errorf("Token() = %v, %v; want the same, still valid token", tok, err)
	}
}

// TestHTTPClientDeadTokenRefreshedOnce: requests refused together because Twitch killed the token
// share one refresh, and each is sent again with the new token.
func TestHTTPClientDeadTokenRefreshedOnce(t *testing.T) {
	c, fake := newTestClient(t)
	access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, 0)
	src := NewUserTokenSource(c, &oauth2.Token{AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(time.Hour)}, nil)
	helix := newHelixServer(t, func(w http.ResponseWriter, r *http.Request) {
		if _, err := c.ValidateToken(r.Context(), strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, `{"data":[]}`)
	})
	fake.ExpireAccessToken(access)
	statuses, _ := getAll(t, src.HTTPClient(), helix+"/helix/users", 20)
	for i, st := range statuses {
		if st != http.StatusOK {
			t.Errorf("request %d: status %d, want 200 after the retry", i, st)
		}
	}
	if n := fake.CountGrant("refresh_token"); n != 1 {
		t.Errorf("%d refreshes for one dead token, want 1", n)
	}
}

// revokedSource returns a source whose grant Twitch has revoked (access and refresh token dead),
// while the source believes its token good until expiry (zero: unknown).
func revokedSource(t *testing.T, c *Client, fake *faketwitch.Server, expiry time.Time) *UserTokenSource {
	t.Helper()
	access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, 0)
	fake.ExpireAccessToken(access)
	fake.RevokeRefreshToken(refresh)
	return NewUserTokenSource(c, &oauth2.Token{AccessToken: access, RefreshToken: refresh, Expiry: expiry}, nil)
}

// TestRevokedGrantIsTerminal: once validation says 401 and the refresh token is rejected, every
// call fails with ErrInvalidRefreshToken without a request, and the dead token is never handed
// out, until SetToken brings a new one.
func TestRevokedGrantIsTerminal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		expiry time.Time
	}{
		{"expiry known", time.Now().Add(time.Hour)},
		{"expiry unknown", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, fake := newTestClient(t)
			src := revokedSource(t, c, fake, tc.expiry)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if err := src.KeepValidated(ctx, time.Millisecond); !errors.Is(err, ErrInvalidRefreshToken) {
				t.Fatalf("KeepValidated = %v, want ErrInvalidRefreshToken", err)
			}
			if n := fake.CountGrant("refresh_token"); n != 1 {
				t.Errorf("%d refreshes before giving up, want 1", n)
			}
			before := len(fake.Requests())
			for range 5 {
				if tok, err := src.Token(); !errors.Is(err, ErrInvalidRefreshToken) || tok != nil {
					t.Fatalf("Token() = %v, %v; want ErrInvalidRefreshToken and no token", tok, err)
				}
				if _, err := src.ForceRefresh(t.Context(), nil); !errors.Is(err, ErrInvalidRefreshToken) {
					t.Fatalf("ForceRefresh = %v, want ErrInvalidRefreshToken", err)
				}
			}
			if _, err := src.HTTPClient().Get(newHelixServer(t, func(http.ResponseWriter, *http.Request) {
				t.Error("a request was sent with a revoked grant")
			})); !errors.Is(err, ErrInvalidRefreshToken) {
				t.Errorf("HTTPClient: err = %v, want ErrInvalidRefreshToken", err)
			}
			if n := len(fake.Requests()) - before; n != 0 {
				t.Errorf("%d requests to Twitch after the grant was found revoked, want 0", n)
			}

			// A new login brings the source back.
			access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, 0)
			next := &oauth2.Token{AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(time.Hour)}
			src.SetToken(next)
			if tok, err := src.Token(); err != nil || tok != next {
				t.Errorf("after SetToken: Token() = %v, %v; want the new token", tok, err)
			}
		})
	}
}

// TestRejectedTokenNeverHandedOut: a token validation rejected is not returned while its refresh
// is failing for a transient reason, even though its Expiry is far.
func TestRejectedTokenNeverHandedOut(t *testing.T) {
	c, fake := newTestClient(t)
	access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, 0)
	fake.ExpireAccessToken(access)
	src := NewUserTokenSource(c, &oauth2.Token{AccessToken: access, RefreshToken: refresh}, nil)
	fake.Fail("token", faketwitch.Fault{Status: http.StatusServiceUnavailable})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	kept := make(chan error, 1)
	go func() { kept <- src.KeepValidated(ctx, time.Millisecond) }()
	for fake.CountRequests("token") < 2 {
		time.Sleep(time.Millisecond) // until validation said 401 and refreshes failed twice
	}
	cancel()
	if err := <-kept; !errors.Is(err, context.Canceled) {
		t.Fatalf("KeepValidated = %v; want it to go on through the outage until ctx ends", err)
	}
	if tok, err := src.Token(); err == nil || errors.Is(err, ErrInvalidRefreshToken) {
		t.Fatalf("Token() = %v, %v; want the outage's error, not the rejected token", tok, err)
	}
	fake.ClearFaults()
	endBackoff(&src.tokenCache)
	if tok, err := src.Token(); err != nil || tok.AccessToken == access {
		t.Errorf("after the outage: Token() = %v, %v; want a refreshed token", tok, err)
	}
}

// TestSetTokenStore: SetToken on a source over a store saves the new pair there, keeping what the
// store knew of the user, so the next refresh uses it.
func TestSetTokenStore(t *testing.T) {
	c, fake := newTestClient(t)
	store := &FileStore{Path: t.TempDir() + "/tok.json"}
	old := &StoredToken{AccessToken: "dead", RefreshToken: "dead-refresh", UserID: faketwitch.UserID, Login: "someone"}
	if err := store.Save(t.Context(), "u", old); err != nil {
		t.Fatal(err)
	}
	src := NewStoreTokenSource(c, store, "u", nil)
	access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, 0)
	if err := src.SetTokenContext(t.Context(), &oauth2.Token{AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	st, err := store.Load(t.Context(), "u")
	if err != nil || st.AccessToken != access || st.RefreshToken != refresh || st.UserID != faketwitch.UserID || st.Login != "someone" {
		t.Fatalf("store holds %+v, %v after SetToken", st, err)
	}
	if tok, err := src.Token(); err != nil || tok.AccessToken == access {
		t.Errorf("Token() = %v, %v; want a refresh of the new pair", tok, err)
	}
	if err := src.SetTokenContext(t.Context(), &oauth2.Token{}); err == nil {
		t.Error("SetTokenContext with no access token: nil error")
	}
}

// TestRefreshAnswerWithoutRefreshToken: an answer that carries no refresh_token keeps the one sent,
// in what RefreshAccessToken returns, what onRefresh persists, and what a store saves.
func TestRefreshAnswerWithoutRefreshToken(t *testing.T) {
	c, fake := newTestClient(t)
	noRefresh := faketwitch.Fault{Status: 200, Body: `{"access_token":"new-access","expires_in":3600,"token_type":"bearer"}`, Count: 1}

	fake.Fail("token", noRefresh)
	tok, err := c.RefreshAccessToken(t.Context(), "kept-refresh")
	if err != nil || tok.RefreshToken != "kept-refresh" {
		t.Fatalf("RefreshAccessToken = %+v, %v; want the refresh token sent", tok, err)
	}

	var saved *oauth2.Token
	src := NewUserTokenSource(c, expiredToken("old", "kept-refresh"), func(tok *oauth2.Token) error { saved = tok; return nil })
	fake.Fail("token", noRefresh)
	if _, err := src.Token(); err != nil || saved == nil || saved.RefreshToken != "kept-refresh" {
		t.Fatalf("onRefresh got %+v, %v; want the old refresh token kept", saved, err)
	}

	e := newBindEnv(t)
	access, refresh := e.fake.IssueToken(e.c.ClientID, faketwitch.UserID, scopesToStrings(botScopes), 0)
	e.write(t, access, refresh)
	e.fake.ExpireAccessToken(access)
	e.fake.Fail("token", faketwitch.Fault{Status: 200, Count: 1,
		Body: fmt.Sprintf(`{"access_token":%q,"expires_in":3600,"token_type":"bearer"}`, mustIssue(e.fake, e.c.ClientID))})
	if _, err := e.bind(t); err != nil {
		t.Fatal(err)
	}
	if st := e.stored(t); st.RefreshToken != refresh {
		t.Errorf("Bind stored refresh %q, want the one it sent", st.RefreshToken)
	}
}

// mustIssue returns a live access token of the fake's user holding the bot's scopes.
func mustIssue(fake *faketwitch.Server, clientID string) string {
	access, _ := fake.IssueToken(clientID, faketwitch.UserID, scopesToStrings(botScopes), 0)
	return access
}

// TestTokenAnswerChecks: a negative expires_in is an expired token, not one that never expires,
// and only a bearer token_type without control characters is accepted.
func TestTokenAnswerChecks(t *testing.T) {
	c, fake := newTestClient(t)
	for _, tc := range []struct {
		name, body string
		ok         bool
		expired    bool
	}{
		{"negative expires_in", `{"access_token":"a","refresh_token":"r","expires_in":-30,"token_type":"bearer"}`, true, true},
		{"no expires_in", `{"access_token":"a","refresh_token":"r","token_type":"bearer"}`, true, false},
		{"Bearer in capitals", `{"access_token":"a","refresh_token":"r","expires_in":60,"token_type":"BEARER"}`, true, false},
		{"mac token", `{"access_token":"a","refresh_token":"r","expires_in":60,"token_type":"mac"}`, false, false},
		{"token_type with CRLF", `{"access_token":"a","refresh_token":"r","expires_in":60,"token_type":"bearer\r\nX-Evil: 1"}`, false, false},
		{"access token with LF", `{"access_token":"a\nX-Evil: 1","refresh_token":"r","expires_in":60,"token_type":"bearer"}`, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake.Fail("token", faketwitch.Fault{Status: 200, Body: tc.body, Count: 1})
			tok, err := c.RefreshAccessToken(t.Context(), "r")
			if !tc.ok {
				var ae *APIError
				if !errors.As(err, &ae) || tok != nil {
					t.Fatalf("got %+v, %v; want an *APIError", tok, err)
				}
				if strings.Contains(err.Error(), "Evil") {
					t.Errorf("error %q repeats what the server sent", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tok.TokenType != "bearer" {
				t.Errorf("TokenType = %q, want bearer", tok.TokenType)
			}
			if got := !tok.Expiry.IsZero() && tok.Expiry.Before(time.Now()); got != tc.expired {
				t.Errorf("Expiry %v: expired = %v, want %v", tok.Expiry, got, tc.expired)
			}
			if tc.expired && fresh(tok) {
				t.Error("a token that came already expired counts as fresh")
			}
		})
	}
}

// endBackoff ends the wait a transient failure imposed on tc's renewals, as if it had passed.
func endBackoff(tc *tokenCache) { tc.state().floor.Store(nil) }

// TestValidate: Validate says whose the token is; a token Twitch killed early is refreshed and the
// new one validated; a gone grant is ErrInvalidRefreshToken; an outage leaves the source as it was.
func TestValidate(t *testing.T) {
	c, fake := newTestClient(t)
	access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, []string{"chat:read"}, 0)
	src := NewUserTokenSource(c, &oauth2.Token{AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(time.Hour)}, nil)
	v, err := src.Validate(t.Context())
	if err != nil || v.UserID != faketwitch.UserID || v.Login != faketwitch.UserLogin || fake.CountGrant("refresh_token") != 0 {
		t.Fatalf("Validate = %+v, %v after %d refreshes", v, err, fake.CountGrant("refresh_token"))
	}

	fake.ExpireAccessToken(access)
	v, err = src.Validate(t.Context())
	tok, _ := src.Token()
	if err != nil || v.UserID != faketwitch.UserID || tok.AccessToken == access || fake.CountGrant("refresh_token") != 1 {
		t.Fatalf("after Twitch killed the token: %+v, %v, holding %q", v, err, tok.AccessToken)
	}

	fake.Fail("validate", faketwitch.Fault{Status: http.StatusServiceUnavailable, Count: 1})
	if _, err := src.Validate(t.Context()); err == nil || errors.Is(err, ErrInvalidRefreshToken) {
		t.Errorf("outage: err = %v, want the 503", err)
	}
	if got, err := src.Token(); err != nil || got != tok {
		t.Errorf("after the outage: %v, %v; want the token kept", got, err)
	}

	fake.RevokeGrant(tok.AccessToken)
	if _, err := src.Validate(t.Context()); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Errorf("grant gone: err = %v, want ErrInvalidRefreshToken", err)
	}
}
