package twitchoauth

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// testCookieKey is a cookie key of the minimum length.
var testCookieKey = []byte("0123456789abcdef0123456789abcdef")

// webApp is a web app on an httptest server that mounts a WebLogin's two handlers, recording
// what reaches OnLogin and OnError.
type webApp struct {
	t      *testing.T
	fake   *faketwitch.Server
	c      *Client
	wl     *WebLogin
	srv    *httptest.Server
	logins chan *WebLoginResult
	errs   chan error
}

// newWebApp starts a web app for c with its callback registered with the fake. configure, if
// not nil, changes the WebLogin before it serves; with keepErrorPage, OnError stays nil.
func newWebApp(t *testing.T, c *Client, fake *faketwitch.Server, configure func(*WebLogin)) *webApp {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	redirect := srv.URL + "/auth/twitch/callback"
	fake.AddClient(faketwitch.ClientID, faketwitch.ClientSecret, faketwitch.RedirectURL, redirect)
	app := &webApp{t: t, fake: fake, c: c, srv: srv,
		logins: make(chan *WebLoginResult, 10), errs: make(chan error, 10)}
	wl := NewWebLogin(c, []Scope{ScopeChatRead}, redirect, testCookieKey)
	wl.OnLogin = func(w http.ResponseWriter, r *http.Request, res *WebLoginResult) {
		app.logins <- res
		io.WriteString(w, "hello "+res.Validation.Login)
	}
	wl.OnError = func(w http.ResponseWriter, r *http.Request, err error) {
		app.errs <- err
		http.Error(w, "login failed", http.StatusTeapot)
	}
	if configure != nil {
		configure(wl)
	}
	app.wl = wl
	mux.Handle("GET /auth/twitch", wl.LoginHandler())
	mux.Handle("GET /auth/twitch/callback", wl.CallbackHandler())
	return app
}

// newJarBrowser returns an HTTP client with a cookie jar, as a browser: it follows redirects
// unless follow is false.
func newJarBrowser(t testing.TB, follow bool) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &http.Client{Jar: jar, Transport: &http.Transport{Proxy: nil}, Timeout: time.Minute}
	if !follow {
		b.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	t.Cleanup(b.CloseIdleConnections)
	return b
}

// get sends a GET with browser and returns the final answer's status and body.
func get(t testing.TB, browser *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := browser.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// startLogin opens the app's login page and Twitch's consent page with browser, without following
// the redirect back, and returns the callback URL Twitch sends the browser to.
func (a *webApp) startLogin(browser *http.Client, query string) string {
	a.t.Helper()
	noFollow := *browser
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.Get(a.srv.URL + "/auth/twitch" + query)
	if err != nil {
		a.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		a.t.Fatalf("login page answered %d, want 302", resp.StatusCode)
	}
	resp, err = noFollow.Get(resp.Header.Get("Location"))
	if err != nil {
		a.t.Fatal(err)
	}
	resp.Body.Close()
	cb := resp.Header.Get("Location")
	if !strings.HasPrefix(cb, a.wl.RedirectURL+"?") {
		a.t.Fatalf("Twitch sent the browser to %q, want the callback", cb)
	}
	return cb
}

// refused checks that the last callback was refused with an error that wantErr holds, and that
// nothing reached OnLogin.
func (a *webApp) refused(status int, wantErr func(error) bool) error {
	a.t.Helper()
	if status != http.StatusTeapot {
		a.t.Errorf("callback answered %d, want OnError's 418", status)
	}
	select {
	case res := <-a.logins:
		a.t.Errorf("OnLogin got a login: %+v", res.Validation)
	default:
	}
	select {
	case err := <-a.errs:
		if !wantErr(err) {
			a.t.Errorf("OnError got %v", err)
		}
		return err
	default:
		a.t.Error("OnError was not called")
		return nil
	}
}

func TestWebLogin(t *testing.T) {
	for _, openID := range []bool{false, true} {
		t.Run(map[bool]string{false: "oauth", true: "openid"}[openID], func(t *testing.T) {
			c, fake := newTestClient(t)
			app := newWebApp(t, c, fake, func(wl *WebLogin) {
				wl.OpenID = openID
				wl.Scopes = []Scope{ScopeChatRead, ScopeUserReadEmail}
			})
			browser := newJarBrowser(t, true)
			status, body := get(t, browser, app.srv.URL+"/auth/twitch?return_to=%2Fdashboard%3Ftab%3Dbot")
			if status != http.StatusOK || body != "hello "+faketwitch.UserLogin {
				t.Fatalf("login ended with %d %q", status, body)
			}
			res := <-app.logins
			if res.Token.AccessToken == "" || res.Token.RefreshToken == "" || res.Validation.UserID != faketwitch.UserID ||
				res.ReturnTo != "/dashboard?tab=bot" {
				t.Errorf("result = %+v, %+v", res.Token, res)
			}
			if info, ok := fake.TokenInfo(res.Token.AccessToken); !ok || !info.Live {
				t.Error("the token handed over is not live")
			}

			authz := fake.Requests()[slices.IndexFunc(fake.Requests(), func(r faketwitch.Request) bool { return r.Endpoint == "authorize" })]
			q := authz.Query
			if q.Get("state") == "" || q.Get("redirect_uri") != app.wl.RedirectURL || q.Get("response_type") != "code" {
				t.Errorf("authorize query = %v", q)
			}
			for _, r := range fake.Requests() {
				if r.Endpoint == "token" && (r.RawQuery != "" || r.Form.Get("code") == "") {
					t.Errorf("code exchange not in a form body: query %q", r.RawQuery)
				}
			}
			if cb, _ := url.Parse(app.wl.RedirectURL); len(browser.Jar.Cookies(cb)) != 0 {
				t.Error("the login cookie outlived the callback")
			}
			if !openID {
				if res.Claims != nil || q.Has("nonce") || q.Has("claims") || strings.Contains(q.Get("scope"), "openid") {
					t.Errorf("plain OAuth login: claims %+v, query %v", res.Claims, q)
				}
				return
			}
			if q.Get("nonce") == "" || !strings.Contains(q.Get("scope"), "openid") ||
				!strings.Contains(q.Get("claims"), `"id_token":{`) || !strings.Contains(q.Get("claims"), `"preferred_username":null`) {
				t.Errorf("OIDC authorize query = %v", q)
			}
			cl := res.Claims
			if cl == nil || cl.Subject != faketwitch.UserID || cl.PreferredUsername != faketwitch.UserLogin ||
				cl.Email != "fakeuser@example.com" || !cl.EmailVerified || cl.Picture == "" ||
				cl.Issuer != strings.TrimSuffix(fake.BaseURL(), "/") || cl.Nonce != q.Get("nonce") {
				t.Errorf("claims = %+v", cl)
			}
			if raw, _ := res.Token.Extra("id_token").(string); raw == "" {
				t.Error("Token.Extra(\"id_token\") is empty")
			}
		})
	}
}

// TestWebLoginCookie checks the login cookie's attributes.
func TestWebLoginCookie(t *testing.T) {
	c, _ := newTestClient(t)
	for _, tc := range []struct {
		redirect, name string
		secure         bool
	}{
		{"http://localhost:8080/auth/cb", "twitchoauth_login", false},
		{"https://bot.example/auth/twitch/callback", "__Secure-twitchoauth_login", true},
	} {
		t.Run(tc.redirect, func(t *testing.T) {
			wl := NewWebLogin(c, nil, tc.redirect, testCookieKey)
			wl.OnLogin = func(http.ResponseWriter, *http.Request, *WebLoginResult) {}
			wl.ForceVerify = true
			rec := httptest.NewRecorder()
			wl.LoginHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/auth/twitch", nil))
			resp := rec.Result()
			cookies := resp.Cookies()
			if resp.StatusCode != http.StatusFound || len(cookies) != 1 {
				t.Fatalf("answer %d with cookies %v", resp.StatusCode, cookies)
			}
			ck := cookies[0]
			u, _ := url.Parse(tc.redirect)
			if ck.Name != tc.name || ck.Path != u.Path || ck.MaxAge != 600 || !ck.HttpOnly || ck.Secure != tc.secure ||
				ck.SameSite != http.SameSiteLaxMode || ck.Domain != "" {
				t.Errorf("cookie = %+v", ck)
			}
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if loc.Query().Get("state") == "" || loc.Query().Get("force_verify") != "true" || loc.Query().Get("redirect_uri") != tc.redirect {
				t.Errorf("authorize URL %v", loc)
			}
		})
	}
}

// TestWebLoginCallbackAttacks: a callback that does not belong to a login this browser started
// and has not finished is refused with ErrInvalidState before the code is exchanged.
func TestWebLoginCallbackAttacks(t *testing.T) {
	c, fake := newTestClient(t)
	app := newWebApp(t, c, fake, nil)
	cbURL, _ := url.Parse(app.wl.RedirectURL)
	isState := func(err error) bool { return errors.Is(err, ErrInvalidState) }
	stateSays := func(what string) func(error) bool {
		return func(err error) bool { return errors.Is(err, ErrInvalidState) && strings.Contains(err.Error(), what) }
	}

	setCookie := func(b *http.Client, value string) {
		b.Jar.SetCookies(cbURL, []*http.Cookie{{Name: "twitchoauth_login", Value: value, Path: "/auth/twitch/callback"}})
	}
	cookieOf := func(b *http.Client) string {
		for _, ck := range b.Jar.Cookies(cbURL) {
			if ck.Name == "twitchoauth_login" {
				return ck.Value
			}
		}
		t.Fatal("no login cookie")
		return ""
	}
	exchanges := func() int { return fake.CountGrant("authorization_code") }

	t.Run("no cookie (login CSRF)", func(t *testing.T) {
		attacker := newJarBrowser(t, false)
		cb := app.startLogin(attacker, "") // the attacker's own code and state
		before := exchanges()
		status, _ := get(t, newJarBrowser(t, true), cb) // the victim opens the attacker's link
		app.refused(status, stateSays("no login cookie"))
		if exchanges() != before {
			t.Error("the attacker's code was exchanged")
		}
	})

	t.Run("another browser's state", func(t *testing.T) {
		victim, attacker := newJarBrowser(t, true), newJarBrowser(t, false)
		app.startLogin(victim, "") // the victim has a login under way, and its cookie
		cb := app.startLogin(attacker, "")
		before := exchanges()
		status, _ := get(t, victim, cb)
		app.refused(status, stateSays("the state is not"))
		if exchanges() != before {
			t.Error("the attacker's code was exchanged")
		}
	})

	t.Run("tampered cookie", func(t *testing.T) {
		b := newJarBrowser(t, true)
		cb := app.startLogin(b, "?return_to=/a")
		v := cookieOf(b)
		payload, sig, _ := strings.Cut(v, ".")
		// Swap in a payload with another return path, keep the MAC.
		forged := app.wl.seal(loginCookie{State: "x", ReturnTo: "/b", Issued: time.Now().Unix()})
		fp, _, _ := strings.Cut(forged, ".")
		for name, value := range map[string]string{
			"payload":   fp + "." + sig,
			"signature": payload + "." + strings.Repeat("A", len(sig)),
			"no dot":    payload,
		} {
			setCookie(b, value)
			status, _ := get(t, b, cb)
			if err := app.refused(status, isState); err != nil && !strings.Contains(err.Error(), "cookie") {
				t.Errorf("%s: %v", name, err)
			}
		}
	})

	t.Run("cookie of another key", func(t *testing.T) {
		b := newJarBrowser(t, true)
		cb := app.startLogin(b, "")
		q, _ := url.Parse(cb)
		other := NewWebLogin(c, nil, app.wl.RedirectURL, bytes.Repeat([]byte("k"), 32))
		setCookie(b, other.seal(loginCookie{State: q.Query().Get("state"), Issued: time.Now().Unix()}))
		status, _ := get(t, b, cb)
		app.refused(status, stateSays("signature does not match"))
	})

	t.Run("expired cookie", func(t *testing.T) {
		b := newJarBrowser(t, true)
		cb := app.startLogin(b, "")
		q, _ := url.Parse(cb)
		for _, issued := range []time.Time{time.Now().Add(-webLoginTTL - time.Second), time.Now().Add(time.Hour)} {
			setCookie(b, app.wl.seal(loginCookie{State: q.Query().Get("state"), Issued: issued.Unix()}))
			status, _ := get(t, b, cb)
			if err := app.refused(status, isState); err != nil && !strings.Contains(err.Error(), "expired") {
				t.Errorf("issued %v: %v", issued, err)
			}
		}
	})

	t.Run("replayed callback", func(t *testing.T) {
		b := newJarBrowser(t, true)
		cb := app.startLogin(b, "")
		cookie := cookieOf(b)
		if status, _ := get(t, b, cb); status != http.StatusOK {
			t.Fatalf("login: %d", status)
		}
		<-app.logins
		before := exchanges()
		status, _ := get(t, b, cb) // the same URL again: the cookie is gone
		app.refused(status, stateSays("no login cookie"))
		if exchanges() != before {
			t.Error("a replayed callback was exchanged")
		}
		// The stateless limit: a browser that still holds the cookie passes the cookie check,
		// and Twitch refuses the spent code.
		setCookie(b, cookie)
		status, _ = get(t, b, cb)
		app.refused(status, func(err error) bool {
			var ae *APIError
			return errors.As(err, &ae) && ae.Endpoint == "token"
		})
	})

	t.Run("denied", func(t *testing.T) {
		fake.SetDeny(true)
		defer fake.SetDeny(false)
		status, _ := get(t, newJarBrowser(t, true), app.srv.URL+"/auth/twitch")
		app.refused(status, func(err error) bool { return errors.Is(err, ErrAccessDenied) })
	})

	t.Run("other redirect error", func(t *testing.T) {
		b := newJarBrowser(t, true)
		cb := app.startLogin(b, "")
		p, _ := url.Parse(cb)
		q := url.Values{"state": {p.Query().Get("state")}, "error": {"server_error"}, "error_description": {"Try later"}}
		status, _ := get(t, b, app.wl.RedirectURL+"?"+q.Encode())
		err := app.refused(status, func(err error) bool {
			var ae *APIError
			return errors.As(err, &ae) && ae.Endpoint == "authorize" && ae.ErrorCode == "server_error" && !errors.Is(err, ErrAccessDenied)
		})
		if err != nil && strings.Contains(err.Error(), p.Query().Get("state")) {
			t.Errorf("error names the state: %v", err)
		}
	})
}

// TestWebLoginErrorPages checks the default pages of a failed callback, and that none holds the
// code or the state.
func TestWebLoginErrorPages(t *testing.T) {
	c, fake := newTestClient(t)
	app := newWebApp(t, c, fake, func(wl *WebLogin) { wl.OnError = nil })
	status, body := get(t, newJarBrowser(t, true), app.wl.RedirectURL+"?code=abc&state=def")
	if status != http.StatusBadRequest || !strings.Contains(body, "Start the login again") || strings.Contains(body, "def") {
		t.Errorf("no cookie: %d %s", status, body)
	}
	fake.SetDeny(true)
	status, body = get(t, newJarBrowser(t, true), app.srv.URL+"/auth/twitch")
	if status != http.StatusForbidden || !strings.Contains(body, "Login cancelled") {
		t.Errorf("denied: %d %s", status, body)
	}
	fake.SetDeny(false)
	fake.Fail("token", faketwitch.Fault{Status: 500, Body: `{"status":500,"message":"boom"}`, Count: 1})
	status, body = get(t, newJarBrowser(t, true), app.srv.URL+"/auth/twitch")
	if status != http.StatusBadGateway || !strings.Contains(body, "boom") {
		t.Errorf("exchange failed: %d %s", status, body)
	}
}

// TestWebLoginIDTokenAttacks: with OpenID, a login whose id_token fails a check reaches no
// OnLogin, and the token got with it is revoked.
func TestWebLoginIDTokenAttacks(t *testing.T) {
	c, fake := newTestClient(t)
	app := newWebApp(t, c, fake, func(wl *WebLogin) { wl.OpenID = true })
	for _, tc := range []struct {
		name  string
		fault faketwitch.IDTokenFault
		want  string
	}{
		{"alg none", faketwitch.IDTokenAlgNone, "unexpected signature algorithm"},
		{"HS256 with the public key as secret", faketwitch.IDTokenHS256, "unexpected signature algorithm"},
		{"wrong key under a known kid", faketwitch.IDTokenWrongKey, "does not match"},
		{"unknown key", faketwitch.IDTokenUnknownKey, "no key of the key set"},
		{"wrong aud", faketwitch.IDTokenWrongAudience, "audience"},
		{"wrong iss", faketwitch.IDTokenWrongIssuer, "issued by a different provider"},
		{"expired", faketwitch.IDTokenExpired, "expired"},
		{"issued in the future", faketwitch.IDTokenFutureIssued, "future"},
		{"nonce missing", faketwitch.IDTokenNoNonce, "no nonce"},
		{"wrong nonce", faketwitch.IDTokenWrongNonce, "nonce is not"},
		{"another user", faketwitch.IDTokenWrongSubject, "another user"},
		{"no id_token", faketwitch.IDTokenMissing, "carries no id_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake.FailIDToken(tc.fault)
			revokes := fake.CountRequests("revoke")
			status, _ := get(t, newJarBrowser(t, true), app.srv.URL+"/auth/twitch")
			err := app.refused(status, func(err error) bool { return errors.Is(err, ErrInvalidIDToken) })
			if err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to say %q", err, tc.want)
			}
			if fake.CountRequests("revoke") != revokes+1 {
				t.Error("the refused login's token was not revoked")
			}
		})
	}
}

// TestWebLoginMissingScope: a token without a requested scope (the user edited the consent URL)
// is refused and revoked.
func TestWebLoginMissingScope(t *testing.T) {
	c, fake := newTestClient(t)
	app := newWebApp(t, c, fake, nil)
	b := newJarBrowser(t, false)
	resp, err := b.Get(app.srv.URL + "/auth/twitch")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	authURL, _ := url.Parse(resp.Header.Get("Location"))
	q := authURL.Query()
	q.Set("scope", "user:read:email") // not chat:read
	authURL.RawQuery = q.Encode()
	b.CheckRedirect = nil
	status, _ := get(t, b, authURL.String())
	app.refused(status, func(err error) bool { return errors.Is(err, ErrMissingScope) })
	if fake.CountRequests("revoke") != 1 {
		t.Error("the refused login's token was not revoked")
	}
}

// TestWebLoginReturnTo: only a path on the app's own site is carried to OnLogin; anything else
// is answered 400 before a login starts (no open redirect).
func TestWebLoginReturnTo(t *testing.T) {
	c, fake := newTestClient(t)
	app := newWebApp(t, c, fake, nil)
	for _, bad := range []string{
		"https://evil.example/", "//evil.example", "/\\evil.example", "\\\\evil.example", "/\t/evil.example",
		"/\n/evil.example", "evil.example", "javascript:alert(1)", " //evil.example", "http:/evil.example",
		"/" + strings.Repeat("a", maxReturnPath),
	} {
		b := newJarBrowser(t, false)
		resp, err := b.Get(app.srv.URL + "/auth/twitch?" + url.Values{ReturnToParam: {bad}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || len(resp.Cookies()) != 0 {
			t.Errorf("return_to %q: %d, Location %q, cookies %v", bad, resp.StatusCode, resp.Header.Get("Location"), resp.Cookies())
		}
	}
	for _, good := range []string{"/", "/dashboard", "/a/b?c=d&e=%2F%2Fx#frag"} {
		status, _ := get(t, newJarBrowser(t, true), app.srv.URL+"/auth/twitch?"+url.Values{ReturnToParam: {good}}.Encode())
		if status != http.StatusOK {
			t.Fatalf("return_to %q: %d", good, status)
		}
		if res := <-app.logins; res.ReturnTo != good {
			t.Errorf("ReturnTo = %q, want %q", res.ReturnTo, good)
		}
	}
}

func TestNewWebLoginPanics(t *testing.T) {
	c := NewClient("id", "secret")
	for name, f := range map[string]func(){
		"short key":         func() { NewWebLogin(c, nil, "https://a.example/cb", make([]byte, 31)) },
		"nil key":           func() { NewWebLogin(c, nil, "https://a.example/cb", nil) },
		"nil client":        func() { NewWebLogin(nil, nil, "https://a.example/cb", testCookieKey) },
		"relative redirect": func() { NewWebLogin(c, nil, "/cb", testCookieKey) },
		"other scheme":      func() { NewWebLogin(c, nil, "ftp://a.example/cb", testCookieKey) },
		"fragment":          func() { NewWebLogin(c, nil, "https://a.example/cb#x", testCookieKey) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if r := recover(); r == nil {
					t.Error("no panic")
				} else if s, _ := r.(string); strings.Contains(s, "0123456789") {
					t.Errorf("panic quotes the key: %v", r)
				}
			}()
			f()
		})
	}
}

// TestWebLoginNotSetUp: without OnLogin, or built without NewWebLogin, both handlers answer 500,
// send nobody to Twitch, and log why once.
func TestWebLoginNotSetUp(t *testing.T) {
	prev := slog.Default() // the WebLogin without a Client logs there
	slog.SetDefault(slog.New(slog.DiscardHandler))
	defer slog.SetDefault(prev)
	c, fake := newTestClient(t)
	var logs bytes.Buffer
	c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	for name, wl := range map[string]*WebLogin{
		"no OnLogin":           NewWebLogin(c, nil, "http://localhost/cb", testCookieKey),
		"not from NewWebLogin": {RedirectURL: "http://localhost/cb", OnLogin: func(http.ResponseWriter, *http.Request, *WebLoginResult) {}},
	} {
		t.Run(name, func(t *testing.T) {
			for range 2 {
				for _, h := range []http.Handler{wl.LoginHandler(), wl.CallbackHandler()} {
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/cb?code=c&state=s", nil))
					if rec.Code != http.StatusInternalServerError || rec.Header().Get("Location") != "" {
						t.Errorf("answer %d, Location %q", rec.Code, rec.Header().Get("Location"))
					}
				}
			}
		})
	}
	if n := strings.Count(logs.String(), "OnLogin and WebLogin.Users are nil"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, logs.String())
	}
	if len(fake.Requests()) != 0 {
		t.Errorf("%d requests to Twitch", len(fake.Requests()))
	}
}

// TestWebLoginChromium runs "Sign in with Twitch" in a real browser: headless Chromium follows a
// link on another site to the app's login on localhost, follows the fake Twitch's redirects (on
// 127.0.0.1, another site, so the SameSite=Lax cookie must survive a cross-site navigation back),
// and renders the page OnLogin writes, whose script proves it ran.
func TestWebLoginChromium(t *testing.T) {
	bin := chromium()
	if bin == "" {
		missingTool(t, "chromium")
	}
	c, fake := newTestClient(t)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	appURL := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	redirect := appURL + "/auth/twitch/callback"
	fake.AddClient(faketwitch.ClientID, faketwitch.ClientSecret, redirect)
	logins := make(chan *WebLoginResult, 1)
	wl := NewWebLogin(c, []Scope{ScopeChatRead}, redirect, testCookieKey)
	wl.OpenID = true
	wl.OnLogin = func(w http.ResponseWriter, r *http.Request, res *WebLoginResult) {
		logins <- res
		io.WriteString(w, `<!doctype html><html><head><meta charset="utf-8"><title>in</title></head>`+
			`<body><h1 id="who">not rendered</h1><script>document.getElementById("who").textContent = "signed in as " + `+
			`"`+res.Claims.PreferredUsername+`";</script></body></html>`)
	}
	mux.Handle("GET /auth/twitch", wl.LoginHandler())
	mux.Handle("GET /auth/twitch/callback", wl.CallbackHandler())
	// The user starts on another site (127.0.0.1) that links to the app, as Twitch's consent page
	// does when the user approves: a navigation another site starts, which a SameSite=Strict
	// cookie would not survive.
	start := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `<!doctype html><html><body><script>location.href = "`+appURL+`/auth/twitch?return_to=/home";</script></body></html>`)
	}))
	t.Cleanup(start.Close)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var dom, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--dump-dom", start.URL)
	cmd.Stdout, cmd.Stderr = &dom, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	var res *WebLoginResult
	select {
	case res = <-logins:
	default:
		t.Fatalf("no login reached OnLogin; chromium rendered:\n%s\nstderr:\n%s", dom.String(), stderr.String())
	}
	if res.Token.AccessToken == "" || res.Claims.Subject != faketwitch.UserID || res.ReturnTo != "/home" {
		t.Errorf("result = %+v, claims %+v", res, res.Claims)
	}
	if !strings.Contains(dom.String(), `<h1 id="who">signed in as `+faketwitch.UserLogin+`</h1>`) {
		t.Errorf("chromium rendered:\n%s\nstderr:\n%s", dom.String(), stderr.String())
	}
}

// FuzzLoginCookie: whatever a browser sends as the login cookie, open does not panic, and what
// it accepts is what seal made.
func FuzzLoginCookie(f *testing.F) {
	wl := NewWebLogin(NewClient("id", "secret"), nil, "https://a.example/cb", testCookieKey)
	now := time.Unix(1_800_000_000, 0) // fixed, so that the cookies in the corpus stay valid
	want := loginCookie{State: "s", Nonce: "n", ReturnTo: "/x", Issued: now.Unix()}
	good := wl.seal(want)
	for _, s := range []string{good, "", ".", "a.b.c", good + "x", strings.Replace(good, ".", "..", 1)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		lc, err := wl.open(v, now)
		if err == nil && lc != want {
			t.Errorf("open(%q) accepted %+v", v, lc)
		}
		if err != nil && !errors.Is(err, ErrInvalidState) {
			t.Errorf("open(%q): %v, want ErrInvalidState", v, err)
		}
	})
}

// FuzzReturnPath: a return path that is accepted stays on the app's site, also as a browser
// reads it (dropping tabs and newlines, taking backslashes for slashes).
func FuzzReturnPath(f *testing.F) {
	for _, s := range []string{"/", "/a?b=c", "//evil.example", "/\\evil", "https://evil.example", "/\t/x", "/%2F%2Fx"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://app.example/auth/twitch")
	f.Fuzz(func(t *testing.T, p string) {
		got, err := returnPath(p)
		if err != nil {
			return
		}
		browser := strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(strings.TrimSpace(got))
		u, err := base.Parse(browser)
		if err != nil || u.Host != "app.example" || u.Scheme != "https" {
			t.Errorf("returnPath(%q) = %q, which a browser takes to %v", p, got, u)
		}
	})
}

// failingSaves is a FileStore that cannot save.
type failingSaves struct{ *FileStore }

func (failingSaves) Save(context.Context, string, *StoredToken) error {
	return errors.New("disk full")
}

func (failingSaves) SaveIf(context.Context, string, *StoredToken, *StoredToken) error {
	return errors.New("disk full")
}

// TestWebLoginUsers: with no OnLogin, a login's token goes to the UserTokens registry with the
// WebLogin's intents; a token the registry cannot take is revoked and the login fails.
func TestWebLoginUsers(t *testing.T) {
	t.Run("added", func(t *testing.T) {
		c, fake := newTestClient(t)
		users := NewUserTokens(c, &FileStore{Path: filepath.Join(t.TempDir(), "tok.json")})
		app := newWebApp(t, c, fake, func(wl *WebLogin) {
			wl.OnLogin, wl.Users, wl.Intents = nil, users, []string{"chat"}
		})
		status, body := get(t, newJarBrowser(t, true), app.srv.URL+"/auth/twitch")
		if status != http.StatusOK || !strings.Contains(body, "You are logged in") {
			t.Fatalf("login ended with %d %q", status, body)
		}
		if got := users.Users(); !slices.Equal(got, []string{faketwitch.UserID}) {
			t.Fatalf("Users() = %v", got)
		}
		if n := fake.CountRequests("validate"); n != 1 {
			t.Errorf("%d validations for one login, want 1", n)
		}
		src, err := users.SourceForIntent("chat")
		if err != nil {
			t.Fatal(err)
		}
		if tok, err := src.Token(); err != nil || tok.AccessToken == "" {
			t.Errorf("the registry's token: %v, %v", tok, err)
		}
	})
	t.Run("store fails", func(t *testing.T) {
		c, fake := newTestClient(t)
		users := NewUserTokens(c, failingSaves{&FileStore{Path: filepath.Join(t.TempDir(), "tok.json")}})
		app := newWebApp(t, c, fake, func(wl *WebLogin) { wl.OnLogin, wl.Users = nil, users })
		if status, _ := get(t, newJarBrowser(t, true), app.srv.URL+"/auth/twitch"); status != http.StatusTeapot {
			t.Fatalf("login ended with %d, want OnError's 418", status)
		}
		if err := <-app.errs; err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("OnError got %v", err)
		}
		if n := fake.CountRequests("revoke"); n != 1 {
			t.Errorf("%d revokes of the token the registry could not take, want 1", n)
		}
		if got := users.Users(); len(got) != 0 {
			t.Errorf("Users() = %v, want none", got)
		}
	})
}

// TestWebLoginNotSetUpNoLogger: with no Logger on the Client, the page that says "its log says
// why" is still true: the reason goes to slog's default logger.
func TestWebLoginNotSetUpNoLogger(t *testing.T) {
	c, _ := newTestClient(t)
	var logs bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(prev)
	wl := NewWebLogin(c, nil, "http://localhost/cb", testCookieKey)
	rec := httptest.NewRecorder()
	wl.LoginHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/login", nil))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "log says why") {
		t.Errorf("answer %d %q", rec.Code, rec.Body.String())
	}
	if !strings.Contains(logs.String(), "OnLogin and WebLogin.Users are nil") {
		t.Errorf("default log holds %q; want the reason", logs.String())
	}
}
