package twitchoauth

import "sync"

// maxScopeSets caps how many sets of scopes scopeExtra keeps.
const maxScopeSets = 1024

// scopeSets holds the Extra map of each set of scopes seen, shared by every token granting it: a
// registry of 10,000 users holds a few sets, not 10,000 maps. Tokens and their Extra are not
// modified once made (see UserTokenSource).
var scopeSets struct {
	sync.Mutex
	m map[string]map[string]any
}

// scopeExtra returns the Extra map of a token granting scopes, shared with the tokens granting
// the same ones.
func scopeExtra(scopes []Scope) map[string]any {
	key := BuildScope(scopes)
	scopeSets.Lock()
	defer scopeSets.Unlock()
	if extra, ok := scopeSets.m[key]; ok {
		return extra
	}
	extra := map[string]any{"scope": scopesToStrings(scopes)}
	if scopeSets.m == nil {
		scopeSets.m = map[string]map[string]any{}
	}
	if len(scopeSets.m) < maxScopeSets {
		scopeSets.m[key] = extra
	}
	return extra
}
