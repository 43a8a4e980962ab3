package twitchoauth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth/internal/wire"
)

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

func toScopes(ss []string) []Scope {
	if len(ss) == 0 {
		return nil
	}
	out := make([]Scope, len(ss))
	for i, s := range ss {
		out[i] = Scope(s)
	}
	return out
}
