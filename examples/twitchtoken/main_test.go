package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

func noEnv(string) string { return "" }

// runCmd runs the command with args and returns its exit code, stdout and stderr.
func runCmd(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, noEnv, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestDemo(t *testing.T) {
	for _, args := range [][]string{nil, {"-device"}} {
		t.Run(fmt.Sprint(args), func(t *testing.T) {
			code, stdout, stderr := runCmd(t, t.Context(), args...)
			if code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
			}
			for _, want := range []string{"offline demo", "Logged in as fakeuser (user ID 12345)", "scopes         chat:read chat:edit",
				"Validate", "Refresh", "Revoke:", "invalid access token", "Demo finished"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, stdout)
				}
			}
			// Tokens are shortened in the demo.
			if regexp.MustCompile(`[a-z0-9]{30}`).MatchString(stdout) {
				t.Errorf("demo printed a whole token:\n%s", stdout)
			}
		})
	}
}

func TestDemoJSON(t *testing.T) {
	code, stdout, stderr := runCmd(t, t.Context(), "-json", "-scopes", "user:bot")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var tok tokenJSON
	if err := json.Unmarshal([]byte(stdout), &tok); err != nil {
		t.Fatalf("stdout is not the token's JSON: %v\n%s", err, stdout)
	}
	if tok.AccessToken == "" || tok.Login != twitchoauthtest.UserLogin || fmt.Sprint(tok.Scopes) != "[user:bot]" || tok.ExpiresAt == nil {
		t.Errorf("token JSON = %+v", tok)
	}
	if !strings.Contains(stderr, "Demo finished") {
		t.Errorf("the demo's steps should go to stderr with -json:\n%s", stderr)
	}
}

func TestFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-scopes", "chat:read,chat:reed"}, `-scopes: unknown scope "chat:reed" (did you mean "chat:read"?)`},
		{[]string{"-scopes", "chat:read nonsense"}, `-scopes: scope #2 is not one of Twitch's (8 characters, not shown: it may be a secret)`},
		{[]string{"-device", "-no-browser"}, "-device never opens a browser"},
		{[]string{"-refresh", "r"}, "-refresh and -revoke need your app's client ID"},
		{[]string{"-client-id", "x", "-validate", "a", "-revoke", "b"}, "one of -validate, -refresh and -revoke"},
		{[]string{"-port", "70000"}, `-port: not a port number (0-65535; 0 picks a free one)`},
		{[]string{"extra"}, "unexpected argument #1 (5 characters, not shown: it may be a secret)"},
		{[]string{"-bogus"}, "argument #1 starts with - but is not a flag (6 characters, not shown: it may be a secret)"},
		{[]string{"-devcie"}, "-devcie is not a flag (did you mean -device?)"},
	}
	for _, tt := range tests {
		code, _, stderr := runCmd(t, t.Context(), tt.args...)
		if code != 2 || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tt.args, code, stderr, tt.want)
		}
	}
	if code, _, stderr := runCmd(t, t.Context(), "-h"); code != 0 || !strings.Contains(stderr, "-client-id") {
		t.Errorf("-h: exit %d\n%s", code, stderr)
	}
}

func TestHelperFlags(t *testing.T) {
	fake := twitchoauthtest.NewServer(t)
	base := fake.URL
	tok := fake.IssueUserToken(twitchoauthtest.UserID, twitchoauth.ScopeChatRead)
	access, refresh := tok.AccessToken, tok.RefreshToken
	app := []string{"-auth-base-url", base, "-client-id", twitchoauthtest.ClientID, "-client-secret", twitchoauthtest.ClientSecret}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"validate", []string{"-auth-base-url", base, "-validate", access}, 0, "Valid user token of fakeuser (user ID 12345)"},
		{"validate json", []string{"-auth-base-url", base, "-validate", access, "-json"}, 0, `"login":"fakeuser"`},
		{"validate bad", []string{"-auth-base-url", base, "-validate", "nope"}, 1, "the token is not valid"},
		{"refresh", append(app, "-refresh", refresh), 0, "refresh token"},
		{"refresh bad", append(app, "-refresh", "nope"), 1, "Twitch rejected the refresh token"},
		{"revoke", append(app, "-revoke", access), 0, "Revoked"},
		{"revoke again", append(app, "-revoke", access), 1, "already invalid"},
		{"wrong secret", []string{"-auth-base-url", base, "-client-id", twitchoauthtest.ClientID, "-client-secret", "wrong", "-refresh", refresh}, 1, "check -client-id and -client-secret"},
		{"unknown client", []string{"-auth-base-url", base, "-client-id", "no-such-app", "-client-secret", "s", "-refresh", refresh}, 1, "Twitch does not know this client ID"},
		{"unknown client revoke", []string{"-auth-base-url", base, "-client-id", "no-such-app", "-revoke", access}, 1, "Twitch does not know this client ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, t.Context(), tt.args...)
			if code != tt.code || !strings.Contains(stdout+stderr, tt.want) {
				t.Errorf("exit %d (want %d), output lacks %q:\n%s\n%s", code, tt.code, tt.want, stdout, stderr)
			}
			if strings.Contains(stderr, "nope") {
				t.Errorf("an error repeats the token: %s", stderr)
			}
		})
	}
}

func TestStoreFlag(t *testing.T) {
	fake := twitchoauthtest.NewServer(t)
	tok := fake.IssueUserToken(twitchoauthtest.UserID, twitchoauth.ScopeChatRead)
	access, refresh := tok.AccessToken, tok.RefreshToken
	path := filepath.Join(t.TempDir(), "token.json")
	os.WriteFile(path, []byte(`{"token":"`+access+`","refresh":"`+refresh+`"}`), 0o600)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second) // a login here would wait for a browser
	defer cancel()
	code, stdout, stderr := runCmd(t, ctx, "-auth-base-url", fake.URL, "-client-id", twitchoauthtest.ClientID,
		"-client-secret", twitchoauthtest.ClientSecret, "-store", path, "-scopes", "chat:read", "-no-browser")
	if code != 0 || !strings.Contains(stdout, access) || strings.Contains(stderr, "logging in") {
		t.Errorf("exit %d: want the stored token, no login\n%s\n%s", code, stdout, stderr)
	}
}

func TestPortBusy(t *testing.T) {
	fake := twitchoauthtest.NewServer(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	code, _, stderr := runCmd(t, t.Context(), "-auth-base-url", fake.URL, "-client-id", twitchoauthtest.ClientID,
		"-client-secret", twitchoauthtest.ClientSecret, "-port", port, "-no-browser")
	want := "port " + port + " is in use: close the other program or pass -port and register http://localhost:PORT as a redirect URL"
	if code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, want)
	}
}

// lineWatcher is a stderr that calls fn with every line written to it.
type lineWatcher struct {
	w    *io.PipeWriter
	done chan struct{}
}

func watchLines(fn func(line string)) *lineWatcher {
	r, w := io.Pipe()
	lw := &lineWatcher{w: w, done: make(chan struct{})}
	go func() {
		defer close(lw.done)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			fn(sc.Text())
		}
		io.Copy(io.Discard, r)
	}()
	return lw
}

func (lw *lineWatcher) Write(p []byte) (int, error) { return lw.w.Write(p) }
func (lw *lineWatcher) Close()                      { lw.w.Close(); <-lw.done }

// TestDeviceFlag runs the device flow against the fake as a person would: read the code, approve it.
// A second run is cancelled while it waits, as Ctrl+C does.
func TestDeviceFlag(t *testing.T) {
	fake := twitchoauthtest.NewServer(t)
	args := []string{"-auth-base-url", fake.URL, "-client-id", twitchoauthtest.PublicClientID, "-device", "-scopes", "chat:read"}
	codeRE := regexp.MustCompile(`enter the code ([A-Z]+)`)

	stderr := watchLines(func(line string) {
		if m := codeRE.FindStringSubmatch(line); m != nil {
			fake.ApproveDevice(m[1])
		}
	})
	var stdout bytes.Buffer
	code := run(t.Context(), args, noEnv, strings.NewReader(""), &stdout, stderr)
	stderr.Close()
	if code != 0 || !strings.Contains(stdout.String(), "Logged in as fakeuser") {
		t.Errorf("exit %d\n%s", code, stdout.String())
	}

	ctx, cancel := context.WithCancel(t.Context())
	var once sync.Once
	var errOut strings.Builder
	stderr = watchLines(func(line string) {
		errOut.WriteString(line + "\n")
		if codeRE.MatchString(line) {
			once.Do(cancel)
		}
	})
	code = run(ctx, args, noEnv, strings.NewReader(""), io.Discard, stderr)
	stderr.Close()
	if code != 130 || !strings.Contains(errOut.String(), "twitchtoken: cancelled") {
		t.Errorf("cancelled: exit %d\n%s", code, errOut.String())
	}
}
