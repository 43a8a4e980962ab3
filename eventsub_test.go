package twitchoauth

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// TestEventSubTokenKind: an EventSub subscription whose transport takes the other kind of token
// than the client holds is refused before anything is sent, with a TokenKindError; the right
// combinations reach Helix with their whole body, replayable or not.
func TestEventSubTokenKind(t *testing.T) {
	c, fake := newTestClient(t)
	access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, 0)
	var mu sync.Mutex
	var got []string
	helix := newHelixServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(body))
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	})
	user := NewUserTokenSource(c, &oauth2.Token{AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(time.Hour)}, nil)
	app := NewAppTokenSource(c)
	sub := func(method string) string {
		return `{"type":"channel.follow","version":"2","condition":{},"transport":{"method":"` + method + `","session_id":"s"}}`
	}
	tests := []struct {
		name     string
		hc       *http.Client
		method   string
		replay   bool // the body can be read again (a strings.Reader)
		wantKind string
	}{
		{"user websocket", user.HTTPClient(), "websocket", true, ""},
		{"user websocket, body read once", user.HTTPClient(), "websocket", false, ""},
		{"user webhook", user.HTTPClient(), "webhook", true, "app"},
		{"user conduit, body read once", user.HTTPClient(), "conduit", false, "app"},
		{"app websocket", app.HTTPClient(), "websocket", true, "user"},
		{"app websocket, body read once", app.HTTPClient(), "WebSocket", false, "user"},
		{"app webhook", app.HTTPClient(), "webhook", true, ""},
		{"app conduit", app.HTTPClient(), "conduit", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			var body io.Reader = strings.NewReader(sub(tt.method))
			if !tt.replay {
				body = io.MultiReader(body) // no GetBody
			}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, helix+"/helix/eventsub/subscriptions", body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := tt.hc.Do(req)
			if resp != nil {
				resp.Body.Close()
			}
			mu.Lock()
			defer mu.Unlock()
			if tt.wantKind == "" {
				if err != nil || resp.StatusCode != http.StatusAccepted || len(got) != 1 || got[0] != sub(tt.method) {
					t.Errorf("err %v, Helix got %q; want the whole body sent", err, got)
				}
				return
			}
			var ke *TokenKindError
			if !errors.Is(err, ErrWrongTokenKind) || !errors.As(err, &ke) || ke.Need != tt.wantKind {
				t.Errorf("err = %v; want a TokenKindError needing %s", err, tt.wantKind)
			}
			if len(got) != 0 {
				t.Errorf("Helix got %q; want nothing sent", got)
			}
		})
	}
	// A body longer than any subscription, read once, is not judged, and goes whole.
	t.Run("long body, read once", func(t *testing.T) {
		mu.Lock()
		got = nil
		mu.Unlock()
		long := `{"pad":"` + strings.Repeat("x", maxBodySize+10) + `"}`
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, helix+"/helix/eventsub/subscriptions", io.MultiReader(strings.NewReader(long)))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := app.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 1 || got[0] != long {
			t.Errorf("Helix got %d bodies, the first %d bytes; want the whole %d", len(got), len(firstOf(got)), len(long))
		}
	})
}

func firstOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// TestEventSubTokenKindPaths: the check runs on every spelling of the subscriptions path that a
// router in front of Helix may take for it (case, repeated slashes, a trailing slash, "." and ".."
// segments, escapes), and on no other path.
func TestEventSubTokenKindPaths(t *testing.T) {
	c, _ := newTestClient(t)
	var mu sync.Mutex
	var got []string
	helix := newHelixServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.EscapedPath())
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	})
	app := NewAppTokenSource(c)
	body := `{"type":"channel.follow","version":"2","condition":{},"transport":{"method":"websocket","session_id":"s"}}`
	tests := []struct {
		path    string
		checked bool // the request is taken for a subscription's, and refused
	}{
		{"post /helix/eventsub/subscriptions", true}, // the method in lower case
		{"opaque //HOST/Helix//eventsub/subscriptions", true},
		{"/helix/eventsub/subscriptions", true},
		{"/HELIX/eventsub/subscriptions", true},
		{"/Helix/EventSub/Subscriptions", true},
		{"//helix//eventsub/subscriptions", true},
		{"/helix/eventsub//subscriptions", true},
		{"/helix///eventsub///subscriptions///", true},
		{"/helix/eventsub/subscriptions/", true},
		{"/helix/./eventsub/subscriptions", true},
		{"/helix/eventsub/subscriptions/.", true},
		{"/helix/users/../eventsub/subscriptions", true},
		{"/helix/eventsub/subscriptions/x/..", true},
		{"/helix/eventsub/%73ubscriptions", true},
		{"/proxy/helix/eventsub/subscriptions", true},
		{"/helix/eventsub/subscriptions/../subscriptions", true},
		{"/helix/users", false},
		{"/helix/eventsub/subscriptions-x", false},
		{"/helix/eventsub/conduits", false},
		{"/helix/eventsub", false},
		{"/helixeventsub/subscriptions", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			method, path := http.MethodPost, tt.path
			var opaque string
			if p, ok := strings.CutPrefix(path, "post "); ok {
				method, path = "post", p
			} else if p, ok := strings.CutPrefix(path, "opaque "); ok {
				path = "/"
				opaque = strings.Replace(p, "HOST", strings.TrimPrefix(helix, "http://"), 1)
			}
			req, err := http.NewRequestWithContext(t.Context(), method, helix+path, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if opaque != "" {
				req.URL.Path, req.URL.Opaque = "", opaque
			}
			resp, err := app.HTTPClient().Do(req)
			if resp != nil {
				resp.Body.Close()
			}
			mu.Lock()
			defer mu.Unlock()
			if tt.checked {
				if !errors.Is(err, ErrWrongTokenKind) || len(got) != 0 {
					t.Errorf("err = %v, Helix got %q; want a TokenKindError and nothing sent", err, got)
				}
				return
			}
			if err != nil || len(got) != 1 {
				t.Errorf("err = %v, Helix got %q; want the request sent once", err, got)
			}
		})
	}
}
