package twitchoauth

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// newTestCallbackHandler returns the redirect handler of a flow with state at httptest's
// example.com, whose exchange gives a token for the code "good" and refuses any other.
func newTestCallbackHandler(state string) *callbackHandler {
	return &callbackHandler{
		hosts: map[string]bool{"example.com:80": true}, defPort: "80",
		path: "/", state: []byte(state), document: "<p>ok</p>",
		exchange: func(code string) (*oauth2.Token, error) {
			if code == "good" {
				return &oauth2.Token{AccessToken: "tok"}, nil
			}
			return nil, &APIError{Endpoint: "token", StatusCode: 400, Message: "Invalid authorization code"}
		},
		result: make(chan callbackResult, 1),
	}
}

// TestCallbackLimits: a redirect whose code or state is longer than Twitch's, or whose query is,
// is answered 400 before anything is scrubbed or exchanged, allocating little, with a page that
// quotes none of it; the flow goes on, and the real redirect that follows is honoured. A redirect
// of Twitch's longest, granting every scope, passes.
func TestCallbackLimits(t *testing.T) {
	const state = "0b7e4c4e-8a3f-4f7e-9a55-2f3c1d9e6b10"
	huge := strings.Repeat("a+", 450_000) // 900 KB, unescaped into a fresh string
	every := AllScopes()
	tests := []struct {
		name  string
		query url.Values
	}{
		{"900 KB code and error", url.Values{"code": {huge}, "error": {"server_error"}, "state": {state}}},
		{"900 KB code", url.Values{"code": {huge}, "state": {state}}},
		{"code just over the cap", url.Values{"code": {strings.Repeat("c", maxCallbackParam+1)}, "state": {state}}},
		{"code just over the cap, and error", url.Values{"code": {strings.Repeat("c", maxCallbackParam+1)},
			"error": {"server_error"}, "state": {state}}},
		{"state just over the cap", url.Values{"code": {"good"}, "state": {state + strings.Repeat("s", maxCallbackParam)}}},
		{"long error description", url.Values{"error": {"server_error"}, "state": {state},
			"error_description": {strings.Repeat("d", maxCallbackQuery)}}},
	}
	h := newTestCallbackHandler(state)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/?"+tt.query.Encode(), nil)
			var rec *httptest.ResponseRecorder
			n := allocated(func() {
				rec = httptest.NewRecorder()
				h.ServeHTTP(rec, req)
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
				t.Errorf("page quotes the query: %.200s", body)
			}
			select {
			case res := <-h.result:
				t.Fatalf("the redirect was honoured: %v", res.err)
			default:
			}
		})
	}

	q := url.Values{"code": {"good"}, "scope": {BuildScope(every)}, "state": {state}}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/?"+q.Encode(), nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("the real redirect, granting all %d scopes (%d bytes), answered %d", len(every), len(q.Encode()), rec.Code)
	}
	if res := <-h.result; res.err != nil || res.tok.AccessToken != "tok" {
		t.Errorf("the real redirect gave %v, %v", res.tok, res.err)
	}

	long := strings.Repeat("é", 1000) // a caller's own UserAuthenticator.State, 6 KB percent-encoded
	h = newTestCallbackHandler(long)
	q.Set("state", long)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/?"+q.Encode(), nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("the real redirect of a flow with a state of %d bytes (a query of %d) answered %d",
			len(long), len(q.Encode()), rec.Code)
	}
}

// TestAuthenticateOversizeCallback: through the redirect server, callbacks with the flow's state
// and a code or query longer than Twitch's are refused with a 4xx, no code is exchanged for them,
// and the login goes on to the real redirect.
func TestAuthenticateOversizeCallback(t *testing.T) {
	g := checkGoroutines(t)
	c, fake := newTestClient(t)
	a := newTestAuthenticator(t, c)
	browser := newBrowser(t, "tcp4")
	var real page
	tok, err := authenticate(t, t.Context(), a, fake, func(authURL, redirect string) {
		callback := consent(t, authURL)
		cb, err := url.Parse(callback)
		if err != nil {
			t.Error(err)
			return
		}
		state := cb.Query().Get("state")
		for _, q := range []url.Values{
			{"code": {strings.Repeat("a+", 30_000)}, "error": {"server_error"}, "state": {state}}, // within MaxHeaderBytes
			{"code": {strings.Repeat("c", maxCallbackParam+1)}, "state": {state}},
			{"code": {strings.Repeat("c", maxCallbackParam+1)}, "error": {"server_error"}, "state": {state}},
		} {
			bad := *cb
			bad.RawQuery = q.Encode()
			if p := visit(t, browser, bad.String()); p.status < 400 || p.status > 499 {
				t.Errorf("a query of %d bytes answered %d, want a 4xx", len(bad.RawQuery), p.status)
			}
		}
		if n := fake.CountGrant("authorization_code"); n != 0 {
			t.Errorf("an oversize code was exchanged (%d token requests)", n)
		}
		real = visit(t, browser, callback)
	})
	g.assertNoServerLeft(t)
	if err != nil || tok == nil || tok.AccessToken == "" {
		t.Fatalf("Authenticate = %v, %v; want the token of the real redirect", tok, err)
	}
	if real.status != http.StatusOK || real.body != defaultDocument {
		t.Errorf("the real redirect got %d %q, want 200 and Document", real.status, real.body)
	}
}
