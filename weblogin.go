package twitchoauth

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

const (
	// MinCookieKeyLen is the shortest cookieKey [NewWebLogin] accepts: 32 bytes, the size of an
	// HMAC-SHA256 key that is as strong as the MAC.
	MinCookieKeyLen = 32
	// ReturnToParam is the query parameter of [WebLogin.LoginHandler] that names where the browser
	// goes after the login: a path on the same site, such as "/dashboard".
	ReturnToParam = "return_to"

	// webLoginTTL is how long a started login stays valid: the cookie's life.
	webLoginTTL = 10 * time.Minute
	// webLoginSkew is how far in the future a cookie's issue time may lie (replicas' clocks differ).
	webLoginSkew = time.Minute
	// webLoginTimeout bounds the callback's requests to Twitch: exchange, validate, key set.
	webLoginTimeout = time.Minute
	// maxReturnPath bounds a return path, which rides in the cookie.
	maxReturnPath = 1024
	// maxCookieValue bounds the cookie value read back.
	maxCookieValue = 4096
	// maxCookieLen bounds the login cookie set: name, value and attributes. Browsers keep a cookie
	// of 4096 bytes (RFC 6265, section 6.1) and may drop a longer one.
	maxCookieLen = 4096
	// cookieBaseName is the login cookie's name; over https it gets the __Secure- prefix.
	cookieBaseName = "twitchoauth_login"
	// cookieMACLabel separates this MAC from any other made with the same key.
	cookieMACLabel = "twitchoauth web login v1"
)

// ErrInvalidState: a callback that does not belong to a login this browser started in the last 10
// minutes and has not finished: no login cookie (a forged link: login CSRF), a cookie that was
// tampered with, made with another key or expired, or a state that is not the cookie's (another
// browser's login).
var ErrInvalidState = errors.New("twitchoauth: the callback does not belong to a login started in this browser")

// DefaultClaims are the id_token claims [NewWebLogin] asks for with OpenID. Twitch sends email and
// email_verified only when the scopes hold [ScopeUserReadEmail].
var DefaultClaims = []string{"preferred_username", "email", "email_verified", "picture"}

// WebLogin is "Connect with Twitch" for a web app: two [http.Handler]s to mount on the app's own
// server, for bot dashboards and sites where many users log in, where [UserAuthenticator]'s
// server on localhost does not fit. Create one with [NewWebLogin].
//
//  1. [WebLogin.LoginHandler] sends the browser to Twitch's consent page with a fresh state (and,
//     with OpenID, a nonce), which it keeps in a cookie: signed with HMAC-SHA256, HttpOnly,
//     SameSite=Lax, Secure when RedirectURL is https, sent only to RedirectURL's path, valid for
//     10 minutes. No state is kept on the server, so replicas behind a load balancer need only
//     share the cookie key.
//  2. Twitch sends the browser back to RedirectURL, where [WebLogin.CallbackHandler] checks the
//     cookie (signature, age, state in constant time) and clears it, whatever comes next; refuses
//     a redirect longer than Twitch's (a code or state over 512 bytes, a query over 8 KiB); trades
//     the code for a token (form body), validates it, and with OpenID verifies the id_token (see
//     [Client.VerifyIDToken]) and its nonce; then hands the result to OnLogin.
//
// A callback that fails answers with a page saying what went wrong (or goes to OnError), and
// nothing reaches OnLogin; a token got for a login that is then refused is revoked.
//
// The cookie makes a login usable once as far as the browser is concerned: the callback clears
// it. Being stateless, the server cannot tell a replay of a callback by a browser that still holds
// the cookie (the answer that cleared it was lost, or the cookie was copied) within its 10 minutes;
// Twitch's codes are single use, so such a replay fails at the code exchange. The cookie is sent
// only to the callback's path, so it cannot take the __Host- prefix, which requires the path "/":
// a host that can set cookies for the app's parent domain (a sibling subdomain under another's
// control) could plant a login of its own in a visitor's browser and have them signed in as
// someone else. Serve the app where no untrusted host shares its parent domain.
//
// Set the fields before serving and do not change them while the handlers run. The handlers are
// safe for concurrent use.
type WebLogin struct {
	// Scopes are the scopes the token is asked for; with OpenID, "openid" is added. A token that
	// comes back without one of them is refused with a [*MissingScopeError].
	Scopes []Scope
	// RedirectURL is the callback's absolute URL, registered in the Twitch developer console,
	// where CallbackHandler is mounted. Set by NewWebLogin.
	RedirectURL string
	// OpenID makes the login "Sign in with Twitch" (OIDC): the scope openid, a nonce and the claims
	// parameter are sent, and the id_token Twitch returns is verified; its claims are in
	// [WebLoginResult].Claims.
	OpenID bool
	// Claims are the id_token claims asked for with OpenID. Defaults to DefaultClaims.
	Claims []string
	// ForceVerify makes Twitch show the consent page even when the user already authorized the app.
	ForceVerify bool
	// OnLogin is called with the result of each successful login and answers the browser, e.g. by
	// starting the app's session and redirecting to the result's ReturnTo. Without it, and without
	// Users, both handlers answer 500 and log why, once, through [Client.Logger] (or
	// [slog.Default] when the Client has none).
	OnLogin func(w http.ResponseWriter, r *http.Request, res *WebLoginResult)
	// Users, when OnLogin is nil, receives each login's token: it is added with
	// [UserTokens.AddUserForToken] (and Intents), and the browser is sent to the login's return
	// path, or shown a page saying it worked. A token the registry cannot take is revoked and
	// the login fails. With OnLogin set, Users is not used: add the token there yourself.
	Users *UserTokens
	// Intents are the intents a login's token is added to Users with.
	Intents []string
	// OnError, if set, is called instead of the default error page when a callback fails, with an
	// error that Is [ErrInvalidState] (the cookie or state), Is [ErrAccessDenied] (the user
	// declined), is an [*APIError] (another error of the redirect, or of a request to Twitch), Is
	// [ErrMissingScope], or Is [ErrInvalidIDToken].
	OnError func(w http.ResponseWriter, r *http.Request, err error)

	client *Client
	key    []byte

	misconfigured sync.Once // logs a configuration error once
}

// WebLoginResult is what a successful web login hands to [WebLogin.OnLogin].
type WebLoginResult struct {
	// Token is the user's token, with Expiry and its scopes readable with [TokenScopes]; with
	// OpenID, Token.Extra("id_token") is the raw id_token.
	Token *oauth2.Token
	// Validation is what /validate said of Token: whose it is and what it grants.
	Validation *Validation
	// Claims are the verified id_token's claims with OpenID; nil without.
	Claims *IDTokenClaims
	// ReturnTo is the path given to LoginHandler's return_to parameter, checked to be a path on
	// this site, so safe to redirect to; "" when none was given.
	ReturnTo string
}

// NewWebLogin returns a WebLogin for c's app asking for scopes, with its callback at redirectURL
// (an absolute http or https URL, registered with Twitch) and its cookies signed with cookieKey.
// cookieKey must be at least MinCookieKeyLen (32) random bytes, the same on every replica, and
// secret; the WebLogin keeps a copy.
//
// It panics, as [regexp.MustCompile] does, when c is nil, cookieKey is shorter than 32 bytes or
// redirectURL is not such a URL: these are mistakes in the program, and a login that cannot be
// secure must not start. It panics too when c has no ClientSecret, without which Twitch refuses
// every login's code exchange: better at start-up than on each visitor's return from Twitch's
// consent page. Set OnLogin before serving.
func NewWebLogin(c *Client, scopes []Scope, redirectURL string, cookieKey []byte) *WebLogin {
	if c == nil {
		panic("twitchoauth: NewWebLogin: nil Client")
	}
	if err := c.needSecret("WebLogin", "to trade Twitch's code for a token"); err != nil {
		panic(err.Error())
	}
	if len(cookieKey) < MinCookieKeyLen {
		panic(fmt.Sprintf("twitchoauth: NewWebLogin: cookieKey is %d bytes; it must be at least %d random bytes",
			len(cookieKey), MinCookieKeyLen))
	}
	if _, err := parseRedirectURL(redirectURL); err != nil {
		panic("twitchoauth: NewWebLogin: " + err.Error())
	}
	return &WebLogin{
		Scopes:      scopes,
		RedirectURL: redirectURL,
		Claims:      slices.Clone(DefaultClaims),
		client:      c,
		key:         slices.Clone(cookieKey),
	}
}

// parseRedirectURL checks that s is an absolute http or https URL without a fragment.
func parseRedirectURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.New("redirect URL does not parse")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("redirect URL %q is not an absolute http or https URL without a fragment", s)
	}
	return u, nil
}

// LoginHandler returns the handler that starts a login: mount it where the app's "Connect with
// Twitch" link points, for GET. It sets the login cookie and redirects (302) to Twitch's consent
// page. An optional return_to query parameter names where the browser should go afterwards; it
// must be a path on this site ("/dashboard?tab=bot"): anything else, such as
// "https://evil.example" or "//evil.example", is answered 400 and no login starts, as is a path
// over 1024 bytes or one that would make the login cookie longer than the 4096 bytes browsers keep.
//
// Starting a login replaces one the browser had under way: the earlier one's callback then fails.
func (wl *WebLogin) LoginHandler() http.Handler { return http.HandlerFunc(wl.serveLogin) }

// CallbackHandler returns the handler of the redirect URL: mount it at RedirectURL's path, for
// GET. See [WebLogin] for what it checks.
func (wl *WebLogin) CallbackHandler() http.Handler { return http.HandlerFunc(wl.serveCallback) }

// errNoOnLogin is the configuration error of a WebLogin without OnLogin.
var errNoOnLogin = errors.New("twitchoauth: WebLogin.OnLogin and WebLogin.Users are nil: set one to receive the logins")

// check returns what keeps the WebLogin from working, and the redirect URL.
func (wl *WebLogin) check() (*url.URL, error) {
	switch {
	case wl.client == nil:
		return nil, errors.New("twitchoauth: WebLogin has no Client: create it with NewWebLogin")
	case len(wl.key) < MinCookieKeyLen:
		return nil, errors.New("twitchoauth: WebLogin has no cookie key: create it with NewWebLogin")
	case wl.client.ClientSecret == "":
		// The Client lost its secret after NewWebLogin: no visitor is sent to a consent page
		// whose code cannot be exchanged.
		return nil, wl.client.needSecret("WebLogin", "to trade Twitch's code for a token")
	case wl.OnLogin == nil && wl.Users == nil:
		return nil, errNoOnLogin
	}
	u, err := parseRedirectURL(wl.RedirectURL)
	if err != nil {
		return nil, fmt.Errorf("twitchoauth: WebLogin: %w", err)
	}
	return u, nil
}

// misconfiguration answers 500 for a WebLogin that cannot work, and logs why, once: through the
// Client's Logger, or [slog.Default] when it has none, since the page says the log tells.
func (wl *WebLogin) misconfiguration(w http.ResponseWriter, r *http.Request, err error) {
	wl.misconfigured.Do(func() {
		l := slog.Default()
		if wl.client != nil && wl.client.Logger != nil {
			l = wl.client.Logger
		}
		l.LogAttrs(r.Context(), slog.LevelError, "twitchoauth: web login is not set up", slog.String("error", err.Error()))
	})
	writeMessage(w, http.StatusInternalServerError, "Login is not set up",
		"The app's Twitch login is not configured correctly, so it cannot log you in. Its log says why.")
}

func (wl *WebLogin) serveLogin(w http.ResponseWriter, r *http.Request) {
	redirect, err := wl.check()
	if err != nil {
		wl.misconfiguration(w, r, err)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeMessage(w, http.StatusMethodNotAllowed, "Method not allowed", "This address takes GET only.")
		return
	}
	ret, err := returnPath(r.URL.Query().Get(ReturnToParam))
	if err != nil {
		writeMessage(w, http.StatusBadRequest, "Bad return address", "The link that started this login "+
			"names a place to return to that is not on this site, so no login was started.")
		return
	}
	lc := loginCookie{State: rand.Text(), ReturnTo: ret, Issued: time.Now().Unix()}
	if wl.OpenID {
		lc.Nonce = rand.Text()
	}
	// The return path rides in the cookie, JSON-escaped ("<" is 6 bytes) and base64-encoded: one
	// a browser would drop would make the login one that cannot finish.
	ck := loginCookieFor(redirect, wl.seal(lc), int(webLoginTTL/time.Second))
	if len(ck.String()) > maxCookieLen {
		writeMessage(w, http.StatusBadRequest, "Return address too long", "The link that started this login "+
			"names a place to return to that is too long to keep while you log in, so no login was started.")
		return
	}
	http.SetCookie(w, ck)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, wl.authURL(lc.State, lc.Nonce), http.StatusFound)
}

// authURL returns the URL of Twitch's consent page for one login.
func (wl *WebLogin) authURL(state, nonce string) string {
	scopes := wl.Scopes
	if wl.OpenID && !slices.Contains(scopes, "openid") {
		scopes = append(slices.Clip(scopes), "openid")
	}
	q := url.Values{
		"client_id":     {wl.client.ClientID},
		"redirect_uri":  {wl.RedirectURL},
		"response_type": {"code"},
		"scope":         {BuildScope(scopes)},
		"force_verify":  {strconv.FormatBool(wl.ForceVerify)},
		"state":         {state},
	}
	if wl.OpenID {
		q.Set("nonce", nonce)
		if len(wl.Claims) > 0 {
			asked := map[string]any{}
			for _, c := range wl.Claims {
				asked[c] = nil
			}
			b, _ := json.Marshal(map[string]any{"id_token": asked, "userinfo": asked})
			q.Set("claims", string(b))
		}
	}
	return wl.client.endpointURL("authorize") + "?" + q.Encode()
}
