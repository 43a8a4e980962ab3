package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// exchangeProbe passes every request on to the default transport, and says on sent when a token
// request goes out and on answered when its answer has come.
type exchangeProbe struct {
	sent, answered chan struct{}
}

func (p *exchangeProbe) RoundTrip(r *http.Request) (*http.Response, error) {
	isToken := strings.HasSuffix(r.URL.Path, "/token")
	if isToken {
		signal(p.sent)
	}
	resp, err := defaultHTTPClient.Transport.RoundTrip(r)
	if isToken && err == nil {
		signal(p.answered)
	}
	return resp, err
}

// signal says so on ch, a channel with a buffer, unless it already says so.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// TestAuthenticateStopRace makes Stop race a callback whose code is being exchanged: Stop comes
// as the token request goes out, or as its answer comes in, with the browser opened from the URL
// callback (which waits for it) or from a goroutine of its own. Every round ends either with the
// token the fake issued for the code (the code is spent: the token is kept) or with an error that
// Is ErrStopped, never another; and no server, connection or goroutine is left behind.
func TestAuthenticateStopRace(t *testing.T) {
	const rounds = 200
	g := checkGoroutines(t)
	c, fake := newTestClient(t)
	fake.Fail("token", faketwitch.Fault{Pass: true, Delay: time.Millisecond})
	browser := newBrowser(t, "")
	get := func(u string) { // the browser's fate does not matter here
		if resp, err := browser.Get(u); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}

	seen := map[string]bool{}
	var bad []string
	var tokens, stopped int
	for i := range rounds {
		waitingBrowser := i%2 == 0 // the URL callback waits for the browser
		stopOnAnswer := i%4 >= 2   // Stop once the token answer is in, not when the request goes out
		probe := &exchangeProbe{sent: make(chan struct{}, 1), answered: make(chan struct{}, 1)}
		rc := NewClient(c.ClientID, c.ClientSecret)
		rc.AuthBaseURL, rc.HTTPClient = c.AuthBaseURL, &http.Client{Transport: probe}
		a := newTestAuthenticator(t, rc)
		ended := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			at := probe.sent
			if stopOnAnswer {
				at = probe.answered
			}
			select {
			case <-at:
				a.Stop()
			case <-ended:
			}
		})
		var redirect string
		tok, err := a.Authenticate(t.Context(), WithAuthURLCallback(func(_ context.Context, authURL string) error {
			redirect = registerRedirect(t, fake, authURL)
			if waitingBrowser {
				get(authURL)
			} else {
				wg.Go(func() { get(authURL) })
			}
			return nil
		}))
		close(ended)
		wg.Wait()
		if redirect != "" {
			assertPortFree(t, portOf(t, redirect))
		}

		round := fmt.Sprintf("round %d (waiting browser %v, Stop on answer %v)", i, waitingBrowser, stopOnAnswer)
		switch {
		case err == nil && tok != nil:
			v, verr := c.ValidateToken(t.Context(), tok.AccessToken)
			if verr != nil || v.UserID != faketwitch.UserID || seen[tok.AccessToken] {
				bad = append(bad, fmt.Sprintf("%s: a token the fake did not issue for this login (%v)", round, verr))
			}
			seen[tok.AccessToken] = true
			tokens++
		case errors.Is(err, ErrStopped) && tok == nil:
			stopped++
		default:
			bad = append(bad, fmt.Sprintf("%s: Authenticate = %v, %v", round, tok, err))
		}
	}
	g.assertNoServerLeft(t)
	t.Logf("%d rounds: %d kept the token, %d ended with ErrStopped", rounds, tokens, stopped)
	if len(bad) > 0 {
		t.Errorf("%d of %d rounds ended otherwise than with the token or ErrStopped:\n%s",
			len(bad), rounds, strings.Join(bad[:min(len(bad), 5)], "\n"))
	}
}
