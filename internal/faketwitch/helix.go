package faketwitch

import (
	"net/http"
	"slices"
	"strings"
)

// AuthorizationsEndpoint is the Helix endpoint the fake serves, as Fail, Requests and
// CountRequests name it: GET /helix/authorization/users (Get Authorization By User).
const AuthorizationsEndpoint = "helix/authorization/users"

// MaxAuthorizationUsers is how many user_id one call of Get Authorization By User may name.
const MaxAuthorizationUsers = 10

// helixError returns Helix's error body, {"error":"Unauthorized","status":401,"message":"..."}.
func helixError(status int, msg string) reply { return errorReply(status, msg, true) }

// authorizations serves Helix's Get Authorization By User: which scopes each user_id granted the
// client of the app token. It needs "Authorization: Bearer" with a live app token and a Client-Id
// header naming the token's client (401 otherwise, as for a user token), and 1 to 10 user_id (400
// otherwise). A user the server does not know is left out of data; a known user is listed with
// has_authorized true and the scopes of their live grants of that client, or false and no scopes
// when they have none (never logged in, or every login revoked).
func (s *Server) authorizations(r *http.Request) reply {
	tok, present := authToken(r, "Bearer")
	ids := r.URL.Query()["user_id"]
	s.mu.Lock()
	defer s.mu.Unlock()
	switch t := s.liveToken(tok); {
	case !present || tok == "":
		return helixError(http.StatusUnauthorized, "OAuth token is missing")
	case t == nil:
		return helixError(http.StatusUnauthorized, "Invalid OAuth token")
	case r.Header.Get("Client-Id") == "":
		return helixError(http.StatusUnauthorized, "Client ID is missing")
	case r.Header.Get("Client-Id") != t.clientID:
		return helixError(http.StatusUnauthorized, "Client ID and OAuth token do not match")
	case t.userID != "":
		return helixError(http.StatusUnauthorized, "Authorization header must specify an app access token")
	case len(ids) == 0:
		return helixError(http.StatusBadRequest, "Missing required parameter \"user_id\"")
	case len(ids) > MaxAuthorizationUsers:
		return helixError(http.StatusBadRequest, "The parameter \"user_id\" may be specified at most 10 times")
	case slices.Contains(ids, ""):
		return helixError(http.StatusBadRequest, "Invalid value for parameter \"user_id\"")
	default:
		data := make([]map[string]any, 0, len(ids))
		for _, id := range ids {
			u := s.users[id]
			if u == nil {
				continue
			}
			scopes, ok := s.grantedLocked(t.clientID, id)
			if scopes == nil {
				scopes = []string{}
			}
			data = append(data, map[string]any{
				"user_id":        u.id,
				"user_login":     u.login,
				"user_name":      displayName(u.login),
				"scopes":         scopes,
				"has_authorized": ok,
			})
		}
		return reply{status: http.StatusOK, body: map[string]any{"data": data}}
	}
}

// grantedLocked returns the scopes the user granted the client in the logins that still stand (a
// refresh token not revoked, or a live access token), sorted, and whether there is any; s.mu is
// held. A public client's refresh token that lapsed unused still counts: the user did not
// withdraw the authorization.
func (s *Server) grantedLocked(clientID, userID string) ([]string, bool) {
	var scopes []string
	live := false
	take := func(g grant) {
		live = true
		for _, sc := range g.scopes {
			if !slices.Contains(scopes, sc) {
				scopes = append(scopes, sc)
			}
		}
	}
	for _, g := range s.refresh {
		if g.clientID == clientID && g.userID == userID {
			take(*g)
		}
	}
	for access, t := range s.access {
		if t.clientID == clientID && t.userID == userID && s.liveToken(access) != nil {
			take(t.grant)
		}
	}
	slices.Sort(scopes)
	return scopes, live
}

// displayName is a login's display name as the fake makes it: its first letter upper-cased.
func displayName(login string) string {
	if login == "" {
		return ""
	}
	return strings.ToUpper(login[:1]) + login[1:]
}
