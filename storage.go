package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"golang.org/x/oauth2"
)

// UserAuthenticationStorageHelper keeps a user token across restarts (pyTwitchAPI's
// UserAuthenticationStorageHelper): [UserAuthenticationStorageHelper.Bind] reads the stored token,
// validates and refreshes it, and logs the user in again only when it must.
type UserAuthenticationStorageHelper struct {
	// StoragePath is the token file. Defaults to DefaultStoragePath.
	StoragePath string
	// AuthGenerator logs the user in when the stored token cannot be used. A public client (no
	// ClientSecret) must set one, e.g. a [CodeFlow] login. Defaults to nil: a [UserAuthenticator]
	// with the helper's ForceVerify, OpenBrowser and Port, which needs the ClientSecret.
	AuthGenerator func(ctx context.Context, c *Client, scopes []Scope) (*oauth2.Token, error)
	// Store keeps the token instead of the file at StoragePath, e.g. a store that replicas share.
	// Defaults to nil: a [FileStore] at StoragePath.
	Store TokenStore
	// StoreKey is the key the token is kept under in Store (usually the user ID). Defaults to "",
	// which a FileStore maps to StoragePath itself.
	StoreKey string
	// LockTTL is how long the store's lock may be held. Defaults to DefaultLockTTL.
	LockTTL time.Duration
	// ForceVerify makes the default AuthGenerator's login show Twitch's consent page even when
	// the user already authorized the app. NewUserAuthenticationStorageHelper sets it.
	ForceVerify bool
	// OpenBrowser opens the login page for the default AuthGenerator, as
	// [UserAuthenticator.OpenBrowser] does. Defaults to nil: the system browser.
	OpenBrowser func(url string) error
	// Port is the port of the default AuthGenerator's redirect server, whose redirect URL
	// http://localhost:Port must be registered with Twitch; 0 picks a free port, as
	// [UserAuthenticator.Port] does. Defaults to DefaultPort.
	Port int

	c      *Client
	scopes []Scope
}

// NewUserAuthenticationStorageHelper returns a helper that keeps a token of c holding scopes in
// DefaultStoragePath, and logs the user in on DefaultPort.
func NewUserAuthenticationStorageHelper(c *Client, scopes []Scope) *UserAuthenticationStorageHelper {
	return &UserAuthenticationStorageHelper{
		StoragePath: DefaultStoragePath,
		ForceVerify: true,
		Port:        DefaultPort,
		c:           c,
		scopes:      scopes,
	}
}

// defaultAuthGenerator logs the user in through the browser as h's ForceVerify and OpenBrowser
// say.
func (h *UserAuthenticationStorageHelper) defaultAuthGenerator(ctx context.Context, c *Client, scopes []Scope) (*oauth2.Token, error) {
	a := NewUserAuthenticator(c, scopes)
	a.ForceVerify = h.ForceVerify
	if h.OpenBrowser != nil {
		a.OpenBrowser = h.OpenBrowser
	}
	a.Port, a.URL = h.Port, "" // http://localhost:Port, or the free port bound for Port 0
	return a.Authenticate(ctx)
}

func (h *UserAuthenticationStorageHelper) store() TokenStore {
	if h.Store != nil {
		return observeStore(h.c.hooks(), h.Store)
	}
	path := h.StoragePath
	if path == "" {
		path = DefaultStoragePath
	}
	return observeStore(h.c.hooks(), &FileStore{Path: path})
}

// loginReason is why Bind must log the user in; its text says so to a person.
type loginReason struct{ err error }

func (r *loginReason) Error() string { return r.err.Error() }
func (r *loginReason) Unwrap() error { return r.err }

// Bind returns a source of the user's token, ready to use:
//
//  1. It reads the stored token (pyTwitchAPI's file is read as is).
//  2. It validates it; when Twitch rejects it (401) and there is a refresh token, it refreshes once,
//     stores the new pair and validates again.
//  3. It accepts a user token of this client holding every requested scope.
//  4. It runs AuthGenerator only when there is no token or it is unreadable, the refresh token was
//     rejected, or the token lacks a scope, is an app token or another client's; it stores the new
//     token, then returns.
//  5. A transient failure (network error, timeout, 5xx, 429) is returned as an error: no login is
//     started and the stored token is left exactly as it was.
//
// The store's lock is held across read, refresh and write, so that processes binding the same
// token at once refresh it once; it is released while AuthGenerator runs.
//
// Without an AuthGenerator, a Client without a ClientSecret is an error at once, before anything
// is read: the default login's code exchange needs the secret, and so does the refresh of the
// token it got, which would otherwise fail hours later.
//
// Bind is pyTwitchAPI's bind() and the call to make; a program that also needs to know whose token
// it bound calls [UserAuthenticationStorageHelper.BindValidation] instead, which learns it at no
// extra request.
func (h *UserAuthenticationStorageHelper) Bind(ctx context.Context) (*UserTokenSource, error) {
	src, _, err := h.BindValidation(ctx)
	return src, err
}

// BindValidation is [UserAuthenticationStorageHelper.Bind], and what Twitch's validation said of
// the token it returns: whose it is (Login, UserID), its scopes, and how long it lives. No request
// is made for it beyond Bind's own. Call Bind unless the program needs this Validation: a later
// [UserTokenSource.Validate] gets it only with another request.
func (h *UserAuthenticationStorageHelper) BindValidation(ctx context.Context) (*UserTokenSource, *Validation, error) {
	if h.AuthGenerator == nil {
		err := h.c.needSecret("UserAuthenticationStorageHelper's default AuthGenerator (a browser login)",
			"to trade Twitch's code for a token and to refresh it")
		if err != nil {
			return nil, nil, err
		}
	}
	store := h.store()
	src := NewStoreTokenSource(h.c, store, h.StoreKey, nil)
	if h.LockTTL > 0 {
		src.state().lockTTL = h.LockTTL
	}
	var st *StoredToken
	var v *Validation
	err := withStored(ctx, h.c, store, h.StoreKey, h.LockTTL, func(ctx context.Context, cur *StoredToken, missing error) error {
		var err error
		st, v, err = h.check(ctx, store, src, cur, missing)
		return err
	})
	var reason *loginReason
	switch {
	case errors.As(err, &reason):
		if st, v, err = h.login(ctx, store, reason); err != nil {
			return nil, nil, err
		}
	case err != nil:
		if src.Pending() {
			// A refreshed pair (or a mark taken back) the store did not take, which only src
			// holds: stored before src is dropped, or it is lost.
			if ferr := src.FlushPending(ctx); ferr != nil {
				return nil, nil, errors.Join(err, ferr)
			}
		}
		return nil, nil, err
	}
	src.publish(st.Token())
	return src, v, nil
}

// check validates and (if it must) refreshes st, the stored token (nil, when missing says why
// there is none), as src (which keeps a refreshed pair the store did not take). It returns a
// *loginReason when only a new login can help.
func (h *UserAuthenticationStorageHelper) check(ctx context.Context, store TokenStore, src *UserTokenSource, st *StoredToken, missing error) (*StoredToken, *Validation, error) {
	if missing != nil {
		return nil, nil, &loginReason{missing}
	}
	v, err := h.c.ValidateToken(ctx, st.AccessToken)
	refreshed := false
	if errors.Is(err, ErrInvalidToken) {
		if st.RefreshToken == "" {
			return nil, nil, &loginReason{fmt.Errorf("stored token is invalid and has no refresh token: %w", err)}
		}
		// Stored before anything else can fail: Twitch may have killed the old pair. Stored only
		// in place of st, though: a pair another replica stored meanwhile is adopted instead. A
		// pair the store does not take stays pending in src, which stores it later.
		// The validation of the new pair is stored under the same lock, after: the refresh's save
		// does not release it.
		next, rerr := src.renewStored(keepLease(ctx), st, st.Token())
		if errors.Is(rerr, ErrInvalidRefreshToken) {
			return nil, nil, &loginReason{rerr}
		}
		if rerr != nil {
			return nil, nil, rerr
		}
		st, refreshed = next, true
		v, err = h.c.ValidateToken(ctx, st.AccessToken)
	}
	if err != nil {
		return nil, nil, err
	}
	if err := h.accept(v); err != nil {
		return nil, nil, &loginReason{err}
	}
	known := st.withValidation(v)
	// Record what validation taught (a pyTwitchAPI file holds only the pair), once; but never
	// over a pair another replica stored since st was read: that one is newer, and st's refresh
	// token may be spent. This one is still used, and left to the next refresh to replace.
	if refreshed || !sameIdentity(st, known) {
		switch err := saveIf(ctx, store, h.StoreKey, st, known); {
		case errors.Is(err, ErrTokenChanged):
			if l := h.c.Logger; l != nil {
				l.LogAttrs(ctx, slog.LevelInfo, "twitchoauth: stored token changed meanwhile; left as it is")
			}
		case err != nil && src.Pending():
			// The refreshed pair itself is not stored yet: src keeps it and stores it later.
		case err != nil:
			return nil, nil, fmt.Errorf("twitchoauth: save token: %w", err)
		}
	}
	return known, v, nil
}

// sameIdentity reports whether a and b say the same of whose token it is and what it grants.
func sameIdentity(a, b *StoredToken) bool {
	return a.UserID == b.UserID && a.Login == b.Login && a.ClientID == b.ClientID && slices.Equal(a.Scopes, b.Scopes)
}

// accept says why a validated token cannot serve this helper, or nil.
func (h *UserAuthenticationStorageHelper) accept(v *Validation) error {
	switch {
	case !v.IsUserToken():
		return fmt.Errorf("twitchoauth: stored token is an app token, not a user token: %w", ErrInvalidToken)
	case v.ClientID != h.c.ClientID:
		return fmt.Errorf("twitchoauth: stored token belongs to another client: %w", ErrInvalidToken)
	}
	if missing := missingScopes(h.scopes, v.Scopes); len(missing) > 0 {
		return &MissingScopeError{Missing: missing}
	}
	return nil
}

// login runs AuthGenerator, validates what it returns and stores it.
func (h *UserAuthenticationStorageHelper) login(ctx context.Context, store TokenStore, reason *loginReason) (*StoredToken, *Validation, error) {
	if l := h.c.Logger; l != nil {
		l.LogAttrs(ctx, slog.LevelInfo, "twitchoauth: logging the user in", slog.String("reason", reason.Error()))
	}
	gen := h.AuthGenerator
	if gen == nil {
		gen = h.defaultAuthGenerator
	}
	tok, err := gen(ctx, h.c, h.scopes)
	if err != nil {
		return nil, nil, fmt.Errorf("twitchoauth: log in (%v): %w", reason, err)
	}
	v, err := h.c.ValidateToken(ctx, tok.AccessToken)
	if err != nil {
		return nil, nil, fmt.Errorf("twitchoauth: validate new token: %w", err)
	}
	if err := h.accept(v); err != nil {
		return nil, nil, err
	}
	st := (&StoredToken{}).withToken(tok).withValidation(v)
	err = withStoreLock(ctx, h.c, store, h.StoreKey, h.LockTTL, func(ctx context.Context) error {
		return store.Save(ctx, h.StoreKey, st)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("twitchoauth: save new token: %w", err)
	}
	return st, v, nil
}
