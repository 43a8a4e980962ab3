package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// runWith runs the command with env as its environment and stdin as its standard input.
func runWith(t *testing.T, ctx context.Context, env map[string]string, stdin io.Reader, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, func(k string) string { return env[k] }, stdin, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestUnexpectedArgumentHidden checks that an argument left over is never echoed: it is most often
// a token whose flag went missing, as with "-auth-base-url $UNSET -revoke TOKEN".
func TestUnexpectedArgumentHidden(t *testing.T) {
	const token = "n2thyid5oa4ibfz7ffgpsiclhmafi0"
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-auth-base-url", "-revoke", token}, "-auth-base-url was given the flag -revoke as its value: was its value left out"},
		{[]string{"-client-secret", "-validate=" + token}, "-client-secret was given the flag -validate as its value"},
		{[]string{"-client-id", "x", "-revoke", "-", token}, "unexpected argument #5 (30 characters, not shown: it may be a secret)"},
		{[]string{token}, "unexpected argument #1 (30 characters, not shown: it may be a secret)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, t.Context(), tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, tt.want)
			}
			if strings.Contains(stdout+stderr, token) {
				t.Errorf("the output shows the token:\n%s%s", stdout, stderr)
			}
		})
	}
}

// TestHelpHidesClientSecret checks that -h does not print $TWITCH_CLIENT_SECRET as -client-secret's
// default, and that the secret is still used.
func TestHelpHidesClientSecret(t *testing.T) {
	fake := twitchoauthtest.NewServer(t)
	env := map[string]string{"TWITCH_CLIENT_ID": twitchoauthtest.ClientID, "TWITCH_CLIENT_SECRET": twitchoauthtest.ClientSecret}
	code, _, stderr := runWith(t, t.Context(), env, strings.NewReader(""), "-h")
	if code != 0 || strings.Contains(stderr, twitchoauthtest.ClientSecret) {
		t.Errorf("-h: exit %d, and shows the client secret:\n%s", code, stderr)
	}
	for _, want := range []string{"seen by every user of this machine (ps)", "- to read it from standard input", "env:NAME"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("-h does not say which is safer: lacks %q", want)
		}
	}
	refresh := fake.IssueUserToken(twitchoauthtest.UserID, twitchoauth.ScopeChatRead).RefreshToken
	code, stdout, stderr := runWith(t, t.Context(), env, strings.NewReader(""), "-auth-base-url", fake.URL, "-refresh", refresh)
	if code != 0 || !strings.Contains(stdout, "refresh token") {
		t.Errorf("refresh with $TWITCH_CLIENT_SECRET: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestSecretsFromStdinAndEnv checks "-" (standard input) and "env:NAME" for every secret flag.
func TestSecretsFromStdinAndEnv(t *testing.T) {
	fake := twitchoauthtest.NewServer(t)
	tok := fake.IssueUserToken(twitchoauthtest.UserID, twitchoauth.ScopeChatRead)
	tok2 := fake.IssueUserToken(twitchoauthtest.UserID, twitchoauth.ScopeChatRead)
	env := map[string]string{"ACCESS": " " + tok.AccessToken + "\n", "SECRET": twitchoauthtest.ClientSecret}
	base := []string{"-auth-base-url", fake.URL, "-client-id", twitchoauthtest.ClientID}
	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"validate stdin", tok.AccessToken + "\r\nthe rest is not read\n", []string{"-auth-base-url", fake.URL, "-validate", "-"}, 0, "Valid user token of fakeuser"},
		{"validate env", "", []string{"-auth-base-url", fake.URL, "-validate", "env:ACCESS"}, 0, "Valid user token of fakeuser"},
		{"refresh stdin, secret env", "  " + tok.RefreshToken, append(base, "-client-secret", "env:SECRET", "-refresh", "-"), 0, "refresh token"},
		{"secret stdin", twitchoauthtest.ClientSecret + "\n", append(base, "-client-secret", "-", "-refresh", tok2.RefreshToken), 0, "refresh token"},
		{"revoke env", "", append(base, "-client-secret", "env:SECRET", "-revoke", "env:ACCESS"), 0, "Revoked"},
		{"two read stdin", "x\n", append(base, "-client-secret", "-", "-revoke", "-"), 2, "-client-secret and -revoke both read standard input"},
		{"unset variable", "", []string{"-validate", "env:NOPE"}, 2, "-validate env:NOPE: the variable NOPE is not set, or empty"},
		{"empty stdin", "\n", []string{"-validate", "-"}, 2, "-validate -: standard input has no access token on its first line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runWith(t, t.Context(), env, strings.NewReader(tt.stdin), tt.args...)
			if code != tt.code || !strings.Contains(stdout+stderr, tt.want) {
				t.Errorf("exit %d (want %d), output lacks %q:\n%s%s", code, tt.code, tt.want, stdout, stderr)
			}
		})
	}
}

// TestSecretFromStdinCancelled checks that Ctrl+C ends a wait for standard input.
func TestSecretFromStdinCancelled(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	code, _, stderr := runWith(t, ctx, nil, r, "-validate", "-")
	if code != 130 || !strings.Contains(stderr, "twitchtoken: cancelled") {
		t.Errorf("exit %d, stderr %q; want 130, cancelled", code, stderr)
	}
}
