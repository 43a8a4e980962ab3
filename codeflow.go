package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth/internal/wire"
)

const (
	// deviceGrantType is the grant_type of a device code poll (RFC 8628 section 3.4).
	deviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"
	// defaultDeviceInterval is the wait between polls when /device names none (RFC 8628 section 3.2).
	defaultDeviceInterval = 5 * time.Second
	// slowDownStep is what a slow_down answer adds to the interval, for good (RFC 8628 section 3.5).
	slowDownStep = 5 * time.Second
	// defaultDeviceExpiresIn is the lifetime of a device code when /device names none: Twitch's 30 minutes.
	defaultDeviceExpiresIn = 30 * time.Minute
)

// errWaitInProgress is returned by a WaitForAuthComplete that overlaps another on the same CodeFlow.
var errWaitInProgress = errors.New("twitchoauth: WaitForAuthComplete is already running on this CodeFlow")

// CodeFlow runs the device code grant flow
// (https://dev.twitch.tv/docs/authentication/getting-tokens-oauth/#device-code-grant-flow) for
// programs that cannot open a browser: a TV, a headless bot, a CLI. Create one with [NewCodeFlow].
//
//  1. [CodeFlow.GetCode] asks Twitch for a device code and returns the user code and the URL where
//     the user enters it; show both (the URL already holds the code).
//  2. [CodeFlow.WaitForAuthComplete] polls Twitch until the user approves or denies, or the code
//     expires. [CodeFlow.ExpiresAt] and [CodeFlow.Interval] tell a UI how long is left.
//
// Unlike golang.org/x/oauth2's DeviceAccessToken it understands Twitch's error answers, and unlike
// pyTwitchAPI it honours the server's interval and stops on a denial. A public client (no
// ClientSecret) can run it. A CodeFlow is safe for concurrent use: a UI goroutine may read
// ExpiresAt and Interval while WaitForAuthComplete runs.
type CodeFlow struct {
	// Scopes are the scopes GetCode asks for. Defaults to the scopes given to NewCodeFlow. Do not change
	// them while GetCode runs.
	Scopes []Scope

	client *Client

	mu      sync.Mutex
	flow    *deviceFlow // nil until GetCode, and again once the flow has ended
	waiting bool        // a WaitForAuthComplete is running
}

// deviceFlow is one device code and what the poll loop knows of it. Its interval is guarded by
// CodeFlow.mu; the other fields never change.
type deviceFlow struct {
	deviceCode string // a secret: never logged, scrubbed from errors
	expiresAt  time.Time
	interval   time.Duration
	replaced   chan struct{} // closed when GetCode starts another flow
}

// NewCodeFlow returns a CodeFlow that gets a user token for c's app with these scopes.
func NewCodeFlow(c *Client, scopes []Scope) *CodeFlow {
	return &CodeFlow{Scopes: scopes, client: c}
}

// GetCode starts the flow: it posts client_id and scopes to Twitch's /device endpoint and returns
// the code the user must enter and the URL where they enter it. Twitch's URL already holds the code,
// so showing the URL (or a QR code of it) is enough; show the code too for a user who types the URL.
//
// Calling GetCode again starts a fresh flow: the earlier device code is no longer polled, and a
// running [CodeFlow.WaitForAuthComplete] goes on with the new one. When GetCode fails, the flow in
// progress, if any, is left as it was.
func (f *CodeFlow) GetCode(ctx context.Context) (userCode, verificationURI string, err error) {
	c := f.client
	if c == nil {
		return "", "", errors.New("twitchoauth: CodeFlow has no Client: create it with NewCodeFlow")
	}
	body, err := c.do(ctx, request{endpoint: "device", method: http.MethodPost, form: url.Values{
		"client_id": {c.ClientID},
		"scopes":    {BuildScope(f.Scopes)}, // plural, and only read from the body
	}})
	if err != nil {
		return "", "", err
	}
	d, err := wire.ParseDevice(body)
	if err != nil {
		return "", "", answerError("device", err)
	}
	fl := &deviceFlow{
		deviceCode: d.DeviceCode,
		expiresAt:  time.Now().Add(secondsOr(d.ExpiresIn, defaultDeviceExpiresIn)),
		interval:   secondsOr(d.Interval, defaultDeviceInterval),
		replaced:   make(chan struct{}),
	}
	if log := c.Logger; log != nil {
		log.LogAttrs(ctx, slog.LevelDebug, "twitchoauth: device flow started",
			slog.Duration("interval", fl.interval), slog.Time("expires_at", fl.expiresAt))
	}
	f.mu.Lock()
	if f.flow != nil {
		close(f.flow.replaced)
	}
	f.flow = fl
	f.mu.Unlock()
	return d.UserCode, d.VerificationURI, nil
}

// ExpiresAt returns when the current device code expires, for a countdown; after it,
// [CodeFlow.WaitForAuthComplete] gives up with [ErrDeviceCodeExpired]. It is the zero time before
// [CodeFlow.GetCode] and after the flow has ended.
func (f *CodeFlow) ExpiresAt() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.flow == nil {
		return time.Time{}
	}
	return f.flow.expiresAt
}

// Interval returns the current wait between two polls: Twitch's interval (5 s when it names none)
// plus 5 s for every slow_down answer so far. It is 0 before [CodeFlow.GetCode] and after the flow
// has ended.
func (f *CodeFlow) Interval() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.flow == nil {
		return 0
	}
	return f.flow.interval
}

// WaitForAuthComplete waits for the user to finish at the verification URL and returns their token,
// with Expiry set and its scopes readable with [TokenScopes]. Before [CodeFlow.GetCode] it returns
// [ErrFlowNotStarted].
//
// It waits the interval, then polls Twitch's token endpoint, and again until an answer settles it:
//   - approval: the token; the flow ends, so a further call returns ErrFlowNotStarted;
//   - authorization_pending: it waits and polls again;
//   - slow_down: the interval grows by 5 s, for the rest of the flow;
//   - a denial: an error that Is [ErrAccessDenied]; the flow ends;
//   - "invalid device code", or no time left for another poll before [CodeFlow.ExpiresAt]: an error
//     that Is [ErrDeviceCodeExpired], returned at the deadline at the latest; the flow ends. It never
//     polls at or after the deadline.
//   - a network error, a 5xx or a 429: it tries again at the next interval; if the code expires
//     meanwhile, the error Is ErrDeviceCodeExpired and also wraps the last failure;
//   - any other answer: its [*APIError]; the flow stays, so the call can be repeated.
//
// When ctx is done it returns ctx's error at once, even mid-wait, and the flow stays: a later call
// goes on polling the same code. One call at a time: a call made while another runs on the same
// CodeFlow returns an error at once and leaves the running one alone.
func (f *CodeFlow) WaitForAuthComplete(ctx context.Context) (*oauth2.Token, error) {
	f.mu.Lock()
	switch {
	case f.flow == nil:
		f.mu.Unlock()
		return nil, ErrFlowNotStarted
	case f.waiting:
		f.mu.Unlock()
		return nil, errWaitInProgress
	}
	f.waiting = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.waiting = false
		f.mu.Unlock()
	}()

	var lastErr error // the last transient failure, if no poll has been answered since
	for {
		f.mu.Lock()
		fl := f.flow
		if fl == nil { // cannot happen while we are the one waiter; be safe anyway
			f.mu.Unlock()
			return nil, ErrFlowNotStarted
		}
		wait, expire := fl.interval, false
		if left := time.Until(fl.expiresAt); left <= wait {
			wait, expire = left, true
		}
		f.mu.Unlock()

		switch err := sleep(ctx, wait, fl.replaced); {
		case err != nil:
			return nil, fmt.Errorf("twitchoauth: wait for device authorization: %w", err)
		case f.current() != fl:
			lastErr = nil
			continue // GetCode started another flow: wait its interval from now
		case expire:
			f.end(fl)
			if lastErr != nil {
				return nil, fmt.Errorf("%w (last poll failed: %w)", ErrDeviceCodeExpired, lastErr)
			}
			return nil, ErrDeviceCodeExpired
		}

		tok, err := f.poll(ctx, fl)
		if err == nil {
			f.end(fl)
			return tok, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("twitchoauth: wait for device authorization: %w", ctx.Err())
		}
		if f.current() != fl {
			lastErr = nil
			continue // the answer is about a code we no longer poll
		}
		switch {
		case isPollAnswer(err, "authorization_pending"):
			lastErr = nil
		case isPollAnswer(err, "slow_down"):
			lastErr = nil
			f.mu.Lock()
			fl.interval += slowDownStep
			f.mu.Unlock()
		case errors.Is(err, ErrAccessDenied), errors.Is(err, ErrDeviceCodeExpired):
			f.end(fl)
			return nil, err
		case isTransient(ctx, err):
			lastErr = err
			if log := f.client.Logger; log != nil {
				log.LogAttrs(ctx, slog.LevelDebug, "twitchoauth: device poll failed; retrying at the next interval",
					slog.String("error", err.Error()))
			}
		default:
			return nil, err
		}
	}
}

// poll asks the token endpoint once whether the user has finished.
func (f *CodeFlow) poll(ctx context.Context, fl *deviceFlow) (*oauth2.Token, error) {
	c := f.client
	form := url.Values{
		"client_id":   {c.ClientID},
		"device_code": {fl.deviceCode},
		"grant_type":  {deviceGrantType},
	}
	if c.ClientSecret != "" {
		form.Set("client_secret", c.ClientSecret)
	}
	return c.postToken(ctx, form, fl.deviceCode)
}

// current returns the flow in progress.
func (f *CodeFlow) current() *deviceFlow {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.flow
}

// end forgets fl, unless GetCode has replaced it meanwhile.
func (f *CodeFlow) end(fl *deviceFlow) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.flow == fl {
		f.flow = nil
	}
}

// isPollAnswer reports whether err is the token endpoint's 400 answer with this state. Twitch sends
// the state as "message"; an RFC 8628 server would send it as "error".
func isPollAnswer(err error, state string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Endpoint == "token" && ae.StatusCode == http.StatusBadRequest &&
		(strings.EqualFold(strings.TrimSpace(ae.Message), state) || ae.ErrorCode == state)
}

// sleep waits for d, or until ctx is done (then it returns ctx's error) or wake is closed.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-wake:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// secondsOr turns a number of seconds from the wire into a duration; 0 (absent) gives def.
func secondsOr(s int64, def time.Duration) time.Duration {
	if s <= 0 {
		return def
	}
	return time.Duration(s) * time.Second
}
