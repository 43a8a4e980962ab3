// Package twitchoauth gets, stores, refreshes, validates and revokes Twitch user OAuth tokens. It
// is the Go counterpart of pyTwitchAPI's twitchAPI.oauth module: the same pieces under the same
// names. Start from a [Client], made with [NewClient]: the app's ID and secret, and how to reach
// Twitch; the logins, sources and registries below all take one.
//
// # The pieces, and where to start
//
//   - Browser login, for a bot on a desktop: [UserAuthenticator], from [NewUserAuthenticator], then
//     [UserAuthenticator.Authenticate]. A headless program takes [UserAuthenticator.AuthURL] and
//     [WithUserToken] instead.
//   - Device code login, for a machine without a browser: [CodeFlow], from [NewCodeFlow], then
//     [CodeFlow.GetCode] and [CodeFlow.WaitForAuthComplete].
//   - "Connect with Twitch" (and, with OpenID, "Sign in with Twitch") in a web app: [WebLogin], from
//     [NewWebLogin]; mount [WebLogin.LoginHandler] and [WebLogin.CallbackHandler].
//   - One user's token that survives restarts: [UserAuthenticationStorageHelper], from
//     [NewUserAuthenticationStorageHelper], then [UserAuthenticationStorageHelper.Bind], which
//     reuses, refreshes or logs in and hands back a [UserTokenSource].
//   - A token kept fresh while the program runs: [UserTokenSource], from Bind, [UserTokens.Source]
//     or [NewUserTokenSource]; [UserTokenSource.TokenContext] for the token,
//     [UserTokenSource.HTTPClient] for Helix, [UserTokenSource.Subscribe] for a connection that
//     keeps one (IRC, EventSub), [UserTokenSource.KeepValidated] for Twitch's hourly validation.
//   - Many users' tokens: [UserTokens], from [NewUserTokens], then go [UserTokens.Run], which
//     validates each hourly and shares the work between replicas.
//   - Hearing that a user disconnected the app: [UserTokens.RevocationHandler], an EventSub webhook.
//   - Where tokens are kept: a [TokenStore]. Files by default, [NewFileStore]; Redis and SQL
//     (PostgreSQL, SQLite) as modules of their own, so a program pays only for the driver it
//     imports: [github.com/twitchoauth/twitchoauth/stores/redisstore.New] and
//     [github.com/twitchoauth/twitchoauth/stores/sqlstore.New].
//   - Tokens sealed at rest in every store: a [Keyring], from [NewKeyring], set on the store.
//   - The app's own token (EventSub webhooks, conduits): [AppTokenSource], from [NewAppTokenSource].
//   - One call to Twitch's identity server: [Client.ValidateToken], [Client.RefreshAccessToken],
//     [Client.RevokeToken], [Client.GetUserInfo], [Client.AppAccessToken].
//   - What each user granted, from Twitch: [Client.UserAuthorizations]; a whole registry checked
//     with it: [UserTokens.Audit].
//   - In production: [Client.Hooks] hear every request, refresh, validation and store operation
//     ([github.com/twitchoauth/twitchoauth/otel.Instrument] makes OpenTelemetry metrics and spans
//     of them); [UserTokens.Health] names who must log in again.
//   - Tests against a fake Twitch, offline:
//     [github.com/twitchoauth/twitchoauth/twitchoauthtest.NewServer].
//
// A bot gets a user token that survives restarts in a few lines:
//
//	c := twitchoauth.NewClient(clientID, clientSecret)
//	h := twitchoauth.NewUserAuthenticationStorageHelper(c, []twitchoauth.Scope{
//		twitchoauth.ScopeChatRead, twitchoauth.ScopeChatEdit,
//	})
//	src, err := h.Bind(ctx) // validates or refreshes the stored token; logs in only when it must
//	if err != nil {
//		log.Fatal(err)
//	}
//	tok, err := src.TokenContext(ctx) // always fresh
//
// # One way to do each thing
//
// Where the package offers two ways, the docs and examples teach the first named here; the other
// stays because pyTwitchAPI has it, an interface needs it, or it does a little more:
//
//   - A [Client]'s fields (AuthBaseURL, HTTPClient) and methods. The package functions
//     [ValidateToken], [RefreshAccessToken], [RevokeToken] and [GetUserInfo], configured with
//     [Option] values, are pyTwitchAPI's module functions, each one line over the Client method.
//   - [UserTokenSource.Validate] for a token a source holds (hourly: [UserTokenSource.KeepValidated],
//     or [UserTokens.Run] for a registry): it also refreshes a token Twitch ended.
//     [Client.ValidateToken] asks about one access token as it is and changes nothing.
//   - [UserTokenSource.TokenContext]; [UserTokenSource.Token] is the [oauth2.TokenSource] method,
//     for code that takes a token source.
//   - [UserAuthenticationStorageHelper.Bind]; [UserAuthenticationStorageHelper.BindValidation]
//     when the program also needs to know whose token it bound, at no extra request.
//
// Every request goes through one HTTP client, with tokens, codes and secrets only in POST form
// bodies or headers: none is ever put in a URL, an error string or a log line. Tests run on a fake Twitch from
// package twitchoauthtest, or point [Client.AuthBaseURL] at an httptest server of their own. See
// https://dev.twitch.tv/docs/authentication/ for Twitch's side.
package twitchoauth

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/oauth2"
)

const (
	// DefaultAuthBaseURL is the base URL of Twitch's identity server (pyTwitchAPI
	// TWITCH_AUTH_BASE_URL).
	DefaultAuthBaseURL = "https://id.twitch.tv/oauth2/"
	// DefaultRedirectURL is the redirect URL [UserAuthenticator] serves by default. Register it in the
	// Twitch developer console.
	DefaultRedirectURL = "http://localhost:17563"
	// DefaultPort is the port [UserAuthenticator] listens on by default.
	DefaultPort = 17563
	// DefaultHelixBaseURL is the base URL of Twitch's API (Helix), for the few Helix calls the
	// package makes itself, such as [Client.UserAuthorizations].
	DefaultHelixBaseURL = "https://api.twitch.tv/helix/"
)

// Client is a Twitch application: its credentials and how to reach Twitch (pyTwitchAPI: the Twitch
// instance the flows take). The zero value, with ClientID set, is ready to use. A Client is safe for
// concurrent use; do not change its fields while requests are under way.
type Client struct {
	// ClientID is the application's client ID from the Twitch developer console.
	ClientID string
	// ClientSecret is the application's secret; "" for a public client (device flow, refresh without
	// a secret).
	ClientSecret string
	// AuthBaseURL is the identity server's base URL, with or without the trailing "/".
	// Defaults to DefaultAuthBaseURL.
	AuthBaseURL string
	// HelixBaseURL is the base URL of Twitch's API (Helix), with or without the trailing "/", for
	// the Helix calls the package makes itself ([Client.UserAuthorizations]). Defaults to
	// DefaultHelixBaseURL.
	HelixBaseURL string
	// HTTPClient sends every request. Defaults to one package-wide client with timeouts that keeps
	// connections alive. Requests to the identity server, and the package's own Helix calls, use
	// its transport, cookie jar and timeout, but never follow a redirect, whatever its
	// CheckRedirect says: a 3xx answer is an [*APIError].
	HTTPClient *http.Client
	// Logger receives what the package has to say (at Debug: each request's endpoint, status and
	// duration; at Info: what a person must do, such as opening a URL). Defaults to no logging. It is
	// never given a token, code, state or secret.
	Logger *slog.Logger
	// Hooks, if set, hear what the package does, to count, time and trace it (see [Hooks]; the
	// otel module sets them). Set them before the Client is used. Defaults to none.
	Hooks *Hooks
}

// NewClient returns a Client for the application with this ID and secret (secret "" for a public
// client).
func NewClient(clientID, clientSecret string) *Client {
	return &Client{ClientID: clientID, ClientSecret: clientSecret}
}

// needSecret returns nil when c has a ClientSecret, and otherwise the error of who, which needs
// it for what, saying what to set. It is checked when who is made or started, so that a missing
// secret is not found out by a user who has just gone through Twitch's consent page.
func (c *Client) needSecret(who, what string) error {
	if c.ClientSecret != "" {
		return nil
	}
	return errors.New("twitchoauth: " + who + " needs the app's client secret " + what + ", and " +
		"Client.ClientSecret is empty: set it to the secret from the Twitch developer console (an app " +
		"registered as Public has none, and logs its users in with CodeFlow instead)")
}

// maxBodySize caps how much of an answer is read, like golang.org/x/oauth2.
const maxBodySize = 1 << 20

// maxConnsPerHost bounds the default client's connections to one host: 10,000 users refreshed at
// once share 64 kept-alive connections (each against id.twitch.tv a TLS handshake) instead of
// opening one each; a request beyond them waits for a free one.
const maxConnsPerHost = 64

// defaultHTTPClient is used whenever Client.HTTPClient is nil. Its transport keeps connections alive,
// at most maxConnsPerHost to a host; it does not follow redirects, so that an Authorization header
// or a form body never travels on.
var defaultHTTPClient = &http.Client{
	Timeout: 30 * time.Second,
	Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   maxConnsPerHost,
		MaxConnsPerHost:       maxConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 20 * time.Second,
		ExpectContinueTimeout: time.Second,
	},
	CheckRedirect: noRedirect,
}

// noRedirect is a CheckRedirect that follows no redirect: the 3xx answer itself is returned.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return defaultHTTPClient
}

// identityClient returns the client for a request to the identity server: HTTPClient with its
// transport, jar and timeout but not its redirect policy (a shallow copy that follows no redirect),
// or defaultHTTPClient. A redirect must not carry a form body with client_secret or refresh_token,
// or an Authorization header, to wherever the identity server (or whoever answers for it) points.
func (c *Client) identityClient() *http.Client {
	if c.HTTPClient == nil {
		return defaultHTTPClient
	}
	hc := *c.HTTPClient
	hc.CheckRedirect = noRedirect
	return &hc
}

// Option configures the [Client] behind a package-level function ([ValidateToken],
// [RefreshAccessToken], [RevokeToken], [GetUserInfo]), as pyTwitchAPI's keyword arguments do.
// Options exist for those mirrors only: a program with a Client sets its fields instead.
type Option func(*Client)

// WithHTTPClient sends the package function's request with hc (pyTwitchAPI: session=). It sets
// [Client.HTTPClient], which a program with a Client sets itself.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.HTTPClient = hc } }

// WithAuthBaseURL sends the package function's request to another identity server (pyTwitchAPI:
// auth_base_url=). It sets [Client.AuthBaseURL], which a program with a Client sets itself.
func WithAuthBaseURL(u string) Option { return func(c *Client) { c.AuthBaseURL = u } }

func newOptionClient(clientID, clientSecret string, opts []Option) *Client {
	c := NewClient(clientID, clientSecret)
	for _, opt := range opts {
		opt(c)
	}
	return c
}

// RefreshAccessToken is pyTwitchAPI's refresh_access_token, kept as a thin mirror: it makes a
// Client of clientID and clientSecret, set by opts, and calls [Client.RefreshAccessToken]. A
// program with a Client calls the method.
func RefreshAccessToken(ctx context.Context, refreshToken, clientID, clientSecret string, opts ...Option) (*oauth2.Token, error) {
	return newOptionClient(clientID, clientSecret, opts).RefreshAccessToken(ctx, refreshToken)
}

// ValidateToken is pyTwitchAPI's validate_token, kept as a thin mirror: it makes a Client set by
// opts (validation needs no client ID) and calls [Client.ValidateToken]. A program with a Client
// calls the method, or [UserTokenSource.Validate] for a token a source holds.
func ValidateToken(ctx context.Context, accessToken string, opts ...Option) (*Validation, error) {
	return newOptionClient("", "", opts).ValidateToken(ctx, accessToken)
}

// GetUserInfo is pyTwitchAPI's get_user_info, kept as a thin mirror: it makes a Client set by
// opts (userinfo needs no client ID) and calls [Client.GetUserInfo]. A program with a Client
// calls the method.
func GetUserInfo(ctx context.Context, accessToken string, opts ...Option) (*UserInfo, error) {
	return newOptionClient("", "", opts).GetUserInfo(ctx, accessToken)
}

// RevokeToken is pyTwitchAPI's revoke_token, kept as a thin mirror: it makes a Client of
// clientID, set by opts, and calls [Client.RevokeToken]. A program with a Client calls the
// method.
func RevokeToken(ctx context.Context, clientID, accessToken string, opts ...Option) error {
	return newOptionClient(clientID, "", opts).RevokeToken(ctx, accessToken)
}
