package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pkg/browser"
)

// Getting the login URL to the person logging in: the browser, a callback of the caller's, or
// the log.

// openerGrace is how long Authenticate, about to return, waits for a browser opener that has not
// returned yet.
const openerGrace = 100 * time.Millisecond

// awaitOpener waits briefly for the browser opener's result. An opener still running by then (on
// some systems pkg/browser waits for a browser it started to exit) is left to end on its own: it
// must not hold up the end of a login.
func awaitOpener(opened <-chan error) {
	if opened == nil {
		return
	}
	t := time.NewTimer(openerGrace)
	defer t.Stop()
	select {
	case <-opened:
	case <-t.C:
	}
}

// deliverURL gets authURL to the person logging in: to the callback, the log, or the browser. The
// browser is opened concurrently with the wait for the redirect, since an opener may block for as
// long as the browser runs; its result arrives on opened.
func (a *UserAuthenticator) deliverURL(ctx context.Context, c *Client, o *authenticateOptions, authURL string) (opened <-chan error, err error) {
	switch {
	case o.authCallback != nil:
		if err := o.authCallback(ctx, authURL); err != nil {
			return nil, fmt.Errorf("twitchoauth: auth URL callback: %w", err)
		}
		return nil, nil
	case o.noBrowser:
		return nil, logURL(ctx, c, authURL, nil)
	}
	open := a.OpenBrowser
	if open == nil {
		open = browser.OpenURL
	}
	ch := make(chan error, 1) // buffered: the opener never blocks on it
	go func() { ch <- open(authURL) }()
	return ch, nil
}

// logURL logs authURL at Info for a person to open, when the browser could not be opened
// (browserErr) or was not to be. With no Logger the URL has nowhere to go, which is an error.
func logURL(ctx context.Context, c *Client, authURL string, browserErr error) error {
	if c.Logger == nil {
		if browserErr != nil {
			return fmt.Errorf("twitchoauth: open browser: %w (and Client.Logger is nil, so the login URL has nowhere to go: set it or use WithAuthURLCallback)", browserErr)
		}
		return errors.New("twitchoauth: WithoutBrowser needs WithAuthURLCallback or Client.Logger: the login URL has nowhere to go")
	}
	// The one place a state goes into a log: the URL is what the person must open.
	attrs := []slog.Attr{slog.String("url", authURL)}
	if browserErr != nil {
		attrs = append(attrs, slog.String("error", "cannot open a browser: "+browserErr.Error()))
	}
	c.Logger.LogAttrs(ctx, slog.LevelInfo, "twitchoauth: open this URL to log in", attrs...)
	return nil
}
