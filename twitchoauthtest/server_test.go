package twitchoauthtest_test

import (
	"context"
	"errors"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

func TestNewServer(t *testing.T) {
	var url string
	t.Run("running", func(t *testing.T) {
		srv := twitchoauthtest.NewServer(t)
		url = srv.URL
		if !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, "/oauth2/") {
			t.Fatalf("URL = %q", url)
		}
		if _, err := srv.Client().AppAccessToken(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
	// The subtest's Cleanup closed it.
	if _, err := twitchoauth.ValidateToken(t.Context(), "x", twitchoauth.WithAuthBaseURL(url)); err == nil ||
		errors.Is(err, twitchoauth.ErrInvalidToken) {
		t.Errorf("after the test: err = %v, want a connection error", err)
	}
}

func TestConstants(t *testing.T) {
	// The fake's seeds, which the library's own tests use, are the names this package documents.
	got := []string{twitchoauthtest.ClientID, twitchoauthtest.ClientSecret, twitchoauthtest.PublicClientID,
		twitchoauthtest.UserID, twitchoauthtest.UserLogin, twitchoauth.DefaultRedirectURL}
	want := []string{faketwitch.ClientID, faketwitch.ClientSecret, faketwitch.PublicClientID,
		faketwitch.UserID, faketwitch.UserLogin, faketwitch.RedirectURL}
	if !slices.Equal(got, want) {
		t.Errorf("constants %q, the fake's %q", got, want)
	}
}

func TestClients(t *testing.T) {
	srv := twitchoauthtest.NewServer(t)
	a, b := srv.Client(), srv.Client()
	if a == b {
		t.Error("Client returned the same *Client twice")
	}
	if a.ClientID != twitchoauthtest.ClientID || a.ClientSecret != twitchoauthtest.ClientSecret || a.AuthBaseURL != srv.URL ||
		a.HTTPClient != nil || a.Logger != nil {
		t.Errorf("Client = %+v", a)
	}
	p := srv.PublicClient()
	if p == srv.PublicClient() || p.ClientID != twitchoauthtest.PublicClientID || p.ClientSecret != "" || p.AuthBaseURL != srv.URL {
		t.Errorf("PublicClient = %+v", p)
	}
	tok, err := srv.Client().AppAccessToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if v, err := a.ValidateToken(t.Context(), tok.AccessToken); err != nil || v.ClientID != twitchoauthtest.ClientID {
		t.Errorf("app token: %+v, %v", v, err)
	}
}

func TestIssueUserToken(t *testing.T) {
	srv := twitchoauthtest.NewServer(t)
	srv.AddUser("1234", "streamer")
	before := time.Now()
	tok := srv.IssueUserToken("1234", twitchoauth.ScopeChatRead, twitchoauth.ScopeChatEdit)
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.TokenType != "bearer" ||
		tok.Expiry.Before(before.Add(4*time.Hour)) || tok.Expiry.After(time.Now().Add(4*time.Hour)) {
		t.Errorf("token = %+v", tok)
	}
	if got := twitchoauth.TokenScopes(tok); !slices.Equal(got, []twitchoauth.Scope{twitchoauth.ScopeChatRead, twitchoauth.ScopeChatEdit}) {
		t.Errorf("scopes = %v", got)
	}
	if n := len(srv.Requests("")); n != 0 {
		t.Errorf("IssueUserToken sent %d requests", n)
	}
	v, err := srv.Client().ValidateToken(t.Context(), tok.AccessToken)
	if err != nil || v.UserID != "1234" || v.Login != "streamer" || v.ExpiresIn < 4*time.Hour-time.Minute {
		t.Errorf("validate: %+v, %v", v, err)
	}
	info, err := srv.Client().GetUserInfo(t.Context(), tok.AccessToken)
	if err != nil || info.Email != "streamer@example.com" || info.PreferredUsername != "streamer" {
		t.Errorf("userinfo: %+v, %v", info, err)
	}
	if got := twitchoauth.TokenScopes(srv.IssueUserToken(twitchoauthtest.UserID)); got != nil {
		t.Errorf("no scopes: TokenScopes = %v", got)
	}

	srv.AddUser("1234", "renamed")
	if v, _ := srv.Client().ValidateToken(t.Context(), tok.AccessToken); v == nil || v.Login != "renamed" {
		t.Errorf("after renaming: %+v", v)
	}
}

// TestMisuse checks that each mistake a test can make panics with a message naming it, and
// never a token.
func TestMisuse(t *testing.T) {
	srv := twitchoauthtest.NewServer(t)
	secret := srv.IssueUserToken(twitchoauthtest.UserID).AccessToken + "x"
	tests := []struct {
		name string
		f    func()
		want string
	}{
		{"unknown user", func() { srv.IssueUserToken("999") }, `IssueUserToken: no user "999": register it with AddUser`},
		{"user without login", func() { srv.AddUser("1", "") }, "a user needs an ID and a login"},
		{"user without ID", func() { srv.AuthorizeAs("", "x") }, "a user needs an ID and a login"},
		{"expire unknown", func() { srv.Expire(secret) }, "Expire: not an access token this server issued"},
		{"revoke unknown", func() { srv.Revoke(secret) }, "Revoke: not a token this server issued"},
		{"backwards", func() { srv.Advance(-time.Second) }, "the clock only moves forward"},
		{"relative redirect", func() { srv.AddRedirectURL("/callback") }, "not an absolute URL"},
		{"fail unknown endpoint", func() { srv.Fail("tokens", 500, 1) }, `Fail: unknown endpoint "tokens"`},
		{"fail with a success", func() { srv.Fail("token", 200, 1) }, "status 200 is not an error status"},
		{"delay unknown endpoint", func() { srv.Delay("/token", time.Second, 1) }, `Delay: unknown endpoint "/token"`},
		{"no delay", func() { srv.Delay("token", 0, 1) }, "0s is no delay"},
		{"hang unknown endpoint", func() { srv.Hang("oauth2/token", 1) }, `Hang: unknown endpoint "oauth2/token"`},
		{"requests unknown endpoint", func() { srv.Requests("tokne") }, `Requests: unknown endpoint "tokne"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				msg, _ := recover().(string)
				if !strings.HasPrefix(msg, "twitchoauthtest: ") || !strings.Contains(msg, tt.want) {
					t.Errorf("panic %q, want one containing %q", msg, tt.want)
				}
				if strings.Contains(msg, secret) {
					t.Errorf("panic names the token: %q", msg)
				}
			}()
			tt.f()
		})
	}
}

func TestExpire(t *testing.T) {
	srv := twitchoauthtest.NewServer(t)
	c := srv.Client()
	tok, other := srv.IssueUserToken(twitchoauthtest.UserID), srv.IssueUserToken(twitchoauthtest.UserID)
	srv.Expire(tok.AccessToken)
	if _, err := c.ValidateToken(t.Context(), tok.AccessToken); !errors.Is(err, twitchoauth.ErrInvalidToken) {
		t.Errorf("expired token: %v, want ErrInvalidToken", err)
	}
	if _, err := c.ValidateToken(t.Context(), other.AccessToken); err != nil {
		t.Errorf("another token: %v", err)
	}
	if _, err := c.RefreshAccessToken(t.Context(), tok.RefreshToken); err != nil {
		t.Errorf("refresh of an expired token: %v", err)
	}

	srv.ExpireAll()
	if _, err := c.ValidateToken(t.Context(), other.AccessToken); !errors.Is(err, twitchoauth.ErrInvalidToken) {
		t.Errorf("after ExpireAll: %v, want ErrInvalidToken", err)
	}
	fresh, err := c.RefreshAccessToken(t.Context(), other.RefreshToken)
	if err != nil {
		t.Fatalf("refresh after ExpireAll: %v", err)
	}
	if _, err := c.ValidateToken(t.Context(), fresh.AccessToken); err != nil {
		t.Errorf("a token issued after ExpireAll: %v", err)
	}
}

// TestRevoke checks that Revoke ends the whole login, also when the token the test holds has
// been refreshed since, as it has after a bot ran for a while.
func TestRevoke(t *testing.T) {
	for _, by := range []string{"access token", "refresh token"} {
		t.Run(by, func(t *testing.T) {
			srv := twitchoauthtest.NewServer(t)
			c := srv.Client()
			tok := srv.IssueUserToken(twitchoauthtest.UserID)
			other := srv.IssueUserToken(twitchoauthtest.UserID)
			later, err := c.RefreshAccessToken(t.Context(), tok.RefreshToken)
			if err != nil {
				t.Fatal(err)
			}
			srv.Revoke(map[string]string{"access token": tok.AccessToken, "refresh token": tok.RefreshToken}[by])
			for _, tk := range []*oauth2.Token{tok, later} {
				if _, err := c.ValidateToken(t.Context(), tk.AccessToken); !errors.Is(err, twitchoauth.ErrInvalidToken) {
					t.Errorf("validate: %v, want ErrInvalidToken", err)
				}
				if _, err := c.RefreshAccessToken(t.Context(), tk.RefreshToken); !errors.Is(err, twitchoauth.ErrInvalidRefreshToken) {
					t.Errorf("refresh: %v, want ErrInvalidRefreshToken", err)
				}
			}
			if _, err := c.RefreshAccessToken(t.Context(), other.RefreshToken); err != nil {
				t.Errorf("another login of the user: %v", err)
			}
			srv.Revoke(tok.AccessToken) // again: still a token it issued
		})
	}
}

// TestAdvance checks that the server's clock, not the caller's, decides expiry: a device code
// outlived on Twitch's side can no longer be approved, and its poll says so.
func TestAdvance(t *testing.T) {
	srv := twitchoauthtest.NewServer(t)
	flow := twitchoauth.NewCodeFlow(srv.PublicClient(), nil)
	code, _, err := flow.GetCode(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	srv.Advance(30 * time.Minute)
	if err := srv.ApproveDevice(code); err == nil || err.Error() != `twitchoauthtest: ApproveDevice: user code "`+code+`" has expired` {
		t.Errorf("ApproveDevice after expiry: %v", err)
	}
	if _, err := flow.WaitForAuthComplete(t.Context()); !errors.Is(err, twitchoauth.ErrDeviceCodeExpired) {
		t.Errorf("WaitForAuthComplete: %v, want ErrDeviceCodeExpired", err)
	}
}

func TestDeviceErrors(t *testing.T) {
	srv := twitchoauthtest.NewServer(t)
	if err := srv.ApproveDevice("NOSUCHCD"); err == nil || err.Error() != `twitchoauthtest: ApproveDevice: unknown user code "NOSUCHCD"` {
		t.Errorf("ApproveDevice: %v", err)
	}
	if err := srv.DenyDevice("NOSUCHCD"); err == nil || !strings.HasPrefix(err.Error(), "twitchoauthtest: DenyDevice: unknown user code") {
		t.Errorf("DenyDevice: %v", err)
	}
}

// TestAuthorizeAs runs the browser login as the default user, another one, and a user who
// declines, then approves again.
func TestAuthorizeAs(t *testing.T) {
	srv := twitchoauthtest.NewServer(t)
	login := func() (string, error) {
		c := srv.Client()
		a := twitchoauth.NewUserAuthenticator(c, nil)
		a.URL, a.Port = "", 0
		a.OpenBrowser = srv.OpenBrowser
		tok, err := a.Authenticate(t.Context())
		if err != nil {
			return "", err
		}
		v, err := c.ValidateToken(t.Context(), tok.AccessToken)
		if err != nil {
			return "", err
		}
		return v.UserID + " " + v.Login, nil
	}
	steps := []struct {
		name    string
		setup   func()
		want    string
		wantErr error
	}{
		{"default user", func() {}, "12345 fakeuser", nil},
		{"another user", func() { srv.AuthorizeAs("1234", "streamer") }, "1234 streamer", nil},
		{"declines", func() { srv.DenyAuthorize(true) }, "", twitchoauth.ErrAccessDenied},
		{"approves again", func() { srv.DenyAuthorize(false) }, "1234 streamer", nil},
	}
	for _, st := range steps {
		st.setup()
		got, err := login()
		if got != st.want || !errors.Is(err, st.wantErr) {
			t.Errorf("%s: %q, %v; want %q, %v", st.name, got, err, st.want, st.wantErr)
		}
	}
}

// TestOpenBrowserFails checks that a login whose browser cannot finish fails at once, instead of
// waiting for a redirect that never comes.
func TestOpenBrowserFails(t *testing.T) {
	tests := []struct {
		name  string
		setup func(srv *twitchoauthtest.Server, c *twitchoauth.Client)
		want  string
	}{
		// Down for every visit: the login's own look at the page, then the browser's.
		{"consent page down", func(srv *twitchoauthtest.Server, _ *twitchoauth.Client) { srv.Fail("authorize", 500, 0) },
			"the consent page answered 500 instead of a redirect"},
		{"another server's URL", func(_ *twitchoauthtest.Server, c *twitchoauth.Client) { c.AuthBaseURL = "http://127.0.0.1:1/oauth2/" },
			"not this server's authorize URL"},
		// Found out by the login itself, before it opens the browser.
		{"unknown app", func(_ *twitchoauthtest.Server, c *twitchoauth.Client) { c.ClientID = "nope" },
			`authorize answered 400: invalid client (Twitch does not know this client ID`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := twitchoauthtest.NewServer(t)
			c := srv.Client()
			tt.setup(srv, c)
			a := twitchoauth.NewUserAuthenticator(c, nil)
			a.URL, a.Port = "", 0
			a.OpenBrowser = srv.OpenBrowser
			_, err := a.Authenticate(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Authenticate: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestAddRedirectURL(t *testing.T) {
	srv := twitchoauthtest.NewServer(t)
	const redirect = "http://localhost:8080/callback"
	a := twitchoauth.NewUserAuthenticator(srv.Client(), nil)
	a.URL = redirect
	a.State = "st"
	authURL := a.AuthURL() // for the real Twitch; the path and query are what matter
	_, query, _ := strings.Cut(authURL, "?")
	target := srv.URL + "authorize?" + query
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	location := func() string {
		resp, err := hc.Get(target)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("Location")
	}
	if loc := location(); !strings.HasPrefix(loc, twitchoauth.DefaultRedirectURL+"?") || !strings.Contains(loc, "error=redirect_mismatch") {
		t.Errorf("unregistered: Location %q, want a redirect_mismatch to the first registered URL", loc)
	}
	srv.AddRedirectURL(redirect)
	srv.AddRedirectURL(redirect) // registered once
	if loc := location(); !strings.HasPrefix(loc, redirect+"?code=") {
		t.Errorf("registered: Location %q", loc)
	}
}

func TestFaults(t *testing.T) {
	srv := twitchoauthtest.NewServer(t)
	c := srv.Client()
	tok := srv.IssueUserToken(twitchoauthtest.UserID)
	validate := func() int {
		_, err := c.ValidateToken(t.Context(), tok.AccessToken)
		var ae *twitchoauth.APIError
		switch {
		case err == nil:
			return 200
		case errors.As(err, &ae):
			return ae.StatusCode
		}
		t.Fatal(err)
		return 0
	}
	t.Run("in turn", func(t *testing.T) {
		srv.Fail("validate", 502, 2)
		srv.Fail("validate", 429, 1)
		var got []int
		for range 4 {
			got = append(got, validate())
		}
		if want := []int{502, 502, 429, 200}; !slices.Equal(got, want) {
			t.Errorf("statuses %v, want %v", got, want)
		}
	})
	t.Run("until cleared", func(t *testing.T) {
		srv.Fail("validate", 500, 0)
		srv.Fail("userinfo", 500, -1)
		for range 3 {
			if got := validate(); got != 500 {
				t.Fatalf("status %d, want 500", got)
			}
		}
		srv.ClearFaults()
		if got := validate(); got != 200 {
			t.Errorf("after ClearFaults: %d", got)
		}
		if _, err := c.GetUserInfo(t.Context(), tok.AccessToken); err != nil {
			t.Errorf("userinfo after ClearFaults: %v", err)
		}
	})
	t.Run("body", func(t *testing.T) {
		srv.Fail("token", 429, 1)
		resp, err := http.PostForm(srv.URL+"token", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if want := `{"error":"Too Many Requests","message":"Too Many Requests","status":429}`; resp.StatusCode != 429 ||
			string(body) != want || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("got %d %s %q, want 429 %s", resp.StatusCode, resp.Header.Get("Content-Type"), body, want)
		}
	})
	t.Run("delay", func(t *testing.T) {
		srv.Delay("validate", 30*time.Millisecond, 1)
		start := time.Now()
		if got := validate(); got != 200 || time.Since(start) < 30*time.Millisecond {
			t.Errorf("status %d after %v, want 200 after the delay", got, time.Since(start))
		}
		srv.Delay("validate", time.Hour, 0)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		if _, err := c.ValidateToken(ctx, tok.AccessToken); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("delayed past the deadline: %v", err)
		}
		srv.ClearFaults()
	})
	t.Run("hang ends with Close", func(t *testing.T) {
		srv := twitchoauthtest.New()
		srv.Hang("validate", 0)
		errc := make(chan error, 1)
		go func() {
			_, err := srv.Client().ValidateToken(t.Context(), "any")
			errc <- err
		}()
		srv.Close()
		srv.Close()
		if err := <-errc; err == nil || errors.Is(err, twitchoauth.ErrInvalidToken) {
			t.Errorf("a hanging request after Close: %v, want a connection error", err)
		}
	})
}

func TestRequests(t *testing.T) {
	srv := twitchoauthtest.NewServer(t)
	tok := srv.IssueUserToken(twitchoauthtest.UserID)
	c := srv.Client()
	c.ValidateToken(t.Context(), tok.AccessToken)
	c.RefreshAccessToken(t.Context(), tok.RefreshToken)
	resp, err := http.Get(srv.URL + "elsewhere?a=b")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	all := srv.Requests("")
	var endpoints []string
	for _, r := range all {
		endpoints = append(endpoints, r.Endpoint)
	}
	if want := []string{"validate", "token", "elsewhere"}; !slices.Equal(endpoints, want) {
		t.Errorf("endpoints %q, want %q", endpoints, want)
	}
	if all[2].Method != "GET" || all[2].Query.Get("a") != "b" || all[2].Form == nil {
		t.Errorf("request to elsewhere: %+v", all[2])
	}
	reqs := srv.Requests("token")
	if len(reqs) != 1 || reqs[0].Form.Get("refresh_token") != tok.RefreshToken || reqs[0].Authorization != "" {
		t.Fatalf("token requests: %+v", reqs)
	}
	// Copies: changing one changes nothing the next call returns.
	reqs[0].Form.Set("refresh_token", "changed")
	reqs[0].Form["client_id"][0] = "changed"
	if again := srv.Requests("token")[0].Form; again.Get("refresh_token") != tok.RefreshToken || again.Get("client_id") != twitchoauthtest.ClientID {
		t.Errorf("Requests returned shared values: %v", again)
	}
	if got := srv.Requests("revoke"); len(got) != 0 {
		t.Errorf("revoke requests: %+v", got)
	}
}

func TestRequireToken(t *testing.T) {
	srv := twitchoauthtest.NewServer(t)
	helix := httptest.NewServer(srv.RequireToken(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "reached")
	}), twitchoauth.ScopeChatRead))
	t.Cleanup(helix.Close)
	tok := srv.IssueUserToken(twitchoauthtest.UserID, twitchoauth.ScopeChatRead, twitchoauth.ScopeChatEdit)
	noScope := srv.IssueUserToken(twitchoauthtest.UserID)
	expired := srv.IssueUserToken(twitchoauthtest.UserID, twitchoauth.ScopeChatRead)
	srv.Expire(expired.AccessToken)

	tests := []struct {
		name, auth, clientID string
		status               int
		body                 string
	}{
		{"valid", "Bearer " + tok.AccessToken, twitchoauthtest.ClientID, 200, "reached"},
		{"scheme case", "bearer " + tok.AccessToken, twitchoauthtest.ClientID, 200, "reached"},
		{"no header", "", twitchoauthtest.ClientID, 401, "OAuth token is missing"},
		{"OAuth scheme", "OAuth " + tok.AccessToken, twitchoauthtest.ClientID, 401, "OAuth token is missing"},
		{"unknown token", "Bearer nope", twitchoauthtest.ClientID, 401, "Invalid OAuth token"},
		{"expired", "Bearer " + expired.AccessToken, twitchoauthtest.ClientID, 401, "Invalid OAuth token"},
		{"no Client-Id", "Bearer " + tok.AccessToken, "", 401, "Client ID and OAuth token do not match"},
		{"another app", "Bearer " + tok.AccessToken, twitchoauthtest.PublicClientID, 401, "Client ID and OAuth token do not match"},
		{"missing scope", "Bearer " + noScope.AccessToken, twitchoauthtest.ClientID, 401, "Missing scope: chat:read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", helix.URL+"/helix/users", nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			if tt.clientID != "" {
				req.Header.Set("Client-Id", tt.clientID)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			want := tt.body
			if tt.status == 401 {
				want = `{"error":"Unauthorized","message":"` + tt.body + `","status":401}`
			}
			if resp.StatusCode != tt.status || string(body) != want {
				t.Errorf("got %d %s, want %d %s", resp.StatusCode, body, tt.status, want)
			}
		})
	}
	if n := len(srv.Requests("")); n != 0 {
		t.Errorf("checking tokens sent %d requests to the identity server", n)
	}
}

// TestMockAuthenticate checks that twitch-cli's mock login, which the library supports, works
// against the Server too.
func TestMockAuthenticate(t *testing.T) {
	srv := twitchoauthtest.NewServer(t)
	srv.AddUser("1234", "streamer")
	a := twitchoauth.NewUserAuthenticator(srv.Client(), []twitchoauth.Scope{twitchoauth.ScopeChatRead})
	access, err := a.MockAuthenticate(t.Context(), "1234")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := srv.Client().ValidateToken(t.Context(), access); err != nil || v.Login != "streamer" {
		t.Errorf("validate: %+v, %v", v, err)
	}
}

// TestFakeIndependent checks that the fake does not share the library's code: it must not import
// the library or its wire decoding, so that a decoding bug cannot hide in both and pass the tests.
func TestFakeIndependent(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "internal", "faketwitch", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fake sources: %v", err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range file.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, "github.com/twitchoauth/twitchoauth") || strings.HasPrefix(path, "golang.org/x/oauth2") {
				t.Errorf("%s imports %s", f, path)
			}
		}
	}
}
