package twitchoauth

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// freePort returns a port that is free on every loopback address just now, for logins that must
// share one redirect URL, as they do on DefaultPort.
func freePort(t testing.TB) int {
	t.Helper()
	s, err := listen(t.Context(), "localhost", 0)
	if err != nil {
		t.Fatal(err)
	}
	s.close(t.Context())
	return s.port
}

// stateOf returns the state in an authorize URL.
func stateOf(t testing.TB, authURL string) string {
	t.Helper()
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("state")
}

// redirectOf returns the redirect URL in an authorize URL.
func redirectOf(t testing.TB, authURL string) string {
	t.Helper()
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("redirect_uri")
}

// TestAuthenticateStaleRedirect runs two logins in turn on one authenticator, on one redirect URL.
// During the second, the browser replays the first login's redirect (a restored tab: its state
// and its spent code): it is turned away without an exchange, and the second login goes on to its
// token.
func TestAuthenticateStaleRedirect(t *testing.T) {
	g := checkGoroutines(t)
	c, fake := newTestClient(t)
	a := newTestAuthenticator(t, c)
	a.Port = freePort(t)
	browser := newBrowser(t, "")

	var firstCallback string
	first, err := authenticate(t, t.Context(), a, fake, func(authURL, _ string) {
		firstCallback = consent(t, authURL)
		if p := visit(t, browser, firstCallback); p.status != http.StatusOK {
			t.Errorf("first login's redirect got %d %q", p.status, p.body)
		}
	})
	if err != nil || first == nil {
		t.Fatalf("first Authenticate = %v, %v", first, err)
	}

	var stale, real page
	second, err := authenticate(t, t.Context(), a, fake, func(authURL, _ string) {
		stale = visit(t, browser, firstCallback)
		real = visit(t, browser, authURL)
	})
	g.assertNoServerLeft(t)
	if stale.status < 400 || stale.status > 499 {
		t.Errorf("the first login's redirect, replayed during the second, got %d %q; want a 4xx", stale.status, stale.body)
	}
	if err != nil || second == nil || second.AccessToken == "" || second.AccessToken == first.AccessToken {
		t.Fatalf("second Authenticate = %v, %v; want a new token", second, err)
	}
	if real.status != http.StatusOK || real.body != defaultDocument {
		t.Errorf("the second login's redirect got %d %q, want 200 and Document", real.status, real.body)
	}
	if n := fake.CountGrant("authorization_code"); n != 2 {
		t.Errorf("%d code exchanges, want 2: the stale code must not be sent", n)
	}
}

// TestAuthenticateState checks which state each login uses: AuthURL names the one the next login
// accepts, so a URL taken before Authenticate (and handed to a person) is honoured; each login
// left to the authenticator's states has its own; a State of the caller's is used as is.
func TestAuthenticateState(t *testing.T) {
	tests := []struct {
		name  string
		state func(drawn string) string // the State to set, given the one NewUserAuthenticator drew
		own   bool                      // the State set is the caller's, used by every login
		drawn bool                      // the first login uses the State NewUserAuthenticator drew
	}{
		{name: "default", state: func(drawn string) string { return drawn }, drawn: true},
		{name: "empty", state: func(string) string { return "" }},
		{name: "own", state: func(string) string { return "the-callers-state" }, own: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := checkGoroutines(t)
			c, fake := newTestClient(t)
			a := newTestAuthenticator(t, c)
			a.Port = freePort(t)
			drawn := a.State
			a.State = tt.state(drawn)
			browser := newBrowser(t, "")

			var states []string
			for i := range 3 {
				before := a.AuthURL()
				if stateOf(t, before) == "" {
					t.Fatalf("login %d: AuthURL has no state: %s", i, before)
				}
				var during []string
				tok, err := authenticate(t, t.Context(), a, fake, func(authURL, _ string) {
					if authURL != before {
						t.Errorf("login %d: Authenticate's URL\n%s\nis not AuthURL's\n%s", i, authURL, before)
					}
					// AuthURL from another goroutine while the login runs names its state.
					var wg sync.WaitGroup
					wg.Go(func() { during = append(during, a.AuthURL()) })
					wg.Wait()
					visit(t, browser, before)
				})
				if err != nil || tok == nil {
					t.Fatalf("login %d: Authenticate = %v, %v", i, tok, err)
				}
				if len(during) != 1 || during[0] != before {
					t.Errorf("login %d: AuthURL during the login = %v, want %s", i, during, before)
				}
				states = append(states, stateOf(t, before))
			}
			if a.State != tt.state(drawn) {
				t.Errorf("State changed to %q", a.State)
			}
			for i, s := range states {
				switch {
				case tt.own && s != a.State:
					t.Errorf("login %d used state %q, want the caller's %q", i, s, a.State)
				case tt.drawn && i == 0 && s != drawn:
					t.Errorf("first login used state %q, want the State NewUserAuthenticator set", s)
				case !tt.own && i > 0 && s == states[i-1]:
					t.Errorf("login %d reused the state of login %d", i, i-1)
				}
			}
			g.assertNoServerLeft(t)
		})
	}

	t.Run("URL handed out before a login without browser", func(t *testing.T) {
		g := checkGoroutines(t)
		c, fake := newTestClient(t)
		a := newTestAuthenticator(t, c)
		a.Port = freePort(t)
		handedOut := a.AuthURL()
		registerRedirect(t, fake, handedOut)
		browser := newBrowser(t, "")
		logged := make(chan struct{}, 1)
		c.Logger = slog.New(recordHandler(func(r slog.Record) {
			if r.Level == slog.LevelInfo {
				select {
				case logged <- struct{}{}:
				default:
				}
			}
		}))
		var wg sync.WaitGroup
		wg.Go(func() {
			<-logged
			visit(t, browser, handedOut) // the person opens the URL they were given before
		})
		tok, err := a.Authenticate(t.Context(), WithoutBrowser())
		wg.Wait()
		g.assertNoServerLeft(t)
		if err != nil || tok == nil {
			t.Fatalf("Authenticate = %v, %v; want the token of the URL handed out", tok, err)
		}
		if a.AuthURL() == handedOut {
			t.Error("AuthURL still names the spent state")
		}
	})

	t.Run("WithUserToken leaves the state", func(t *testing.T) {
		c, fake := newTestClient(t)
		a := newTestAuthenticator(t, c)
		before := a.AuthURL()
		registerRedirect(t, fake, before)
		callback, err := url.Parse(consent(t, before))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Authenticate(t.Context(), WithUserToken(callback.Query().Get("code"))); err != nil {
			t.Fatal(err)
		}
		if after := a.AuthURL(); after != before || stateOf(t, after) != a.State {
			t.Errorf("AuthURL after WithUserToken = %s, want %s", after, before)
		}
	})

	t.Run("two logins at once have a state each", func(t *testing.T) {
		g := checkGoroutines(t)
		c, fake := newTestClient(t)
		a := newTestAuthenticator(t, c) // Port 0: each login its own port
		next := stateOf(t, a.AuthURL())
		browser := newBrowser(t, "")
		urls := make(chan string, 2)
		release := make(chan struct{})
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				tok, err := a.Authenticate(t.Context(), WithAuthURLCallback(func(_ context.Context, u string) error {
					urls <- u
					wg.Go(func() {
						<-release
						if p := visit(t, browser, u); p.status != http.StatusOK {
							a.Stop() // the login would wait for ever
						}
					})
					return nil
				}))
				if err != nil || tok == nil {
					t.Errorf("Authenticate = %v, %v", tok, err)
				}
			})
		}
		u1, u2 := <-urls, <-urls
		fake.AddClient(faketwitch.ClientID, faketwitch.ClientSecret, redirectOf(t, u1), redirectOf(t, u2))
		close(release)
		s1, s2 := stateOf(t, u1), stateOf(t, u2)
		wg.Wait()
		g.assertNoServerLeft(t)
		if s1 == s2 || (s1 != next && s2 != next) {
			t.Errorf("states %q and %q; want two, one of them %q", s1, s2, next)
		}
	})
}
