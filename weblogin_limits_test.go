package twitchoauth

import (
	"errors"
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
