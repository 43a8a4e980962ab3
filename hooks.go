package twitchoauth

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Hooks are called as the package works, so that a program can count, time and trace what it
// does: the requests to Twitch's identity server, the refreshes, the validations, the store's
// operations, the users a [UserTokens] adds, drops and loses, and the tokens handed out. The
// module github.com/twitchoauth/twitchoauth/otel turns them into OpenTelemetry metrics and spans;
// a program can also set them itself.
//
// Every field is optional, and a nil one costs a nil check. The Start hooks return the context the
// work goes on with (a span's, say), which the work's own requests and store operations are given,
// and the matching End hook too; a nil Start hook keeps the context. Hooks are called on the
// goroutine doing the work, synchronously: they must be quick, safe for concurrent use, and must
// not call back into the Client, a source or a registry. They are never given a token, refresh
// token, code, secret or a token's hash; the user IDs and store keys they are given are personal
// data, which a hook should record only where the program means to. The errors they are given
// hold no secret either.
//
// Set Hooks before the Client is used: a source, registry or storage helper takes the Client's
// hooks when it is made (for its store's operations) or when it works (for the rest).
type Hooks struct {
	// RequestStart is called before a request to the identity server is sent, and RequestEnd
	// once its answer is read or it failed.
	RequestStart func(ctx context.Context, e RequestEvent) context.Context
	RequestEnd   func(ctx context.Context, e RequestEvent)

	// RefreshStart is called when a source begins to renew its token (a refresh through Twitch,
	// or a newer token taken from the store), and RefreshEnd when the renewal ends. A caller
	// that waits for another caller's renewal makes none of its own.
	RefreshStart func(ctx context.Context, e RefreshEvent) context.Context
	RefreshEnd   func(ctx context.Context, e RefreshEvent)

	// StoreStart is called before each operation on a [TokenStore] (Load, Save, SaveIf,
	// Delete, Lock and its unlock, a lease's Renew, Keys), and StoreEnd after it. A wait for a
	// lock another holds is one Lock, from the first ask to the lock had (or the wait given up),
	// however many times the store is asked meanwhile.
	StoreStart func(ctx context.Context, e StoreEvent) context.Context
	StoreEnd   func(ctx context.Context, e StoreEvent)

	// Validation is called with the outcome of each validation of a token (Twitch's /validate).
	Validation func(ctx context.Context, e ValidationEvent)

	// UserChange is called when a [UserTokens] registers a user, forgets one, finds a grant gone
	// or in doubt, or sees one in doubt recovered.
	UserChange func(ctx context.Context, e UserEvent)

	// TokenServed is called each time a source's Token hands out a token: userID is the
	// source's user (its store key), "" for an app token and a source without a store; app is
	// set for an app token's.
	TokenServed func(ctx context.Context, userID string, app bool)
}

// RequestEvent is a request to Twitch's identity server, or to the one Helix endpoint the package
// calls itself ([Client.UserAuthorizations]).
type RequestEvent struct {
	// Endpoint is the identity server's endpoint: "token", "validate", "revoke", "device",
	// "userinfo", "keys" or "authorize" (the browser login's look at the consent page, and
	// MockAuthenticate); or Helix's "authorization/users".
	Endpoint string
	// Method is the HTTP method; Host the server's host (and port, when not the scheme's).
	Method, Host string
	// Status is the answer's HTTP status; 0 before the answer and when none came. Set at the end.
	Status int
	// Duration is how long the request took, to the end of its answer. Set at the end.
	Duration time.Duration
	// Err is the request's error, if any. Set at the end.
	Err error
}

// RefreshOutcome is how a renewal of a token ended.
type RefreshOutcome string

// The outcomes of a renewal.
const (
	// RefreshOK: the source holds a new token.
	RefreshOK RefreshOutcome = "ok"
	// RefreshRejected: Twitch rejected the refresh token: the grant is gone.
	RefreshRejected RefreshOutcome = "rejected"
	// RefreshInDoubt: the refresh token may have been spent without its pair being stored
	// ([ErrRefreshInDoubt]).
	RefreshInDoubt RefreshOutcome = "in_doubt"
	// RefreshTransient: a failure that may pass: the network, a 5xx, a 429, the store.
	RefreshTransient RefreshOutcome = "transient"
	// RefreshCanceled: the caller's context ended first.
	RefreshCanceled RefreshOutcome = "canceled"
	// RefreshFailed: any other failure (a 4xx other than a rejected grant, a bad answer, a
	// lease lost, a reader's wait for the store).
	RefreshFailed RefreshOutcome = "failed"
)

// RefreshEvent is a renewal of a source's token.
type RefreshEvent struct {
	// UserID is the source's user (its store key); "" for an app token and a source without a
	// store.
	UserID string
	// App is set for an app token's source ([AppTokenSource]).
	App bool
	// Outcome is how it ended; Status the identity server's HTTP status when its answer made the
	// outcome (a rejected grant, a 5xx, a 429), else 0. Set at the end.
	Outcome RefreshOutcome
	Status  int
	// Duration is how long the renewal took, the store's lock and writes included. Set at the end.
	Duration time.Duration
	// Err is the renewal's error, if any. Set at the end.
	Err error
}

// ValidationOutcome is what a validation found.
type ValidationOutcome string

// The outcomes of a validation.
const (
	ValidationOK          ValidationOutcome = "ok"           // the token is valid
	ValidationInvalid     ValidationOutcome = "invalid"      // 401: the token is dead
	ValidationRateLimited ValidationOutcome = "rate_limited" // 429
	ValidationServerError ValidationOutcome = "server_error" // 5xx
	ValidationNetwork     ValidationOutcome = "network"      // no answer, or one cut short
	ValidationCanceled    ValidationOutcome = "canceled"     // the caller's context ended
	ValidationFailed      ValidationOutcome = "failed"       // any other answer
)

// ValidationEvent is a validation of a token.
type ValidationEvent struct {
	// UserID is the token's user, as Twitch answered it; "" when it did not say (a failure, an
	// app token).
	UserID string
	// Outcome is what it found; Status the HTTP status, 0 when no answer came.
	Outcome ValidationOutcome
	Status  int
	// Duration is how long it took.
	Duration time.Duration
	// Err is its error, if any.
	Err error
}

// StoreOp is an operation on a [TokenStore].
type StoreOp string

// The store operations that [Hooks] hear of.
const (
	StoreLoad   StoreOp = "load"
	StoreSave   StoreOp = "save"
	StoreSaveIf StoreOp = "save_if"
	StoreDelete StoreOp = "delete"
	StoreLock   StoreOp = "lock"
	StoreRenew  StoreOp = "renew"
	StoreUnlock StoreOp = "unlock"
	StoreKeys   StoreOp = "keys"
)

// StoreEvent is an operation on a [TokenStore].
type StoreEvent struct {
	Op StoreOp
	// Key is the record's key (usually a user ID); "" for Keys.
	Key string
	// Duration is how long it took. Set at the end.
	Duration time.Duration
	// Err is its error, if any: for Load, one that Is [ErrTokenNotFound] is an answer, not a
	// failure. Set at the end.
	Err error
}

// UserChange is what happened to a user of a [UserTokens].
type UserChange string

// The changes a registry's users go through.
const (
	// UserAdded: the user was registered (added, or found in the store by Sync or a watch).
	UserAdded UserChange = "added"
	// UserRemoved: the user was forgotten (removed, revoked and dropped, or gone from the store).
	UserRemoved UserChange = "removed"
	// UserRevoked: the user's grant is gone: they must log in again.
	UserRevoked UserChange = "revoked"
	// UserInDoubt: the user's refresh token is in doubt ([ErrRefreshInDoubt]).
	UserInDoubt UserChange = "in_doubt"
	// UserRecovered: a user in doubt is usable again.
	UserRecovered UserChange = "recovered"
)

// UserEvent is a change of a registry's user.
type UserEvent struct {
	UserID string
	Change UserChange
}

// hooks returns c's Hooks, or nil.
func (c *Client) hooks() *Hooks {
	if c == nil {
		return nil
	}
	return c.Hooks
}

// requestStart tells c's hooks that a request to endpoint begins, and returns its context.
func (c *Client) requestStart(ctx context.Context, h *Hooks, r *http.Request, endpoint string) context.Context {
	if h.RequestStart == nil {
		return ctx
	}
	return h.RequestStart(ctx, RequestEvent{Endpoint: endpoint, Method: r.Method, Host: r.URL.Host})
}

// requestEnd tells h that the request r to endpoint, begun at start, ended.
func requestEnd(ctx context.Context, h *Hooks, r *http.Request, endpoint string, status int, start time.Time, err error) {
	if h.RequestEnd == nil {
		return
	}
	h.RequestEnd(ctx, RequestEvent{Endpoint: endpoint, Method: r.Method, Host: r.URL.Host,
		Status: status, Duration: time.Since(start), Err: err})
}

// refreshOutcome classifies a renewal's error.
func refreshOutcome(ctx context.Context, err error) (RefreshOutcome, int) {
	status := 0
	var ae *APIError
	if errors.As(err, &ae) {
		status = ae.StatusCode
	}
	switch {
	case err == nil:
		return RefreshOK, 0
	case errors.Is(err, ErrRefreshInDoubt):
		return RefreshInDoubt, 0
	case errors.Is(err, ErrInvalidRefreshToken):
		return RefreshRejected, status
	case ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return RefreshCanceled, 0
	case isTransient(ctx, err):
		return RefreshTransient, status
	}
	return RefreshFailed, status
}

// validationOutcome classifies a validation's error.
func validationOutcome(ctx context.Context, err error) (ValidationOutcome, int) {
	if err == nil {
		return ValidationOK, http.StatusOK
	}
	var ae *APIError
	if errors.As(err, &ae) && ae.StatusCode != 0 {
		switch {
		case ae.cause != nil:
			return ValidationNetwork, ae.StatusCode // an answer cut short
		case ae.StatusCode == http.StatusUnauthorized:
			return ValidationInvalid, ae.StatusCode
		case ae.StatusCode == http.StatusTooManyRequests:
			return ValidationRateLimited, ae.StatusCode
		case ae.StatusCode >= 500:
			return ValidationServerError, ae.StatusCode
		}
		return ValidationFailed, ae.StatusCode
	}
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ValidationCanceled, 0
	}
	if ae != nil {
		return ValidationFailed, 0 // a request that could not be built
	}
	return ValidationNetwork, 0
}

// userChange tells c's hooks of a change of a registry's user.
func (c *Client) userChange(ctx context.Context, userID string, change UserChange) {
	if h := c.hooks(); h != nil && h.UserChange != nil {
		h.UserChange(ctx, UserEvent{UserID: userID, Change: change})
	}
}
