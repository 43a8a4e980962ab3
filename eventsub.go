package twitchoauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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

// eventSubPath is the Helix endpoint that creates EventSub subscriptions.
const eventSubPath = "/helix/eventsub/subscriptions"

// checkTokenKind refuses, before it is sent, a request to create an EventSub subscription whose
// transport takes the other kind of token than app says this client holds. It reads the body of
// such a request (at most 1 MiB); when the body could not be read again, it returns a copy of req
// whose body can, and otherwise req itself.
func checkTokenKind(req *http.Request, app bool) (*http.Request, error) {
	if req.Method != http.MethodPost || !strings.HasSuffix(strings.TrimRight(req.URL.Path, "/"), eventSubPath) ||
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
