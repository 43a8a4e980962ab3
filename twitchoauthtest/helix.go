package twitchoauthtest

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/twitchoauth/twitchoauth"
)

// RequireToken returns a handler that guards h, a fake of a Twitch API (Helix) endpoint, as
// Twitch's API does: a request reaches h only with "Authorization: Bearer TOKEN", where TOKEN is
// an access token of this Server that is valid now, a "Client-Id" header naming the app the token
// was issued to, and every scope in scopes granted to the token. Any other request gets Helix's 401,
// {"error":"Unauthorized","message":"...","status":401}. Serve it with [net/http/httptest] and
// point the code under test's API base URL there. Checking a token records no request.
//
// On a 401 the client of [twitchoauth.UserTokenSource.HTTPClient] asks /validate whether the token
// is still valid: after [Server.Expire], [Server.ExpireAll] or [Server.Revoke] it is not, and the
// client refreshes and retries; for a missing scope it is, and the 401 reaches the caller.
func (s *Server) RequireToken(h http.Handler, scopes ...twitchoauth.Scope) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || token == "" {
			unauthorized(w, "OAuth token is missing")
			return
		}
		info, ok := s.fake.TokenInfo(token)
		switch {
		case !ok || !info.Live:
			unauthorized(w, "Invalid OAuth token")
			return
		case r.Header.Get("Client-Id") != info.ClientID:
			unauthorized(w, "Client ID and OAuth token do not match")
			return
		}
		for _, sc := range scopes {
			if !slices.Contains(info.Scopes, string(sc)) {
				unauthorized(w, "Missing scope: "+string(sc))
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// unauthorized answers Helix's 401.
func unauthorized(w http.ResponseWriter, msg string) {
	body, _ := json.Marshal(map[string]any{"error": "Unauthorized", "status": http.StatusUnauthorized, "message": msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("WWW-Authenticate", `OAuth realm="TwitchTV", error="invalid_token"`)
	w.WriteHeader(http.StatusUnauthorized)
	w.Write(body)
}
