package twitchoauth

import (
	"context"
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

// TestAppTokenSourceShared: concurrent callers share one fetch, and the token is fetched again
// only when it expires.
func TestAppTokenSourceShared(t *testing.T) {
	c, fake := newTestClient(t)
	src := NewAppTokenSource(c)
	var wg sync.WaitGroup
	toks := make([]*oauth2.Token, 50)
	for i := range toks {
		wg.Go(func() {
			tok, err := src.Token()
			if err != nil {
				t.Error(err)
			}
			toks[i] = tok
		})
	}
	wg.Wait()
	if n := fake.CountGrant("client_credentials"); n != 1 {
		t.Fatalf("%d fetches for 50 concurrent callers, want 1", n)
	}
	for _, tok := range toks {
		if tok != toks[0] {
			t.Fatal("callers got different tokens")
		}
	}
	v, err := c.ValidateToken(t.Context(), toks[0].AccessToken)
	if err != nil || v.IsUserToken() {
		t.Fatalf("validation of the app token: %+v, %v", v, err)
	}

	// Expired: fetched again.
	expired := *toks[0]
	expired.Expiry = time.Now().Add(-time.Second)
	src.publish(&expired)
	if tok, err := src.TokenContext(t.Context()); err != nil || tok.AccessToken == toks[0].AccessToken {
		t.Errorf("after expiry: %v, %v; want a new token", tok, err)
	}
	if n := fake.CountGrant("client_credentials"); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
}

// TestAppTokenSourceFailures: a failed fetch is an error the next call recovers from; a wrong
// secret is ErrUnauthorized.
func TestAppTokenSourceFailures(t *testing.T) {
	c, fake := newTestClient(t)
	src := NewAppTokenSource(c)
	fake.Fail("token", faketwitch.Fault{Status: http.StatusBadGateway, Count: 1})
	if _, err := src.Token(); err == nil {
		t.Fatal("no error for a 502")
	}
	if _, err := src.Token(); err == nil || fake.CountGrant("client_credentials") != 1 {
		t.Errorf("within the backoff: err = %v after %d fetches; want the 502 again, without a fetch", err, fake.CountGrant("client_credentials"))
	}
	endBackoff(&src.tokenCache)
	if tok, err := src.Token(); err != nil || tok == nil {
		t.Errorf("after the outage: %v, %v", tok, err)
	}
	bad := NewAppTokenSource(&Client{ClientID: c.ClientID, ClientSecret: "wrong", AuthBaseURL: c.AuthBaseURL})
	if _, err := bad.Token(); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("wrong secret: err = %v, want ErrUnauthorized", err)
	}
}

// TestAppTokenSourceHTTPClient: Helix's 401 for a dead app token fetches a new one once and sends
// the request again; a 401 for a valid one is passed on without a fetch.
func TestAppTokenSourceHTTPClient(t *testing.T) {
	c, fake := newTestClient(t)
	src := NewAppTokenSource(c)
	first, err := src.Token()
	if err != nil {
		t.Fatal(err)
	}
	var refuseAll bool
	var mu sync.Mutex
	helix := newHelixServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		refuse := refuseAll
		mu.Unlock()
		_, err := c.ValidateToken(context.Background(), strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		if refuse || err != nil || r.Header.Get("Client-Id") != c.ClientID {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, `{"data":[]}`)
	})
	fake.ExpireAccessToken(first.AccessToken)
	resp, err := src.HTTPClient().Post(helix+"/helix/eventsub/subscriptions", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || fake.CountGrant("client_credentials") != 2 {
		t.Errorf("dead token: status %d after %d fetches; want 200 after 2", resp.StatusCode, fake.CountGrant("client_credentials"))
	}
	mu.Lock()
	refuseAll = true
	mu.Unlock()
	resp, err = src.HTTPClient().Get(helix + "/helix/users")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || fake.CountGrant("client_credentials") != 2 {
		t.Errorf("valid token refused: status %d after %d fetches; want 401 and no new fetch", resp.StatusCode, fake.CountGrant("client_credentials"))
	}
}

func TestIRCPassword(t *testing.T) {
	if got := IRCPassword(&oauth2.Token{AccessToken: "abc"}); got != "oauth:abc" {
		t.Errorf("IRCPassword = %q", got)
	}
	if got := IRCPassword(nil); got != "" {
		t.Errorf("IRCPassword(nil) = %q", got)
	}
}
