package twitchoauth

import (
	"maps"
	"sync"
	"sync/atomic"
)

// maxScopeSets caps how many sets of scopes scopeExtra keeps.
const maxScopeSets = 1024

// scopeSets holds the Extra map of each set of scopes seen, shared by every token granting it: a
// registry of 10,000 users holds a few sets, not 10,000 maps. Tokens and their Extra are not
// modified once made (see UserTokenSource). The index is copied on write (sets are few and
// seldom new), so that a lookup takes no lock: tokens are made by many goroutines at once.
var scopeSets struct {
	m  atomic.Pointer[map[string]map[string]any] // read without a lock
	mu sync.Mutex                                // held by writers
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
	if m := scopeSets.m.Load(); m != nil {
		if extra, ok := (*m)[string(key)]; ok {
			return extra
		}
	}
	scopeSets.mu.Lock()
	defer scopeSets.mu.Unlock()
	var old map[string]map[string]any
	if m := scopeSets.m.Load(); m != nil {
		old = *m
	}
	if extra, ok := old[string(key)]; ok {
		return extra
	}
	extra := map[string]any{"scope": scopesToStrings(scopes)}
	if len(old) < maxScopeSets {
		next := maps.Clone(old)
		if next == nil {
			next = map[string]map[string]any{}
		}
		next[string(key)] = extra
		scopeSets.m.Store(&next)
	}
	return extra
}
