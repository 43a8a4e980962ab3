package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
)

// out prints for people (or JSON for scripts with -json). Results go to stdout; what the command
// waits for, and how to cancel, goes to stderr.
type out struct {
	cfg    *config
	stdout io.Writer
	stderr io.Writer
	short  bool // shorten tokens (the demo's are not worth showing in full)
}

func (o *out) client() *twitchoauth.Client {
	c := twitchoauth.NewClient(o.cfg.clientID, o.cfg.clientSecret)
	c.AuthBaseURL = o.cfg.authBaseURL
	return c
}

func (o *out) secret(s string) string {
	if !o.short || len(s) <= 12 {
		return s
	}
	return s[:4] + "…" + s[len(s)-4:]
}

// tokenJSON is what -json prints.
type tokenJSON struct {
	AccessToken  string              `json:"access_token"`
	RefreshToken string              `json:"refresh_token,omitempty"`
	TokenType    string              `json:"token_type"`
	ExpiresAt    *time.Time          `json:"expires_at,omitempty"`
	Scopes       []twitchoauth.Scope `json:"scopes"`
	UserID       string              `json:"user_id,omitempty"`
	Login        string              `json:"login,omitempty"`
	ClientID     string              `json:"client_id,omitempty"`
}

// printToken prints tok and, when known, whose it is.
func (o *out) printToken(tok *oauth2.Token, v *twitchoauth.Validation) error {
	scopes := twitchoauth.TokenScopes(tok)
	if o.cfg.json {
		j := tokenJSON{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, TokenType: tok.TokenType, Scopes: scopes}
		if !tok.Expiry.IsZero() {
			exp := tok.Expiry.UTC().Truncate(time.Second)
			j.ExpiresAt = &exp
		}
		if v != nil {
			j.UserID, j.Login, j.ClientID, j.Scopes = v.UserID, v.Login, v.ClientID, v.Scopes
		}
		if j.Scopes == nil {
			j.Scopes = []twitchoauth.Scope{}
		}
		enc := json.NewEncoder(o.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(j)
	}
	if v != nil && v.Login != "" {
		fmt.Fprintf(o.stdout, "Logged in as %s (user ID %s)\n", v.Login, v.UserID)
	}
	fmt.Fprintf(o.stdout, "  access token   %s\n", o.secret(tok.AccessToken))
	if tok.RefreshToken != "" {
		fmt.Fprintf(o.stdout, "  refresh token  %s\n", o.secret(tok.RefreshToken))
	}
	if !tok.Expiry.IsZero() {
		fmt.Fprintf(o.stdout, "  expires        in %s (%s)\n", time.Until(tok.Expiry).Round(time.Minute), tok.Expiry.Local().Format(time.DateTime))
	}
	fmt.Fprintf(o.stdout, "  scopes         %s\n", scopeList(scopes))
	return nil
}

func scopeList(scopes []twitchoauth.Scope) string {
	if len(scopes) == 0 {
		return "(none)"
	}
	return twitchoauth.BuildScope(scopes)
}

func validate(ctx context.Context, o *out) error {
	v, err := o.client().ValidateToken(ctx, o.cfg.validate)
	if err != nil {
		return err
	}
	if o.cfg.json {
		return json.NewEncoder(o.stdout).Encode(map[string]any{
			"client_id": v.ClientID, "login": v.Login, "user_id": v.UserID,
			"scopes": v.Scopes, "expires_in": int64(v.ExpiresIn.Seconds()),
		})
	}
	kind := "user token of " + v.Login + " (user ID " + v.UserID + ")"
	if !v.IsUserToken() {
		kind = "app token"
	}
	fmt.Fprintf(o.stdout, "Valid %s\n  client ID  %s\n  scopes     %s\n", kind, v.ClientID, scopeList(v.Scopes))
	if v.ExpiresIn > 0 {
		fmt.Fprintf(o.stdout, "  expires    in %s\n", v.ExpiresIn.Round(time.Second))
	} else {
		fmt.Fprintf(o.stdout, "  expires    never\n")
	}
	return nil
}

func refresh(ctx context.Context, o *out) error {
	tok, err := o.client().RefreshAccessToken(ctx, o.cfg.refresh)
	if err != nil {
		return err
	}
	return o.printToken(tok, nil)
}

func revoke(ctx context.Context, o *out) error {
	if err := o.client().RevokeToken(ctx, o.cfg.revoke); err != nil {
		return err
	}
	fmt.Fprintln(o.stdout, "Revoked: the token no longer works.")
	return nil
}

// login gets a user token from Twitch (or the server at -auth-base-url) and prints it.
func login(ctx context.Context, o *out) error {
	c := o.client()
	var tok *oauth2.Token
	var v *twitchoauth.Validation
	var err error
	if o.cfg.store != "" {
		h := twitchoauth.NewUserAuthenticationStorageHelper(c, o.cfg.scopes)
		h.StoragePath = o.cfg.store
		h.AuthGenerator = func(ctx context.Context, c *twitchoauth.Client, scopes []twitchoauth.Scope) (*oauth2.Token, error) {
			fmt.Fprintln(o.stderr, "No usable token in the -store file: logging in.")
			return o.newToken(ctx, c, scopes, true)
		}
		var src *twitchoauth.UserTokenSource
		if src, v, err = h.BindValidation(ctx); err == nil { // v: what Bind's own validation said, at no extra request
			tok, err = src.TokenContext(ctx)
		}
	} else if tok, err = o.newToken(ctx, c, o.cfg.scopes, false); err == nil {
		v, err = c.ValidateToken(ctx, tok.AccessToken)
	}
	if err != nil {
		return err
	}
	return o.printToken(tok, v)
}

// newToken runs the login the flags ask for.
func (o *out) newToken(ctx context.Context, c *twitchoauth.Client, scopes []twitchoauth.Scope, forceVerify bool) (*oauth2.Token, error) {
	if o.cfg.device {
		return o.deviceLogin(ctx, twitchoauth.NewCodeFlow(c, scopes), nil)
	}
	a := twitchoauth.NewUserAuthenticator(c, scopes)
	a.URL, a.Port, a.ForceVerify = "", o.cfg.port, forceVerify
	var opts []twitchoauth.AuthenticateOption
	if o.cfg.noBrowser {
		opts = append(opts, twitchoauth.WithAuthURLCallback(func(_ context.Context, u string) error {
			fmt.Fprintf(o.stderr, "Open this URL in a browser and log in to Twitch:\n\n  %s\n\n", u)
			fmt.Fprintln(o.stderr, "Waiting for Twitch to send the browser back (Ctrl+C to cancel)…")
			return nil
		}))
	} else {
		a.OpenBrowser = func(u string) error {
			fmt.Fprintln(o.stderr, "Opening Twitch's login page in your browser; waiting for you to authorize (Ctrl+C to cancel)…")
			fmt.Fprintf(o.stderr, "If no browser opens, open this URL:\n\n  %s\n\n", u)
			if err := openQuietly(u); err != nil {
				fmt.Fprintf(o.stderr, "Could not open a browser (%v): open the URL above.\n", err)
			}
			return nil // the URL is on screen either way
		}
	}
	return a.Authenticate(ctx, opts...)
}

// deviceLogin runs the device flow, showing the code, the URL and a countdown to expiry. approve,
// if not nil, plays the user (the demo's).
func (o *out) deviceLogin(ctx context.Context, f *twitchoauth.CodeFlow, approve func(userCode string)) (*oauth2.Token, error) {
	userCode, uri, err := f.GetCode(ctx)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.stderr, "On any device, open\n\n  %s\n\nand enter the code %s (Ctrl+C to cancel).\n", uri, userCode)

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	if isTerminal(o.stderr) {
		wg.Go(func() { countdown(ctx, o.stderr, f) })
	}
	if approve != nil {
		wg.Go(func() { approve(userCode) })
	}
	tok, err := f.WaitForAuthComplete(ctx)
	if isTerminal(o.stderr) {
		fmt.Fprint(o.stderr, "\r\033[K")
	}
	return tok, err
}

// countdown rewrites one line with the time left until ctx ends.
func countdown(ctx context.Context, w io.Writer, f *twitchoauth.CodeFlow) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		left := time.Until(f.ExpiresAt()).Round(time.Second)
		if left > 0 {
			fmt.Fprintf(w, "\r\033[KWaiting… the code expires in %s (polling every %s)", left, f.Interval())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// isTerminal reports whether v, a reader or a writer, is a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
