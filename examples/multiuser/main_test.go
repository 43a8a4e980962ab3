package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// TestDemo runs the offline demo: it ends without error, says what happened, and prints no token.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := demo(t.Context(), &out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"Users: [1000 2001 2002 2003]",
		"Chat as the bot: PASS oauth:…",
		"Channel alice: Helix calls go out with alice's token",
		"OnRefresh: user 2001 has a new token",
		"OnRevoked: user 2002 disconnected the bot",
		"Users now: [1000 2001]",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if regexp.MustCompile(`[a-z0-9]{30}`).MatchString(got) {
		t.Errorf("the demo printed a token:\n%s", got)
	}
}
