package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/twitchoauth/twitchoauth"
)

// config is what the flags and the environment say.
type config struct {
	clientID     string
	clientSecret string
	authBaseURL  string
	scopes       []twitchoauth.Scope
	device       bool
	noBrowser    bool
	port         int
	store        string
	validate     string
	refresh      string
	revoke       string
	json         bool
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("twitchtoken", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `twitchtoken gets a Twitch user access token.

With no client ID it runs an offline demo on a built-in fake of Twitch. With one, it logs you in
through the browser (or the device flow with -device) and prints the token.

Register an app at https://dev.twitch.tv/console/apps with the redirect URL http://localhost:17563.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.clientID, "client-id", getenv("TWITCH_CLIENT_ID"), "your app's client ID (default $TWITCH_CLIENT_ID); none runs the offline demo")
	fs.StringVar(&cfg.clientSecret, "client-secret", getenv("TWITCH_CLIENT_SECRET"), "your app's client secret (default $TWITCH_CLIENT_SECRET); none for a public client")
	fs.StringVar(&cfg.authBaseURL, "auth-base-url", twitchoauth.DefaultAuthBaseURL, "Twitch's identity server, or a compatible one such as twitch-cli's mock")
	scopes := fs.String("scopes", "", "scopes to ask for, comma- or space-separated, e.g. chat:read,chat:edit")
	fs.BoolVar(&cfg.device, "device", false, "use the device flow: enter a code on any device instead of opening a browser here")
	fs.BoolVar(&cfg.noBrowser, "no-browser", false, "print the login URL instead of opening the browser")
	fs.IntVar(&cfg.port, "port", twitchoauth.DefaultPort, "port of the local redirect server; register http://localhost:PORT as a redirect URL")
	fs.StringVar(&cfg.store, "store", "", "keep the token in this file: reuse and refresh it, log in only when it must")
	fs.StringVar(&cfg.validate, "validate", "", "validate this access token and print what it grants")
	fs.StringVar(&cfg.refresh, "refresh", "", "trade this refresh token for a new token (needs -client-id)")
	fs.StringVar(&cfg.revoke, "revoke", "", "revoke this access token (needs -client-id)")
	fs.BoolVar(&cfg.json, "json", false, "print the token as JSON, for scripts")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if cfg.scopes, err = parseScopes(*scopes); err != nil {
		return nil, err
	}
	actions := 0
	for _, v := range []string{cfg.validate, cfg.refresh, cfg.revoke} {
		if v != "" {
			actions++
		}
	}
	switch {
	case actions > 1:
		return nil, errors.New("use one of -validate, -refresh and -revoke at a time")
	case (cfg.refresh != "" || cfg.revoke != "") && cfg.clientID == "":
		return nil, errors.New("-refresh and -revoke need your app's client ID: pass -client-id or set TWITCH_CLIENT_ID")
	case cfg.device && cfg.noBrowser:
		return nil, errors.New("-device never opens a browser: drop -no-browser")
	case cfg.port < 0 || cfg.port > 65535:
		return nil, fmt.Errorf("-port %d is not a port number (0 to 65535; 0 picks a free one)", cfg.port)
	}
	return cfg, nil
}

// parseScopes reads a comma- or space-separated list and checks every scope against Twitch's.
func parseScopes(s string) ([]twitchoauth.Scope, error) {
	known := map[twitchoauth.Scope]bool{}
	for _, sc := range twitchoauth.AllScopes() {
		known[sc] = true
	}
	var scopes []twitchoauth.Scope
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		sc := twitchoauth.Scope(f)
		if !known[sc] {
			msg := fmt.Sprintf("unknown scope %q", f)
			if near := closest(f, twitchoauth.AllScopes()); near != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", near)
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
