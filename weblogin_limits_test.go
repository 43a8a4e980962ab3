package twitchoauth

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestWebLoginCallbackLimits: a callback whose code or query is longer than Twitch's is answered
// 400 before anything is scrubbed or exchanged, allocating little, with a page that quotes none of
// it; through OnError it is an *APIError of the redirect. The browser's next login completes.
func TestWebLoginCallbackLimits(t *testing.T) {
	c, fake := newTestClient(t)
	app := newWebApp(t, c, fake, func(wl *WebLogin) { wl.OnError = nil })
	redirect, _ := url.Parse(app.wl.RedirectURL)
	const state = "the-login-state"
	huge := strings.Repeat("a+", 450_000) // 900 KB, unescaped into a fresh string
	for _, tt := range []struct {
		name  string
		query url.Values
	}{
		{"900 KB code and error", url.Values{"code": {huge}, "error": {"server_error"}, "state": {state}}},
		{"900 KB code", url.Values{"code": {huge}, "state": {state}}},
		{"code just over the cap", url.Values{"code": {strings.Repeat("c", maxCallbackParam+1)}, "state": {state}}},
		{"long error description", url.Values{"error": {"server_error"}, "state": {state},
			"error_description": {strings.Repeat("d", maxCallbackQuery)}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, app.wl.RedirectURL+"?"+tt.query.Encode(), nil)
			req.AddCookie(loginCookieFor(redirect, app.wl.seal(loginCookie{State: state, Issued: time.Now().Unix()}), 600))
			var rec *httptest.ResponseRecorder
			n := allocated(func() {
				rec = httptest.NewRecorder()
				app.wl.CallbackHandler().ServeHTTP(rec, req)
			})
			t.Logf("a query of %d bytes allocated %d bytes", len(req.URL.RawQuery), n)
			if n > 64<<10 {
				t.Errorf("a query of %d bytes allocated %d bytes, want at most 64 KiB", len(req.URL.RawQuery), n)
			}
			if rec.Code != http.StatusBadRequest {
				t.Errorf("answered %d, want 400", rec.Code)
			}
			if body := rec.Body.String(); strings.Contains(body, "server_error") || strings.Contains(body, "ccc") ||
				strings.Contains(body, "aaa") || strings.Contains(body, state) {
				t.Errorf("page quotes the query: %.300s", body)
			}
			if n := fake.CountGrant("authorization_code"); n != 0 {
				t.Errorf("an oversize code was exchanged (%d token requests)", n)
			}
		})
	}

	t.Run("through OnError, then a login", func(t *testing.T) {
		app := newWebApp(t, c, fake, nil)
		b := newJarBrowser(t, true)
		cb, _ := url.Parse(app.startLogin(b, ""))
		q := cb.Query()
		q.Set("code", strings.Repeat("c", maxCallbackParam+1))
		cb.RawQuery = q.Encode()
		status, _ := get(t, b, cb.String())
		app.refused(status, func(err error) bool {
			var ae *APIError
			return errors.As(err, &ae) && ae.Endpoint == "authorize" && !strings.Contains(err.Error(), "ccc")
		})
		if n := fake.CountGrant("authorization_code"); n != 0 {
			t.Errorf("an oversize code was exchanged (%d token requests)", n)
		}
		if status, body := get(t, b, app.srv.URL+"/auth/twitch"); status != http.StatusOK || !strings.HasPrefix(body, "hello ") {
			t.Fatalf("the next login ended with %d %q", status, body)
		}
		<-app.logins
	})
}

// TestWebLoginReturnToCookieLimit: a return_to within maxReturnPath bytes that JSON escapes to a
// login cookie longer than browsers keep is answered 400 and starts no login, which could never
// finish; a long plain path fits, and the login carries it back.
func TestWebLoginReturnToCookieLimit(t *testing.T) {
	c, fake := newTestClient(t)
	app := newWebApp(t, c, fake, func(wl *WebLogin) { wl.OpenID = true })
	for _, bad := range []string{
		"/" + strings.Repeat("<", maxReturnPath-1),
		"/?" + strings.Repeat("&", maxReturnPath-2),
	} {
		b := newJarBrowser(t, false)
		resp, err := b.Get(app.srv.URL + "/auth/twitch?" + url.Values{ReturnToParam: {bad}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || len(resp.Cookies()) != 0 ||
			!strings.Contains(string(body), "too long") {
			t.Errorf("return_to %.8q… (%d bytes): %d, Set-Cookie of %d bytes, Location %.30q…, page %.60q…", bad, len(bad),
				resp.StatusCode, len(resp.Header.Get("Set-Cookie")), resp.Header.Get("Location"), body)
		}
	}

	good := "/" + strings.Repeat("dashboard/", (maxReturnPath-1)/10) + "?tab=bot"
	good = good[:maxReturnPath]
	b := newJarBrowser(t, true)
	noFollow := *b
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.Get(app.srv.URL + "/auth/twitch?" + url.Values{ReturnToParam: {good}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	t.Logf("return_to of %d plain bytes: Set-Cookie of %d bytes", len(good), len(resp.Header.Get("Set-Cookie")))
	if n := len(resp.Header.Get("Set-Cookie")); resp.StatusCode != http.StatusFound || n == 0 || n > 4096 {
		t.Fatalf("return_to of %d bytes: %d, Set-Cookie of %d bytes", len(good), resp.StatusCode, n)
	}
	if status, _ := get(t, b, resp.Header.Get("Location")); status != http.StatusOK {
		t.Fatalf("return_to of %d bytes: the login ended with %d", len(good), status)
	}
	if res := <-app.logins; res.ReturnTo != good {
		t.Errorf("ReturnTo = %.20q… (%d bytes), want the %d bytes given", res.ReturnTo, len(res.ReturnTo), len(good))
	}
}
