package twitchoauth

import (
	"context"
	"net/http"

	"golang.org/x/oauth2"
)

// AppTokenSource keeps an app access token (the client credentials grant) for the Helix calls
// that take one: EventSub webhook and conduit subscriptions, and reads that need no user
// (twurple: AppTokenAuthProvider). It implements [oauth2.TokenSource] and is safe for concurrent
// use: concurrent callers share one fetch, the token is fetched again when it expires or when
// Twitch says a token Helix refused is dead, and a failed fetch is shared by the callers that
// waited for it (the next call tries again). The Client needs its ClientSecret.
//
// Tokens it returns are shared; do not modify them.
type AppTokenSource struct {
	tokenCache
}

// NewAppTokenSource returns a source of c's app access token. It fetches none until first asked.
func NewAppTokenSource(c *Client) *AppTokenSource {
	s := &AppTokenSource{}
	s.init(c, nil)
	s.state().app = true
	return s
}

// flushLocked persists nothing: an app token is not kept.
func (s *AppTokenSource) flushLocked(context.Context, bool) error { return nil }

// newerStored finds nothing: an app token is not stored.
func (s *AppTokenSource) newerStored(context.Context, *oauth2.Token) *oauth2.Token { return nil }

// renew gets a new app token; s.refreshing is held.
func (s *AppTokenSource) renew(ctx context.Context, _ *oauth2.Token) (*oauth2.Token, error) {
	tok, err := s.c.AppAccessToken(ctx)
	if err != nil {
		return nil, err
	}
	s.publish(tok)
	return tok, nil
}

// Token returns the cached app token while it is valid, and fetches one otherwise. It is the
// [oauth2.TokenSource] method, for code that takes a token source; code of your own, which has a
// context, calls [AppTokenSource.TokenContext].
func (s *AppTokenSource) Token() (*oauth2.Token, error) {
	return s.token(context.Background(), s)
}

// TokenContext is [AppTokenSource.Token] with a context for the fetch, if one is needed: the call
// to make wherever a context is at hand.
func (s *AppTokenSource) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	return s.token(ctx, s)
}

// HTTPClient returns an *http.Client for Twitch's Helix API that sends the app token, as
// [UserTokenSource.HTTPClient] does the user's: "Authorization: Bearer" and "Client-Id" on every
// request; on a 401 it asks Twitch whether the token is still valid, passes the answer on when
// it is, and otherwise fetches a new token once and sends the request again.
func (s *AppTokenSource) HTTPClient() *http.Client {
	return s.helixClient(s)
}

// IRCPassword returns the password Twitch's IRC chat takes for a user token: "oauth:" and the
// access token ("" for a nil token). It is a secret: never log it.
func IRCPassword(tok *oauth2.Token) string {
	if tok == nil {
		return ""
	}
	return "oauth:" + tok.AccessToken
}
