package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"golang.org/x/oauth2"
)

// UserTokenSource keeps one user's token fresh (pyTwitchAPI: Twitch.set_user_authentication with
// auto_refresh_auth and user_auth_refresh_callback). It implements [oauth2.TokenSource] and is safe
// for concurrent use: callers share the cached token, and when it expires exactly one of them
// refreshes it while the others wait for the result.
//
// Tokens it returns are shared; do not modify them.
//
// # Refresh tokens are never lost nor sent twice
//
// A refreshed pair is persisted before anyone sees it. When the store (or onRefresh) does not
// take it, the source keeps it, uses it, and persists it before anything else: at the next
// refresh, from Token at most every few seconds (with a backoff), at [UserTokens.Run]'s pass over
// the user, and through [UserTokenSource.FlushPending]. Until it is stored, the source refreshes
// nothing, and never sends the refresh token it replaced.
//
// What else is done depends on the kind of client:
//   - A public client (no ClientSecret: the device flow) gets a new refresh token at every refresh,
//     and each works once; sending a spent one again is refused, and Twitch may end the user's
//     whole authorization for it. So before a source sends a stored refresh token it marks it in
//     the store as being spent ([SpendMark], one more fenced write per refresh). A source that finds
//     another holder's mark waits for that holder's pair (half the lock ttl, 45 s at most) and
//     takes it up when it comes; if none comes (the holder died, or lost the store), it fails with
//     a [*RefreshInDoubtError], which Is [ErrInvalidRefreshToken], without sending anything, and the
//     stored token is kept so that the pair is taken up if it is stored later. A refresh whose
//     answer was lost (the request was sent whole, then the connection dropped or timed out) may
//     have been spent: its refresh token is not sent again, and the source fails the same way. Once
//     sent, a public client's refresh is seen to its answer (30 s at most) even when the caller's
//     context ends: the answer may be the only copy of the user's new pair.
//   - A confidential client's refresh token works more than once: it is not marked, a refresh
//     ends with the caller's context, and one whose answer was lost is sent again at the next
//     refresh, which Twitch answers with a working pair.
//
// For both, a request that never left (the dial was refused) spent nothing and is sent again at
// the next refresh; and a failure that may pass (a 5xx, a 429, the network, the store) is answered
// to every caller without a request until a backoff has passed: a second, doubling up to a
// minute, and never less than Twitch's Retry-After ([APIError.RetryAfter]).
type UserTokenSource struct {
	tokenCache

	// store, when set, is where the token lives: refreshes take its lock, adopt a token another
	// replica stored, and save the new pair there (see [TokenStore]). onRefresh, the lock's ttl
	// and the rest are in the cacheState.
	store TokenStore
	key   string
}

// NewUserTokenSource returns a source that starts from tok and refreshes it with its refresh token
// when it expires. onRefresh, if not nil, is called with every new token (refreshed, or handed over
// by [UserTokenSource.SetToken]), synchronously and in order, before any caller sees it: persist the
// new pair there (the refresh token may have changed, and a public client's old one is dead). If
// onRefresh fails, the new token is still used, and that call returns the error.
func NewUserTokenSource(c *Client, tok *oauth2.Token, onRefresh func(*oauth2.Token) error) *UserTokenSource {
	s := &UserTokenSource{}
	s.init(c, tok)
	if onRefresh != nil {
		s.state().onRefresh = onRefresh
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
	s.store, s.key = observeStore(c.hooks(), store), key
	return s
}

// Token returns the cached token while it is valid and refreshes it otherwise. A token Twitch
// said is invalid (see [UserTokenSource.HTTPClient] and [UserTokenSource.KeepValidated]) is never
// returned again, whatever its Expiry.
//
// A refresh that Twitch rejects means the grant is gone (the user disconnected the app or changed
// their password): that call and every later one return an error that Is [ErrInvalidRefreshToken]
// at once, without a request, until [UserTokenSource.SetToken] hands the source a token from a new
// login. After a transient failure the source stays usable, and the first call after the backoff
// tries again (see the type's doc).
//
// Token is the [oauth2.TokenSource] method, for code that takes a token source (such as
// [oauth2.NewClient]); a refresh it makes cannot be cancelled. Code of your own, which has a
// context, calls [UserTokenSource.TokenContext].
func (s *UserTokenSource) Token() (*oauth2.Token, error) {
	return s.TokenContext(context.Background())
}

// TokenContext is [UserTokenSource.Token] with a context for the refresh, if one is needed: the
// call to make wherever a context is at hand. Token exists for [oauth2.TokenSource].
func (s *UserTokenSource) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	// The fast path is cached's, written out here rather than called: a registry's token is taken
	// before every API call, and in a function of its own the same reads cost a third more.
	now := time.Now().UnixNano()
	v := s.ver.Load()
	tok, until := s.cur.Load(), s.until.Load()
	if v&1 == 0 && s.ver.Load() == v && now < until && s.plain() {
		return tok, nil
	}
	return s.token(ctx, s)
}

// ForceRefresh refreshes the token now, unless another caller already replaced stale, the token
// the caller found wanting (nil: the current one; a token is the same as stale when it holds the
// same access token). Use it when Twitch rejected a token that has not reached its Expiry.
func (s *UserTokenSource) ForceRefresh(ctx context.Context, stale *oauth2.Token) (*oauth2.Token, error) {
	return s.forceRefresh(ctx, stale, s)
}

// SetToken hands the source a new token, typically from a new login after the grant was revoked:
// it ends the state in which every call fails with [ErrInvalidRefreshToken], and persists tok as
// a refresh would (through onRefresh, or in the store). It waits for a refresh under way to end.
// A failure to persist is logged through the Client's Logger; use
// [UserTokenSource.SetTokenContext] to get it instead.
func (s *UserTokenSource) SetToken(tok *oauth2.Token) {
	if err := s.SetTokenContext(context.Background(), tok); err != nil {
		s.log(context.Background(), slog.LevelError, "twitchoauth: set token", slog.String("error", err.Error()))
	}
}

// SetTokenContext is [UserTokenSource.SetToken] with a context for the wait and the write, and
// the error of persisting tok. The source uses tok even when persisting it failed, and persists
// it before anything else, as it does a refreshed pair (see the type's doc). A nil tok, or one
// without an access token, is an error and changes nothing.
func (s *UserTokenSource) SetTokenContext(ctx context.Context, tok *oauth2.Token) error {
	if tok == nil || tok.AccessToken == "" {
		return errors.New("twitchoauth: SetToken: no access token")
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	var err error
	var held *pendingSave // what to persist later if persisting fails now
	switch {
	case s.store != nil:
		made := time.Now()
		var old *StoredToken
		read := false // the store was read: old is what it held
		err = withStored(ctx, s.c, s.store, s.key, s.lockTTL(), func(ctx context.Context, st *StoredToken, _ error) error {
			old, read = st, true
			return s.store.Save(ctx, s.key, storedWith(old, tok))
		})
		next := storedWith(old, tok)
		held = &pendingSave{next: next, rebase: rebaseHeld(next, old, read, "", made)}
	case s.state().onRefresh != nil:
		err = s.state().onRefresh(tok)
		held = &pendingSave{tok: tok}
	}
	s.set(tok)
	s.setPending(nil) // superseded by tok
	s.state().doubt = ""
	if err != nil {
		// Persisted before anything else, as a refreshed pair is: the pair it replaces may be
		// spent already.
		s.keepPending(held)
		return fmt.Errorf("twitchoauth: persist new token (it is used, and persisted once the store takes it): %w", err)
	}
	s.noteChange(tok)
	return nil
}

// storedWith returns the record of tok: old (nil: a new one) holding tok's pair.
func storedWith(old *StoredToken, tok *oauth2.Token) *StoredToken {
	if old == nil {
		old = &StoredToken{}
	}
	return old.withToken(tok)
}

// renew does the refresh; s.refreshing is held. A pair a refresh got earlier and could not
// persist is persisted first: until it is, nothing is refreshed. Another holder's mark on the
// stored refresh token is waited out without the key's lock (see awaitMark): for the holder's
// pair, the mark taken back, or the mark's bound, after which the refresh token is in doubt.
func (s *UserTokenSource) renew(ctx context.Context, stale *oauth2.Token) (*oauth2.Token, error) {
	if err := s.flushLocked(ctx, false); err != nil {
		return nil, err
	}
	if s.store == nil {
		return s.refreshUnstored(ctx)
	}
	if s.reader() {
		return s.renewRead(ctx, stale)
	}
	// The token found wanting: the one the caller named, else the one held.
	bad := stale
	if bad == nil {
		bad = s.cur.Load()
	}
	var watch func(ctx context.Context) error
	if s.c.ClientSecret == "" {
		watch = s.watchMark
	}
	for range 4 {
		var out *oauth2.Token
		err := withStoredWatch(ctx, s.c, s.store, s.key, s.lockTTL(), watch, func(ctx context.Context, st *StoredToken, missing error) error {
			if missing != nil {
				return missing
			}
			st, err := s.renewStored(ctx, st, bad)
			if st != nil {
				out = st.Token()
			}
			return err
		})
		var held *heldMark
		if !errors.As(err, &held) {
			if out != nil {
				s.publish(out)
			}
			return out, err
		}
		m := held.st.Spending
		cur, err := s.awaitMark(ctx, held.st)
		switch {
		case err != nil:
			return nil, err
		case cur == nil:
			return nil, &RefreshInDoubtError{Reason: "another holder sent it and never stored the new pair", Sent: m.At, hash: m.Refresh, holder: m.Holder}
		}
		if tok := cur.Token(); fresh(tok) && (bad == nil || tok.AccessToken != bad.AccessToken) {
			s.publish(tok) // the holder's pair
			return tok, nil
		}
		// The mark was taken back, or another came: look again under the lock.
	}
	return nil, errors.New("twitchoauth: refresh: the stored token kept changing")
}

// newerStored reads the store, and takes up the token it holds when that is live and not stale
// (another replica refreshed it): an API that refused stale is then asked again with it, with no
// validation and no refresh. It returns the token taken up, or nil.
func (s *UserTokenSource) newerStored(ctx context.Context, stale *oauth2.Token) *oauth2.Token {
	if s.store == nil {
		return nil
	}
	st, err := s.store.Load(ctx, s.key)
	if err != nil {
		return nil
	}
	tok := st.Token()
	if !live(tok) || tok.AccessToken == stale.AccessToken {
		return nil
	}
	if s.adopt(ctx, tok) != nil {
		return nil
	}
	if cur := s.cur.Load(); cur != nil && cur.AccessToken == tok.AccessToken {
		return cur
	}
	return nil
}

// watchMark looks at the stored token while another holds its lock: another holder's mark on
// its refresh token is a *heldMark, to be waited out without the lock (the holder may have died
// holding it).
func (s *UserTokenSource) watchMark(ctx context.Context) error {
	st, err := s.store.Load(ctx, s.key)
	if err != nil || st.Spending == nil || st.Spending.Holder == s.holder() || st.Spending.Refresh != RefreshTokenHash(st.RefreshToken) {
		return nil // the lock's wait goes on; its holder is not spending this refresh token
	}
	return &heldMark{st: st}
}

// settleFrom ends the source's doubt over its refresh token when st, what the store holds now,
// shows that it is over (see doubtOver): it takes st's token up when that is fresh; otherwise the
// next call refreshes st's. It waits for a renewal under way.
func (s *UserTokenSource) settleFrom(ctx context.Context, st *StoredToken) error {
	if d := s.doubtOf(); d == nil || !s.doubtOver(d, st) {
		return nil
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	d := s.doubtOf()
	if d == nil || !s.doubtOver(d, st) {
		return nil
	}
	if tok := st.Token(); fresh(tok) && RefreshTokenHash(st.RefreshToken) != d.hash {
		s.set(tok)
		s.noteChange(tok)
	}
	s.settleDoubt()
	return nil
}

// doubtOf returns the error of the source's doubt over its refresh token, or nil.
func (s *UserTokenSource) doubtOf() *RefreshInDoubtError {
	var d *RefreshInDoubtError
	if err := s.revokedErr(); err != nil && errors.As(*err, &d) {
		return d
	}
	return nil
}

// doubtOver reports whether st, what the store holds now, ends doubt d: the store holds another
// refresh token (the pair of the refresh in doubt, or a new login's); or the one in doubt, which
// this source never sent, without the mark that put it in doubt (its holder took it back: it
// never sent it either).
func (s *UserTokenSource) doubtOver(d *RefreshInDoubtError, st *StoredToken) bool {
	h := RefreshTokenHash(st.RefreshToken)
	switch {
	case d.hash == "":
		return false // not known which: a refresh's recheck settles it
	case h != d.hash:
		return true
	case s.state().sent == h:
		return false
	}
	m := st.Spending
	return m == nil || m.Refresh != h || m.Holder != d.holder
}

// lockTTL is the ttl of the store locks the source takes: its own setting, else its registry's.
func (s *UserTokenSource) lockTTL() time.Duration {
	if x := s.more.Load(); x != nil && x.lockTTL > 0 {
		return x.lockTTL
	}
	if e, ok := s.listener.(*userEntry); ok {
		return e.u.LockTTL
	}
	return 0
}

// renewStored returns the stored token to use in place of bad (nil: nothing is held), under the
// key's lock: st, what the store holds, when it is fresh and not bad (another replica refreshed
// it); otherwise the pair a refresh of st gives (see spend).
func (s *UserTokenSource) renewStored(ctx context.Context, st *StoredToken, bad *oauth2.Token) (*StoredToken, error) {
	for range 4 {
		if stored := st.Token(); fresh(stored) && (bad == nil || stored.AccessToken != bad.AccessToken) {
			return st, nil
		}
		if st.RefreshToken == "" {
			return nil, fmt.Errorf("twitchoauth: stored token has no refresh token: %w", ErrInvalidRefreshToken)
		}
		next, reread, err := s.spend(ctx, st)
		if reread == nil {
			return next, err
		}
		st = reread
	}
	return nil, errors.New("twitchoauth: refresh: the stored token kept changing under the lock")
}

// refreshUnstored refreshes the token of a source without a store, handing the new pair to
// onRefresh; refreshing is held.
func (s *UserTokenSource) refreshUnstored(ctx context.Context) (*oauth2.Token, error) {
	cur := s.cur.Load()
	if cur == nil || cur.RefreshToken == "" {
		return nil, fmt.Errorf("twitchoauth: refresh token: %w", ErrInvalidRefreshToken)
	}
	public := s.c.ClientSecret == ""
	if public && s.state().doubt == RefreshTokenHash(cur.RefreshToken) {
		return nil, &RefreshInDoubtError{Reason: "the answer to its refresh was lost"}
	}
	tok, err := s.c.sendRefresh(ctx, cur.RefreshToken, time.Time{})
	if errors.Is(err, ErrRefreshInDoubt) {
		s.state().doubt = RefreshTokenHash(cur.RefreshToken)
	}
	if err != nil {
		return nil, err
	}
	tok = carryScopes(tok, cur)
	var perr error
	if s.state().onRefresh != nil {
		if err := s.state().onRefresh(tok); err != nil {
			perr = fmt.Errorf("twitchoauth: persist refreshed token: %w", err)
			s.keepPending(&pendingSave{tok: tok})
		}
	}

	// Published only after onRefresh: the fast path of Token does not take s.refreshing. Even
	// when persisting failed, the new pair is kept (and handed to onRefresh again later): Twitch
	// may have killed the old one.
	s.publish(tok)
	return tok, perr
}

// carryScopes gives a refreshed token the scopes of the one it replaces when its answer named none.
func carryScopes(tok, prev *oauth2.Token) *oauth2.Token {
	if len(TokenScopes(tok)) == 0 {
		tok = withScopes(tok, TokenScopes(prev))
	}
	return tok
}

// HTTPClient returns an *http.Client for Twitch's Helix API that sends the source's token: it sets
// "Authorization: Bearer" and "Client-Id" on every request.
//
// Helix answers 401 both for a dead token and for a token that lacks the endpoint's scope. On a
// 401 the client first asks Twitch whether the token is still valid (requests refused together
// ask once, and a "valid" verdict stands for a minute): if it is, the 401 answer is returned as
// is and nothing is refreshed. Only a token Twitch rejects is refreshed, once however many
// requests saw it refused, and the request is sent again with the new token (when its body can be
// replayed, see [http.Request.GetBody]), never more. It uses the transport of the Client's
// HTTPClient and does not follow a redirect to another host or from https to http, so the token
// never leaves the host it was sent to, nor travels in the clear.
func (s *UserTokenSource) HTTPClient() *http.Client {
	return s.helixClient(s)
}

// Validate validates the token once, as Twitch requires at start-up and hourly, applying the
// rules [UserTokenSource.KeepValidated] applies: it takes the current token (refreshing an expired
// one), asks Twitch whether it is valid, and when Twitch says it died (whatever its Expiry), never
// hands it out again, refreshes it and validates the new one. It returns what Twitch said of the
// token in force: whose it is (Login, UserID), its scopes, and how long it lives. An error that Is
// [ErrInvalidRefreshToken] means the grant is gone and the user must log in again; any other error
// (an outage) leaves the source usable.
//
// It is the way to validate a token a source holds; [Client.ValidateToken] asks about one access
// token as it is and changes nothing, for a token you were handed.
func (s *UserTokenSource) Validate(ctx context.Context) (*Validation, error) {
	tok, err := s.TokenContext(ctx)
	if err != nil {
		return nil, err
	}
	v, err := s.validate(ctx, tok)
	if !errors.Is(err, ErrInvalidToken) {
		return v, err
	}
	s.log(ctx, slog.LevelInfo, "twitchoauth: token no longer valid; refreshing")
	if tok, err = s.ForceRefresh(ctx, tok); err != nil {
		return nil, err
	}
	return s.validate(ctx, tok)
}

// KeepValidated validates the token every interval (Twitch requires apps to validate at start-up
// and hourly: pass [time.Hour]) with [UserTokenSource.Validate] until ctx is done, and returns
// ctx's error then. When validation says the token died (whatever its Expiry, and also for a
// token without one), the token is never handed out again and is refreshed. It reports through the
// Client's Logger and returns early only when the grant is gone: the refresh token was rejected,
// and every Token call now fails with an error that Is [ErrInvalidRefreshToken] until
// [UserTokenSource.SetToken]; it returns that error. An interval <= 0 means an hour.
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
		_, err := s.Validate(ctx)
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

// hold makes tok the current token, ending a terminal state, and keeps p, the record of tok the
// store did not take, to be stored before anything else (see pendingSave). The change is
// announced once it is stored. It waits for a renewal under way.
func (s *UserTokenSource) hold(ctx context.Context, tok *oauth2.Token, p *pendingSave) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	s.set(tok)
	s.state().doubt = ""
	s.keepPending(p)
	s.unlock()
	return nil
}
