package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/twitchoauth/twitchoauth/internal/wire"
)

// Sentinel errors to branch on with [errors.Is]. An [*APIError] matches the one its answer means.
var (
	// ErrInvalidRefreshToken: Twitch rejected the refresh token (400 "Invalid refresh token"); the
	// user must log in again. pyTwitchAPI: InvalidRefreshTokenException.
	ErrInvalidRefreshToken = errors.New("twitchoauth: invalid refresh token")
	// ErrUnauthorized: the token endpoint answered 401 or 403, e.g. a wrong client secret.
	// pyTwitchAPI: UnauthorizedException.
	ErrUnauthorized = errors.New("twitchoauth: unauthorized")
	// ErrUnknownClient: Twitch does not know the client ID (400 "invalid client" from the token
	// or device endpoint, or from the consent page, which [UserAuthenticator.Authenticate] asks
	// before opening the browser; 404 "client does not exist" from revoke): check the app's client
	// ID in the Twitch developer console. "invalid client" also answers a public client (no secret)
	// that tried a flow only a confidential one may use, such as exchanging a code.
	ErrUnknownClient = errors.New("twitchoauth: unknown client ID")
	// ErrInvalidToken: the access token is invalid, expired or revoked, not a user token, or another
	// client's. pyTwitchAPI: InvalidTokenException.
	ErrInvalidToken = errors.New("twitchoauth: invalid token")
	// ErrMissingScope: the token lacks a requested scope; [MissingScopeError] says which.
	// pyTwitchAPI: MissingScopeException.
	ErrMissingScope = errors.New("twitchoauth: token lacks a requested scope")
	// ErrAccessDenied: the user declined, in the browser or on the device activation page.
	ErrAccessDenied = errors.New("twitchoauth: the user denied access")
	// ErrDeviceCodeExpired: the device code expired before the user finished (pyTwitchAPI:
	// TimeoutError).
	ErrDeviceCodeExpired = errors.New("twitchoauth: device code expired")
	// ErrFlowNotStarted: [CodeFlow.WaitForAuthComplete] was called before [CodeFlow.GetCode]
	// (pyTwitchAPI: ValueError).
	ErrFlowNotStarted = errors.New("twitchoauth: device flow not started: call GetCode first")
	// ErrStopped: [UserAuthenticator.Authenticate] was ended by [UserAuthenticator.Stop] before it
	// had a token (a token already got for the code is returned instead: the code is spent).
	ErrStopped = errors.New("twitchoauth: authentication stopped")
	// ErrRefreshInDoubt: a public client's refresh token may have been spent at Twitch without its
	// new pair ever being stored (an answer lost on the way, a holder that died or was cut off
	// after sending it), so it is not sent again; the user must log in again unless the pair
	// turns up in the store. Errors that match it are [*RefreshInDoubtError]s and also match
	// ErrInvalidRefreshToken.
	ErrRefreshInDoubt = errors.New("twitchoauth: the refresh token may have been spent")
	// ErrNoFreshToken: a reader replica ([UserTokens.ReadOnly]), which never refreshes, found no
	// live token in the store: the one there has expired (or an API refused it) and no writer
	// stored a new one in time. It passes once a writer does.
	ErrNoFreshToken = errors.New("twitchoauth: no live token in the store, and this replica only reads")
)

// RefreshInDoubtError is the error of a public client's refresh that the package refuses to send:
// Twitch may already have taken the refresh token (it works once), and sending it again would be
// refused at best, and may end the user's whole authorization (twitchdev/issues#903). The stored
// token is kept as it is: when the holder that spent it stores the new pair after all, every
// source takes that up. errors.Is(err, ErrInvalidRefreshToken) and errors.Is(err,
// ErrRefreshInDoubt) both hold. See [UserTokenSource] for what is done for each kind of client.
type RefreshInDoubtError struct {
	// Reason says why the refresh token may be spent.
	Reason string
	// Sent is when the refresh token was sent (or marked as about to be), if known.
	Sent time.Time

	hash, holder string // the refresh token in doubt (its hash), and whose mark is on it
}

func (e *RefreshInDoubtError) Error() string {
	msg := "twitchoauth: the refresh token may have been spent without its new pair being stored (" + e.Reason + ")"
	if !e.Sent.IsZero() {
		msg += ", sent at " + e.Sent.UTC().Format(time.RFC3339)
	}
	return msg + "; it is not sent again: the user must log in again"
}

// Is reports whether target is [ErrRefreshInDoubt] or [ErrInvalidRefreshToken].
func (e *RefreshInDoubtError) Is(target error) bool {
	return target == ErrRefreshInDoubt || target == ErrInvalidRefreshToken
}

// APIError is any non-success answer of Twitch's identity server (pyTwitchAPI TwitchAPIException),
// or of the Helix endpoint the package calls itself ([Client.UserAuthorizations]), including a
// success status whose body lacks what it must carry. Its text never holds a token, code or secret.
type APIError struct {
	// Endpoint is "token", "validate", "revoke", "device", "userinfo", "keys" (the OIDC key set),
	// "authorize", or "authorization/users" (Helix's Get Authorization By User).
	Endpoint string
	// StatusCode is the HTTP status; 0 for an error the authorize redirect carried.
	StatusCode int
	// Message is Twitch's "message" (or the redirect's error_description), or what was wrong with
	// the answer when it had none.
	Message string
	// ErrorCode is Twitch's "error" field (e.g. "Bad Request"), or the redirect's error (e.g.
	// "access_denied").
	ErrorCode string
	// RetryAfter is how long Twitch asked the caller to wait before trying again (a 429 or 503's
	// Retry-After, in seconds or as a date, or Ratelimit-Reset, a Unix time); 0 when it said
	// nothing. A source that got it sends no refresh before it has passed.
	RetryAfter time.Duration

	cause error // what cut an answer short, if anything
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("twitchoauth: ")
	b.WriteString(e.Endpoint)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, " answered %d", e.StatusCode)
	}
	if e.ErrorCode != "" && !strings.EqualFold(e.ErrorCode, http.StatusText(e.StatusCode)) {
		b.WriteString(": ")
		b.WriteString(e.ErrorCode)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.cause != nil {
		b.WriteString(": ")
		b.WriteString(e.cause.Error())
	}
	if h := e.hint(); h != "" {
		b.WriteString(" (")
		b.WriteString(h)
		b.WriteString(")")
	}
	return b.String()
}

// hint says what to check for an answer about the app's own set-up rather than a user's token,
// or returns "".
func (e *APIError) hint() string {
	switch {
	case e.Is(ErrUnknownClient):
		h := "Twitch does not know this client ID: check Client.ClientID against the app's Client ID " +
			"in the Twitch developer console"
		if e.Endpoint == "token" {
			h += "; an app registered as Public, without a secret, gets this answer too from a grant " +
				"that needs a secret"
		}
		return h
	case e.Endpoint == "token" && e.StatusCode == http.StatusBadRequest &&
		strings.EqualFold(strings.TrimSpace(e.Message), "missing client secret"):
		return "the app is Confidential: set Client.ClientSecret to its secret from the Twitch developer console"
	}
	return ""
}

// Unwrap returns what cut the answer short (e.g. [io.ErrUnexpectedEOF]), or nil.
func (e *APIError) Unwrap() error { return e.cause }

// Is reports whether the answer means target: [ErrInvalidRefreshToken], [ErrUnauthorized],
// [ErrUnknownClient], [ErrInvalidToken], [ErrAccessDenied] or [ErrDeviceCodeExpired].
func (e *APIError) Is(target error) bool {
	msg := strings.ToLower(strings.TrimSpace(e.Message))
	switch target {
	case ErrInvalidRefreshToken:
		return e.Endpoint == "token" && e.StatusCode == http.StatusBadRequest && msg == "invalid refresh token"
	case ErrUnauthorized:
		return e.Endpoint == "token" && (e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden)
	case ErrUnknownClient:
		return (e.StatusCode == http.StatusBadRequest && msg == "invalid client") ||
			(e.StatusCode == http.StatusNotFound && msg == "client does not exist")
	case ErrInvalidToken:
		switch e.Endpoint {
		case "validate", "userinfo":
			return e.StatusCode == http.StatusUnauthorized
		case "revoke":
			return e.StatusCode == http.StatusBadRequest && msg == "invalid token"
		case authorizationsEndpoint:
			return e.StatusCode == http.StatusUnauthorized // not a live app token of this client
		}
	case ErrAccessDenied:
		return e.ErrorCode == "access_denied" || msg == "access_denied"
	case ErrDeviceCodeExpired:
		return e.Endpoint == "token" && e.StatusCode == http.StatusBadRequest && msg == "invalid device code"
	}
	return false
}

// MissingScopeError says which requested scopes a token lacks. errors.Is(err, ErrMissingScope) holds.
type MissingScopeError struct {
	Missing []Scope
}

func (e *MissingScopeError) Error() string {
	return "twitchoauth: token lacks scopes: " + strings.Join(scopesToStrings(e.Missing), ", ")
}

// Is reports whether target is [ErrMissingScope].
func (e *MissingScopeError) Is(target error) bool { return target == ErrMissingScope }

// maxMessageLen caps how much of a server's message an error repeats.
const maxMessageLen = 200

// checkResponse maps one HTTP answer of an endpoint to its body (a 2xx read in full) or an *APIError.
// This is the only place where statuses become errors. Secrets are scrubbed from anything the server
// said, in case it echoes what it was sent, and from the error that cut the answer short.
func checkResponse(endpoint string, status int, body []byte, readErr error, secrets []string) ([]byte, error) {
	e := &APIError{Endpoint: endpoint, StatusCode: status}
	switch {
	case readErr != nil:
		e.Message, e.cause = "answer cut short", scrubError(readErr, secrets)
		return nil, e
	case len(body) > maxBodySize:
		e.Message = "answer larger than 1 MiB"
		return nil, e
	case status >= 200 && status < 300:
		return body, nil
	}
	if eb, ok := wire.ParseError(body); ok {
		e.Message, e.ErrorCode = eb.Message, eb.Error
		if e.Message == "" {
			e.Message = eb.ErrorDescription
		}
	} else if len(strings.TrimSpace(string(body))) == 0 {
		e.Message = http.StatusText(status)
	} else {
		e.Message = http.StatusText(status) + " (answer is not Twitch's JSON error)"
	}
	e.Message = scrub(e.Message, secrets)
	e.ErrorCode = scrub(e.ErrorCode, secrets)
	return nil, e
}

// answerError is the error for a 2xx answer that lacks what it must carry.
func answerError(endpoint string, err error) *APIError {
	return &APIError{Endpoint: endpoint, StatusCode: http.StatusOK, Message: err.Error()}
}

// transportError wraps a failure to get an answer. When ctx is done it returns ctx's error, not the
// I/O error it caused; a *url.Error is unwrapped so that the URL is not repeated. The failure's text
// is scrubbed of secrets, since it may quote a malformed answer (a status line, a header line) that
// echoes them; errors.Is and errors.As still see the failure itself.
func transportError(ctx context.Context, endpoint string, err error, secrets ...string) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("twitchoauth: %s: %w", endpoint, ctxErr)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return fmt.Errorf("twitchoauth: %s: %w", endpoint, scrubError(err, secrets))
}

// isTransient reports whether trying again later may cure err: a network failure or timeout, an
// answer cut short, a 5xx or a 429. Twitch's verdicts (4xx), a request that could not be built (a
// bad AuthBaseURL) and a done context are not transient.
func isTransient(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.StatusCode >= 500 || ae.StatusCode == http.StatusTooManyRequests || (ae.StatusCode != 0 && ae.cause != nil)
	}
	return true
}

// maxRetryAfter caps a server's Retry-After: a wait of days is a broken header, not advice.
const maxRetryAfter = time.Hour

// retryAfter reads how long an answer asks the caller to wait: Retry-After (delay-seconds or an
// HTTP date) or else Ratelimit-Reset (a Unix time in seconds, as Twitch sends it), relative to now.
// It returns 0 when neither says anything usable.
func retryAfter(h http.Header, now time.Time) time.Duration {
	var d time.Duration
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
			d = time.Duration(min(max(secs, 0), int64(maxRetryAfter/time.Second))) * time.Second
		} else if t, err := http.ParseTime(v); err == nil {
			d = t.Sub(now)
		}
	} else if v := strings.TrimSpace(h.Get("Ratelimit-Reset")); v != "" {
		if unix, err := strconv.ParseInt(v, 10, 64); err == nil {
			d = time.Unix(unix, 0).Sub(now)
		}
	}
	return min(max(d, 0), maxRetryAfter)
}

// retryAfterOf returns the RetryAfter of the *APIError in err's chain, or 0.
func retryAfterOf(err error) time.Duration {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.RetryAfter
	}
	return 0
}
