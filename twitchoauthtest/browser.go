package twitchoauthtest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/twitchoauth/twitchoauth"
)

// newBrowser returns the HTTP client OpenBrowser plays the browser with: it never uses a proxy,
// and follows redirects only on this machine. With mem, requests to base's host are served in
// this process.
func newBrowser(base string, mem http.RoundTripper) *http.Client {
	var rt http.RoundTripper = &http.Transport{Proxy: nil}
	if mem != nil {
		u, _ := url.Parse(base)
		rt = &routeTransport{host: u.Host, mem: mem, net: rt}
	}
	return &http.Client{
		Transport: rt,
		Timeout:   time.Minute,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			if !isLoopback(req.URL) && req.URL.Host != hostOf(base) {
				return errors.New("not following a redirect off this machine")
			}
			return nil
		},
	}
}

// routeTransport sends requests to host through mem, and the others through net.
type routeTransport struct {
	host     string
	mem, net http.RoundTripper
}

func (r *routeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == r.host {
		return r.mem.RoundTrip(req)
	}
	return r.net.RoundTrip(req)
}

// isLoopback reports whether u is an http URL on this machine.
func isLoopback(u *url.URL) bool {
	if u.Scheme != "http" {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// OpenBrowser plays the user's browser: set it as [twitchoauth.UserAuthenticator.OpenBrowser]
// (which runs it in a goroutine of its own). It opens authURL, this Server's consent page, where
// the [Server.AuthorizeAs] user approves (or declines, after [Server.DenyAuthorize]), and follows
// Twitch's redirect back to the program's redirect server, returning once that server has answered.
//
// Like the developer who registers the app's redirect URL in the console, it first registers the
// URL's redirect_uri with the app (see [Server.AddRedirectURL]) when it is an http URL on this
// machine, so that a UserAuthenticator on a free port (Port 0, URL "") works. To test a redirect
// mismatch, play the browser yourself. It never leaves this machine.
//
// It fails for a URL that is not this Server's consent page, when the consent page answers with an
// error instead of a redirect, and when the redirect server cannot be reached; Authenticate then
// fails with its error at once, unless the Client has a Logger, to which it hands the URL for a
// person to open instead. Authenticate itself asks the consent page first, to learn whether
// Twitch knows the client ID ([twitchoauth.ErrUnknownClient]): [Server.Requests] holds that visit
// too, and [Server.Fail] on "authorize" meets it before the browser.
func (s *Server) OpenBrowser(authURL string) error {
	u, err := url.Parse(authURL)
	if err != nil || !strings.HasPrefix(authURL, s.URL+"authorize?") {
		return errors.New("twitchoauthtest: OpenBrowser: not this server's authorize URL: is the Client's AuthBaseURL the Server's URL?")
	}
	redirect := u.Query().Get("redirect_uri") // registered as is: Twitch compares strings
	if r, err := url.Parse(redirect); err == nil && isLoopback(r) {
		s.AddRedirectURL(redirect)
	}
	resp, err := s.browser.Get(authURL)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // its URL would hold the state and the code
		}
		return fmt.Errorf("twitchoauthtest: OpenBrowser: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if server, _ := url.Parse(s.URL); resp.Request.URL.Host == server.Host {
		return fmt.Errorf("twitchoauthtest: OpenBrowser: the consent page answered %d instead of a redirect: %.200s", resp.StatusCode, body)
	}
	return nil
}

// AddRedirectURL registers u as a redirect URL of both of the Server's apps, as a developer does
// in Twitch's developer console; [twitchoauth.DefaultRedirectURL] is registered from the start.
// Twitch sends the browser back only to a registered URL that matches redirect_uri exactly, and
// otherwise to the first registered one with error=redirect_mismatch. An empty or relative u
// panics.
func (s *Server) AddRedirectURL(u string) {
	if p, err := url.Parse(u); err != nil || !p.IsAbs() {
		panic(fmt.Sprintf("twitchoauthtest: AddRedirectURL(%q): not an absolute URL", u))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.redirects, u) || u == twitchoauth.DefaultRedirectURL {
		return
	}
	s.redirects = append(s.redirects, u)
	urls := append([]string{twitchoauth.DefaultRedirectURL}, s.redirects...)
	s.fake.AddClient(ClientID, ClientSecret, urls...)
	s.fake.AddClient(PublicClientID, "", urls...)
}

// hostOf returns the host of URL u, or "".
func hostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Host
}
