package twitchoauth

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// What a set-up mistake is refused with, before any user is involved: these tests check that a
// program finds out at start, from an error that says what to set.

// wantNoSecretError fails t unless err is the error of a flow started without the client secret
// it needs, saying what to set.
func wantNoSecretError(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), "Client.ClientSecret is empty: set it to the secret from the Twitch developer console") {
		t.Errorf("%s: err = %v, want one saying Client.ClientSecret is empty and to set it", what, err)
	}
}

// TestAuthenticateRefusesEmptySecret: the browser login of a Client without a secret ends at once,
// before it listens or opens the browser, instead of after the user consented, when Twitch refuses
// the code exchange. So does a WithUserToken exchange, without sending the code.
func TestAuthenticateRefusesEmptySecret(t *testing.T) {
	g := checkGoroutines(t)
	_, fake := newTestClient(t)
	c := publicClient(fake)
	a := newTestAuthenticator(t, c) // its OpenBrowser fails the test
	_, err := a.Authenticate(t.Context())
	wantNoSecretError(t, "Authenticate", err)
	_, err = a.Authenticate(t.Context(), WithAuthURLCallback(func(context.Context, string) error {
		return errors.New("the login URL was handed out") // ends the flow, which would wait otherwise
	}))
	wantNoSecretError(t, "Authenticate with a URL callback", err)
	_, err = a.Authenticate(t.Context(), WithUserToken("a-code"))
	wantNoSecretError(t, "Authenticate WithUserToken", err)
	if strings.Contains(err.Error(), "a-code") {
		t.Errorf("the error holds the code: %v", err)
	}
	if reqs := fake.Requests(); len(reqs) != 0 {
		t.Errorf("%d requests to Twitch, want none: %+v", len(reqs), reqs)
	}
	g.assertNoServerLeft(t)
}

// TestWebLoginRefusesEmptySecret: NewWebLogin panics for a Client without a secret, saying what
// to set; a WebLogin whose Client lost its secret afterwards sends nobody to Twitch.
func TestWebLoginRefusesEmptySecret(t *testing.T) {
	t.Run("made", func(t *testing.T) {
		defer func() {
			r := recover()
			s, _ := r.(string)
			wantNoSecretError(t, "NewWebLogin", errors.New(s))
			if !strings.HasPrefix(s, "twitchoauth: WebLogin needs") {
				t.Errorf("panic %q, want it to name WebLogin", s)
			}
		}()
		NewWebLogin(NewClient("id", ""), nil, "https://a.example/cb", testCookieKey)
	})
	t.Run("serving", func(t *testing.T) {
		c, fake := newTestClient(t)
		var logs bytes.Buffer
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		wl := NewWebLogin(c, nil, "http://localhost/cb", testCookieKey)
		wl.OnLogin = func(http.ResponseWriter, *http.Request, *WebLoginResult) { t.Error("OnLogin called") }
		c.ClientSecret = ""
		rec := httptest.NewRecorder()
		wl.LoginHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/login", nil))
		if rec.Code != http.StatusInternalServerError || rec.Header().Get("Location") != "" {
			t.Errorf("login answered %d, Location %q; want 500 and nobody sent to Twitch", rec.Code, rec.Header().Get("Location"))
		}
		if !strings.Contains(logs.String(), "Client.ClientSecret is empty") {
			t.Errorf("the log does not say why:\n%s", logs.String())
		}
		if len(fake.Requests()) != 0 {
			t.Errorf("%d requests to Twitch", len(fake.Requests()))
		}
	})
}

// TestBindRefusesEmptySecret: the storage helper's default login is a browser login, whose token
// needs the secret to be refreshed too: without an AuthGenerator, Bind refuses a Client without a
// secret before it reads anything, even when the stored token is valid now (its refresh would fail
// hours later). A public client with a login of its own binds as before.
func TestBindRefusesEmptySecret(t *testing.T) {
	e := newBindEnv(t)
	access, refresh := e.fake.IssueToken(e.c.ClientID, faketwitch.UserID, scopesToStrings(botScopes), 0)
	e.write(t, access, refresh)
	e.h.AuthGenerator = nil
	e.c.ClientSecret = ""
	src, err := e.bind(t)
	wantNoSecretError(t, "Bind", err)
	if src != nil || len(e.fake.Requests()) != 0 {
		t.Errorf("Bind = %v, with %d requests; want no source and none", src, len(e.fake.Requests()))
	}

	t.Run("public client with its own login", func(t *testing.T) {
		_, fake := newTestClient(t)
		pub := publicClient(fake)
		h := NewUserAuthenticationStorageHelper(pub, botScopes)
		h.StoragePath = filepath.Join(t.TempDir(), "token.json")
		h.AuthGenerator = func(ctx context.Context, c *Client, scopes []Scope) (*oauth2.Token, error) {
			access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, scopesToStrings(scopes), 0)
			return &oauth2.Token{AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(time.Hour)}, nil
		}
		src, err := h.Bind(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		tok, err := src.ForceRefresh(t.Context(), nil) // a public client refreshes without a secret
		if err != nil || tok.AccessToken == "" {
			t.Errorf("public refresh = %v, %v", tok, err)
		}
	})
}
