package faketwitch

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// serve sends a request through ServeHTTP. A non-nil form becomes an
// urlencoded body; auth, if not empty, is the Authorization header.
func serve(t *testing.T, s *Server, method, target string, form url.Values, auth string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, target, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	var m map[string]any
	if rec.Body.Len() > 0 && strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("%s %s: bad JSON %q: %v", method, target, rec.Body, err)
		}
	}
	return rec, m
}

// postToken posts a form to /oauth2/token and returns status and body.
func postToken(t *testing.T, s *Server, form url.Values) (int, map[string]any) {
	t.Helper()
	rec, m := serve(t, s, http.MethodPost, "/oauth2/token", form, "")
	return rec.Code, m
}

// wantError checks a Twitch error body.
func wantError(t *testing.T, status int, m map[string]any, wantStatus int, wantMsg string) {
	t.Helper()
	if status != wantStatus || m["message"] != wantMsg || m["status"] != float64(wantStatus) {
		t.Errorf("got %d %v, want %d message %q", status, m, wantStatus, wantMsg)
	}
}

// authorizeCode runs /authorize and returns the code from the redirect.
func authorizeCode(t *testing.T, s *Server, clientID, redirectURI, scope string) string {
	t.Helper()
	q := url.Values{"client_id": {clientID}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "scope": {scope}, "state": {"st"}}
	rec, _ := serve(t, s, http.MethodGet, "/oauth2/authorize?"+q.Encode(), nil, "")
	loc, err := url.Parse(rec.Header().Get("Location"))
	if rec.Code != http.StatusFound || err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	return loc.Query().Get("code")
}

func TestAuthorize(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(*Server)
		query      url.Values
		wantStatus int
		wantMsg    string // for 400 answers
		wantBase   string // Location before the appended parameters
		wantParams url.Values
		wantCode   bool
	}{{
		name:       "approve",
		query:      url.Values{"client_id": {ClientID}, "redirect_uri": {RedirectURL}, "response_type": {"code"}, "scope": {"chat:read chat:edit"}, "state": {"xyz"}},
		wantStatus: http.StatusFound,
		wantBase:   RedirectURL + "?",
		wantParams: url.Values{"scope": {"chat:read chat:edit"}, "state": {"xyz"}},
		wantCode:   true,
	}, {
		name:       "deny",
		setup:      func(s *Server) { s.SetDeny(true) },
		query:      url.Values{"client_id": {ClientID}, "redirect_uri": {RedirectURL}, "response_type": {"code"}, "state": {"xyz"}},
		wantStatus: http.StatusFound,
		wantBase:   RedirectURL + "?",
		wantParams: url.Values{"error": {"access_denied"}, "error_description": {"The user denied you access"}, "state": {"xyz"}},
	}, {
		name:       "redirect mismatch goes to the first registered URL",
		setup:      func(s *Server) { s.AddClient("multi", "sec", "http://localhost:1/a", "http://localhost:2/b") },
		query:      url.Values{"client_id": {"multi"}, "redirect_uri": {"http://localhost:2/b/"}, "response_type": {"code"}, "state": {"s1"}},
		wantStatus: http.StatusFound,
		wantBase:   "http://localhost:1/a?",
		wantParams: url.Values{"error": {"redirect_mismatch"}, "error_description": {"Parameter redirect_uri does not match registered URI"}, "state": {"s1"}},
	}, {
		name:       "registered URL with a query",
		setup:      func(s *Server) { s.AddClient("q", "sec", "http://localhost:1/cb?x=1") },
		query:      url.Values{"client_id": {"q"}, "redirect_uri": {"http://localhost:1/cb?x=1"}, "response_type": {"code"}},
		wantStatus: http.StatusFound,
		wantBase:   "http://localhost:1/cb?x=1&",
		wantParams: url.Values{"scope": {""}},
		wantCode:   true,
	}, {
		name:       "unknown client",
		query:      url.Values{"client_id": {"nope"}, "redirect_uri": {RedirectURL}, "response_type": {"code"}},
		wantStatus: http.StatusBadRequest,
		wantMsg:    "invalid client",
	}, {
		name:       "implicit response type",
		query:      url.Values{"client_id": {ClientID}, "redirect_uri": {RedirectURL}, "response_type": {"token"}},
		wantStatus: http.StatusBadRequest,
		wantMsg:    "unsupported response_type",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			if tt.setup != nil {
				tt.setup(s)
			}
			rec, m := serve(t, s, http.MethodGet, "/oauth2/authorize?"+tt.query.Encode(), nil, "")
			if tt.wantMsg != "" {
				wantError(t, rec.Code, m, tt.wantStatus, tt.wantMsg)
				return
			}
			loc := rec.Header().Get("Location")
			if rec.Code != tt.wantStatus || !strings.HasPrefix(loc, tt.wantBase) {
				t.Fatalf("got %d %q, want %d %q...", rec.Code, loc, tt.wantStatus, tt.wantBase)
			}
			got, err := url.ParseQuery(strings.TrimPrefix(loc, tt.wantBase))
			if err != nil {
				t.Fatal(err)
			}
			if code := got.Get("code"); tt.wantCode != (len(code) == 30) {
				t.Errorf("code = %q, want one: %v", code, tt.wantCode)
			}
			got.Del("code")
			for k := range tt.wantParams {
				if !slices.Equal(got[k], tt.wantParams[k]) {
					t.Errorf("%s = %q, want %q", k, got[k], tt.wantParams[k])
				}
			}
			if len(got) != len(tt.wantParams) {
				t.Errorf("params %v, want %v", got, tt.wantParams)
			}
		})
	}
}

// TestAuthorizeUnknownClient: Twitch's consent page answers a client ID it does not know with its
// bare error body, and sends the browser nowhere.
func TestAuthorizeUnknownClient(t *testing.T) {
	s := New()
	q := url.Values{"client_id": {"nope"}, "redirect_uri": {RedirectURL}, "response_type": {"code"}, "state": {"st"}}
	rec, _ := serve(t, s, http.MethodGet, "/oauth2/authorize?"+q.Encode(), nil, "")
	if got, want := rec.Body.String(), `{"message":"invalid client","status":400}`; rec.Code != http.StatusBadRequest ||
		got != want || rec.Header().Get("Location") != "" {
		t.Errorf("got %d %s, Location %q; want 400 %s and no redirect", rec.Code, got, rec.Header().Get("Location"), want)
	}
}

func TestCodeExchange(t *testing.T) {
	s := New()
	s.AddClient("other", "other-secret", RedirectURL)
	exchange := func(clientID, secret, code, redirect string) (int, map[string]any) {
		return postToken(t, s, url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID},
			"client_secret": {secret}, "code": {code}, "redirect_uri": {redirect}})
	}

	code := authorizeCode(t, s, ClientID, RedirectURL, "chat:read chat:edit")
	status, m := exchange(ClientID, ClientSecret, code, RedirectURL)
	if status != http.StatusOK || len(m["access_token"].(string)) != 30 || m["refresh_token"] == "" ||
		m["expires_in"] != float64(14400) || m["token_type"] != "bearer" ||
		!slices.Equal(toStrings(m["scope"]), []string{"chat:read", "chat:edit"}) {
		t.Fatalf("exchange: %d %v", status, m)
	}
	status, m = exchange(ClientID, ClientSecret, code, RedirectURL)
	wantError(t, status, m, 400, "Invalid authorization code")

	tests := []struct {
		name                     string
		clientID, secret, redir  string
		codeFor                  string
		wantStatus               int
		wantMsg                  string
		wantConsumed, wantNoScop bool
	}{
		{"wrong redirect", ClientID, ClientSecret, RedirectURL + "/", ClientID, 400, "Parameter redirect_uri does not match registered URI", true, false},
		{"wrong secret", ClientID, "bad", RedirectURL, ClientID, 403, "invalid client secret", false, false},
		{"missing secret", ClientID, "", RedirectURL, ClientID, 403, "invalid client secret", false, false},
		{"public client", PublicClientID, "", RedirectURL, PublicClientID, 400, "invalid client", false, false},
		{"unknown client", "nope", "x", RedirectURL, ClientID, 400, "invalid client", false, false},
		{"code of another client", "other", "other-secret", RedirectURL, ClientID, 400, "Invalid authorization code", false, false},
		{"no scopes", ClientID, ClientSecret, RedirectURL, ClientID, 200, "", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scope := "chat:read"
			if tt.wantNoScop {
				scope = ""
			}
			code := authorizeCode(t, s, tt.codeFor, RedirectURL, scope)
			status, m := exchange(tt.clientID, tt.secret, code, tt.redir)
			if tt.wantMsg != "" {
				wantError(t, status, m, tt.wantStatus, tt.wantMsg)
			} else if _, has := m["scope"]; status != 200 || has {
				t.Errorf("got %d %v, want 200 without scope", status, m)
			}
			if tt.codeFor != ClientID {
				return
			}
			status, _ = exchange(ClientID, ClientSecret, code, RedirectURL)
			if consumed := status != 200; consumed != tt.wantConsumed {
				t.Errorf("code consumed = %v, want %v", consumed, tt.wantConsumed)
			}
		})
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestRefresh(t *testing.T) {
	tests := []struct {
		name, clientID, secret string
		oldStillValid          bool
	}{
		{"confidential", ClientID, ClientSecret, true},
		{"public", PublicClientID, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			access, refresh := s.IssueToken(tt.clientID, UserID, []string{"chat:read"}, 0)
			form := url.Values{"grant_type": {"refresh_token"}, "client_id": {tt.clientID}, "refresh_token": {refresh}}
			if tt.secret != "" {
				form.Set("client_secret", tt.secret)
			}
			status, m := postToken(t, s, form)
			if status != 200 || m["access_token"] == access || m["refresh_token"] == refresh || m["refresh_token"] == "" ||
				!slices.Equal(toStrings(m["scope"]), []string{"chat:read"}) {
				t.Fatalf("refresh: %d %v", status, m)
			}
			if rec, _ := serve(t, s, "GET", "/oauth2/validate", nil, "OAuth "+access); rec.Code != 200 {
				t.Errorf("old access token: %d, want 200", rec.Code)
			}
			status, m2 := postToken(t, s, form)
			if tt.oldStillValid && status != 200 {
				t.Errorf("old refresh token: %d %v, want 200", status, m2)
			} else if !tt.oldStillValid {
				wantError(t, status, m2, 400, "Invalid refresh token")
				if m2["error"] != "Bad Request" {
					t.Errorf("error = %v", m2["error"])
				}
			}
			form.Set("refresh_token", m["refresh_token"].(string))
			status, m3 := postToken(t, s, form)
			switch {
			case tt.oldStillValid && status != 200:
				t.Errorf("new refresh token: %d %v", status, m3)
			case !tt.oldStillValid && (status != 400 || s.ReusedRefreshTokens() != 1):
				// The spent refresh token sent again ended the whole grant, the new pair with it.
				t.Errorf("new refresh token after the old one was sent again: %d %v, %d reuses; want 400, 1",
					status, m3, s.ReusedRefreshTokens())
			}
		})
	}

	s := New()
	s.AddClient("other", "other-secret")
	_, refresh := s.IssueToken(ClientID, UserID, nil, 0)
	_, revoked := s.IssueToken(ClientID, UserID, nil, 0)
	s.RevokeRefreshToken(revoked)
	errs := []struct {
		name, clientID, secret, refresh string
		wantStatus                      int
		wantMsg                         string
	}{
		{"missing secret", ClientID, "", refresh, 400, "missing client secret"},
		{"wrong secret", ClientID, "bad", refresh, 403, "invalid client secret"},
		{"revoked", ClientID, ClientSecret, revoked, 400, "Invalid refresh token"},
		{"unknown", ClientID, ClientSecret, "nope", 400, "Invalid refresh token"},
		{"other client", "other", "other-secret", refresh, 400, "Invalid refresh token"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			status, m := postToken(t, s, url.Values{"grant_type": {"refresh_token"}, "client_id": {tt.clientID},
				"client_secret": {tt.secret}, "refresh_token": {tt.refresh}})
			wantError(t, status, m, tt.wantStatus, tt.wantMsg)
		})
	}
}

func TestClientCredentials(t *testing.T) {
	s := New()
	status, m := postToken(t, s, url.Values{"grant_type": {"client_credentials"}, "client_id": {ClientID}, "client_secret": {ClientSecret}})
	_, hasRefresh := m["refresh_token"]
	_, hasScope := m["scope"]
	if status != 200 || m["expires_in"] != float64(5011271) || m["token_type"] != "bearer" || hasRefresh || hasScope {
		t.Fatalf("client_credentials: %d %v", status, m)
	}
	rec, v := serve(t, s, "GET", "/oauth2/validate", nil, "Bearer "+m["access_token"].(string))
	if _, hasLogin := v["login"]; rec.Code != 200 || hasLogin || v["client_id"] != ClientID || !strings.Contains(rec.Body.String(), `"scopes":null`) {
		t.Errorf("validate app token: %d %s", rec.Code, rec.Body)
	}
	status, m = postToken(t, s, url.Values{"grant_type": {"client_credentials"}, "client_id": {PublicClientID}})
	wantError(t, status, m, 400, "invalid client")
	status, m = postToken(t, s, url.Values{"grant_type": {"client_credentials"}, "client_id": {ClientID}, "client_secret": {"x"}})
	wantError(t, status, m, 403, "invalid client secret")
	status, m = postToken(t, s, url.Values{"grant_type": {"password"}})
	wantError(t, status, m, 400, "Invalid grant type")
	status, m = postToken(t, s, url.Values{"client_id": {ClientID}})
	wantError(t, status, m, 400, "missing grant type")
}

func TestDeviceFlow(t *testing.T) {
	start := func(t *testing.T, s *Server, target string, form url.Values) (deviceCode, userCode string, m map[string]any) {
		t.Helper()
		rec, m := serve(t, s, "POST", target, form, "")
		if rec.Code != 200 {
			t.Fatalf("device: %d %s", rec.Code, rec.Body)
		}
		return m["device_code"].(string), m["user_code"].(string), m
	}
	poll := func(s *Server, deviceCode string) (int, map[string]any) {
		return postToken(t, s, url.Values{"grant_type": {deviceGrantType}, "client_id": {PublicClientID}, "device_code": {deviceCode}})
	}

	t.Run("answer", func(t *testing.T) {
		s := New()
		dc, uc, m := start(t, s, "/oauth2/device", url.Values{"client_id": {PublicClientID}, "scopes": {"chat:read"}})
		if !regexp.MustCompile(`^[A-Z]{8}$`).MatchString(uc) || len(dc) != 40 || m["interval"] != float64(5) ||
			m["expires_in"] != float64(1800) || m["verification_uri"] != "https://www.twitch.tv/activate?public=true&device-code="+uc {
			t.Errorf("device answer %v", m)
		}
		s.DeviceInterval = 0
		if _, _, m := start(t, s, "/oauth2/device", url.Values{"client_id": {ClientID}}); m["interval"] != nil {
			t.Errorf("interval = %v, want none", m["interval"])
		}
		rec, m := serve(t, s, "POST", "/oauth2/device", url.Values{"client_id": {"nope"}}, "")
		wantError(t, rec.Code, m, 400, "invalid client")
	})

	t.Run("pending, slow_down, approve", func(t *testing.T) {
		s := New()
		dc, uc, _ := start(t, s, "/oauth2/device", url.Values{"client_id": {PublicClientID}, "scopes": {"chat:read user:read:email"}})
		status, m := poll(s, dc)
		wantError(t, status, m, 400, "authorization_pending")
		s.SlowDown(2)
		for _, want := range []string{"slow_down", "slow_down", "authorization_pending"} {
			status, m = poll(s, dc)
			wantError(t, status, m, 400, want)
		}
		if err := s.ApproveDevice(uc); err != nil {
			t.Fatal(err)
		}
		status, m = poll(s, dc)
		if status != 200 || m["refresh_token"] == "" || !slices.Equal(toStrings(m["scope"]), []string{"chat:read", "user:read:email"}) {
			t.Fatalf("approved: %d %v", status, m)
		}
		rec, v := serve(t, s, "GET", "/validate", nil, "OAuth "+m["access_token"].(string))
		if rec.Code != 200 || v["user_id"] != UserID || v["login"] != UserLogin {
			t.Errorf("validate: %d %s", rec.Code, rec.Body)
		}
		status, m = poll(s, dc)
		wantError(t, status, m, 400, "invalid device code")
	})

	t.Run("deny", func(t *testing.T) {
		s := New()
		dc, uc, _ := start(t, s, "/oauth2/device", url.Values{"client_id": {PublicClientID}})
		if err := s.DenyDevice(uc); err != nil {
			t.Fatal(err)
		}
		status, m := poll(s, dc)
		wantError(t, status, m, 400, "access_denied")
		status, m = poll(s, dc)
		wantError(t, status, m, 400, "invalid device code")
	})

	t.Run("expire", func(t *testing.T) {
		s := New()
		dc, uc, _ := start(t, s, "/oauth2/device", url.Values{"client_id": {PublicClientID}})
		s.SetNow(func() time.Time { return time.Now().Add(31 * time.Minute) })
		if err := s.ApproveDevice(uc); err == nil {
			t.Error("ApproveDevice of an expired code: no error")
		}
		status, m := poll(s, dc)
		wantError(t, status, m, 400, "invalid device code")
		if err := s.ApproveDevice(uc); err == nil {
			t.Error("ApproveDevice of a dropped code: no error")
		}
	})

	t.Run("scopes in the query are ignored", func(t *testing.T) {
		s := New()
		dc, uc, _ := start(t, s, "/oauth2/device?scopes=chat:read", url.Values{"client_id": {PublicClientID}})
		s.ApproveDevice(uc)
		if status, m := poll(s, dc); status != 200 || m["scope"] != nil {
			t.Errorf("got %d %v, want a token without scope", status, m)
		}
	})

	t.Run("confidential client secret", func(t *testing.T) {
		s := New()
		dc, _, _ := start(t, s, "/oauth2/device", url.Values{"client_id": {ClientID}})
		status, m := postToken(t, s, url.Values{"grant_type": {deviceGrantType}, "client_id": {ClientID}, "client_secret": {"bad"}, "device_code": {dc}})
		wantError(t, status, m, 403, "invalid client secret")
		status, m = postToken(t, s, url.Values{"grant_type": {deviceGrantType}, "client_id": {ClientID}, "client_secret": {ClientSecret}, "device_code": {dc}})
		wantError(t, status, m, 400, "authorization_pending")
	})
}

func TestValidate(t *testing.T) {
	s := New()
	user, _ := s.IssueToken(ClientID, UserID, []string{"chat:read"}, 0)
	noScopes, _ := s.IssueToken(ClientID, UserID, nil, time.Hour)
	app, _ := s.IssueToken(ClientID, "", nil, 0)
	expired, _ := s.IssueToken(ClientID, UserID, nil, 0)
	s.ExpireAccessToken(expired)
	forever, _ := s.IssueToken(ClientID, UserID, nil, -1)
	tests := []struct {
		name, auth string
		wantStatus int
		wantBody   string // substring of the raw body
	}{
		{"user OAuth", "OAuth " + user, 200, `"scopes":["chat:read"]`},
		{"user Bearer", "Bearer " + user, 200, `"login":"fakeuser"`},
		{"user expires_in", "OAuth " + user, 200, `"expires_in":1439`},
		{"no scopes", "OAuth " + noScopes, 200, `"scopes":null`},
		{"app", "OAuth " + app, 200, `"client_id":"fake-client-id"`},
		{"never expires", "OAuth " + forever, 200, `"expires_in":0`},
		{"expired", "OAuth " + expired, 401, `{"message":"invalid access token","status":401}`},
		{"unknown", "OAuth nope", 401, `"message":"invalid access token"`},
		{"other scheme", "Basic " + user, 401, `"message":"invalid access token"`},
		{"missing", "", 401, `{"message":"missing authorization token","status":401}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, _ := serve(t, s, "GET", "/oauth2/validate", nil, tt.auth)
			if rec.Code != tt.wantStatus || !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("got %d %s, want %d containing %s", rec.Code, rec.Body, tt.wantStatus, tt.wantBody)
			}
		})
	}
	s.SetNow(func() time.Time { return time.Now().Add(2 * time.Hour) })
	if rec, _ := serve(t, s, "GET", "/oauth2/validate", nil, "OAuth "+noScopes); rec.Code != 401 {
		t.Errorf("past expiry: %d, want 401", rec.Code)
	}
}

func TestRevoke(t *testing.T) {
	s := New()
	s.AddClient("other", "other-secret")
	access, refresh := s.IssueToken(ClientID, UserID, nil, 0)
	rec, _ := serve(t, s, "POST", "/oauth2/revoke", url.Values{"client_id": {"other"}, "token": {access}}, "")
	if rec.Code != 400 {
		t.Errorf("revoke by another client: %d, want 400", rec.Code)
	}
	rec, _ = serve(t, s, "POST", "/oauth2/revoke", url.Values{"client_id": {ClientID}, "token": {access}}, "")
	if rec.Code != 200 || rec.Body.Len() != 0 {
		t.Fatalf("revoke: %d %q", rec.Code, rec.Body)
	}
	if rec, _ := serve(t, s, "GET", "/oauth2/validate", nil, "OAuth "+access); rec.Code != 401 {
		t.Errorf("validate after revoke: %d", rec.Code)
	}
	status, m := postToken(t, s, url.Values{"grant_type": {"refresh_token"}, "client_id": {ClientID}, "client_secret": {ClientSecret}, "refresh_token": {refresh}})
	wantError(t, status, m, 400, "Invalid refresh token")

	// Parameters in the query are accepted too.
	app, _ := s.IssueToken(ClientID, "", nil, 0)
	if rec, _ := serve(t, s, "POST", "/oauth2/revoke?client_id="+ClientID+"&token="+app, nil, ""); rec.Code != 200 {
		t.Errorf("revoke via query: %d %s", rec.Code, rec.Body)
	}

	tests := []struct {
		name       string
		form       url.Values
		wantStatus int
		wantBody   string
	}{
		{"again", url.Values{"client_id": {ClientID}, "token": {access}}, 400, `{"message":"Invalid token","status":400}`},
		{"unknown client", url.Values{"client_id": {"nope"}, "token": {access}}, 404, `{"message":"client does not exist","status":404}`},
		{"missing client id", url.Values{"token": {access}}, 400, `{"message":"missing client id","status":400}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, _ := serve(t, s, "POST", "/oauth2/revoke", tt.form, "")
			if rec.Code != tt.wantStatus || rec.Body.String() != tt.wantBody {
				t.Errorf("got %d %s, want %d %s", rec.Code, rec.Body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

func TestUserinfo(t *testing.T) {
	s := New()
	s.AddUser("777", "noemail", "")
	user, _ := s.IssueToken(ClientID, UserID, []string{"openid"}, 0)
	noEmail, _ := s.IssueToken(ClientID, "777", nil, 0)
	app, _ := s.IssueToken(ClientID, "", nil, 0)

	rec, m := serve(t, s, "GET", "/oauth2/userinfo", nil, "Bearer "+user)
	want := map[string]any{"aud": ClientID, "iss": "https://id.twitch.tv/oauth2", "sub": UserID, "preferred_username": UserLogin,
		"email": "fakeuser@example.com", "email_verified": true, "updated_at": "2024-01-01T00:00:00Z"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if rec.Code != 200 || m["exp"].(float64)-m["iat"].(float64) != 14400 {
		t.Errorf("userinfo: %d %v", rec.Code, m)
	}
	if _, m := serve(t, s, "GET", "/oauth2/userinfo", nil, "Bearer "+noEmail); m["email"] != nil || m["sub"] != "777" {
		t.Errorf("userinfo without email: %v", m)
	}
	for _, auth := range []string{"Bearer " + app, "OAuth " + user, "Bearer nope", ""} {
		rec, m := serve(t, s, "GET", "/oauth2/userinfo", nil, auth)
		wantError(t, rec.Code, m, 401, "invalid access token")
		if m["error"] != "Unauthorized" {
			t.Errorf("%q: error = %v", auth, m["error"])
		}
	}
}

func TestMockAuthorize(t *testing.T) {
	s := New()
	tests := []struct {
		name       string
		query      url.Values
		wantStatus int
		wantScope  []string
		wantMsg    string
	}{
		{"no scope", url.Values{"client_id": {ClientID}, "client_secret": {ClientSecret}, "user_id": {UserID}}, 200, []string{""}, ""},
		{"scopes", url.Values{"client_id": {ClientID}, "client_secret": {ClientSecret}, "user_id": {UserID}, "scope": {"a:b c:d"}}, 200, []string{"a:b", "c:d"}, ""},
		{"bad secret", url.Values{"client_id": {ClientID}, "client_secret": {"x"}, "user_id": {UserID}}, 403, nil, "invalid client secret"},
		{"unknown client", url.Values{"client_id": {"x"}, "user_id": {UserID}}, 400, nil, "invalid client"},
		{"unknown user", url.Values{"client_id": {ClientID}, "client_secret": {ClientSecret}, "user_id": {"9"}}, 400, nil, "invalid user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.query.Set("grant_type", "user_token")
			// Parameters in the body are ignored.
			rec, m := serve(t, s, "POST", "/oauth2/authorize?"+tt.query.Encode(), url.Values{"scope": {"ignored"}}, "")
			if tt.wantMsg != "" {
				wantError(t, rec.Code, m, tt.wantStatus, tt.wantMsg)
				return
			}
			if rec.Code != 200 || m["refresh_token"] != "" || m["expires_in"] != float64(86399) || !slices.Equal(toStrings(m["scope"]), tt.wantScope) {
				t.Fatalf("got %d %s", rec.Code, rec.Body)
			}
			if rec, v := serve(t, s, "GET", "/validate", nil, "OAuth "+m["access_token"].(string)); rec.Code != 200 || v["user_id"] != UserID {
				t.Errorf("validate: %d %s", rec.Code, rec.Body)
			}
		})
	}
}

// newClient returns a client with its own transport that does not follow
// redirects.
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func TestFaults(t *testing.T) {
	s := New()
	base := s.Start()
	defer s.Close()
	if !strings.HasPrefix(base, "http://127.0.0.1:") || !strings.HasSuffix(base, "/oauth2/") || s.BaseURL() != base {
		t.Fatalf("base URL %q", base)
	}
	c := newClient(t)
	get := func(ctx context.Context, endpoint string) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+endpoint, nil)
		return c.Do(req)
	}

	t.Run("status", func(t *testing.T) {
		s.Fail("validate", Fault{Status: 503, Body: "<html>down</html>", Count: 1})
		s.Fail("validate", Fault{Status: 429, Body: `{"status":429}`, Count: 1})
		for _, want := range []struct {
			status int
			ct     string
		}{{503, "text/html"}, {429, "application/json"}, {401, "application/json"}} {
			resp, err := get(t.Context(), "validate")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want.status || resp.Header.Get("Content-Type") != want.ct {
				t.Errorf("got %d %s, want %d %s", resp.StatusCode, resp.Header.Get("Content-Type"), want.status, want.ct)
			}
		}
	})

	t.Run("forever until cleared", func(t *testing.T) {
		s.Fail("userinfo", Fault{})
		for range 3 {
			resp, err := get(t.Context(), "userinfo")
			if err != nil || resp.StatusCode != 500 {
				t.Fatalf("got %v %v", resp, err)
			}
			resp.Body.Close()
		}
		s.ClearFaults()
		resp, err := get(t.Context(), "userinfo")
		if err != nil || resp.StatusCode != 401 {
			t.Fatalf("after ClearFaults: %v %v", resp, err)
		}
		resp.Body.Close()
	})

	for _, f := range []Fault{{Delay: time.Hour, Count: 1}, {Hang: true, Count: 1}} {
		t.Run("cancelled", func(t *testing.T) {
			s.Fail("token", f)
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			req, _ := http.NewRequestWithContext(ctx, "POST", base+"token", strings.NewReader("grant_type=client_credentials"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			_, err := c.Do(req)
			if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
				t.Errorf("got %v after %v", err, time.Since(start))
			}
		})
	}

	t.Run("short delay", func(t *testing.T) {
		s.Fail("revoke", Fault{Delay: 20 * time.Millisecond, Status: 502, Count: 1})
		start := time.Now()
		resp, err := c.PostForm(base+"revoke", url.Values{"client_id": {ClientID}})
		if err != nil || resp.StatusCode != 502 || time.Since(start) < 20*time.Millisecond {
			t.Fatalf("got %v %v after %v", resp, err, time.Since(start))
		}
		resp.Body.Close()
	})

	t.Run("truncate", func(t *testing.T) {
		s.Fail("token", Fault{Status: 200, Body: `{"access_token":"x"`, Truncate: true, Count: 1})
		resp, err := c.PostForm(base+"token", url.Values{"grant_type": {"client_credentials"}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if _, err := io.ReadAll(resp.Body); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("reading truncated body: %v, want unexpected EOF", err)
		}
	})
}

func TestCloseEndsHangingRequest(t *testing.T) {
	s := New()
	base := s.Start()
	s.Fail("validate", Fault{Hang: true})
	errc := make(chan error, 1)
	go func() {
		resp, err := newClient(t).Get(base + "validate")
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	for s.CountRequests("validate") == 0 {
		time.Sleep(time.Millisecond)
	}
	s.Close()
	s.Close()
	if err := <-errc; err == nil {
		t.Error("hanging request got an answer")
	}
}

func TestConnections(t *testing.T) {
	s := New()
	base := s.Start()
	defer s.Close()
	c := newClient(t)
	for range 10 {
		resp, err := c.Get(base + "validate")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if n := s.Connections(); n != 1 {
		t.Errorf("Connections() = %d, want 1", n)
	}
	if n := s.CountRequests("validate"); n != 10 {
		t.Errorf("CountRequests = %d, want 10", n)
	}
}

func TestRecording(t *testing.T) {
	s := New()
	serve(t, s, "POST", "/oauth2/token?client_id="+ClientID, url.Values{"grant_type": {"client_credentials"}, "client_secret": {ClientSecret}}, "")
	serve(t, s, "POST", "/token?grant_type=client_credentials&client_id="+ClientID+"&client_secret="+ClientSecret, nil, "")
	serve(t, s, "GET", "/oauth2/validate", nil, "OAuth abc")
	rec, m := serve(t, s, "GET", "/oauth2/nope", nil, "")
	wantError(t, rec.Code, m, 404, "Not Found")
	rec, m = serve(t, s, "GET", "/oauth2/token", nil, "")
	wantError(t, rec.Code, m, 405, "method not allowed")

	reqs := s.Requests()
	if len(reqs) != 5 {
		t.Fatalf("%d requests, want 5", len(reqs))
	}
	r := reqs[0]
	if r.Endpoint != "token" || r.Method != "POST" || r.RawQuery != "client_id="+ClientID || r.Query.Get("client_id") != ClientID ||
		r.Form.Get("client_id") != "" || r.Form.Get("grant_type") != "client_credentials" || r.ContentType != "application/x-www-form-urlencoded" {
		t.Errorf("request 0: %+v", r)
	}
	if reqs[1].Endpoint != "token" || len(reqs[1].Form) != 0 || reqs[1].Query.Get("client_secret") != ClientSecret {
		t.Errorf("request 1: %+v", reqs[1])
	}
	if reqs[2].Authorization != "OAuth abc" || reqs[3].Endpoint != "nope" {
		t.Errorf("requests 2, 3: %+v %+v", reqs[2], reqs[3])
	}
	if n := s.CountGrant("client_credentials"); n != 2 {
		t.Errorf("CountGrant = %d, want 2", n)
	}
	if n := s.CountRequests("token"); n != 3 {
		t.Errorf("CountRequests(token) = %d, want 3", n)
	}
	s.ResetRequests()
	if len(s.Requests()) != 0 {
		t.Error("ResetRequests kept requests")
	}
}

func TestSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New()
		access, _ := s.IssueToken(ClientID, UserID, nil, time.Hour)
		s.Fail("validate", Fault{Delay: time.Minute, Status: 503, Count: 1})
		start := time.Now()
		if rec, _ := serve(t, s, "GET", "/validate", nil, "OAuth "+access); rec.Code != 503 || time.Since(start) != time.Minute {
			t.Errorf("delayed fault: %d after %v", rec.Code, time.Since(start))
		}
		if _, m := serve(t, s, "GET", "/validate", nil, "OAuth "+access); m["expires_in"] != float64(59*60) {
			t.Errorf("expires_in = %v, want 3540", m["expires_in"])
		}
		time.Sleep(time.Hour)
		if rec, _ := serve(t, s, "GET", "/validate", nil, "OAuth "+access); rec.Code != 401 {
			t.Errorf("after expiry: %d, want 401", rec.Code)
		}
	})
}

func TestFaultPass(t *testing.T) {
	s := New()
	base := s.Start()
	t.Cleanup(s.Close)
	access, _ := s.IssueToken(ClientID, UserID, nil, 0)
	s.Fail("validate", Fault{Delay: 20 * time.Millisecond, Pass: true, Count: 1})
	req, _ := http.NewRequest(http.MethodGet, base+"validate", nil)
	req.Header.Set("Authorization", "OAuth "+access)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || time.Since(start) < 20*time.Millisecond {
		t.Errorf("status %d after %v, want a normal answer after the delay", resp.StatusCode, time.Since(start))
	}
}

// refreshForm is the form of a confidential refresh of the default app.
func refreshForm(refresh string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "client_id": {ClientID}, "client_secret": {ClientSecret}, "refresh_token": {refresh}}
}

func TestRevokeGrant(t *testing.T) {
	for _, by := range []string{"access token", "refresh token", "a later access token"} {
		t.Run(by, func(t *testing.T) {
			s := New()
			access, refresh := s.IssueToken(ClientID, UserID, []string{"chat:read"}, 0)
			otherAccess, otherRefresh := s.IssueToken(ClientID, UserID, nil, 0) // another login of the same user
			status, m := postToken(t, s, refreshForm(refresh))
			if status != 200 {
				t.Fatalf("refresh: %d %v", status, m)
			}
			access2, refresh2 := m["access_token"].(string), m["refresh_token"].(string)
			token := map[string]string{"access token": access, "refresh token": refresh, "a later access token": access2}[by]
			if !s.RevokeGrant(token) {
				t.Fatal("RevokeGrant = false for an issued token")
			}
			for _, a := range []string{access, access2} {
				if rec, _ := serve(t, s, "GET", "/validate", nil, "OAuth "+a); rec.Code != 401 {
					t.Errorf("validate a token of the revoked login: %d, want 401", rec.Code)
				}
			}
			for _, r := range []string{refresh, refresh2} {
				status, m := postToken(t, s, refreshForm(r))
				wantError(t, status, m, 400, "Invalid refresh token")
			}
			if rec, _ := serve(t, s, "GET", "/validate", nil, "OAuth "+otherAccess); rec.Code != 200 {
				t.Errorf("another login's access token: %d, want 200", rec.Code)
			}
			if status, _ := postToken(t, s, refreshForm(otherRefresh)); status != 200 {
				t.Errorf("another login's refresh token: %d, want 200", status)
			}
		})
	}
	if New().RevokeGrant("never-issued") {
		t.Error("RevokeGrant = true for a token never issued")
	}
}

func TestExpireAccessTokens(t *testing.T) {
	s := New()
	user, refresh := s.IssueToken(ClientID, UserID, nil, 0)
	app, _ := s.IssueToken(ClientID, "", nil, 0)
	s.ExpireAccessTokens()
	for _, a := range []string{user, app} {
		if rec, _ := serve(t, s, "GET", "/validate", nil, "OAuth "+a); rec.Code != 401 {
			t.Errorf("validate after ExpireAccessTokens: %d, want 401", rec.Code)
		}
	}
	status, m := postToken(t, s, refreshForm(refresh))
	if status != 200 {
		t.Fatalf("refresh after ExpireAccessTokens: %d %v", status, m)
	}
	if rec, _ := serve(t, s, "GET", "/validate", nil, "OAuth "+m["access_token"].(string)); rec.Code != 200 {
		t.Errorf("a token issued after ExpireAccessTokens: %d, want 200", rec.Code)
	}
}

func TestTokenInfo(t *testing.T) {
	s := New()
	access, _ := s.IssueToken(ClientID, UserID, []string{"chat:read"}, 0)
	info, ok := s.TokenInfo(access)
	if !ok || !info.Live || info.ClientID != ClientID || info.UserID != UserID || !slices.Equal(info.Scopes, []string{"chat:read"}) {
		t.Errorf("TokenInfo = %+v, %v", info, ok)
	}
	s.ExpireAccessToken(access)
	if info, ok := s.TokenInfo(access); !ok || info.Live {
		t.Errorf("expired: TokenInfo = %+v, %v; want known and not live", info, ok)
	}
	if _, ok := s.TokenInfo("never-issued"); ok {
		t.Error("TokenInfo knows a token never issued")
	}
	if len(s.Requests()) != 0 {
		t.Errorf("TokenInfo recorded requests: %+v", s.Requests())
	}
}
