// Command twitchtoken gets a Twitch user access token: through the browser login, or the device
// flow on a machine without a browser. It also validates, refreshes and revokes tokens.
//
// With no Twitch app configured it runs an offline demo on a built-in fake of Twitch's identity
// server, so it works on a fresh machine with no internet:
//
//	go run ./examples/twitchtoken           # demo: the browser login, then validate, refresh, revoke
//	go run ./examples/twitchtoken -device   # demo: the device flow
//
// With an app registered in the Twitch developer console (redirect URL http://localhost:17563):
//
//	export TWITCH_CLIENT_ID=... TWITCH_CLIENT_SECRET=...
//	go run ./examples/twitchtoken -scopes chat:read,chat:edit          # browser login
//	go run ./examples/twitchtoken -device -scopes chat:read             # device flow
//	go run ./examples/twitchtoken -store token.json -scopes chat:read   # keep it in a file, refresh it
//	go run ./examples/twitchtoken -validate TOKEN
//
// Run it with -h for every flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/twitchoauth/twitchoauth"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

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

// run is the whole command: it returns the exit code (0 done, 1 failed, 2 bad usage, 130 cancelled).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "twitchtoken: %v\nRun 'twitchtoken -h' for the flags.\n", err)
		return 2
	}
	o := &out{cfg: cfg, stdout: stdout, stderr: stderr}
	switch {
	case cfg.validate != "":
		err = validate(ctx, o)
	case cfg.refresh != "":
		err = refresh(ctx, o)
	case cfg.revoke != "":
		err = revoke(ctx, o)
	case cfg.clientID == "":
		err = demo(ctx, o)
	default:
		err = login(ctx, o)
	}
	if err != nil {
		fmt.Fprintf(stderr, "twitchtoken: %s\n", explain(err, cfg))
		if ctx.Err() != nil {
			return 130
		}
		return 1
	}
	return 0
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

// explain turns an error into a sentence a person can act on.
func explain(err error, cfg *config) string {
	var ae *twitchoauth.APIError
	switch {
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Sprintf("port %d is in use: close the other program or pass -port and register "+
			"http://localhost:PORT as a redirect URL in the Twitch developer console", cfg.port)
	case errors.Is(err, twitchoauth.ErrAccessDenied):
		return "the login was declined on Twitch's page; run again and choose Authorize"
	case errors.Is(err, twitchoauth.ErrDeviceCodeExpired):
		return "the code expired before the login was finished; run again and enter the new code sooner"
	case errors.Is(err, twitchoauth.ErrInvalidRefreshToken):
		return "Twitch rejected the refresh token (used, revoked or of another app); log in again without -refresh"
	case errors.Is(err, twitchoauth.ErrUnauthorized):
		return "Twitch rejected the app's credentials: check -client-id and -client-secret (" + err.Error() + ")"
	case errors.Is(err, twitchoauth.ErrInvalidToken) && cfg.validate != "":
		return "the token is not valid: it expired, was revoked, or is not a Twitch token"
	case errors.Is(err, twitchoauth.ErrInvalidToken) && cfg.revoke != "":
		return "Twitch says the token is already invalid, so there is nothing to revoke"
	case errors.As(err, &ae) && ae.ErrorCode == "redirect_mismatch":
		return fmt.Sprintf("Twitch says the redirect URL does not match: register http://localhost:%d in the "+
			"Twitch developer console (or pass -port with one you registered)", cfg.port)
	}
	return err.Error()
}
