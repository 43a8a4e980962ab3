package twitchoauth

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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

// TestAuthenticateRefusesPortURLMismatch: a Port the redirect to URL cannot reach is refused when
// Authenticate starts, before it listens or opens the browser, instead of ending in "connection
// refused" after the user consented: Port 0 with the default URL (the free port is never 17563),
// or another port than a loopback URL's.
func TestAuthenticateRefusesPortURLMismatch(t *testing.T) {
	g := checkGoroutines(t)
	c, fake := newTestClient(t)
	port := freePort(t)
	for _, tt := range []struct {
		name string
		url  string
		port int
		want string
	}{
		{"port 0 with the default URL", DefaultRedirectURL, 0,
			`UserAuthenticator.Port is 0, a free port, which URL "http://localhost:17563" cannot name: set Port to 17563`},
		{"another port than localhost's", "http://localhost:17563/cb", port,
			`UserAuthenticator.Port ` + strconv.Itoa(port) + ` is not the port of URL "http://localhost:17563/cb", 17563`},
		{"another port than 127.0.0.1's", "http://127.0.0.1:17563", port, "set Port to 17563"},
		{"no port in the URL: 80", "http://[::1]/cb", port, "is not the port of URL \"http://[::1]/cb\", 80"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAuthenticator(t, c) // its OpenBrowser fails the test
			a.URL, a.Port = tt.url, tt.port
			_, err := a.Authenticate(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Authenticate: %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if reqs := fake.Requests(); len(reqs) != 0 {
		t.Errorf("%d requests to Twitch, want none", len(reqs))
	}
	g.assertNoServerLeft(t)
}

// TestCheckPort: what checkPort lets through. A URL of another host than loopback, or a server
// listening on more than loopback, may reach Port through a proxy or a port mapping.
func TestCheckPort(t *testing.T) {
	for _, tt := range []struct {
		url, host string
		port      int
		ok        bool
	}{
		{"", "localhost", 0, true},
		{"", "localhost", 8080, true},
		{DefaultRedirectURL, "localhost", DefaultPort, true},
		{DefaultRedirectURL, "", DefaultPort, true},
		{"http://LOCALHOST.:8080/cb", "127.0.0.1", 8080, true},
		{"http://localhost/cb", "localhost", 80, true},
		{"https://localhost/cb", "localhost", 443, true},
		{"https://login.example.com/cb", "localhost", 17563, true}, // behind a TLS proxy
		{"http://localhost:8080", "0.0.0.0", 17563, true},          // a container's port mapped
		{"http://localhost:8080", "::", 17563, true},
		{DefaultRedirectURL, "localhost", 0, false},
		{"https://login.example.com/cb", "0.0.0.0", 0, false},
		{DefaultRedirectURL, "localhost", 8080, false},
		{DefaultRedirectURL, "", 8080, false},
		{DefaultRedirectURL, "::1", 8080, false},
		{"http://127.0.0.2:17563", "localhost", 8080, false},
		{"http://[::ffff:127.0.0.1]:17563", "[::1]", 8080, false},
		{"https://localhost/cb", "localhost", 80, false},
	} {
		a := &UserAuthenticator{URL: tt.url, Host: tt.host, Port: tt.port}
		if err := a.checkPort(); (err == nil) != tt.ok {
			t.Errorf("URL %q, Host %q, Port %d: %v, want ok %v", tt.url, tt.host, tt.port, err, tt.ok)
		}
	}
}

// TestStorageHelperPort: the storage helper's Port means what UserAuthenticator's does: it
// defaults to DefaultPort, and 0 is a free port, not DefaultPort.
func TestStorageHelperPort(t *testing.T) {
	e := newBindEnv(t)
	if e.h.Port != DefaultPort {
		t.Errorf("NewUserAuthenticationStorageHelper: Port %d, want DefaultPort", e.h.Port)
	}
	e.h.AuthGenerator = nil
	e.h.Port = 0
	opened := make(chan string, 1)
	e.h.OpenBrowser = func(u string) error {
		opened <- u
		return errors.New("no browser here")
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := e.h.Bind(ctx)
		errc <- err
	}()
	select {
	case u := <-opened:
		redirect := redirectOf(t, u)
		if p := portOf(t, redirect); p == 0 || p == DefaultPort || redirect != "http://localhost:"+strconv.Itoa(p) {
			t.Errorf("Port 0: the login redirects to %q, want http://localhost:<a free port>", redirect)
		}
		cancel() // the login URL is logged for a person to open: the login waits for ctx
		<-errc
	case err := <-errc:
		t.Fatalf("Bind ended before opening the browser: %v", err)
	}
}

// TestAuthenticateUnknownClient: a client ID Twitch does not know ends the browser login with an
// error that Is ErrUnknownClient and says what to check, before the browser is opened on Twitch's
// error page (which redirects nowhere, so the login waited until the person pressed Ctrl-C).
func TestAuthenticateUnknownClient(t *testing.T) {
	for _, mode := range []string{"browser", "URL logged"} {
		t.Run(mode, func(t *testing.T) {
			g := checkGoroutines(t)
			c, fake := newTestClient(t)
			c.ClientID = "no-such-app"
			a := newTestAuthenticator(t, c)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			// The person sees Twitch's error page, gives up and presses Ctrl-C.
			gaveUp := func(authURL string) {
				t.Error("the login URL was handed out, to a consent page that cannot redirect")
				visit(t, newBrowser(t, ""), authURL)
				cancel()
			}
			var opts []AuthenticateOption
			if mode == "browser" {
				a.OpenBrowser = func(u string) error { gaveUp(u); return nil }
			} else {
				opts = append(opts, WithoutBrowser())
				c.Logger = slog.New(recordHandler(func(r slog.Record) {
					r.Attrs(func(at slog.Attr) bool {
						if at.Key == "url" {
							gaveUp(at.Value.String())
						}
						return true
					})
				}))
			}
			_, err := a.Authenticate(ctx, opts...)
			g.assertNoServerLeft(t)
			var ae *APIError
			if !errors.Is(err, ErrUnknownClient) || !errors.As(err, &ae) || ae.Endpoint != "authorize" || ae.StatusCode != http.StatusBadRequest {
				t.Fatalf("Authenticate: %v, want the consent page's 400 that Is ErrUnknownClient", err)
			}
			if !strings.Contains(err.Error(), "Twitch does not know this client ID: check Client.ClientID") ||
				strings.Contains(err.Error(), stateOf(t, a.AuthURL())) {
				t.Errorf("error %q: want what to check, and no state", err)
			}
			reqs := fake.Requests()
			if len(reqs) != 1 || reqs[0].Endpoint != "authorize" || reqs[0].Method != http.MethodGet ||
				reqs[0].Query.Get("client_id") != "no-such-app" || reqs[0].Query.Has("client_secret") {
				t.Errorf("requests %+v, want one GET of the consent page, without the secret", reqs)
			}
		})
	}
}

// TestAuthenticateClientCheckStopped: a consent page that does not answer holds up neither Stop
// nor the end of ctx, and no browser opens afterwards.
func TestAuthenticateClientCheckStopped(t *testing.T) {
	for _, end := range []string{"Stop", "ctx"} {
		t.Run(end, func(t *testing.T) {
			g := checkGoroutines(t)
			c, fake := newTestClient(t)
			fake.Fail("authorize", faketwitch.Fault{Hang: true})
			asked := make(chan struct{})
			var once sync.Once
			c.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if strings.HasSuffix(r.URL.Path, "/authorize") {
					once.Do(func() { close(asked) })
				}
				return http.DefaultTransport.RoundTrip(r)
			})}
			a := newTestAuthenticator(t, c) // its OpenBrowser fails the test
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			go func() {
				<-asked
				if end == "Stop" {
					a.Stop()
				} else {
					cancel()
				}
			}()
			_, err := a.Authenticate(ctx)
			want := map[string]error{"Stop": ErrStopped, "ctx": context.Canceled}[end]
			if !errors.Is(err, want) || errors.Is(err, ErrUnknownClient) {
				t.Errorf("Authenticate: %v, want %v", err, want)
			}
			http.DefaultTransport.(*http.Transport).CloseIdleConnections()
			g.assertNoServerLeft(t)
		})
	}
}

// TestAuthenticateClientCheckHeard: the consent page check is a request like any other for the
// Client's hooks, and its redirect (here Twitch's redirect_mismatch, the redirect URL not being
// registered yet) is an answer, not a failure.
func TestAuthenticateClientCheckHeard(t *testing.T) {
	c, fake := newTestClient(t)
	var mu sync.Mutex
	var events []RequestEvent
	c.Hooks = &Hooks{RequestEnd: func(_ context.Context, e RequestEvent) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	}}
	a := newTestAuthenticator(t, c)
	if _, err := authenticate(t, t.Context(), a, fake, func(authURL, _ string) {
		visit(t, newBrowser(t, ""), authURL)
	}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2 || events[0].Endpoint != "authorize" || events[0].Method != http.MethodGet ||
		events[0].Status != http.StatusFound || events[0].Err != nil || events[1].Endpoint != "token" {
		t.Errorf("requests heard: %+v; want the check's 302 without an error, then the exchange", events)
	}
}

// TestAuthenticateClientCheckFailsOpen: a check that Twitch answers with anything but "invalid
// client" (here a 503) leaves the login to the browser, which completes it.
func TestAuthenticateClientCheckFailsOpen(t *testing.T) {
	c, fake := newTestClient(t)
	fake.Fail("authorize", faketwitch.Fault{Status: http.StatusServiceUnavailable, Count: 1})
	a := newTestAuthenticator(t, c)
	tok, err := authenticate(t, t.Context(), a, fake, func(authURL, _ string) {
		visit(t, newBrowser(t, ""), authURL)
	})
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("Authenticate after the check met a 503: %v; want the login completed", err)
	}
}
