package faketwitch

import (
	"maps"
	"slices"
)

// TokenInfo is what the server knows of an access token it issued.
type TokenInfo struct {
	// ClientID is the app the token was issued to.
	ClientID string
	// UserID is the user it stands for; "" for an app token.
	UserID string
	// Scopes are the scopes granted with it.
	Scopes []string
	// Live reports whether it is valid now: not past its lifetime, expired early, or revoked.
	Live bool
}

// TokenInfo returns what the server knows of an access token, and false if it never issued it.
// It makes no request, so it records none.
func (s *Server) TokenInfo(access string) (TokenInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.access[access]
	if t == nil {
		return TokenInfo{}, false
	}
	return TokenInfo{
		ClientID: t.clientID,
		UserID:   t.userID,
		Scopes:   slices.Clone(t.scopes),
		Live:     s.liveToken(access) != nil,
	}, true
}

// RevokeGrant ends the login that token, an access or a refresh token, descends from, as when
// the user disconnects the app: every access token of that login stops validating and every
// refresh token of it is refused, including those that refreshes issued after token. It reports
// false, and changes nothing, if the server never issued token.
func (s *Server) RevokeGrant(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.issued[token]
	if !ok {
		return false
	}
	s.revokeGrantLocked(id)
	return true
}

// revokeGrantLocked ends grant id; s.mu is held.
func (s *Server) revokeGrantLocked(id uint64) {
	for _, t := range s.access {
		if t.id == id {
			t.dead = true
		}
	}
	maps.DeleteFunc(s.refresh, func(_ string, g *grant) bool { return g.id == id })
}

// ExpireAccessTokens makes every access token issued so far invalid, as if their lifetime had
// passed. Refresh tokens keep working.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.access {
		t.dead = true
	}
}
