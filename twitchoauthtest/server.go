// Package twitchoauthtest runs a fake of Twitch's identity server (https://id.twitch.tv/oauth2/) on
// loopback, for testing programs that use twitchoauth without a network, the way net/http/httptest
// runs a fake HTTP server. It is the same fake the library's own tests run on.
//
// The fake speaks Twitch's wire format, not RFC 6749's: errors are {"status":N,"message":"..."}
// bodies, a token's "scope" is a JSON array, /device reads "scopes" from the form body only, codes
// are single use, a public client's refresh token works once, the device flow answers
// authorization_pending until the user acts, and /validate answers 401 for a token that expired
// or was revoked. It serves authorize, token, device, validate, revoke and userinfo, and twitch-cli's
// mock login (see [twitchoauth.UserAuthenticator.MockAuthenticate]). Its OIDC side, for
// [twitchoauth.WebLogin] with OpenID and [twitchoauth.Client.VerifyIDToken]: a login whose scope
// holds openid gets an id_token signed RS256, with the nonce and the claims the authorize URL asked
// for, under the issuer URL without its trailing "/"; keys serves the key set, and
// .well-known/openid-configuration a discovery document.
//
// Start with [NewServer]: a test starts a [Server], points the code under test at it with
// [Server.Client], and plays the user and Twitch with the Server's methods:
//
//	func TestGreeting(t *testing.T) {
//		srv := twitchoauthtest.NewServer(t)
//		srv.AddUser("1234", "streamer")
//		tok := srv.IssueUserToken("1234", twitchoauth.ScopeChatRead)
//		src := twitchoauth.NewUserTokenSource(srv.Client(), tok, nil)
//		// ... run the bot with src, then:
//		srv.Revoke(tok.AccessToken) // the streamer disconnects the bot
//		// ... and check what the bot does now.
//	}
//
// The three ways to start a Server do three jobs: [NewServer] in a test (t's Cleanup closes it);
// [NewInMemory] in a test inside a [testing/synctest] bubble, without a socket, so that time.Sleep
// moves the clock both sides read; [New] where there is no testing.TB (an Example function, a
// demo program), with [Server.Close] when done.
//
// The user: [Server.AddUser], [Server.AuthorizeAs] (who logs in at the consent page and approves
// devices), [Server.DenyAuthorize], [Server.OpenBrowser] (a browser for
// [twitchoauth.UserAuthenticator]), [Server.ApproveDevice] and [Server.DenyDevice] (for
// [twitchoauth.CodeFlow]). Tokens: [Server.IssueUserToken], [Server.Expire], [Server.ExpireAll],
// [Server.Revoke], [Server.Advance]. Faults: [Server.Fail], [Server.Delay], [Server.Hang],
// [Server.FailIDToken], and [Server.RotateKey] for a key rotation. What the
// code under test sent: [Server.Requests]. Twitch's API: [Server.RequireToken] guards a fake
// endpoint of your own; the Server itself serves Get Authorization By User (for
// [twitchoauth.Client.UserAuthorizations] and [twitchoauth.UserTokens.Audit]) at HelixURL,
// answered from the tokens it issued: a user's scopes are those of their logins that still stand,
// and a user whose every login was revoked ([Server.Revoke]) has not authorized the app. Its
// endpoint, for [Server.Fail], [Server.RateLimit] and the others, is [AuthorizationsEndpoint].
//
// Misuse that can only be a bug in the test, such as an unknown endpoint or user, or a token the
// server never issued, panics with a message saying what is wrong. Secrets never appear in these
// messages.
package twitchoauthtest

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// What a new Server holds: two apps, both with [twitchoauth.DefaultRedirectURL] registered, and
// one user.
const (
	// ClientID is the client ID of the Server's confidential app, the one [Server.Client] uses.
	ClientID = "fake-client-id"
	// ClientSecret is the secret of the confidential app.
	ClientSecret = "fake-client-secret"
	// PublicClientID is the client ID of the Server's public app, which has no secret; see
	// [Server.PublicClient].
	PublicClientID = "fake-public-client-id"
	// UserID is the ID of the user every Server knows, who logs in until [Server.AuthorizeAs] names
	// another.
	UserID = "12345"
	// UserLogin is that user's login name.
	UserLogin = "fakeuser"
)

const (
	// tokenLifetime is how long user access tokens live, as on Twitch.
	tokenLifetime = 4 * time.Hour
	// deviceInterval is the polling interval, in seconds, that /device announces: Twitch's is 5,
	// which a test need not wait.
	deviceInterval = 1
)

// Server is a fake Twitch identity server, on a loopback port (or, from [NewInMemory], in
// process). Create one with [NewServer] in a test, [NewInMemory] in a synctest bubble, or [New]
// outside a test. Its methods are safe for concurrent use, also while the code under test
// sends requests.
type Server struct {
	// URL is the base URL to use as [twitchoauth.Client.AuthBaseURL]:
	// "http://127.0.0.1:PORT/oauth2/".
	URL string
	// HelixURL is the base URL to use as [twitchoauth.Client.HelixBaseURL], where the Server
	// serves the one Helix endpoint it fakes, Get Authorization By User (see
	// [Server.IssueUserToken]): "http://127.0.0.1:PORT/helix/".
	HelixURL string

	fake    *faketwitch.Server
	mem     *memTransport // the in-process transport of a Server from NewInMemory; nil otherwise
	browser *http.Client  // see OpenBrowser
	skew    atomic.Int64  // how far Advance has moved the server's clock, in nanoseconds

	mu        sync.Mutex
	users     map[string]bool // the users the server knows
	redirects []string        // redirect URLs registered beyond the default
}

// NewServer starts a Server that t's Cleanup closes: the way a test starts one. See [NewInMemory]
// for a test in a [testing/synctest] bubble, and [New] for code without a testing.TB.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := New()
	t.Cleanup(s.Close)
	return s
}

// New starts a Server, for code that has no testing.TB: an Example function, a demo program.
// Call [Server.Close] when done; in a test, call [NewServer], which does that for you.
func New() *Server {
	s := newServer()
	s.URL = s.fake.Start()
	s.HelixURL = s.fake.HelixURL()
	s.browser = newBrowser(s.URL, nil)
	return s
}

// newServer returns a Server that is not serving yet.
func newServer() *Server {
	s := &Server{fake: faketwitch.New(), users: map[string]bool{UserID: true}}
	s.fake.AccessTokenTTL = tokenLifetime
	s.fake.DeviceInterval = deviceInterval
	s.fake.Now = s.now
	return s
}

// Close stops the server: requests still waiting for an answer (see [Server.Hang]) fail. It is
// safe to call more than once.
func (s *Server) Close() {
	s.fake.Close()
	s.browser.CloseIdleConnections()
}

// Client returns a new [twitchoauth.Client] of the Server's confidential app ([ClientID],
// [ClientSecret]) with AuthBaseURL set to the Server's URL and HelixBaseURL to its HelixURL. Each
// call returns a new Client, so a test may set its Logger or HTTPClient.
func (s *Server) Client() *twitchoauth.Client {
	return s.client(ClientID, ClientSecret)
}

// client returns a Client of the app with this ID and secret, reaching the Server.
func (s *Server) client(id, secret string) *twitchoauth.Client {
	c := twitchoauth.NewClient(id, secret)
	c.AuthBaseURL, c.HelixBaseURL = s.URL, s.HelixURL
	if s.mem != nil {
		c.HTTPClient = &http.Client{Transport: s.mem}
	}
	return c
}

// PublicClient returns a new [twitchoauth.Client] of the Server's public app ([PublicClientID], no
// secret), as a program without a secret uses for the device flow. Its refresh tokens work once.
func (s *Server) PublicClient() *twitchoauth.Client {
	return s.client(PublicClientID, "")
}

// now is the server's clock: the wall clock, moved forward by Advance.
func (s *Server) now() time.Time { return time.Now().Add(time.Duration(s.skew.Load())) }

// AddUser registers a Twitch user, or renames one the server knows. Its email, in /userinfo, is
// login@example.com. An empty userID or login panics.
func (s *Server) AddUser(userID, login string) {
	if userID == "" || login == "" {
		panic(fmt.Sprintf("twitchoauthtest: AddUser(%q, %q): a user needs an ID and a login", userID, login))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fake.AddUser(userID, login, login+"@example.com")
	s.users[userID] = true
}

// AuthorizeAs makes this user, registered as by [Server.AddUser], the one who logs in on the
// consent page (a [twitchoauth.UserAuthenticator]'s browser login) and who approves or denies
// devices (a [twitchoauth.CodeFlow]). Until it is called, that is [UserID].
func (s *Server) AuthorizeAs(userID, login string) {
	s.AddUser(userID, login)
	s.fake.SetAuthorizeUser(userID)
}

// DenyAuthorize makes the user decline on the consent page from now on, when deny is true: the
// browser is sent back with error=access_denied, as when the user clicks Cancel, and
// [twitchoauth.UserAuthenticator.Authenticate] fails with an error that Is
// [twitchoauth.ErrAccessDenied]. DenyAuthorize(false) makes them approve again.
func (s *Server) DenyAuthorize(deny bool) { s.fake.SetDeny(deny) }

// ApproveDevice approves the device code login with this user code, as the [Server.AuthorizeAs]
// user does on Twitch's activation page: the next poll of [twitchoauth.CodeFlow.WaitForAuthComplete]
// gets the token. It fails for a user code the server did not hand out, or that has expired.
func (s *Server) ApproveDevice(userCode string) error {
	return deviceErr("ApproveDevice", s.fake.ApproveDevice(userCode))
}

// DenyDevice denies the device code login with this user code: the next poll ends with an error
// that Is [twitchoauth.ErrAccessDenied]. It fails like [Server.ApproveDevice].
func (s *Server) DenyDevice(userCode string) error {
	return deviceErr("DenyDevice", s.fake.DenyDevice(userCode))
}

func deviceErr(method string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("twitchoauthtest: %s: %s", method, strings.TrimPrefix(err.Error(), "faketwitch: "))
}

// IssueUserToken returns a token of the confidential app for this user with these scopes, as a
// login would have got it: an access token that lives 4 hours (its Expiry says so), a refresh
// token, TokenType "bearer", and the scopes readable with [twitchoauth.TokenScopes]. It makes no
// request. From then on, Get Authorization By User says the user authorized the app with these
// scopes (and those of their other logins that still stand), until [Server.Revoke]. The user must
// be [UserID] or one added with [Server.AddUser]; another panics.
func (s *Server) IssueUserToken(userID string, scopes ...twitchoauth.Scope) *oauth2.Token {
	s.mu.Lock()
	known := s.users[userID]
	s.mu.Unlock()
	if !known {
		panic(fmt.Sprintf("twitchoauthtest: IssueUserToken: no user %q: register it with AddUser first", userID))
	}
	names := make([]string, len(scopes))
	for i, sc := range scopes {
		names[i] = string(sc)
	}
	expiry := time.Now().Add(tokenLifetime) // before the server's, so never later than it
	access, refresh := s.fake.IssueToken(ClientID, userID, names, tokenLifetime)
	tok := &oauth2.Token{AccessToken: access, RefreshToken: refresh, TokenType: "bearer", Expiry: expiry}
	if len(names) > 0 {
		tok = tok.WithExtra(map[string]any{"scope": names})
	}
	return tok
}

// Expire makes an access token invalid before its Expiry, as when Twitch ends it early: /validate
// and [Server.RequireToken] refuse it, and its refresh token keeps working. A token the server never
// issued panics.
func (s *Server) Expire(accessToken string) {
	if _, ok := s.fake.TokenInfo(accessToken); !ok {
		panic("twitchoauthtest: Expire: not an access token this server issued")
	}
	s.fake.ExpireAccessToken(accessToken)
}

// ExpireAll makes every access token issued so far invalid, as if their 4 hours had passed; refresh
// tokens keep working. The code under test still reads its own clock, so a token it holds looks
// valid to it until Twitch says otherwise.
func (s *Server) ExpireAll() { s.fake.ExpireAccessTokens() }

// Revoke ends the login that token (an access or a refresh token this server issued) belongs to,
// as when the user disconnects the app or changes their password: every access token of that
// login is refused, including those issued by refreshes since, and every refresh is answered 400
// "Invalid refresh token", which [twitchoauth] reports as [twitchoauth.ErrInvalidRefreshToken].
// The user's other logins are untouched. A token the server never issued panics.
func (s *Server) Revoke(token string) {
	if !s.fake.RevokeGrant(token) {
		panic("twitchoauthtest: Revoke: not a token this server issued")
	}
}

// Advance moves the server's clock forward by d, and only the server's: authorization codes (10
// minutes), device codes (30 minutes), access tokens (4 hours) and a public client's refresh
// tokens (30 days unused) that would expire within d have expired, and /validate counts down from
// the new time. The code under test keeps reading the real clock, so a token it holds still looks
// fresh to it: its next /validate says 401, and it must find out the way it would find a token
// Twitch ended early. To move the clock both sides read, so that the code sees its token expire
// and refreshes it, use a Server from [NewInMemory] inside a [testing/synctest] bubble and sleep.
// A negative d panics.
func (s *Server) Advance(d time.Duration) {
	if d < 0 {
		panic(fmt.Sprintf("twitchoauthtest: Advance(%v): the clock only moves forward", d))
	}
	s.skew.Add(int64(d))
}
