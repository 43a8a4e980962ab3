package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// TestFlagErrorIsOneLine checks that a bad flag gets one line naming the flag and what it expects,
// and a pointer to -h, not the whole help with the error scrolled away above it.
func TestFlagErrorIsOneLine(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-port", "abc"}, `-port: not a port number (0-65535; 0 picks a free one)`},
		{[]string{"-port", "-1"}, `-port: not a port number (0-65535; 0 picks a free one)`},
		{[]string{"-port"}, "-port needs a value: a port number (0-65535; 0 picks a free one)"},
		{[]string{"-scopes"}, "-scopes needs a value: scopes such as chat:read,chat:edit"},
		{[]string{"-device=maybe"}, `-device: not true or false (or give -device alone)`},
		{[]string{"-devcie"}, "-devcie is not a flag (did you mean -device?)"},
		{[]string{"-nonsense"}, "argument #1 starts with - but is not a flag (9 characters, not shown: it may be a secret)"},
		{[]string{"-device", "-=x"}, "an argument starting with - is not a flag (not shown: it may be a secret)"},
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

// TestBadURLAndStoreCheckedFirst checks that a bad -auth-base-url or -store is one line and exit 2
// before anything starts, rather than a login that fails on its first request or cannot be saved.
func TestBadURLAndStoreCheckedFirst(t *testing.T) {
	fake := twitchoauthtest.NewServer(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	login := []string{"-client-id", twitchoauthtest.ClientID, "-no-browser", "-port", "0"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"not a url", []string{"-auth-base-url", "not a url"}, `-auth-base-url: not an http or https URL (Twitch's is https://id.twitch.tv/oauth2/)`},
		{"no scheme", []string{"-auth-base-url", "id.twitch.tv/oauth2"}, `-auth-base-url: not an http or https URL`},
		{"ftp", []string{"-auth-base-url", "ftp://id.twitch.tv/"}, `-auth-base-url: not an http or https URL`},
		{"no host", []string{"-auth-base-url", "http:///oauth2"}, `-auth-base-url: an http or https URL without a host`},
		{"bad escape", []string{"-auth-base-url", "http://host/%zz"}, `-auth-base-url: not a URL`},
		{"password hidden", []string{"-auth-base-url", "ftp://me:hunter2@example.com/"}, `-auth-base-url: not an http or https URL`},
		{"missing dir", []string{"-auth-base-url", fake.URL, "-store", filepath.Join(dir, "missing", "tok.json")},
			"-store: the directory of the file does not exist; create it first"},
		{"dir is a file", []string{"-auth-base-url", fake.URL, "-store", filepath.Join(file, "tok.json")},
			"-store: what should be the directory of the file is not a directory"},
		{"store is a dir", []string{"-auth-base-url", fake.URL, "-store", dir}, "-store names a directory: name a file in it"},
	}
	if os.Geteuid() != 0 { // root writes anywhere
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct {
			name string
			args []string
			want string
		}{"read-only dir", []string{"-auth-base-url", fake.URL, "-store", filepath.Join(ro, "tok.json")},
			"-store: cannot write in the directory of the file: permission denied"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Without the checks, the login would wait for a browser: give up soon.
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			code, stdout, stderr := runCmd(t, ctx, append(login, tt.args...)...)
			if code != 2 || !strings.HasPrefix(stderr, "twitchtoken: ") || !strings.Contains(stderr, tt.want) || strings.Count(stderr, "\n") != 2 {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and one line with %q", code, stderr, tt.want)
			}
			if strings.Contains(stdout+stderr, "hunter2") {
				t.Errorf("the output shows the URL's password")
			}
		})
	}
	// A writable directory passes, and the check leaves nothing in it.
	if err := checkStorePath(filepath.Join(dir, "tok.json")); err != nil {
		t.Errorf("checkStorePath(writable dir) = %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".twitchtoken-check") {
			t.Errorf("the write check left %s behind", e.Name())
		}
	}
}
