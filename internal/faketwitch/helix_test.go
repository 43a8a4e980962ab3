package faketwitch

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// getAuthorizations sends GET /helix/authorization/users for ids with these headers.
func getAuthorizations(t *testing.T, s *Server, auth, clientID string, ids ...string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/helix/authorization/users?"+url.Values{"user_id": ids}.Encode(), nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if clientID != "" {
		req.Header.Set("Client-Id", clientID)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	var m map[string]any
	if rec.Body.Len() > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("bad JSON %q: %v", rec.Body, err)
		}
	}
	return rec.Code, m
}

// TestAuthorizationsFromGrants: Get Authorization By User answers from what the server issued:
// the scopes of a user's standing logins with this client, has_authorized false once every login
// is revoked or for a user who never logged in, and nothing for an ID that names no user.
func TestAuthorizationsFromGrants(t *testing.T) {
	s := New()
	s.AddUser("2", "bob", "")
	s.AddUser("3", "carol", "")
	s.AddUser("4", "dave", "")
	s.IssueToken(ClientID, UserID, []string{"chat:read"}, 0)
	s.IssueToken(ClientID, UserID, []string{"chat:edit", "chat:read"}, 0)
	s.IssueToken(PublicClientID, UserID, []string{"bits:read"}, 0) // another client's grant
	_, bobRefresh := s.IssueToken(ClientID, "2", []string{"bits:read"}, 0)
	s.IssueToken(PublicClientID, "4", []string{"chat:read"}, 0)
	s.RevokeGrant(bobRefresh)
	s.ExpireAccessTokens() // refresh tokens keep a login standing
	app, _ := s.IssueToken(ClientID, "", nil, 0)

	status, m := getAuthorizations(t, s, "Bearer "+app, ClientID, UserID, "2", "3", "999", "4")
	if status != http.StatusOK {
		t.Fatalf("status %d %v", status, m)
	}
	want := []string{
		`{"has_authorized":true,"scopes":["chat:edit","chat:read"],"user_id":"12345","user_login":"fakeuser","user_name":"Fakeuser"}`,
		`{"has_authorized":false,"scopes":[],"user_id":"2","user_login":"bob","user_name":"Bob"}`,
		`{"has_authorized":false,"scopes":[],"user_id":"3","user_login":"carol","user_name":"Carol"}`,
		`{"has_authorized":false,"scopes":[],"user_id":"4","user_login":"dave","user_name":"Dave"}`,
	}
	data, _ := m["data"].([]any)
	if len(data) != len(want) {
		t.Fatalf("data %v, want %d entries (999 is no user)", data, len(want))
	}
	for i, d := range data {
		if got := jsonString(t, d); got != want[i] {
			t.Errorf("data[%d] = %s\nwant      %s", i, got, want[i])
		}
	}
}

// TestAuthorizationsRefused: the endpoint takes only a live app token whose client the Client-Id
// header names, and 1 to 10 user_id, answering with Helix's codes otherwise.
func TestAuthorizationsRefused(t *testing.T) {
	s := New()
	app, _ := s.IssueToken(ClientID, "", nil, 0)
	user, _ := s.IssueToken(ClientID, UserID, nil, 0)
	dead, _ := s.IssueToken(ClientID, "", nil, 0)
	s.ExpireAccessToken(dead)
	eleven := make([]string, 11)
	for i := range eleven {
		eleven[i] = fmt.Sprint(i + 1)
	}
	tests := []struct {
		name, auth, clientID string
		ids                  []string
		wantStatus           int
		wantMsg              string
	}{
		{"no token", "", ClientID, []string{UserID}, 401, "OAuth token is missing"},
		{"unknown token", "Bearer nope", ClientID, []string{UserID}, 401, "Invalid OAuth token"},
		{"expired token", "Bearer " + dead, ClientID, []string{UserID}, 401, "Invalid OAuth token"},
		{"no client id", "Bearer " + app, "", []string{UserID}, 401, "Client ID is missing"},
		{"another client", "Bearer " + app, PublicClientID, []string{UserID}, 401, "Client ID and OAuth token do not match"},
		{"user token", "Bearer " + user, ClientID, []string{UserID}, 401, "Authorization header must specify an app access token"},
		{"no ids", "Bearer " + app, ClientID, nil, 400, `Missing required parameter "user_id"`},
		{"eleven ids", "Bearer " + app, ClientID, eleven, 400, `The parameter "user_id" may be specified at most 10 times`},
		{"empty id", "Bearer " + app, ClientID, []string{""}, 400, `Invalid value for parameter "user_id"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, m := getAuthorizations(t, s, tc.auth, tc.clientID, tc.ids...)
			wantError(t, status, m, tc.wantStatus, tc.wantMsg)
			if m["error"] != http.StatusText(tc.wantStatus) {
				t.Errorf("error %v, want %q", m["error"], http.StatusText(tc.wantStatus))
			}
		})
	}
	if status, m := getAuthorizations(t, s, "Bearer "+app, ClientID, eleven[:10]...); status != http.StatusOK {
		t.Errorf("ten ids: %d %v, want 200", status, m)
	}
	if n := s.CountRequests(AuthorizationsEndpoint); n != len(tests)+1 {
		t.Errorf("CountRequests(%q) = %d, want %d", AuthorizationsEndpoint, n, len(tests)+1)
	}
}

// TestAuthorizationsHelixURL: over loopback, Helix is served beside the identity server.
func TestAuthorizationsHelixURL(t *testing.T) {
	s := New()
	if s.HelixURL() != "" {
		t.Errorf("HelixURL before Start = %q, want \"\"", s.HelixURL())
	}
	base := s.Start()
	defer s.Close()
	if want := strings.TrimSuffix(base, "oauth2/") + "helix/"; s.HelixURL() != want {
		t.Errorf("HelixURL = %q, want %q", s.HelixURL(), want)
	}
	app, _ := s.IssueToken(ClientID, "", nil, 0)
	req, _ := http.NewRequest(http.MethodGet, s.HelixURL()+"authorization/users?user_id="+UserID, nil)
	req.Header.Set("Authorization", "Bearer "+app)
	req.Header.Set("Client-Id", ClientID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d, want 200", resp.StatusCode)
	}
}

// jsonString returns v as JSON, with its keys sorted.
func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
