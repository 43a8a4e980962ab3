package main

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/twitchoauth/twitchoauth"
)

// parseScopes reads -scopes, a comma- or space-separated list, and checks every scope against
// Twitch's. An unknown scope is shown only when it is a typo of a known one (a secret given to
// -scopes is no near miss of a scope); otherwise its position in the list is.
func parseScopes(s string) ([]twitchoauth.Scope, error) {
	known := map[twitchoauth.Scope]bool{}
	for _, sc := range twitchoauth.AllScopes() {
		known[sc] = true
	}
	var scopes []twitchoauth.Scope
	for i, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		sc := twitchoauth.Scope(f)
		if !known[sc] {
			msg := fmt.Sprintf("-scopes: scope #%d is not one of Twitch's (%d characters, not shown: it may be a secret)",
				i+1, utf8.RuneCountInString(f))
			if near := closest(f, twitchoauth.AllScopes()); near != "" {
				msg = fmt.Sprintf("-scopes: unknown scope %q (did you mean %q?)", f, near)
			}
			return nil, errors.New(msg + "; see https://dev.twitch.tv/docs/authentication/scopes/")
		}
		scopes = append(scopes, sc)
	}
	return scopes, nil
}

// closest returns the known scope nearest to s by edit distance, if one is near enough to be a typo.
func closest(s string, known []twitchoauth.Scope) twitchoauth.Scope {
	best, bestDist := twitchoauth.Scope(""), 4
	for _, k := range known {
		if d := editDistance(s, string(k)); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
