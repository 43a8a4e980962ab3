package twitchoauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// ErrWrongTokenKind: a Helix request needs the other kind of token than the client holds: an
// EventSub subscription over a WebSocket needs a user token, one to a webhook or a conduit an app
// token (Twitch answers any other combination 400 "invalid transport and auth combination"). See
// [*TokenKindError].
var ErrWrongTokenKind = errors.New("twitchoauth: the request needs the other kind of token")

// TokenKindError is the error of a Helix request the client refused to send because the token it
// holds is of the wrong kind for it; nothing was sent. errors.Is(err, ErrWrongTokenKind) holds.
type TokenKindError struct {
	// Transport is the EventSub transport method the request named: "websocket", "webhook" or
	// "conduit".
	Transport string
	// Need is the kind of token it takes ("user" or "app"); Have the kind the client holds.
	Need, Have string
}

func (e *TokenKindError) Error() string {
	use := map[string]string{
		"user": "a UserTokenSource's HTTPClient",
		"app":  "an AppTokenSource's HTTPClient",
	}[e.Need]
	return fmt.Sprintf("twitchoauth: an EventSub subscription with transport %q needs %s token, and this client holds %s token: use %s",
		e.Transport, article(e.Need), article(e.Have), use)
}

// Is reports whether target is [ErrWrongTokenKind].
func (e *TokenKindError) Is(target error) bool { return target == ErrWrongTokenKind }

func article(kind string) string {
	if kind == "app" {
		return "an app"
	}
	return "a " + kind
}

// eventSubSegments are the path segments of the Helix endpoint that creates EventSub
// subscriptions, /helix/eventsub/subscriptions.
var eventSubSegments = []string{"helix", "eventsub", "subscriptions"}

// isEventSubPath reports whether p, a request's path as decoded from its URL, may reach the Helix
// endpoint that creates EventSub subscriptions. How Twitch's router (and a proxy in front of it)
// reads a path is not documented, so every reading it might take counts: letters of either case,
// repeated slashes as one, a trailing slash ignored, "." segments dropped, and ".." segments either
// taken as they are or as a step up. The endpoint's segments may follow any prefix (a proxy's).
// A path that some reading takes for the endpoint is checked: a check too many refuses a request
// Twitch would have refused with 400, one too few lets a wrong token through.
func isEventSubPath(p string) bool {
	p = strings.ToLower(p)
	if !strings.Contains(p, eventSubSegments[len(eventSubSegments)-1]) {
		return false // most Helix requests: no allocation
	}
	var kept, resolved []string // ".." as it is; ".." as a step up
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "", ".":
			continue
		case "..":
			if len(resolved) > 0 {
				resolved = resolved[:len(resolved)-1]
			}
		default:
			resolved = append(resolved, seg)
		}
		kept = append(kept, seg)
	}
	return endsWith(kept, eventSubSegments) || endsWith(resolved, eventSubSegments)
}

// endsWith reports whether s ends with the segments of suffix.
func endsWith(s, suffix []string) bool {
	return len(s) >= len(suffix) && slices.Equal(s[len(s)-len(suffix):], suffix)
}

// checkTokenKind refuses, before it is sent, a request to create an EventSub subscription whose
// transport takes the other kind of token than app says this client holds. It reads the body of
// such a request (at most 1 MiB); when the body could not be read again, it returns a copy of req
// whose body can, and otherwise req itself.
func checkTokenKind(req *http.Request, app bool) (*http.Request, error) {
	path := req.URL.Path
	if req.URL.Opaque != "" { // sent as the request's target as it is: "//host/path" or "/path"
		if p, err := url.PathUnescape(req.URL.Opaque); err == nil {
			path = p
		} else {
			path = req.URL.Opaque
		}
	}
	if !strings.EqualFold(req.Method, http.MethodPost) || !isEventSubPath(path) ||
		req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	var body []byte
	if req.GetBody != nil {
		rc, err := req.GetBody()
		if err != nil {
			return req, nil // let the request go as it is: Twitch will judge it
		}
		body, err = io.ReadAll(io.LimitReader(rc, maxBodySize))
		rc.Close()
		if err != nil {
			return req, nil
		}
	} else {
		var err error
		orig := req.Body
		body, err = io.ReadAll(io.LimitReader(orig, maxBodySize+1))
		if err != nil {
			orig.Close()
			return nil, fmt.Errorf("twitchoauth: read the EventSub subscription request: %w", err)
		}
		req = req.Clone(req.Context())
		if len(body) > maxBodySize {
			// Longer than a subscription: not ours to judge. Sent whole, what was read first.
			req.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(body), orig), orig}
			return req, nil
		}
		orig.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	var sub struct {
		Transport struct {
			Method string `json:"method"`
		} `json:"transport"`
	}
	if json.Unmarshal(body, &sub) != nil {
		return req, nil // not ours to judge
	}
	method := strings.ToLower(sub.Transport.Method)
	need := ""
	switch method {
	case "websocket":
		need = "user"
	case "webhook", "conduit":
		need = "app"
	default:
		return req, nil
	}
	have := "user"
	if app {
		have = "app"
	}
	if need != have {
		return nil, &TokenKindError{Transport: method, Need: need, Have: have}
	}
	return req, nil
}
