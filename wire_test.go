package twitchoauth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// newTestClient starts a fake Twitch identity server and returns a confidential Client pointed at it.
func newTestClient(t testing.TB) (*Client, *faketwitch.Server) {
	t.Helper()
	fake := faketwitch.New()
	base := fake.Start()
	t.Cleanup(fake.Close)
	c := NewClient(faketwitch.ClientID, faketwitch.ClientSecret)
	c.AuthBaseURL = base
	return c, fake
}

// publicClient returns a Client of the fake's public app (no secret).
func publicClient(fake *faketwitch.Server) *Client {
	c := NewClient(faketwitch.PublicClientID, "")
	c.AuthBaseURL = fake.BaseURL()
	return c
}

func assertExpiry(t *testing.T, exp time.Time, ttl time.Duration) {
	t.Helper()
	if d := time.Until(exp); d < ttl-time.Minute || d > ttl {
		t.Errorf("Expiry in %v, want about %v", d, ttl)
	}
}

func TestRefreshAccessToken(t *testing.T) {
	c, fake := newTestClient(t)
	scopes := []string{"chat:read", "chat:edit"}

	t.Run("confidential", func(t *testing.T) {
		_, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, scopes, time.Hour)
		tok, err := c.RefreshAccessToken(t.Context(), refresh)
		if err != nil {
			t.Fatal(err)
		}
		if tok.AccessToken == "" || tok.RefreshToken == "" || tok.TokenType != "bearer" {
			t.Errorf("token = %+v", tok)
		}
		assertExpiry(t, tok.Expiry, fake.AccessTokenTTL)
		if got := TokenScopes(tok); !slices.Equal(got, []Scope{ScopeChatRead, ScopeChatEdit}) {
			t.Errorf("scopes = %v", got)
		}
		req := fake.Requests()[len(fake.Requests())-1]
		if req.Form.Get("client_secret") != faketwitch.ClientSecret || req.Form.Get("refresh_token") != refresh {
			t.Errorf("form = %v", req.Form)
		}
	})

	t.Run("public client sends no secret and its refresh token is single use", func(t *testing.T) {
		pc := publicClient(fake)
		_, refresh := fake.IssueToken(pc.ClientID, faketwitch.UserID, scopes, time.Hour)
		fake.ResetRequests()
		tok, err := pc.RefreshAccessToken(t.Context(), refresh)
		if err != nil {
			t.Fatal(err)
		}
		if tok.RefreshToken == refresh {
			t.Error("public client's refresh token did not rotate")
		}
		if form := fake.Requests()[0].Form; form.Has("client_secret") {
			t.Errorf("public client sent a secret: %v", form)
		}
		_, err = pc.RefreshAccessToken(t.Context(), refresh)
		if !errors.Is(err, ErrInvalidRefreshToken) {
			t.Errorf("reused refresh token: err = %v, want ErrInvalidRefreshToken", err)
		}
	})

	t.Run("rejected", func(t *testing.T) {
		_, err := c.RefreshAccessToken(t.Context(), "no-such-refresh-token")
		var ae *APIError
		if !errors.Is(err, ErrInvalidRefreshToken) || !errors.As(err, &ae) || ae.StatusCode != 400 {
			t.Errorf("err = %v, want a 400 APIError that Is ErrInvalidRefreshToken", err)
		}
		if strings.Contains(err.Error(), "no-such-refresh-token") {
			t.Errorf("error names the refresh token: %v", err)
		}
	})

	t.Run("wrong secret", func(t *testing.T) {
		_, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, scopes, time.Hour)
		bad := *c
		bad.ClientSecret = "wrong"
		_, err := bad.RefreshAccessToken(t.Context(), refresh)
		if !errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrInvalidRefreshToken) {
			t.Errorf("err = %v, want ErrUnauthorized", err)
		}
	})

	t.Run("package level", func(t *testing.T) {
		_, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, scopes, time.Hour)
		tok, err := RefreshAccessToken(t.Context(), refresh, c.ClientID, c.ClientSecret,
			WithAuthBaseURL(strings.TrimSuffix(fake.BaseURL(), "/")), WithHTTPClient(&http.Client{}))
		if err != nil || tok.AccessToken == "" {
			t.Errorf("RefreshAccessToken = %v, %v", tok, err)
		}
	})
}

func TestValidateToken(t *testing.T) {
	c, fake := newTestClient(t)
	user, _ := fake.IssueToken(c.ClientID, faketwitch.UserID, []string{"chat:read"}, time.Hour)
	v, err := c.ValidateToken(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	if v.ClientID != c.ClientID || v.UserID != faketwitch.UserID || v.Login != faketwitch.UserLogin ||
		!slices.Equal(v.Scopes, []Scope{ScopeChatRead}) || !v.IsUserToken() {
		t.Errorf("validation = %+v", v)
	}
	if v.ExpiresIn <= 59*time.Minute || v.ExpiresIn > time.Hour {
		t.Errorf("ExpiresIn = %v, want about 1h", v.ExpiresIn)
	}
	if req := fake.Requests()[0]; req.Authorization != "OAuth "+user {
		t.Errorf("Authorization = %q", req.Authorization)
	}

	app, err := c.AppAccessToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if app.RefreshToken != "" || TokenScopes(app) != nil {
		t.Errorf("app token = %+v", app)
	}
	v, err = ValidateToken(t.Context(), app.AccessToken, WithAuthBaseURL(fake.BaseURL()))
	if err != nil {
		t.Fatal(err)
	}
	if v.IsUserToken() || v.Login != "" || v.Scopes != nil {
		t.Errorf("app validation = %+v", v)
	}

	_, err = c.ValidateToken(t.Context(), "not-a-token")
	var ae *APIError
	if !errors.Is(err, ErrInvalidToken) || !errors.As(err, &ae) || ae.StatusCode != 401 || ae.Endpoint != "validate" {
		t.Errorf("invalid token: err = %v, want a 401 APIError that Is ErrInvalidToken", err)
	}
}

func TestGetUserInfo(t *testing.T) {
	c, fake := newTestClient(t)
	fake.AddUser("777", "mailer", "mailer@example.com")
	tok, _ := fake.IssueToken(c.ClientID, "777", []string{"user:read:email"}, time.Hour)
	info, err := GetUserInfo(t.Context(), tok, WithAuthBaseURL(fake.BaseURL()))
	if err != nil {
		t.Fatal(err)
	}
	if info.Subject != "777" || info.PreferredUsername != "mailer" || info.Email != "mailer@example.com" ||
		!info.EmailVerified || info.Picture == "" || info.Raw["iss"] != "https://id.twitch.tv/oauth2" {
		t.Errorf("info = %+v", info)
	}
	if req := fake.Requests()[0]; req.Authorization != "Bearer "+tok {
		t.Errorf("Authorization = %q", req.Authorization)
	}
	if _, err := c.GetUserInfo(t.Context(), "bad"); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("bad token: err = %v, want ErrInvalidToken", err)
	}
}

func TestRevokeToken(t *testing.T) {
	c, fake := newTestClient(t)
	tok, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, time.Hour)
	if err := RevokeToken(t.Context(), c.ClientID, tok, WithAuthBaseURL(fake.BaseURL())); err != nil {
		t.Fatalf("RevokeToken = %v", err)
	}
	if _, err := c.ValidateToken(t.Context(), tok); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("validate after revoke: %v", err)
	}
	if _, err := c.RefreshAccessToken(t.Context(), refresh); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Errorf("refresh after revoke: %v", err)
	}
	if err := c.RevokeToken(t.Context(), tok); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("second revoke: err = %v, want ErrInvalidToken", err)
	}
	other := *c
	other.ClientID = "no-such-client"
	err := other.RevokeToken(t.Context(), tok)
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 404 || ae.Message != "client does not exist" || errors.Is(err, ErrInvalidToken) {
		t.Errorf("unknown client: err = %v", err)
	}
}

// TestErrorShapes sends each malformed or failed answer of twitch-wire.md through every helper and
// checks the error each one gives.
func TestErrorShapes(t *testing.T) {
	c, fake := newTestClient(t)
	access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, time.Hour)
	calls := map[string]func(ctx context.Context) error{
		"token": func(ctx context.Context) error { _, err := c.RefreshAccessToken(ctx, refresh); return err },
		"validate": func(ctx context.Context) error {
			_, err := c.ValidateToken(ctx, access)
			return err
		},
		"userinfo": func(ctx context.Context) error { _, err := c.GetUserInfo(ctx, access); return err },
		"revoke":   func(ctx context.Context) error { return c.RevokeToken(ctx, "not-a-token") },
	}
	type shape struct {
		name    string
		fault   faketwitch.Fault
		status  int
		message string
	}
	shapes := []shape{
		{"empty 500", faketwitch.Fault{Status: 500}, 500, "Internal Server Error"},
		{"html 502", faketwitch.Fault{Status: 502, Body: "<html><body><h1>502 Bad Gateway</h1></body></html>"}, 502, "Bad Gateway (answer is not Twitch's JSON error)"},
		{"429", faketwitch.Fault{Status: 429, Body: `{"status":429,"message":"Too Many Requests"}`}, 429, "Too Many Requests"},
		{"truncated error", faketwitch.Fault{Status: 400, Body: `{"status":400,"mess`, Truncate: true}, 400, "answer cut short"},
		{"truncated success", faketwitch.Fault{Status: 200, Body: `{"access_token":"x","client_id":"c","sub":"1"`, Truncate: true}, 200, "answer cut short"},
		{"oversized", faketwitch.Fault{Status: 200, Body: "{" + strings.Repeat(" ", 2<<20) + "}"}, 200, "answer larger than 1 MiB"},
	}
	// A server that echoes what it was sent: each request's own secrets are scrubbed.
	echo := map[string]string{"token": refresh, "validate": access, "userinfo": access, "revoke": "not-a-token"}
	for endpoint, call := range calls {
		shapes := append(shapes, shape{"echoes secrets", faketwitch.Fault{Status: 400,
			Body: `{"status":400,"message":"bad ` + echo[endpoint] + " " + c.ClientSecret + `"}`}, 400, "bad [redacted] [redacted]"})
		for _, sh := range shapes {
			t.Run(endpoint+"/"+sh.name, func(t *testing.T) {
				f := sh.fault
				f.Count = 1
				fake.Fail(endpoint, f)
				err := call(t.Context())
				var ae *APIError
				if !errors.As(err, &ae) {
					t.Fatalf("err = %v, want *APIError", err)
				}
				if ae.Endpoint != endpoint || ae.StatusCode != sh.status || ae.Message != sh.message {
					t.Errorf("got %+v, want status %d message %q", ae, sh.status, sh.message)
				}
				for _, s := range []string{access, refresh, c.ClientSecret} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error text leaks a secret: %q", err)
					}
				}
			})
		}
	}

	// A 200 that lacks what it must carry.
	for endpoint, call := range calls {
		if endpoint == "revoke" {
			continue // a revoke succeeds on any 200
		}
		fake.Fail(endpoint, faketwitch.Fault{Status: 200, Body: `{"unexpected":true}`, Count: 1})
		var ae *APIError
		if err := call(t.Context()); !errors.As(err, &ae) || ae.StatusCode != 200 || !strings.Contains(ae.Message, "lacks") {
			t.Errorf("%s: 200 without its fields: err = %v", endpoint, err)
		}
	}
	fake.Fail("revoke", faketwitch.Fault{Status: 200, Body: "<html>ok</html>", Count: 1})
	if err := c.RevokeToken(t.Context(), access); err != nil {
		t.Errorf("revoke on a 200 with a body: %v", err)
	}
}

// TestNoSecretInURL runs every helper and checks that no request carried a secret, code or token in
// its URL, and that every token endpoint request sent a form body.
func TestNoSecretInURL(t *testing.T) {
	c, fake := newTestClient(t)
	ctx := t.Context()
	access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, time.Hour)
	if _, err := c.RefreshAccessToken(ctx, refresh); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ValidateToken(ctx, access); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetUserInfo(ctx, access); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppAccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.RevokeToken(ctx, access); err != nil {
		t.Fatal(err)
	}
	reqs := fake.Requests()
	if len(reqs) != 5 {
		t.Fatalf("%d requests, want 5", len(reqs))
	}
	for _, r := range reqs {
		for _, s := range []string{"client_secret", "refresh_token", "code", "token", access, refresh, c.ClientSecret} {
			if strings.Contains(r.RawQuery, s) {
				t.Errorf("%s %s: query %q holds %q", r.Method, r.Endpoint, r.RawQuery, s)
			}
		}
		if r.Method == http.MethodPost && r.ContentType != "application/x-www-form-urlencoded" {
			t.Errorf("%s: Content-Type %q", r.Endpoint, r.ContentType)
		}
	}
}

func TestConnectionReuse(t *testing.T) {
	c, fake := newTestClient(t)
	tok, _ := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, time.Hour)
	for i := range 200 {
		if _, err := c.ValidateToken(t.Context(), tok); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	// Error answers are drained too, so they keep the connection.
	for range 10 {
		if _, err := c.ValidateToken(t.Context(), "bad"); !errors.Is(err, ErrInvalidToken) {
			t.Fatal(err)
		}
	}
	if n := fake.Connections(); n != 1 {
		t.Errorf("210 sequential calls opened %d connections, want 1", n)
	}
}

func TestContextCancel(t *testing.T) {
	c, fake := newTestClient(t)
	fake.Fail("validate", faketwitch.Fault{Hang: true})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := c.ValidateToken(ctx, "tok")
		done <- err
	}()
	for fake.CountRequests("validate") == 0 {
		time.Sleep(time.Millisecond) // wait until the request is in flight
	}
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if strings.Contains(err.Error(), fake.BaseURL()) {
		t.Errorf("error repeats the URL: %v", err)
	}

	fake.ClearFaults()
	fake.Fail("token", faketwitch.Fault{Delay: time.Minute})
	ctx, cancel = context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.AppAccessToken(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: err = %v, want context.DeadlineExceeded", err)
	}
}

func TestAuthBaseURLForms(t *testing.T) {
	c, fake := newTestClient(t)
	tok, _ := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, time.Hour)
	for _, base := range []string{fake.BaseURL(), strings.TrimSuffix(fake.BaseURL(), "/"), fake.BaseURL() + "/"} {
		c.AuthBaseURL = base
		if _, err := c.ValidateToken(t.Context(), tok); err != nil {
			t.Errorf("AuthBaseURL %q: %v", base, err)
		}
	}
	c.AuthBaseURL = "http://[::1"
	if _, err := c.ValidateToken(t.Context(), tok); err == nil || strings.Contains(err.Error(), tok) {
		t.Errorf("bad AuthBaseURL: err = %v", err)
	}
	if got := (&Client{}).endpointURL("token"); got != DefaultAuthBaseURL+"token" {
		t.Errorf("default endpoint = %q", got)
	}
}

func BenchmarkValidateToken(b *testing.B) {
	c, fake := newTestClient(b)
	tok, _ := fake.IssueToken(c.ClientID, faketwitch.UserID, []string{"chat:read"}, time.Hour)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.ValidateToken(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(fake.Connections()), "conns")
}

// newHelixServer starts a stand-in for Twitch's Helix API and returns its base URL.
func newHelixServer(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestUnknownClient: every endpoint that names the app tells a client ID Twitch does not know with
// ErrUnknownClient, not with raw text.
func TestUnknownClient(t *testing.T) {
	c, fake := newTestClient(t)
	access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, 0)
	bad := &Client{ClientID: "no-such-client", ClientSecret: c.ClientSecret, AuthBaseURL: c.AuthBaseURL}
	calls := map[string]func(ctx context.Context) error{
		"refresh": func(ctx context.Context) error { _, err := bad.RefreshAccessToken(ctx, refresh); return err },
		"revoke":  func(ctx context.Context) error { return bad.RevokeToken(ctx, access) },
		"device":  func(ctx context.Context) error { _, _, err := NewCodeFlow(bad, nil).GetCode(ctx); return err },
		"app":     func(ctx context.Context) error { _, err := bad.AppAccessToken(ctx); return err },
	}
	for name, call := range calls {
		err := call(t.Context())
		if !errors.Is(err, ErrUnknownClient) || errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: err = %v, want ErrUnknownClient", name, err)
		}
		// The text says so, and what to check, to a person who reads only the log.
		if err != nil && !strings.Contains(err.Error(), "Twitch does not know this client ID: check Client.ClientID") {
			t.Errorf("%s: %q does not say the client ID is unknown and what to check", name, err)
		}
	}
}
