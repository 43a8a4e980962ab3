package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// countingTransport counts the requests it carries.
type countingTransport struct {
	base http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

// TestIdentityRequestsNeverRedirect: a caller's own HTTPClient follows redirects (its CheckRedirect is
// nil), yet a 3xx from the identity server is an *APIError with that status, and nothing of the
// request (form body with client_secret and refresh_token, Authorization header) reaches the server
// the redirect points to. The caller's transport and cookie jar are still used (its timeout too:
// TestTransportErrorUnwraps/client_timeout).
func TestIdentityRequestsNeverRedirect(t *testing.T) {
	const (
		secret  = "client-secret-value"
		refresh = "refresh-token-value"
		access  = "access-token-value"
	)
	var (
		mu       sync.Mutex
		received []string
	)
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		received = append(received, fmt.Sprintf("%s %s auth=%q body=%q", r.Method, r.URL, r.Header.Get("Authorization"), body))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"stolen","client_id":"c","sub":"1"}`)
	}))
	t.Cleanup(elsewhere.Close)
	calls := map[string]func(ctx context.Context, c *Client) error{
		"token": func(ctx context.Context, c *Client) error {
			_, err := c.RefreshAccessToken(ctx, refresh)
			return err
		},
		"validate": func(ctx context.Context, c *Client) error {
			_, err := c.ValidateToken(ctx, access)
			return err
		},
		"revoke": func(ctx context.Context, c *Client) error { return c.RevokeToken(ctx, access) },
	}
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.SetCookie(w, &http.Cookie{Name: "seen", Value: "1", Path: "/"})
			http.Redirect(w, r, elsewhere.URL+r.URL.Path, status)
		}))
		t.Cleanup(redirector.Close)
		for endpoint, call := range calls {
			t.Run(fmt.Sprintf("%s/%d", endpoint, status), func(t *testing.T) {
				tr := &countingTransport{base: &http.Transport{}}
				t.Cleanup(tr.base.(*http.Transport).CloseIdleConnections)
				c := NewClient("client-id", secret)
				c.AuthBaseURL = redirector.URL + "/oauth2/"
				jar, err := cookiejar.New(nil)
				if err != nil {
					t.Fatal(err)
				}
				c.HTTPClient = &http.Client{Transport: tr, Jar: jar}
				err = call(t.Context(), c)
				var ae *APIError
				if !errors.As(err, &ae) || ae.StatusCode != status || ae.Endpoint != endpoint {
					t.Errorf("err = %v, want an *APIError from %s with status %d", err, endpoint, status)
				}
				if isTransient(t.Context(), err) {
					t.Errorf("a redirect is transient: %v", err)
				}
				if tr.n.Load() != 1 {
					t.Errorf("the caller's transport carried %d requests, want 1", tr.n.Load())
				}
				if u, _ := url.Parse(redirector.URL); len(jar.Cookies(u)) != 1 {
					t.Errorf("the caller's jar did not get the answer's cookie: %v", jar.Cookies(u))
				}
				mu.Lock()
				defer mu.Unlock()
				if len(received) > 0 {
					t.Errorf("the redirect was followed: %q", received)
					received = nil
				}
			})
		}
	}
}
