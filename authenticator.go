package twitchoauth

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/pkg/browser"
	"golang.org/x/oauth2"
)

// UserAuthenticator runs Twitch's authorization code grant in the user's browser
// (https://dev.twitch.tv/docs/authentication/getting-tokens-oauth/#authorization-code-grant-flow),
// as pyTwitchAPI's UserAuthenticator does. Create one with [NewUserAuthenticator]: it holds the
// [Client] the flow runs for, and a UserAuthenticator built any other way cannot authenticate.
//
// [UserAuthenticator.Authenticate]:
//
//  1. listens on URL's port on every loopback address of Host (a busy port is an error at once);
//  2. opens the browser at [UserAuthenticator.AuthURL], Twitch's consent page, once it has asked
//     that page itself whether Twitch knows the client ID;
//  3. waits for Twitch to send the browser back to URL with a code (or an error), turning away any
//     request that does not carry the login's state or whose Host header names another host than
//     URL's (see URL), as a page of another site whose name resolves to this machine would send
//     (DNS rebinding);
//  4. trades the code for a token, shows Document to the browser, closes the server and returns
//     the token.
//
// Set the fields before calling Authenticate and do not change them while it runs.
type UserAuthenticator struct {
	// Scopes are the scopes the token is asked for.
	Scopes []Scope
	// ForceVerify makes Twitch show the consent page even when the user already authorized the app.
	ForceVerify bool
	// URL is the redirect URL, as registered in the Twitch developer console: Twitch sends the
	// browser back to it. The server answers on its path, to requests addressed to its host and
	// port (the scheme's default port when it names none; the name in any case, with or without a
	// trailing dot) or to localhost, 127.0.0.1 or [::1] with the port bound. So with Host
	// "0.0.0.0", name this machine in URL as the browser reaches it. Defaults to
	// DefaultRedirectURL; "" means http://localhost:<the port actually bound>, for use with Port 0.
	URL string
	// Host is where the server listens. "localhost" means every loopback address localhost has
	// (127.0.0.1, and ::1 when the machine has IPv6), because a browser may try either. Another
	// name listens on each address it resolves to, an IP address on that address; only an
	// unspecified address such as "0.0.0.0" (IPv4) or "::" (IPv6) listens on all interfaces.
	// Defaults to "localhost"; "" means "localhost" too.
	Host string
	// Port is the port the server listens on, URL's: Authenticate refuses Port 0 with a URL, and
	// a port other than a loopback URL's while Host is loopback. 0 picks a free port, which URL ""
	// names. Defaults to DefaultPort.
	Port int
	// State is sent to Twitch and must come back with the redirect; a request without it is
	// turned away. Defaults to a random UUID, which, like "", leaves the state to the
	// authenticator: then each Authenticate that listens for the redirect has a random state of
	// its own, so that a redirect left over from an earlier login (a restored browser tab) is
	// turned away instead of ending the next one. [UserAuthenticator.AuthURL] names the state of
	// the next such Authenticate (or of the one under way): first the default UUID, then, each
	// time an Authenticate returns, a fresh one. State itself is not changed. Any other value is
	// the caller's own, used as is by every Authenticate.
	State string
	// Document is the HTML page the browser shows once the token is in hand. Defaults to a short
	// page that says the login worked; "" means that page too.
	Document string
	// OpenBrowser opens the browser at the authorize URL. It should return once the browser has
	// been asked to open the page. Defaults to [browser.OpenURL]; nil means that too.
	OpenBrowser func(url string) error

	client *Client

	defaultState string // the State NewUserAuthenticator drew: the caller left the state to a

	mu        sync.Mutex
	runs      map[*int]context.CancelCauseFunc // the Authenticate calls under way, for Stop
	nextState string                           // the state AuthURL names when State is left to a; "" until drawn
	nextTaken bool                             // an Authenticate under way uses nextState
}

// defaultDocument is the page shown after a successful login when Document is "".
const defaultDocument = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Logged in to Twitch</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;background:#0e0e10;color:#efeff1;display:grid;place-items:center;min-height:90vh;margin:0}
main{background:#18181b;border-radius:12px;padding:2rem 2.5rem;text-align:center;box-shadow:0 4px 24px #0008}
h1{color:#bf94ff;font-size:1.6rem;margin:0 0 .5rem}</style></head>
<body><main><h1>You are logged in</h1><p>You can close this tab and go back to the app.</p></main></body></html>
`

// NewUserAuthenticator returns a UserAuthenticator for c asking for scopes, with every field at its
// default: URL DefaultRedirectURL, Host "localhost", Port DefaultPort, a random State, the default
// Document and the system browser.
func NewUserAuthenticator(c *Client, scopes []Scope) *UserAuthenticator {
	state := uuid.NewString()
	return &UserAuthenticator{
		Scopes:       scopes,
		URL:          DefaultRedirectURL,
		Host:         "localhost",
		Port:         DefaultPort,
		State:        state,
		Document:     defaultDocument,
		OpenBrowser:  browser.OpenURL,
		client:       c,
		defaultState: state,
		nextState:    state,
	}
}

// AuthenticateOption changes how [UserAuthenticator.Authenticate] runs.
type AuthenticateOption func(*authenticateOptions)

type authenticateOptions struct {
	userToken    *string
	noBrowser    bool
	authCallback func(ctx context.Context, authURL string) error
}

// WithUserToken makes Authenticate trade code, an authorization code got some other way (e.g. a
// person opened [UserAuthenticator.AuthURL] and copied the code from the redirect), for a token: no
// server, no browser (pyTwitchAPI: user_token=).
func WithUserToken(code string) AuthenticateOption {
	return func(o *authenticateOptions) { o.userToken = &code }
}

// WithoutBrowser makes Authenticate leave the browser alone (pyTwitchAPI: use_browser=False): the
// authorize URL goes to the [WithAuthURLCallback] function if there is one, or else is logged at
// Info through [Client.Logger] for a person to open.
func WithoutBrowser() AuthenticateOption {
	return func(o *authenticateOptions) { o.noBrowser = true }
}

// WithAuthURLCallback hands the authorize URL to fn instead of opening the browser (pyTwitchAPI:
// auth_url_callback=). Authenticate calls fn once it is listening and waits for it to return; ctx
// ends when the flow does. An error from fn ends the flow with that error.
func WithAuthURLCallback(fn func(ctx context.Context, authURL string) error) AuthenticateOption {
	return func(o *authenticateOptions) { o.authCallback = fn }
}

var errNoClient = errors.New("twitchoauth: UserAuthenticator has no Client: create it with NewUserAuthenticator")

// Authenticate logs the user in through the browser and returns their token (see [UserAuthenticator]
// for the steps). It returns when the login is done, and before it returns the server is closed and
// every goroutine it started has ended.
//
// It ends with an error that Is [ErrAccessDenied] when the user declines, an [*APIError] carrying
// the redirect's error for any other error Twitch sends back, the code exchange's error when that
// fails (the browser is told so too), ctx's error when ctx ends, and [ErrStopped] after
// [UserAuthenticator.Stop]. Once ctx has ended or Stop has been called, the error is ctx's or
// ErrStopped, never one that came of it (such as an exchange cut off); but a token already got for
// the code is returned, with a nil error, since the code is spent. A port already in use is an
// error at once, naming the port; on Unix it Is syscall.EADDRINUSE. So is a Port the redirect to
// URL cannot reach (see Port), and a Client without a ClientSecret, which Twitch's code exchange
// needs (a public app logs in with [CodeFlow]).
//
// A client ID Twitch does not know ends the login with an [*APIError] that Is [ErrUnknownClient]
// before the browser is opened. Twitch tells it only on its consent page, which then redirects
// nowhere, so the redirect server would wait until stopped: Authenticate asks that page itself
// first, with the URL the browser is to open, following no redirect and for 5 seconds at most. Any
// other answer, or none, leaves the login to the browser as before.
//
// Each call that listens for the redirect accepts one state. Unless State is the caller's own, it
// is the state [UserAuthenticator.AuthURL] named until then (or, when another Authenticate under
// way already uses that one, a fresh one), and once the call returns AuthURL names a fresh state:
// a redirect meant for an earlier login is turned away and the login goes on. A [WithUserToken]
// exchange checks no state and leaves AuthURL's as it is.
//
// When the browser is not opened ([WithoutBrowser] without [WithAuthURLCallback]), or OpenBrowser
// fails, the authorize URL is logged at Info through [Client.Logger] and the flow goes on: the URL
// holds the state, but a person needs it to log in. With no Logger the URL has nowhere to go, and
// Authenticate returns an error at once instead of waiting forever. Nothing else logs the state, the
// code or the token.
func (a *UserAuthenticator) Authenticate(ctx context.Context, opts ...AuthenticateOption) (*oauth2.Token, error) {
	c := a.client
	if c == nil {
		return nil, errNoClient
	}
	// Twitch's code exchange takes only a confidential client: refused now, not after the user
	// has consented.
	if err := c.needSecret("UserAuthenticator", "to trade Twitch's code for a token"); err != nil {
		return nil, err
	}
	var o authenticateOptions
	for _, opt := range opts {
		opt(&o)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer a.track(cancel)()

	var tok *oauth2.Token
	var err error
	if o.userToken != nil {
		tok, err = a.exchangeUserToken(ctx, c, *o.userToken)
	} else {
		tok, err = a.awaitRedirect(ctx, c, &o)
	}
	if err != nil {
		// Once Stop has been called or ctx has ended, that is why the flow failed, whatever
		// error came of it (an exchange cut off, a URL callback that gave up).
		return nil, a.endErr(ctx, err)
	}
	return tok, nil
}

// exchangeUserToken is Authenticate with [WithUserToken].
func (a *UserAuthenticator) exchangeUserToken(ctx context.Context, c *Client, code string) (*oauth2.Token, error) {
	if code == "" {
		return nil, errors.New("twitchoauth: WithUserToken: empty code")
	}
	return c.exchangeCode(ctx, code, a.redirectURL(a.Port))
}

// checkPort says why the redirect server, listening on Port, cannot be where URL sends the
// browser, or returns nil. A free port (Port 0) is one no URL can name in advance. A URL on
// loopback names the very server the browser will ask for: with the server on loopback too, a
// port other than URL's leaves the redirect to a port where nothing listens (a connection
// refused after the user consented). A URL of another host, or a server on other addresses, may
// reach Port through a proxy or a port mapping, so only Port 0 is refused there.
func (a *UserAuthenticator) checkPort() error {
	if a.URL == "" {
		return nil
	}
	u, err := url.Parse(a.URL)
	if err != nil {
		return fmt.Errorf("twitchoauth: UserAuthenticator.URL: %w", err)
	}
	urlPort := cmp.Or(u.Port(), schemePort(u.Scheme))
	switch {
	case a.Port == 0:
		return fmt.Errorf("twitchoauth: UserAuthenticator.Port is 0, a free port, which URL %q cannot name: "+
			"set Port to %s, URL's port, or set URL to \"\" to redirect to http://localhost:<the port bound> "+
			"(registered with Twitch)", u.Redacted(), urlPort)
	case strconv.Itoa(a.Port) != urlPort && isLoopbackName(u.Hostname()) &&
		isLoopbackName(cmp.Or(a.Host, "localhost")):
		return fmt.Errorf("twitchoauth: UserAuthenticator.Port %d is not the port of URL %q, %s, to which "+
			"Twitch sends the browser back: set Port to %s, or URL to the redirect URL registered for port %d",
			a.Port, u.Redacted(), urlPort, urlPort, a.Port)
	}
	return nil
}

// isLoopbackName reports whether host, a host name or IP address, is this machine's loopback:
// localhost or a loopback address.
func isLoopbackName(host string) bool {
	h := bareHost(host)
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.Unmap().IsLoopback()
}

// awaitRedirect is Authenticate with a server that waits for the redirect.
func (a *UserAuthenticator) awaitRedirect(ctx context.Context, c *Client, o *authenticateOptions) (*oauth2.Token, error) {
	if err := a.checkPort(); err != nil {
		return nil, err
	}
	srv, err := listen(ctx, a.Host, a.Port)
	if err != nil {
		return nil, err
	}
	state, releaseState := a.takeState()
	defer releaseState()
	redirectURI := a.redirectURL(srv.port)
	h, err := newCallbackHandler(ctx, c, redirectURI, srv.port, state, a.Document)
	if err != nil {
		srv.close(ctx)
		return nil, err
	}
	srv.serve(ctx, h)
	defer srv.close(ctx)

	authURL := a.authURL(redirectURI, state)
	if err := checkClientID(ctx, c, a.authQuery(c, redirectURI, state), state); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err // stopped during the check: no browser now
	}
	opened, err := a.deliverURL(ctx, c, o, authURL)
	if err != nil {
		return nil, err
	}
	defer func() { awaitOpener(opened) }()

	for {
		select {
		case err := <-opened:
			opened = nil
			if err != nil {
				if err := logURL(ctx, c, authURL, err); err != nil {
					return nil, err
				}
			}
		case res := <-h.result:
			return res.tok, res.err
		case <-ctx.Done():
			srv.close(ctx)
			// A token got while the flow was ending is still the user's: its code is spent, so
			// keep it.
			select {
			case res := <-h.result:
				if res.err == nil {
					return res.tok, nil
				}
			default:
			}
			return nil, ctx.Err()
		}
	}
}

// clientCheckTimeout bounds checkClientID, so that a slow Twitch delays the browser by no more.
const clientCheckTimeout = 5 * time.Second

// checkClientID asks Twitch's consent page, with query as the browser is about to, following no
// redirect, and returns the [*APIError] that Is [ErrUnknownClient] when Twitch answers that it does
// not know the client ID (400 "invalid client"): the browser would show that page and never come
// back. Any other answer (the login page, a redirect, an outage), or none, is the browser's to
// meet: nil. The query carries the login's state, which no error repeats.
func checkClientID(ctx context.Context, c *Client, query url.Values, state string) error {
	ctx, cancel := context.WithTimeout(ctx, clientCheckTimeout)
	defer cancel()
	_, err := c.do(ctx, request{endpoint: "authorize", method: http.MethodGet, query: query,
		secrets: []string{state}, redirects: true})
	if errors.Is(err, ErrUnknownClient) {
		return err
	}
	return nil
}

// endErr returns the error that ends a flow whose ctx may be done: ErrStopped after Stop, ctx's
// error when it ended (whatever err is), or else err.
func (a *UserAuthenticator) endErr(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		return err
	}
	if cause := context.Cause(ctx); errors.Is(cause, ErrStopped) {
		return ErrStopped
	}
	return fmt.Errorf("twitchoauth: authenticate: %w", ctx.Err())
}

// track registers the cancel func of an Authenticate under way so that Stop can reach it, and
// returns the func that forgets it.
func (a *UserAuthenticator) track(cancel context.CancelCauseFunc) (untrack func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.runs == nil {
		a.runs = map[*int]context.CancelCauseFunc{}
	}
	key := new(int)
	a.runs[key] = cancel
	return func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		delete(a.runs, key)
	}
}

// Stop ends every [UserAuthenticator.Authenticate] under way on a: each returns within
// milliseconds, its server closed, with an error that Is [ErrStopped] and no other, a code exchange
// under way cut off. The one exception is an Authenticate whose code has already been exchanged
// for a token when Stop comes: the code is spent at Twitch, so that Authenticate returns the token
// and a nil error rather than lose the login. It is safe to call from any goroutine, more than
// once, and when nothing is under way, in which case it does nothing: it does not stop an
// Authenticate that starts later.
func (a *UserAuthenticator) Stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, cancel := range a.runs {
		cancel(ErrStopped)
	}
}

// MockAuthenticate gets a user token for userID from twitch-cli's mock API (`twitch-cli mock-api
// start`; set [Client.AuthBaseURL] to its "http://localhost:8080/auth/") and returns the access
// token, as pyTwitchAPI's mock_authenticate does.
//
// That mock reads its parameters from the query string only, so this is the one call that puts the
// client secret in a URL. It is meant for the mock's local, made-up credentials; never point it at
// Twitch with a real secret.
func (a *UserAuthenticator) MockAuthenticate(ctx context.Context, userID string) (string, error) {
	c := a.client
	if c == nil {
		return "", errNoClient
	}
	q := url.Values{
		"client_id":     {c.ClientID},
		"client_secret": {c.ClientSecret},
		"grant_type":    {"user_token"},
		"user_id":       {userID},
		"scope":         {BuildScope(a.Scopes)},
	}
	body, err := c.do(ctx, request{endpoint: "authorize", method: http.MethodPost, query: q})
	if err != nil {
		return "", err
	}
	tok, err := decodeToken("authorize", body)
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}
