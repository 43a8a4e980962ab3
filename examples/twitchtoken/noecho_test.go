package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// TestNoFlagEchoesItsValue checks that a secret given as the value of any flag, in a form that
// fails (or is taken and fails later), is never printed back: not in the flag package's words, not
// by a check, not in a later error. The flags are those newFlagSet defines, so a new flag is
// covered as soon as it exists.
func TestNoFlagEchoesItsValue(t *testing.T) {
	t.Chdir(t.TempDir()) // -store SECRET names a file here
	fake := twitchoauthtest.NewServer(t)
	const secret = "n2thyid5oa4ibfz7ffgpsiclhmafi0"
	values := []string{
		secret,
		"-" + secret,
		secret + "\n\" for flag -x: y", // the shape of the flag package's error, and a line break
		"env:" + secret,
		secret + "/token.json",
		"http://127.0.0.1:1/" + secret, // an URL taken, whose requests then fail
		"ftp://" + secret + "/",
	}
	// Each run does something that fails at once, so that a flag taken as given fails later.
	baselines := map[string][]string{
		"validate": {"-auth-base-url", fake.URL, "-client-id", twitchoauthtest.ClientID, "-no-browser", "-validate", "not-a-token"},
		"refresh": {"-auth-base-url", fake.URL, "-client-id", twitchoauthtest.ClientID, "-client-secret", twitchoauthtest.ClientSecret,
			"-no-browser", "-refresh", "not-a-refresh-token"},
	}
	fs, _ := newFlagSet(&config{}, noEnv)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		for base, args := range baselines {
			for _, v := range values {
				for _, given := range [][]string{{"-" + f.Name + "=" + v}, {"-" + f.Name, v}} {
					ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
					code, stdout, stderr := runCmd(t, ctx, append(append([]string{}, args...), given...)...)
					cancel()
					if code == 0 || strings.Contains(stdout+stderr, secret) {
						t.Errorf("-%s %q after the %s baseline: exit %d; want a failure that does not show the value:\n%s%s",
							f.Name, v, base, code, stdout, stderr)
					}
				}
			}
		}
	})
	if n < 12 {
		t.Errorf("%d flags; want every flag the command defines", n)
	}
}

// TestLaterErrorsHideValues checks that an error that comes once the flags were taken, from the
// library or the system, does not quote a value given whole either: here the token file's path,
// which names a file too large to be a token.
func TestLaterErrorsHideValues(t *testing.T) {
	t.Chdir(t.TempDir())
	const secret = "n2thyid5oa4ibfz7ffgpsiclhmafi0"
	if err := os.WriteFile(secret, bytes.Repeat([]byte(" "), 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	fake := twitchoauthtest.NewServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a login would wait for a browser
	defer cancel()
	code, stdout, stderr := runCmd(t, ctx, "-auth-base-url", fake.URL, "-client-id", twitchoauthtest.ClientID, "-no-browser", "-store", secret)
	if code != 1 || strings.Contains(stdout+stderr, secret) || !strings.Contains(stderr, "<-store>") {
		t.Errorf("exit %d; want 1, and the file named as <-store>, not by its path:\n%s%s", code, stdout, stderr)
	}
}
