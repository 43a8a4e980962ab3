package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// demo runs the library's real flows against a fake Twitch on this machine, the one
// twitchoauthtest serves to tests: a login (a simulated browser approves, or a simulated user
// enters the device code), then validate, refresh and revoke.
func demo(ctx context.Context, o *out) error {
	fake := twitchoauthtest.New() // it polls every second; the real Twitch asks for 5 s
	defer fake.Close()
	base := fake.URL

	if ignored := demoIgnores(o.cfg); ignored != "" {
		fmt.Fprintf(o.stderr, "twitchtoken: the offline demo ignores %s: they need a Twitch app (-client-id or TWITCH_CLIENT_ID)\n", ignored)
	}
	o.short = true
	w := o.stdout
	if o.cfg.json {
		w = o.stderr // the steps; stdout gets only the JSON
	}
	scopes := o.cfg.scopes
	if !o.cfg.set["scopes"] { // -scopes "" asks for none
		scopes = []twitchoauth.Scope{twitchoauth.ScopeChatRead, twitchoauth.ScopeChatEdit}
	}
	c := fake.Client()

	fmt.Fprintf(w, "No Twitch app configured (-client-id or TWITCH_CLIENT_ID), so this is an offline demo\n"+
		"against a fake Twitch identity server at %s. Nothing leaves this machine.\n\n", base)

	var tok *oauth2.Token
	var err error
	if o.cfg.device {
		tok, err = demoDevice(ctx, o, w, fake, c, scopes)
	} else {
		tok, err = demoBrowser(ctx, w, fake, c, scopes)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "\nThe token Twitch handed over:")
	v, err := c.ValidateToken(ctx, tok.AccessToken)
	if err != nil {
		return err
	}
	if err := (&out{cfg: &config{}, stdout: w, short: true}).printToken(tok, v); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nValidate (Twitch asks apps to do this at start-up and hourly):\n  %s, user ID %s, client %s, %s left\n",
		v.Login, v.UserID, v.ClientID, v.ExpiresIn.Round(time.Minute))

	refreshed, err := c.RefreshAccessToken(ctx, tok.RefreshToken)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Refresh (store the new pair: the refresh token may change):\n  access token %s, refresh token %s\n",
		o.secret(refreshed.AccessToken), o.secret(refreshed.RefreshToken))

	if err := c.RevokeToken(ctx, refreshed.AccessToken); err != nil {
		return err
	}
	_, err = c.ValidateToken(ctx, refreshed.AccessToken)
	fmt.Fprintf(w, "Revoke:\n  done; validating the revoked token now gives: %v\n", err)

	fmt.Fprintf(w, "\nDemo finished. To get a real token, register an app at https://dev.twitch.tv/console/apps\n"+
		"with the redirect URL %s, then run:\n\n"+
		"  TWITCH_CLIENT_ID=<id> TWITCH_CLIENT_SECRET=<secret> go run ./examples/twitchtoken -scopes chat:read,chat:edit\n",
		twitchoauth.DefaultRedirectURL)
	if o.cfg.json {
		return o.printToken(tok, v)
	}
	return nil
}

// demoIgnores names the flags given that the demo does not use, as "-a, -b and -c", or "".
func demoIgnores(cfg *config) string {
	var names []string
	for _, name := range []string{"auth-base-url", "client-secret", "no-browser", "port", "store"} {
		if cfg.set[name] {
			names = append(names, "-"+name)
		}
	}
	if len(names) <= 1 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// demoBrowser runs the UserAuthenticator as a real login would, with a simulated browser that
// follows Twitch's redirect back to the local server.
func demoBrowser(ctx context.Context, w io.Writer, fake *twitchoauthtest.Server, c *twitchoauth.Client, scopes []twitchoauth.Scope) (*oauth2.Token, error) {
	a := twitchoauth.NewUserAuthenticator(c, scopes)
	a.URL, a.Port = "", 0 // any free port, so the demo never collides with a real login
	var wg sync.WaitGroup
	defer wg.Wait()
	var page string
	var pageErr error
	a.OpenBrowser = func(authURL string) error {
		u, err := url.Parse(authURL)
		if err != nil {
			return err
		}
		redirect := u.Query().Get("redirect_uri")
		// A real app registers its redirect URL once in the developer console.
		fake.AddRedirectURL(redirect)
		fmt.Fprintf(w, "1. Listening for Twitch's redirect on %s\n", redirect)
		fmt.Fprintf(w, "2. A simulated browser opens Twitch's consent page, and the user approves:\n   %s\n", shortenQuery(authURL))
		wg.Go(func() { page, pageErr = browse(ctx, authURL) })
		return nil
	}
	tok, err := a.Authenticate(ctx)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if pageErr != nil {
		return nil, fmt.Errorf("the simulated browser: %w", pageErr)
	}
	fmt.Fprintf(w, "3. Twitch sent the browser back with a code; it was traded for a token (POST form body),\n"+
		"   and the browser shows: %q\n", page)
	return tok, nil
}

// browse plays the browser: it opens u, follows the redirects, and returns the page's heading.
func browse(ctx context.Context, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if m := regexp.MustCompile(`<h1[^>]*>([^<]*)</h1>`).FindSubmatch(body); m != nil {
		return string(m[1]), nil
	}
	return resp.Status, nil
}

// shortenQuery hides the state in a URL shown on screen.
func shortenQuery(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	q := p.Query()
	if !q.Has("state") {
		return u
	}
	q.Set("state", "STATE")
	p.RawQuery = q.Encode()
	return strings.Replace(p.String(), "state=STATE", "state=…", 1)
}

// demoDevice runs the CodeFlow with a simulated user who enters the code after a moment.
func demoDevice(ctx context.Context, o *out, w io.Writer, fake *twitchoauthtest.Server, c *twitchoauth.Client, scopes []twitchoauth.Scope) (*oauth2.Token, error) {
	fmt.Fprintln(w, "1. Asking Twitch for a device code (POST /device, scopes in the form body)")
	approve := func(userCode string) {
		t := time.NewTimer(1500 * time.Millisecond)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fmt.Fprintf(w, "2. The simulated user entered %s on the activation page and approved\n", userCode)
		fake.ApproveDevice(userCode)
	}
	flow := twitchoauth.NewCodeFlow(c, scopes)
	tok, err := o.deviceLogin(ctx, flow, approve)
	if err != nil {
		return nil, err
	}
	polls := 0
	for _, r := range fake.Requests("token") {
		if r.Form.Get("grant_type") == "urn:ietf:params:oauth:grant-type:device_code" {
			polls++
		}
	}
	fmt.Fprintf(w, "3. The next poll of the token endpoint got the token (%d polls, one per interval)\n", polls)
	return tok, nil
}
