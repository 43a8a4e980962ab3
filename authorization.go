package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth/internal/wire"
)

// authorizationsEndpoint is the Helix endpoint of Get Authorization By User, under HelixBaseURL; it
// is also the Endpoint of its errors.
const authorizationsEndpoint = "authorization/users"

// MaxAuthorizationUsers is how many users one call of Twitch's Get Authorization By User may
// name; [Client.UserAuthorizations] asks in batches of this many.
const MaxAuthorizationUsers = 10

// UserAuthorization is what Twitch says a user has granted the app: Get Authorization By User
// (https://dev.twitch.tv/docs/api/reference/#get-authorization-by-user). It holds no token.
type UserAuthorization struct {
	// UserID is the user's ID, as asked for.
	UserID string `json:"user_id"`
	// Login is the user's login name; Name their display name. Both are "" for a user Twitch did
	// not list.
	Login string `json:"user_login,omitempty"`
	Name  string `json:"user_name,omitempty"`
	// Scopes are every scope the user has granted the app; nil when they granted none.
	Scopes []Scope `json:"scopes"`
	// HasAuthorized says whether the user has authorized the app (and not disconnected it since).
	HasAuthorized bool `json:"has_authorized"`
	// Unknown says Twitch did not list the user at all: no user has this ID (any more: a deleted
	// or banned account, or an ID that never was one). HasAuthorized is then false.
	Unknown bool `json:"unknown,omitempty"`
}

// UserAuthorizations asks Twitch which scopes each of these users has granted the app (Helix's
// Get Authorization By User) and returns one [UserAuthorization] for each ID, in the order given
// (an ID given twice is asked for once and answered twice). It sends a request for every
// [MaxAuthorizationUsers] distinct IDs, one after the other, to HelixBaseURL through HTTPClient,
// with app's token: an app access token of this Client's app, such as an [AppTokenSource]'s (a
// user token is refused). Given an *AppTokenSource, a token Twitch refuses with 401 is checked
// and, when dead, fetched again once, as [AppTokenSource.HTTPClient] does.
//
// Twitch leaves out of its answer the IDs that name no user; those come back with Unknown set and
// HasAuthorized false. An empty ID is refused before anything is sent. No IDs: nil, and nothing
// sent.
//
// A refused answer is an [*APIError] with Endpoint "authorization/users": a 401 (an invalid app
// token, a user token, or another app's) Is [ErrInvalidToken]; a 429 carries Twitch's wait in
// RetryAfter. On an error, the authorizations of the batches answered before it are returned with
// it, in the order given, so that a caller can go on from the first ID it lacks. A caller
// checking many users at a pace of its own sends one batch per call; [UserTokens.Audit] does.
func (c *Client) UserAuthorizations(ctx context.Context, app oauth2.TokenSource, userIDs ...string) ([]UserAuthorization, error) {
	if len(userIDs) == 0 {
		return nil, nil
	}
	if app == nil {
		return nil, errors.New("twitchoauth: authorization/users: no app token source")
	}
	for _, id := range userIDs {
		if id == "" {
			return nil, errors.New("twitchoauth: authorization/users: empty user ID")
		}
	}
	got := make(map[string]UserAuthorization, len(userIDs))
	out := make([]UserAuthorization, 0, len(userIDs))
	// answered appends the IDs from out's end on that got holds, and reports whether all of them.
	answered := func() bool {
		for _, id := range userIDs[len(out):] {
			a, ok := got[id]
			if !ok {
				return false
			}
			out = append(out, a)
		}
		return true
	}
	batch := make([]string, 0, MaxAuthorizationUsers)
	asked := make(map[string]bool, len(userIDs))
	for i, id := range userIDs {
		if !asked[id] {
			asked[id] = true
			batch = append(batch, id)
		}
		if len(batch) < MaxAuthorizationUsers && i < len(userIDs)-1 {
			continue
		}
		if len(batch) == 0 {
			break
		}
		as, err := c.authorizationBatch(ctx, app, batch)
		if err != nil {
			answered()
			return out, err
		}
		for _, a := range as {
			got[a.UserID] = a
		}
		batch = batch[:0]
	}
	answered()
	return out, nil
}

// authorizationBatch sends one Get Authorization By User for ids (distinct, at most
// MaxAuthorizationUsers) and returns an authorization for each, in their order.
func (c *Client) authorizationBatch(ctx context.Context, app oauth2.TokenSource, ids []string) ([]UserAuthorization, error) {
	tok, err := sourceToken(ctx, app)
	if err != nil {
		return nil, fmt.Errorf("twitchoauth: authorization/users: get the app token: %w", err)
	}
	body, err := c.getAuthorizations(ctx, tok, ids)
	if s, ok := app.(*AppTokenSource); ok && isStatus(err, http.StatusUnauthorized) && s.rejected(ctx, tok) {
		// The app token died before its time (Twitch ended it): fetch a new one and ask once more.
		if tok, rerr := s.forceRefresh(ctx, tok, s); rerr == nil {
			body, err = c.getAuthorizations(ctx, tok, ids)
		}
	}
	if err != nil {
		return nil, err
	}
	as, err := wire.ParseUserAuthorizations(body)
	if err != nil {
		return nil, answerError(authorizationsEndpoint, err)
	}
	listed := make(map[string]wire.UserAuthorization, len(as))
	for _, a := range as {
		listed[a.UserID] = a
	}
	out := make([]UserAuthorization, len(ids))
	for i, id := range ids {
		a, ok := listed[id]
		if !ok {
			out[i] = UserAuthorization{UserID: id, Unknown: true}
			continue
		}
		out[i] = UserAuthorization{UserID: id, Login: a.UserLogin, Name: a.UserName,
			Scopes: toScopes(a.Scopes), HasAuthorized: a.HasAuthorized}
	}
	return out, nil
}

// getAuthorizations sends GET authorization/users?user_id=...&user_id=... with tok.
func (c *Client) getAuthorizations(ctx context.Context, tok *oauth2.Token, ids []string) ([]byte, error) {
	return c.do(ctx, request{endpoint: authorizationsEndpoint, method: http.MethodGet, helix: true,
		query: url.Values{"user_id": ids}, auth: "Bearer " + tok.AccessToken, secrets: []string{tok.AccessToken}})
}

// sourceToken returns src's token, with ctx when src takes one ([AppTokenSource] and
// [UserTokenSource] do). A token without an access token, or one holding control characters,
// is an error: it cannot be sent.
func sourceToken(ctx context.Context, src oauth2.TokenSource) (*oauth2.Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var tok *oauth2.Token
	var err error
	if cs, ok := src.(interface {
		TokenContext(context.Context) (*oauth2.Token, error)
	}); ok {
		tok, err = cs.TokenContext(ctx)
	} else {
		tok, err = src.Token()
	}
	switch {
	case err != nil:
		return nil, err
	case tok == nil || tok.AccessToken == "":
		return nil, errors.New("the source gave no access token")
	case hasControl(tok.AccessToken):
		return nil, errors.New("the source's access token holds control characters")
	}
	return tok, nil
}

// isStatus reports whether err is an [*APIError] with this HTTP status.
func isStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == status
}
