package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/pkg/browser"

	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// noisyOpener is what xdg-open prints when it finds no browser, and how it ends.
const noisyOpener = `#!/bin/sh
for b in www-browser links2 elinks links lynx w3m; do echo "/usr/bin/xdg-open: 882: $b: not found" >&2; done
echo "xdg-open: no method available for opening '$1'" >&2
echo "$1"
exit 3
`

// TestLoginURLShownOnce runs the browser login on a machine whose browser opener fails noisily
// (an xdg-open that prints the URL twice more, as the real one does without a browser): the
// command must print the URL once, and none of the opener's noise.
func TestLoginURLShownOnce(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the fake opener is a shell script")
	}
	bin := t.TempDir()
	for _, name := range []string{"xdg-open", "x-www-browser", "www-browser", "open"} { // Linux, BSDs, macOS
		if err := os.WriteFile(filepath.Join(bin, name), []byte(noisyOpener), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin)
	// Where pkg/browser sends the opener's output (the terminal, by default).
	var openerOut, openerErr bytes.Buffer
	stdout0, stderr0 := browser.Stdout, browser.Stderr
	browser.Stdout, browser.Stderr = &openerOut, &openerErr
	t.Cleanup(func() { browser.Stdout, browser.Stderr = stdout0, stderr0 })

	fake := twitchoauthtest.NewServer(t)
	for _, tt := range []struct {
		name, extra, waitFor string
	}{
		{"opener fails", "", "Could not open a browser"},
		{"no-browser", "-no-browser", "Waiting for Twitch"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			openerOut.Reset()
			openerErr.Reset()
			browser.Stdout, browser.Stderr = &openerOut, &openerErr
			args := []string{"-auth-base-url", fake.URL, "-client-id", twitchoauthtest.ClientID,
				"-client-secret", twitchoauthtest.ClientSecret, "-port", "0"}
			if tt.extra != "" {
				args = append(args, tt.extra)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var errOut strings.Builder
			stderr := watchLines(func(line string) {
				errOut.WriteString(line + "\n")
				if strings.Contains(line, tt.waitFor) {
					cancel() // the person would now open the URL; the test has seen enough
				}
			})
			var stdout bytes.Buffer
			code := run(ctx, args, noEnv, strings.NewReader(""), &stdout, stderr)
			stderr.Close()
			all := stdout.String() + errOut.String() + openerOut.String() + openerErr.String()
			authURL := regexp.MustCompile(`https?://\S+/authorize\?\S+`).FindString(errOut.String())
			if code != 130 || authURL == "" {
				t.Fatalf("exit %d (want 130), no authorize URL on stderr:\n%s", code, all)
			}
			if n := strings.Count(all, authURL); n != 1 {
				t.Errorf("the URL is shown %d times, want 1:\n%s", n, all)
			}
			if strings.Contains(all, "not found") {
				t.Errorf("the opener's noise is shown:\n%s", all)
			}
		})
	}
}
