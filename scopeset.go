package twitchoauth

import "sync"

// maxScopeSets caps how many sets of scopes scopeExtra keeps.
const maxScopeSets = 1024

// scopeSets holds the Extra map of each set of scopes seen, shared by every token granting it: a
// registry of 10,000 users holds a few sets, not 10,000 maps. Tokens and their Extra are not
// modified once made (see UserTokenSource).
var scopeSets struct {
	sync.RWMutex
	m map[string]map[string]any
}

// scopeExtra returns the Extra map of a token granting scopes, shared with the tokens granting
// the same ones.
func scopeExtra(scopes []Scope) map[string]any {
	// The key is BuildScope's string, built on the stack: a set seen before costs no allocation.
	var buf [512]byte
	key := buf[:0]
	for i, s := range scopes {
		if i > 0 {
			key = append(key, ' ')
		}
		key = append(key, s...)
	}
	scopeSets.RLock()
	extra, ok := scopeSets.m[string(key)]
	scopeSets.RUnlock()
	if ok {
		return extra
	}
	scopeSets.Lock()
	defer scopeSets.Unlock()
	if extra, ok := scopeSets.m[string(key)]; ok {
		return extra
	}
	extra = map[string]any{"scope": scopesToStrings(scopes)}
	if scopeSets.m == nil {
		scopeSets.m = map[string]map[string]any{}
	}
	if len(scopeSets.m) < maxScopeSets {
		scopeSets.m[string(key)] = extra
	}
	return extra
}
