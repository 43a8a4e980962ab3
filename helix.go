package twitchoauth

import (
	"errors"
	"io"
	"net/http"

	"golang.org/x/oauth2"
)

// helixClient returns the client of HTTPClient: see [UserTokenSource.HTTPClient].
func (tc *tokenCache) helixClient(owner renewer) *http.Client {
	base := tc.c.httpClient()
	rt := base.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	return &http.Client{
		Transport: &bearerTransport{src: tc, owner: owner, base: rt},
		Timeout:   base.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("twitchoauth: stopped after 10 redirects")
			}
			if req.URL.Host != via[0].URL.Host || (via[0].URL.Scheme == "https" && req.URL.Scheme != "https") {
				return http.ErrUseLastResponse // the token stays with the host, and encrypted
			}
			return nil
		},
	}
}

// bearerTransport sends the token of src with every request, and renews it when Twitch says an
// answer's 401 means the token died.
type bearerTransport struct {
	src   *tokenCache
	owner renewer // src's owner
	base  http.RoundTripper
}

func (t *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	orig := req
	req, err := checkTokenKind(req, t.src.isApp())
	if err != nil {
		closeBody(orig)
		return nil, err
	}
	tok, err := t.src.token(ctx, t.owner)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := t.base.RoundTrip(t.authorize(req, tok))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	// Another replica may have refreshed the token already: the store is read first, and its
	// token, if newer, used without asking Twitch anything.
	newer := t.owner.newerStored(ctx, tok)
	if newer == nil && (t.src.reader() || !t.src.rejected(ctx, tok)) {
		// A missing scope, or no verdict; or a reader, which asks Twitch nothing: the caller sees
		// Helix's 401.
		return resp, nil
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return resp, nil // the body is spent and cannot be sent again
	}
	if newer != nil {
		tok = newer
	} else if tok, err = t.src.forceRefresh(ctx, tok, t.owner); err != nil {
		return resp, nil // the caller sees Helix's 401
	}
	retry := t.authorize(req, tok)
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		retry.Body = body
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxBodySize))
	resp.Body.Close()
	return t.base.RoundTrip(retry)
}

// authorize returns a copy of req with the token's headers; a RoundTripper must not modify req.
func (t *bearerTransport) authorize(req *http.Request, tok *oauth2.Token) *http.Request {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	r.Header.Set("Client-Id", t.src.c.ClientID)
	return r
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
