package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoSaysWhatItIgnores checks that the demo names, in one line on stderr, the flags it was
// given but does not use, and that it honours -scopes "" (no scopes) rather than ignoring it.
func TestDemoSaysWhatItIgnores(t *testing.T) {
	store := filepath.Join(t.TempDir(), "tok.json")
	tests := []struct {
		args []string
		want string // the line on stderr, or "" for none
	}{
		{[]string{"-store", store, "-no-browser"}, "twitchtoken: the offline demo ignores -no-browser and -store: they need a Twitch app (-client-id or TWITCH_CLIENT_ID)"},
		{[]string{"-port", "0", "-client-secret", "s", "-auth-base-url", "http://localhost:1"}, "twitchtoken: the offline demo ignores -auth-base-url, -client-secret and -port: they need"},
		{[]string{"-store", store}, "twitchtoken: the offline demo ignores -store: they need"},
		{[]string{"-device", "-json", "-scopes", "chat:read"}, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCmd(t, t.Context(), tt.args...)
			if code != 0 {
				t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
			}
			if got := strings.Count(stderr, "ignores"); tt.want == "" && got != 0 || tt.want != "" && (got != 1 || !strings.HasPrefix(stderr, tt.want)) {
				t.Errorf("stderr:\n%s\nwant it to start with one line %q", stderr, tt.want)
			}
		})
	}
	if _, err := os.Stat(store); err == nil {
		t.Errorf("the demo wrote %s", store)
	}

	code, stdout, stderr := runCmd(t, t.Context(), "-scopes", "")
	if code != 0 || !strings.Contains(stdout, "scopes         (none)") || strings.Contains(stderr, "ignores") {
		t.Errorf(`-scopes "": exit %d, want a token with no scopes:\n%s%s`, code, stdout, stderr)
	}
}
