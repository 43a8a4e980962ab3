package main

import (
	"strings"
	"testing"
)

// TestFlagErrorIsOneLine checks that a bad flag gets one line naming the flag and what it expects,
// and a pointer to -h, not the whole help with the error scrolled away above it.
func TestFlagErrorIsOneLine(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-port", "abc"}, `-port: "abc" is not a port number (0-65535; 0 picks a free one)`},
		{[]string{"-port", "-1"}, `-port: "-1" is not a port number (0-65535; 0 picks a free one)`},
		{[]string{"-port"}, "-port needs a value: a port number (0-65535; 0 picks a free one)"},
		{[]string{"-scopes"}, "-scopes needs a value: scopes such as chat:read,chat:edit"},
		{[]string{"-device=maybe"}, `-device: "maybe" is not true or false (or give -device alone)`},
		{[]string{"-devcie"}, "-devcie is not a flag (did you mean -device?)"},
		{[]string{"-nonsense"}, "-nonsense is not a flag"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCmd(t, t.Context(), tt.args...)
			want := "twitchtoken: " + tt.want + "\nRun 'twitchtoken -h' for help.\n"
			if code != 2 || stderr != want || stdout != "" {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and:\n%s", code, stderr, want)
			}
		})
	}
}

// TestHelp checks that -h still prints the whole help, and exits 0.
func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		code, stdout, stderr := runCmd(t, t.Context(), arg)
		if code != 0 || stdout != "" {
			t.Errorf("%s: exit %d, stdout %q", arg, code, stdout)
		}
		for _, want := range []string{"twitchtoken gets a Twitch user access token", "Flags:", "-client-id", "-port port", "(default 17563)", "-validate"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("%s: help lacks %q:\n%s", arg, want, stderr)
			}
		}
	}
}
