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
//	go run ./examples/twitchtoken -scopes chat:read,chat:edit           # browser login
//	go run ./examples/twitchtoken -device -scopes chat:read             # device flow
//	go run ./examples/twitchtoken -store token.json -scopes chat:read   # keep it in a file, refresh it
//	go run ./examples/twitchtoken -validate - < token.txt               # token on stdin, not in ps
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
	"syscall"

	"github.com/twitchoauth/twitchoauth"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command: it returns the exit code (0 done, 1 failed, 2 bad usage, 130 cancelled).
// stdin is read only for a secret flag given as "-".
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "twitchtoken: %v\nRun 'twitchtoken -h' for help.\n", err)
		return 2
	}
	if err := resolveSecrets(ctx, cfg, getenv, stdin, stderr); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "twitchtoken: cancelled")
			return 130
		}
		fmt.Fprintf(stderr, "twitchtoken: %v\nRun 'twitchtoken -h' for help.\n", err)
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
		fmt.Fprintf(stderr, "twitchtoken: %s\n", cfg.hide(explain(err, cfg)))
		if ctx.Err() != nil {
			return 130
		}
		return 1
	}
	return 0
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
	case errors.Is(err, twitchoauth.ErrUnknownClient):
		return "Twitch does not know this client ID: check -client-id against the Twitch developer console " +
			"(a public client, without a secret, can only use -device) (" + err.Error() + ")"
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
