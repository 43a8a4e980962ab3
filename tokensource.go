package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// expiryMargin is how long before its Expiry a token counts as expired, so that a request sent with
// it does not arrive after it died.
const expiryMargin = time.Minute

// UserTokenSource keeps one user's token fresh (pyTwitchAPI: Twitch.set_user_authentication with
// auto_refresh_auth and user_auth_refresh_callback). It implements [oauth2.TokenSource] and is safe for
// concurrent use: callers share the cached token, and when it expires exactly one of them refreshes it
// while the others wait for the result.
//
// Tokens it returns are shared; do not modify them.
type UserTokenSource struct {
	c         *Client
	onRefresh func(*oauth2.Token) error

	// store, when set, is where the token lives: refreshes take its lock, adopt a token another
	// replica stored, and save the new pair there (see [TokenStore]).
	store   TokenStore
	key     string
	lockTTL time.Duration

	cur atomic.Pointer[oauth2.Token] // the cached token, read without the lock

	// refreshing is a lock held across a refresh: a one-slot channel, so that a caller waiting
	// for another's refresh can give up when its ctx ends.
	refreshing chan struct{}
	attempts   atomic.Uint64 // refresh attempts finished so far; written under refreshing
	lastErr    error         // the last attempt's error, unless its caller's ctx ended; guarded by refreshing
}

// NewUserTokenSource returns a source that starts from tok and refreshes it with its refresh token
// when it expires. onRefresh, if not nil, is called with every new token, synchronously and in order,
// before any caller sees it: persist the new pair there (the refresh token may have changed, and a
// public client's old one is dead). If onRefresh fails, the new token is still used, and that
// Token call returns the error.
func NewUserTokenSource(c *Client, tok *oauth2.Token, onRefresh func(*oauth2.Token) error) *UserTokenSource {
	s := &UserTokenSource{c: c, onRefresh: onRefresh, refreshing: make(chan struct{}, 1)}
	if tok != nil {
		s.cur.Store(tok)
	}
	return s
}

// NewStoreTokenSource returns a source for the token kept in store under key, for programs that
// run as several replicas or hold many users' tokens (the key is usually the user ID). tok is the
// token as last known (nil: read it from the store on first use). When the token expires, the
// source takes the key's lock, reloads it, adopts a fresh token another replica stored, and only
// otherwise refreshes and saves the new pair, all before releasing the lock: two replicas never
// send the same refresh token.
func NewStoreTokenSource(c *Client, store TokenStore, key string, tok *oauth2.Token) *UserTokenSource {
	s := NewUserTokenSource(c, tok, nil)
	s.store, s.key, s.lockTTL = store, key, DefaultLockTTL
	return s
}

// fresh reports whether tok can be used now. It compares wall clock times (Round(0) drops the
// monotonic reading, which Before would otherwise prefer): the monotonic clock stops while the
// machine sleeps, and a bot on a laptop woken hours later must not trust a token that died
// meanwhile.
func fresh(tok *oauth2.Token) bool {
	return tok != nil && tok.AccessToken != "" &&
		(tok.Expiry.IsZero() || time.Now().Round(0).Add(expiryMargin).Before(tok.Expiry))
}

// Token returns the cached token while it is valid and refreshes it otherwise. A refresh that
// Twitch rejects gives an error that Is [ErrInvalidRefreshToken]: the user must log in again.
// After a transient failure the source stays usable, and the next call tries again.
func (s *UserTokenSource) Token() (*oauth2.Token, error) {
	if tok := s.cur.Load(); fresh(tok) {
		return tok, nil
	}
	return s.refresh(context.Background(), nil)
}

// TokenContext is [UserTokenSource.Token] with a context for the refresh, if one is needed.
func (s *UserTokenSource) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	if tok := s.cur.Load(); fresh(tok) {
		return tok, nil
	}
	return s.refresh(ctx, nil)
}

// ForceRefresh refreshes the token now, unless another caller already replaced stale, the token
// the caller found wanting (nil: the current one). Use it when Twitch rejected a token that has
// not reached its Expiry.
func (s *UserTokenSource) ForceRefresh(ctx context.Context, stale *oauth2.Token) (*oauth2.Token, error) {
	if stale == nil {
		stale = s.cur.Load()
		if stale == nil {
			stale = &oauth2.Token{}
		}
	}
	return s.refresh(ctx, stale)
}

// refresh gets a new token unless the cached one will do: it is fresh and, when stale is given,
// not stale. Waiting for another caller's refresh ends when ctx does. Callers that waited for the lock while an attempt failed get that attempt's error
// instead of trying again at once, unless it failed because its own caller's ctx ended.
func (s *UserTokenSource) refresh(ctx context.Context, stale *oauth2.Token) (*oauth2.Token, error) {
	seen := s.attempts.Load()
	select {
	case s.refreshing <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("twitchoauth: wait for token refresh: %w", ctx.Err())
	}
	defer func() { <-s.refreshing }()
	if tok := s.cur.Load(); fresh(tok) && (stale == nil || tok != stale) {
		return tok, nil
	}
	if s.attempts.Load() != seen && s.lastErr != nil {
		return nil, s.lastErr
	}
	tok, err := s.refreshLocked(ctx, stale)
	s.lastErr = err
	if ctx.Err() != nil {
		s.lastErr = nil
	}
	s.attempts.Add(1)
	return tok, err
}

// refreshLocked does the refresh; s.refreshing is held.
func (s *UserTokenSource) refreshLocked(ctx context.Context, stale *oauth2.Token) (*oauth2.Token, error) {
	if s.store == nil {
		cur := s.cur.Load()
		if cur == nil || cur.RefreshToken == "" {
			return nil, fmt.Errorf("twitchoauth: refresh token: %w", ErrInvalidRefreshToken)
		}
		tok, err := s.c.RefreshAccessToken(ctx, cur.RefreshToken)
		if err != nil {
			return nil, err
		}
		tok = carryScopes(tok, cur)
		var perr error
		if s.onRefresh != nil {
			if err := s.onRefresh(tok); err != nil {
				perr = fmt.Errorf("twitchoauth: persist refreshed token: %w", err)
			}
		}
		// Published only after onRefresh: the fast path of Token does not take s.refreshing. Even
		// when persisting failed, the new pair is kept: Twitch may have killed the old one.
		s.cur.Store(tok)
		return tok, perr
	}

	var out *oauth2.Token
	err := withStoreLock(ctx, s.c, s.store, s.key, s.lockTTL, func(ctx context.Context) error {
		st, err := s.store.Load(ctx, s.key)
		if err != nil {
			return err
		}
		// The token found wanting: the one the caller named, else the one held.
		bad := stale
		if bad == nil {
			bad = s.cur.Load()
		}
		// Another replica refreshed while this one waited (or nothing was held yet): adopt it.
		if stored := st.Token(); fresh(stored) && (bad == nil || stored.AccessToken != bad.AccessToken) {
			out = stored
			return nil
		}
		if st.RefreshToken == "" {
			return fmt.Errorf("twitchoauth: stored token has no refresh token: %w", ErrInvalidRefreshToken)
		}
		tok, err := s.c.RefreshAccessToken(ctx, st.RefreshToken)
		if err != nil {
			return err
		}
		// Stored only in place of st: when another replica stored a pair meanwhile (this one's
		// lease ended under it), that one is adopted if fresh, and never overwritten.
		use, err := saveRefreshed(ctx, s.store, s.key, st, st.withToken(tok))
		out = use.Token()
		if err != nil {
			// Twitch has the new pair and may have killed the old refresh token: keep using
			// it in memory, and say that it was not stored.
			return fmt.Errorf("twitchoauth: save refreshed token: %w", err)
		}
		return nil
	})
	if out != nil {
		s.cur.Store(out)
	}
	return out, err
}

// carryScopes gives a refreshed token the scopes of the one it replaces when its answer named none.
func carryScopes(tok, prev *oauth2.Token) *oauth2.Token {
	if len(TokenScopes(tok)) == 0 {
		tok = withScopes(tok, TokenScopes(prev))
	}
	return tok
}

// HTTPClient returns an *http.Client for Twitch's Helix API that sends the source's token: it sets
// "Authorization: Bearer" and "Client-Id" on every request, and on a 401 answer refreshes the
// token once and sends the request again (when its body can be replayed, see
// [http.Request.GetBody]), never more. It uses the transport of the Client's HTTPClient and does
// not follow a redirect to another host or from https to http, so the token never leaves the host
// it was sent to, nor travels in the clear.
func (s *UserTokenSource) HTTPClient() *http.Client {
	base := s.c.httpClient()
	rt := base.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	return &http.Client{
		Transport: &bearerTransport{src: s, base: rt},
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

type bearerTransport struct {
	src  *UserTokenSource
	base http.RoundTripper
}

func (t *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	tok, err := t.src.TokenContext(ctx)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := t.base.RoundTrip(t.authorize(req, tok))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return resp, nil // the body is spent and cannot be sent again
	}
	tok, err = t.src.ForceRefresh(ctx, tok)
	if err != nil {
		return resp, nil // the caller sees Twitch's 401
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

// KeepValidated validates the token every interval (Twitch requires apps to validate at start-up
// and hourly: pass [time.Hour]) until ctx is done, and returns ctx's error then. When validation
// says the token died, it refreshes it. It reports through the Client's Logger and returns early
// only when the token cannot be refreshed any more (an error that Is [ErrInvalidRefreshToken]).
// An interval <= 0 means an hour.
// Run it in a goroutine of your own:
//
//	go src.KeepValidated(ctx, time.Hour)
func (s *UserTokenSource) KeepValidated(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = time.Hour
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		tok, err := s.TokenContext(ctx)
		if err == nil {
			_, err = s.c.ValidateToken(ctx, tok.AccessToken)
			if errors.Is(err, ErrInvalidToken) {
				s.log(ctx, slog.LevelInfo, "twitchoauth: token no longer valid; refreshing")
				_, err = s.ForceRefresh(ctx, tok)
			}
		}
		switch {
		case err == nil:
			s.log(ctx, slog.LevelDebug, "twitchoauth: token validated")
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, ErrInvalidRefreshToken):
			s.log(ctx, slog.LevelError, "twitchoauth: token cannot be refreshed; the user must log in again", slog.String("error", err.Error()))
			return err
		default:
			s.log(ctx, slog.LevelWarn, "twitchoauth: hourly validation failed; will try again", slog.String("error", err.Error()))
		}
	}
}

func (s *UserTokenSource) log(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) {
	if l := s.c.Logger; l != nil {
		l.LogAttrs(ctx, level, msg, attrs...)
	}
}
