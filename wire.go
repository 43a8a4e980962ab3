package twitchoauth

// The calls to Twitch's identity server (token, validate, revoke, userinfo) and to Helix: how a
// request is sent and its answer read, and the Client's methods that make each call.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth/internal/wire"
)

// endpointURL returns the URL of an endpoint ("token", "validate", ...) under AuthBaseURL.
func (c *Client) endpointURL(endpoint string) string {
	base := c.AuthBaseURL
	if base == "" {
		base = DefaultAuthBaseURL
	}
	return strings.TrimRight(base, "/") + "/" + endpoint
}

// helixURL returns the URL of a Helix endpoint ("authorization/users") under HelixBaseURL.
func (c *Client) helixURL(endpoint string) string {
	base := c.HelixBaseURL
	if base == "" {
		base = DefaultHelixBaseURL
	}
	return strings.TrimRight(base, "/") + "/" + endpoint
}

// request is one call to the identity server, or to Helix. Secrets lists the sensitive values it
// carries, which are scrubbed from any error it produces (the client secret always is).
type request struct {
	endpoint string
	method   string
	form     url.Values // sent as an application/x-www-form-urlencoded body
	query    url.Values // only for twitch-cli's mock, which reads nothing else, and the consent page
	auth     string     // the Authorization header
	// helix sends the request to endpoint under HelixBaseURL, with a Client-Id header.
	helix   bool
	secrets []string
	// spends is set for a request that spends a single-use credential (a refresh token): its
	// sending is traced, so that a failure after it was sent whole is told apart (errAnswerLost).
	spends bool
	// redirects makes a 3xx answer a success with no body, as the consent page's redirects are.
	redirects bool
}

// errAnswerLost: a request was sent whole and its answer never came, or came cut short: the
// server may have acted on it (spent the refresh token it carried).
var errAnswerLost = errors.New("twitchoauth: the request was sent but its answer was lost")

// lostAnswer wraps the error of a request that may have been acted on; it Is errAnswerLost.
type lostAnswer struct{ err error }

func (e *lostAnswer) Error() string { return e.err.Error() + " (after the request was sent)" }

func (e *lostAnswer) Unwrap() error { return e.err }

func (e *lostAnswer) Is(t error) bool { return t == errAnswerLost }

// sendTrace records how far a request got: whether a connection was asked for, had, and the
// request written whole on it.
type sendTrace struct {
	getConn, gotConn, wrote atomic.Bool
}

func (st *sendTrace) trace(ctx context.Context) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GetConn: func(string) { st.getConn.Store(true) },
		GotConn: func(httptrace.GotConnInfo) { st.gotConn.Store(true) },
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				st.wrote.Store(true)
			}
		},
	})
}

// maySent reports whether a request that failed with err may have reached the server whole. A
// transport that reports its progress (net/http's) says so; for one that does not, only a failure
// to dial or resolve shows that nothing left.
func (st *sendTrace) maySent(err error) bool {
	switch {
	case st.wrote.Load():
		return true
	case st.gotConn.Load():
		return false // a connection, and no whole request written on it
	case st.getConn.Load():
		return false // a connection asked for and never had (a TLS handshake or proxy that failed)
	}
	var op *net.OpError
	var dns *net.DNSError
	return !(errors.As(err, &op) && op.Op == "dial") && !errors.As(err, &dns)
}

// do sends r and returns the answer's status and body when it is a 2xx; otherwise an error from
// [checkResponse] or [transportError]. The body is read to its end (at most maxBodySize) and closed,
// so that the connection is reused. No error's text holds r's secrets or the client secret.
func (c *Client) do(ctx context.Context, r request) ([]byte, error) {
	var body io.Reader
	if r.form != nil {
		body = strings.NewReader(r.form.Encode())
	}
	u := c.endpointURL(r.endpoint)
	if r.helix {
		u = c.helixURL(r.endpoint)
	}
	if r.query != nil {
		u += "?" + r.query.Encode()
	}
	secrets := append(slices.Clip(r.secrets), c.ClientSecret)
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		// Only a malformed AuthBaseURL (or HelixBaseURL) gets here; url errors quote the URL,
		// which holds no secret except for the mock's query, so name the endpoint instead.
		msg := "cannot build request: bad AuthBaseURL"
		if r.helix {
			msg = "cannot build request: bad HelixBaseURL"
		}
		return nil, &APIError{Endpoint: r.endpoint, Message: msg,
			cause: scrubError(errors.Unwrap(err), secrets)}
	}
	if r.form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	if r.helix {
		req.Header.Set("Client-Id", c.ClientID)
	}
	req.Header.Set("Accept", "application/json")
	var sent *sendTrace
	if r.spends {
		sent = new(sendTrace)
		req = req.WithContext(sent.trace(ctx))
	}
	h := c.hooks()
	if h != nil {
		if hctx := c.requestStart(ctx, h, req, r.endpoint); hctx != ctx {
			ctx = hctx
			req = req.WithContext(ctx)
		}
	}
	start := time.Now()
	resp, err := c.identityClient().Do(req)
	if err != nil {
		err = transportError(ctx, r.endpoint, err, secrets...)
		if sent != nil && sent.maySent(err) {
			err = &lostAnswer{err}
		}
		if h != nil {
			requestEnd(ctx, h, req, r.endpoint, 0, start, err)
		}
		return nil, err
	}
	defer resp.Body.Close()
	data, readErr := io.ReadAll(io.LimitReader(resp.Body, maxBodySize+1))
	if log := c.Logger; log != nil {
		log.LogAttrs(ctx, slog.LevelDebug, "twitchoauth: request",
			slog.String("endpoint", r.endpoint), slog.Int("status", resp.StatusCode),
			slog.Duration("duration", time.Since(start)))
	}
	if readErr != nil && ctx.Err() != nil {
		err = transportError(ctx, r.endpoint, readErr, secrets...)
	} else if r.redirects && resp.StatusCode >= 300 && resp.StatusCode < 400 {
		data = nil
	} else if data, err = checkResponse(r.endpoint, resp.StatusCode, data, readErr, secrets); err != nil {
		if ae, ok := err.(*APIError); ok {
			ae.RetryAfter = retryAfter(resp.Header, time.Now())
		}
	}
	// A success cut short: the server acted on the request, and its answer is lost.
	if err != nil && r.spends && readErr != nil && resp.StatusCode >= 200 && resp.StatusCode < 300 {
		err = &lostAnswer{err}
	}
	if h != nil {
		requestEnd(ctx, h, req, r.endpoint, resp.StatusCode, start, err)
	}
	return data, err
}

// postToken posts form to the token endpoint and decodes the token it answers. Secrets are the
// sensitive values form carries besides the client secret.
func (c *Client) postToken(ctx context.Context, form url.Values, secrets ...string) (*oauth2.Token, error) {
	body, err := c.do(ctx, request{endpoint: "token", method: http.MethodPost, form: form, secrets: secrets})
	if err != nil {
		return nil, err
	}
	return decodeToken("token", body)
}

// Validation is what GET /validate says of an access token
// (https://dev.twitch.tv/docs/authentication/validate-tokens/).
type Validation struct {
	ClientID  string        // the client the token was issued to
	Login     string        // the user's login; "" for an app token
	UserID    string        // the user's ID; "" for an app token
	Scopes    []Scope       // the scopes granted
	ExpiresIn time.Duration // time left; 0 for a token that never expires, negative for one already expired
}

// IsUserToken reports whether the token belongs to a user (it names a login and a user ID) rather
// than to the app.
func (v *Validation) IsUserToken() bool { return v.UserID != "" && v.Login != "" }

// UserInfo holds the OIDC claims of GET /userinfo
// (https://dev.twitch.tv/docs/authentication/getting-tokens-oidc/#getting-claims-information-from-an-access-token).
type UserInfo struct {
	Subject           string         // "sub": the user ID
	PreferredUsername string         // "preferred_username": the display login
	Email             string         // "email", when the email claim was requested
	EmailVerified     bool           // "email_verified"
	Picture           string         // "picture": the profile image URL
	Raw               map[string]any // every claim as sent
}

// RefreshAccessToken trades a refresh token for a new token pair
// (https://dev.twitch.tv/docs/authentication/refresh-tokens/). Store the refresh token that comes
// back: it may differ, and a public client's is single-use. When the answer carries no refresh
// token, the returned token keeps refreshToken (RFC 6749 section 6). A public client (no secret)
// refreshes without sending one. A rejected refresh token gives an error that Is
// [ErrInvalidRefreshToken]; a 401 or 403 one that Is [ErrUnauthorized]. It sends the request once:
// a refresh token whose answer was lost may have been spent, so whether to send it again is the
// caller's call (see [UserTokenSource]).
func (c *Client) RefreshAccessToken(ctx context.Context, refreshToken string) (*oauth2.Token, error) {
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {refreshToken},
		"client_id":     {c.ClientID},
	}
	if c.ClientSecret != "" {
		form.Set("client_secret", c.ClientSecret)
	}
	body, err := c.do(ctx, request{endpoint: "token", method: http.MethodPost, form: form,
		secrets: []string{refreshToken}, spends: true})
	if err != nil {
		return nil, err
	}
	tok, err := decodeToken("token", body)
	if err != nil {
		return nil, &lostAnswer{err} // Twitch took the refresh token; its answer is unusable
	}
	// An answer without a refresh token leaves the one sent in force (RFC 6749 section 6, as
	// golang.org/x/oauth2 reads it): dropping it would force a login while it still works.
	if tok.RefreshToken == "" {
		tok.RefreshToken = refreshToken
	}
	return tok, nil
}

// AppAccessToken gets an app access token with the client credentials grant
// (https://dev.twitch.tv/docs/authentication/getting-tokens-oauth/#client-credentials-grant-flow).
// It needs ClientSecret. The token has no refresh token: get a new one when it expires.
func (c *Client) AppAccessToken(ctx context.Context) (*oauth2.Token, error) {
	return c.postToken(ctx, url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {c.ClientID},
		"client_secret": {c.ClientSecret},
	})
}

// exchangeCode trades an authorization code for a token; redirectURI must be the one the authorize
// URL named.
func (c *Client) exchangeCode(ctx context.Context, code, redirectURI string) (*oauth2.Token, error) {
	return c.postToken(ctx, url.Values{
		"grant_type":    {"authorization_code"},
		"client_id":     {c.ClientID},
		"client_secret": {c.ClientSecret},
		"code":          {code},
		"redirect_uri":  {redirectURI},
	}, code)
}

// ValidateToken asks Twitch whether accessToken is valid and what it grants. Twitch requires apps
// to do this at start-up and hourly. An invalid, expired or revoked token gives an error that Is
// [ErrInvalidToken] (pyTwitchAPI returns the 401 answer instead).
//
// It asks about this one access token as it is and changes nothing. For a token a
// [UserTokenSource] holds, call [UserTokenSource.Validate], which also refreshes a token Twitch
// ended (and [UserTokenSource.KeepValidated] or [UserTokens.Run] for the hourly validation).
func (c *Client) ValidateToken(ctx context.Context, accessToken string) (*Validation, error) {
	h := c.hooks()
	if h == nil || h.Validation == nil {
		return c.validateToken(ctx, accessToken)
	}
	start := time.Now()
	v, err := c.validateToken(ctx, accessToken)
	e := ValidationEvent{Duration: time.Since(start), Err: err}
	e.Outcome, e.Status = validationOutcome(ctx, err)
	if v != nil {
		e.UserID = v.UserID
	}
	h.Validation(ctx, e)
	return v, err
}

// validateToken is ValidateToken, unobserved.
func (c *Client) validateToken(ctx context.Context, accessToken string) (*Validation, error) {
	body, err := c.do(ctx, request{endpoint: "validate", method: http.MethodGet,
		auth: "OAuth " + accessToken, secrets: []string{accessToken}})
	if err != nil {
		return nil, err
	}
	v, err := wire.ParseValidation(body)
	if err != nil {
		return nil, answerError("validate", err)
	}
	return &Validation{
		ClientID:  v.ClientID,
		Login:     v.Login,
		UserID:    v.UserID,
		Scopes:    toScopes(v.Scopes),
		ExpiresIn: time.Duration(v.ExpiresIn) * time.Second,
	}, nil
}

// GetUserInfo returns the OIDC claims of the user accessToken belongs to. An invalid token, or an app
// token, gives an error that Is [ErrInvalidToken].
func (c *Client) GetUserInfo(ctx context.Context, accessToken string) (*UserInfo, error) {
	body, err := c.do(ctx, request{endpoint: "userinfo", method: http.MethodGet,
		auth: "Bearer " + accessToken, secrets: []string{accessToken}})
	if err != nil {
		return nil, err
	}
	claims, err := wire.ParseClaims(body)
	if err != nil {
		return nil, answerError("userinfo", err)
	}
	str := func(k string) string { s, _ := claims[k].(string); return s }
	verified, _ := claims["email_verified"].(bool)
	return &UserInfo{
		Subject:           str("sub"),
		PreferredUsername: str("preferred_username"),
		Email:             str("email"),
		EmailVerified:     verified,
		Picture:           str("picture"),
		Raw:               claims,
	}, nil
}

// RevokeToken revokes accessToken (https://dev.twitch.tv/docs/authentication/revoke-tokens/). It
// returns nil only when Twitch answered 200 (pyTwitchAPI: True); a token that was already invalid
// gives an error that Is [ErrInvalidToken] (pyTwitchAPI: False).
func (c *Client) RevokeToken(ctx context.Context, accessToken string) error {
	_, err := c.do(ctx, request{endpoint: "revoke", method: http.MethodPost,
		form: url.Values{"client_id": {c.ClientID}, "token": {accessToken}}, secrets: []string{accessToken}})
	return err
}

// decodeToken turns a token answer into an *oauth2.Token with Expiry set from expires_in and the
// granted scopes readable with [TokenScopes].
func decodeToken(endpoint string, body []byte) (*oauth2.Token, error) {
	t, err := wire.ParseToken(body)
	if err != nil {
		return nil, answerError(endpoint, err)
	}
	// Only a bearer token can be sent as Twitch expects; anything else, or a value that would
	// end up in a header with control characters, is refused rather than used. The values are
	// not quoted: a hostile server could echo a secret in them.
	switch {
	case t.TokenType != "" && !strings.EqualFold(t.TokenType, "bearer"):
		return nil, answerError(endpoint, errors.New("token_type is not bearer"))
	case hasControl(t.AccessToken) || hasControl(t.RefreshToken):
		return nil, answerError(endpoint, errors.New("token holds control characters"))
	}
	tok := &oauth2.Token{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, TokenType: "bearer"}
	// A negative expires_in means the token is already expired, not that it never expires
	// (which is what 0, or no expires_in, says).
	if t.ExpiresIn != 0 {
		tok.Expiry = time.Now().Add(time.Duration(t.ExpiresIn) * time.Second)
	}
	tok = withScopes(tok, toScopes(t.Scope))
	if t.IDToken != "" {
		// Where golang.org/x/oauth2 keeps it too: tok.Extra("id_token").
		tok = tok.WithExtra(map[string]any{"scope": tok.Extra("scope"), "id_token": t.IDToken})
	}
	return tok, nil
}

// hasControl reports whether s holds a control character (CR and LF among them).
func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}
