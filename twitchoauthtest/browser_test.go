package twitchoauthtest

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// guardTransport passes requests to loopback on to base, and records and refuses any other.
type guardTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	off  []string // hosts of requests that would have left the machine
}

func (g *guardTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !isLoopback(req.URL) {
		g.mu.Lock()
		g.off = append(g.off, req.URL.Host)
		g.mu.Unlock()
		return nil, errors.New("refused by the test")
	}
	return g.base.RoundTrip(req)
}

// TestOpenBrowserStaysHome checks that the browser follows no redirect off this machine, even to
// a redirect URL the app registered, and that its error repeats neither the state nor the code
// that the redirect carries.
func TestOpenBrowserStaysHome(t *testing.T) {
	tests := []struct{ name, redirect string }{
		{"https", "https://bot.example.com/callback"},
		{"http to another host", "http://192.0.2.1/callback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			t.Cleanup(s.Close)
			guard := &guardTransport{base: s.browser.Transport}
			s.browser.Transport = guard
			s.AddRedirectURL(tt.redirect)
			const state = "the-state-value"
			q := url.Values{"client_id": {ClientID}, "redirect_uri": {tt.redirect}, "response_type": {"code"}, "state": {state}}
			err := s.OpenBrowser(s.URL + "authorize?" + q.Encode())
			if err == nil || !strings.Contains(err.Error(), "not following a redirect off this machine") {
				t.Errorf("OpenBrowser = %v, want a refusal to leave the machine", err)
			}
			if guard.off != nil {
				t.Errorf("the browser sent requests to %q", guard.off)
			}
			if err != nil && (strings.Contains(err.Error(), state) || strings.Contains(err.Error(), "code=")) {
				t.Errorf("error repeats the redirect's secrets: %v", err)
			}
		})
	}
}

// TestOpenBrowserConsentError: a consent page that answers with an error instead of a redirect,
// as Twitch's does for a client ID it does not know, is OpenBrowser's error, quoting the page.
func TestOpenBrowserConsentError(t *testing.T) {
	s := NewServer(t)
	q := url.Values{"client_id": {"nope"}, "redirect_uri": {"http://localhost:17563"}, "response_type": {"code"}}
	err := s.OpenBrowser(s.URL + "authorize?" + q.Encode())
	if want := `answered 400 instead of a redirect: {"message":"invalid client","status":400}`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("OpenBrowser = %v, want an error containing %q", err, want)
	}
}
