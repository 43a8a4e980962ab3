package twitchoauth

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

var testScopes = []Scope{ScopeChatRead, ScopeChatEdit}

// goroutineSnapshot is the set of goroutines (stacks by ID) running at some point of a test.
type goroutineSnapshot map[string]string

// checkGoroutines snapshots the goroutines and fails t if any started after the snapshot is still
// there once t's other cleanups (registered later, so run earlier) have run. Idle keep-alive
// connections of the shared HTTP client are closed first: they belong to its pool, not to a flow.
func checkGoroutines(t *testing.T) goroutineSnapshot {
	t.Helper()
	before := goroutines()
	t.Cleanup(func() {
		defaultHTTPClient.CloseIdleConnections()
		before.assertGone(t, func(string) bool { return false })
	})
	return before
}

// assertNoServerLeft fails t unless every goroutine started since the snapshot has ended, except
// those that outlive a flow by design: the HTTP clients' pooled connections (the browser's and the
// token exchange's) and the fake Twitch's server. Call it when Authenticate has returned: a
// connection of the redirect server still open then is a leak.
func (before goroutineSnapshot) assertNoServerLeft(t *testing.T) {
	t.Helper()
	var fakeServe []string // the fake's Serve loops, whose connections are not the flow's
	for id, stack := range goroutines() {
		if strings.Contains(stack, "httptest.(*Server).goServe") {
			fakeServe = append(fakeServe, id)
		}
	}
	before.assertGone(t, func(stack string) bool {
		if strings.Contains(stack, "httptest.(*Server).goServe") ||
			strings.Contains(stack, "net/http.(*persistConn).readLoop") ||
			strings.Contains(stack, "net/http.(*persistConn).writeLoop") {
			return true
		}
		for _, id := range fakeServe {
			if strings.Contains(stack, "created by net/http.(*Server).Serve in goroutine "+id+"\n") {
				return true
			}
		}
		return false
	})
}

// assertGone waits, a bounded while, for the goroutines started since the snapshot to end, leaving
// out those exempt says may stay.
func (before goroutineSnapshot) assertGone(t *testing.T, exempt func(stack string) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left []string
		for id, stack := range goroutines() {
			if _, ok := before[id]; !ok && !exempt(stack) {
				left = append(left, stack)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d goroutines left behind:\n\n%s", len(left), strings.Join(left, "\n\n"))
			return
		}
		time.Sleep(5 * time.Millisecond) // bounded wait for goroutines on their way out
	}
}

var goroutineHeader = regexp.MustCompile(`^goroutine (\d+) `)

// goroutines returns the stack of every goroutine by its ID.
func goroutines() goroutineSnapshot {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := goroutineSnapshot{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		if m := goroutineHeader.FindStringSubmatch(g); m != nil {
			out[m[1]] = g
		}
	}
	return out
}

// newTestAuthenticator returns an authenticator of c on a free port of localhost, whose browser
// must not be opened.
func newTestAuthenticator(t testing.TB, c *Client) *UserAuthenticator {
	a := NewUserAuthenticator(c, testScopes)
	a.Port, a.URL = 0, ""
	a.OpenBrowser = func(string) error {
		t.Error("OpenBrowser called")
		return errors.New("no browser in tests")
	}
	return a
}

// newBrowser returns an HTTP client that plays the browser: it follows redirects and, when network
// is "tcp4" or "tcp6", reaches localhost over 127.0.0.1 or ::1 only.
func newBrowser(t testing.TB, network string) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err == nil && host == "localhost" {
			switch network {
			case "tcp4":
				addr = net.JoinHostPort("127.0.0.1", port)
			case "tcp6":
				addr = net.JoinHostPort("::1", port)
			}
		}
		return d.DialContext(ctx, "tcp", addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// page is what the browser got.
type page struct {
	status int
	body   string
	header http.Header
}

func visit(t testing.TB, hc *http.Client, u string) page {
	t.Helper()
	resp, err := hc.Get(u)
	if err != nil {
		t.Errorf("browser: %v", err)
		return page{}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("browser: read: %v", err)
	}
	return page{resp.StatusCode, string(body), resp.Header}
}

// registerRedirect adds the authorize URL's redirect_uri to the fake's default client and returns it.
func registerRedirect(t testing.TB, fake *faketwitch.Server, authURL string) string {
	t.Helper()
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	redirect := u.Query().Get("redirect_uri")
	fake.AddClient(faketwitch.ClientID, faketwitch.ClientSecret, faketwitch.RedirectURL, redirect)
	return redirect
}

// authenticate runs a.Authenticate with browse playing the browser in a goroutine of its own, once
// the redirect URL is registered at the fake. It returns when both have ended.
func authenticate(t testing.TB, ctx context.Context, a *UserAuthenticator, fake *faketwitch.Server,
	browse func(authURL, redirect string)) (*oauth2.Token, error) {
	t.Helper()
	var wg sync.WaitGroup
	defer wg.Wait()
	return a.Authenticate(ctx, WithAuthURLCallback(func(_ context.Context, authURL string) error {
		redirect := registerRedirect(t, fake, authURL)
		wg.Go(func() { browse(authURL, redirect) })
		return nil
	}))
}

func portOf(t testing.TB, rawURL string) int {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("%q: %v", rawURL, err)
	}
	return p
}

func hasIPv6(t testing.TB) bool {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// assertPortFree fails t unless port can be bound again on every loopback address.
func assertPortFree(t *testing.T, port int) {
	t.Helper()
	addrs := []string{"127.0.0.1"}
	if hasIPv6(t) {
		addrs = append(addrs, "::1")
	}
	for _, host := range addrs {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			t.Errorf("port %d not free again on %s: %v", port, host, err)
			continue
		}
		ln.Close()
	}
}

func assertPageHeaders(t *testing.T, p page) {
	t.Helper()
	for k, want := range map[string]string{
		"Content-Type":    "text/html; charset=utf-8",
		"Cache-Control":   "no-store",
		"Referrer-Policy": "no-referrer",
	} {
		if got := p.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

// TestAuthenticate runs the whole flow: the fake consents at once and redirects the browser to the
// authenticator's server, which trades the code for a token.
func TestAuthenticate(t *testing.T) {
	g := checkGoroutines(t)
	c, fake := newTestClient(t)
	a := newTestAuthenticator(t, c)
	a.ForceVerify = true
	var got page
	var authURL, redirect string
	tok, err := authenticate(t, t.Context(), a, fake, func(u, r string) {
		authURL, redirect = u, r
		got = visit(t, newBrowser(t, ""), u)
	})
	g.assertNoServerLeft(t)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.TokenType != "bearer" {
		t.Errorf("token = %+v", tok)
	}
	assertExpiry(t, tok.Expiry, fake.AccessTokenTTL)
	if s := TokenScopes(tok); !slices.Equal(s, testScopes) {
		t.Errorf("scopes = %v, want %v", s, testScopes)
	}
	if got.status != http.StatusOK || got.body != defaultDocument {
		t.Errorf("browser got %d %q, want 200 and Document", got.status, got.body)
	}
	assertPageHeaders(t, got)

	// The authenticator's own look at the consent page (does Twitch know the client ID?), the
	// browser's visit, the exchange.
	all := fake.Requests()
	if len(all) != 3 || all[0].Endpoint != "authorize" || all[1].Endpoint != "authorize" || all[2].Endpoint != "token" {
		t.Fatalf("requests = %+v, want authorize (the check), authorize (the browser), then token", all)
	}
	if all[0].Method != http.MethodGet || all[0].RawQuery != all[1].RawQuery {
		t.Errorf("the check: %s %q; want a GET of the browser's URL %q", all[0].Method, all[0].RawQuery, all[1].RawQuery)
	}
	reqs := all[1:]
	wantQuery := url.Values{
		"client_id":     {faketwitch.ClientID},
		"redirect_uri":  {redirect},
		"response_type": {"code"},
		"scope":         {"chat:read chat:edit"},
		"force_verify":  {"true"},
		"state":         {a.State},
	}
	if q := reqs[0].Query; !equalValues(q, wantQuery) {
		t.Errorf("authorize query = %v, want %v", q, wantQuery)
	}
	if want := "http://localhost:" + strconv.Itoa(portOf(t, redirect)); redirect != want {
		t.Errorf("redirect_uri = %q, want %q", redirect, want)
	}
	tokenReq := reqs[1]
	code := tokenReq.Form.Get("code")
	if code == "" || tokenReq.Form.Get("redirect_uri") != redirect || tokenReq.ContentType != "application/x-www-form-urlencoded" {
		t.Errorf("token request: form %v, Content-Type %q", tokenReq.Form, tokenReq.ContentType)
	}
	for _, r := range all {
		for _, s := range []string{"client_secret", faketwitch.ClientSecret, code, tok.AccessToken} {
			if strings.Contains(r.RawQuery, s) {
				t.Errorf("%s query %q holds %q", r.Endpoint, r.RawQuery, s)
			}
		}
	}
	if strings.Contains(authURL, faketwitch.ClientSecret) {
		t.Errorf("auth URL holds the secret: %s", authURL)
	}
	assertPortFree(t, portOf(t, redirect))
}

func equalValues(a, b url.Values) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// TestAuthenticateRedirects covers what may come back to the redirect URL: a code over either
// loopback, a denial, stray requests before the real one, Twitch's redirect_mismatch, and a code
// that the token endpoint then refuses.
func TestAuthenticateRedirects(t *testing.T) {
	type stray struct {
		query      func(state string) string // the query of a request to the redirect URL
		path       string
		wantStatus int
	}
	tests := []struct {
		name       string
		network    string
		setup      func(fake *faketwitch.Server)
		register   func(fake *faketwitch.Server, redirect string) // instead of registering redirect
		strays     []stray
		wantErr    func(error) bool
		wantStatus int
		wantPage   string
	}{
		{name: "code over 127.0.0.1", network: "tcp4", wantStatus: http.StatusOK, wantPage: "You are logged in"},
		{name: "code over ::1", network: "tcp6", wantStatus: http.StatusOK, wantPage: "You are logged in"},
		{
			name:       "denied",
			setup:      func(fake *faketwitch.Server) { fake.SetDeny(true) },
			wantErr:    func(err error) bool { return errors.Is(err, ErrAccessDenied) },
			wantStatus: http.StatusForbidden,
			wantPage:   "Login cancelled",
		},
		{
			name: "wrong and missing state, then the right one",
			strays: []stray{
				{query: func(string) string { return "code=forged&state=wrong" }, wantStatus: http.StatusBadRequest},
				{query: func(string) string { return "code=forged" }, wantStatus: http.StatusBadRequest},
				{query: func(string) string { return "error=access_denied&state=" }, wantStatus: http.StatusBadRequest},
				{query: func(s string) string { return "state=" + s }, wantStatus: http.StatusBadRequest},
				{query: func(s string) string { return "code=x&state=" + s }, path: "/favicon.ico", wantStatus: http.StatusNotFound},
			},
			wantStatus: http.StatusOK,
			wantPage:   "You are logged in",
		},
		{
			// The authorize URL names a redirect URL that is not registered: Twitch sends the
			// browser to the first registered one, here ours with a trailing slash.
			name: "redirect_mismatch",
			register: func(fake *faketwitch.Server, redirect string) {
				fake.AddClient(faketwitch.ClientID, faketwitch.ClientSecret, redirect+"/")
			},
			wantErr: func(err error) bool {
				var ae *APIError
				return errors.As(err, &ae) && ae.Endpoint == "authorize" && ae.ErrorCode == "redirect_mismatch" &&
					!errors.Is(err, ErrAccessDenied)
			},
			wantStatus: http.StatusBadRequest,
			wantPage:   "redirect_mismatch",
		},
		{
			name: "failed exchange",
			setup: func(fake *faketwitch.Server) {
				fake.Fail("token", faketwitch.Fault{Status: http.StatusBadRequest,
					Body: `{"status":400,"message":"Invalid authorization code"}`})
			},
			wantErr: func(err error) bool {
				var ae *APIError
				return errors.As(err, &ae) && ae.Endpoint == "token" && ae.StatusCode == http.StatusBadRequest
			},
			wantStatus: http.StatusBadGateway,
			wantPage:   "Invalid authorization code",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.network == "tcp6" && !hasIPv6(t) {
				t.Skip("no IPv6 loopback")
			}
			g := checkGoroutines(t)
			c, fake := newTestClient(t)
			if tt.setup != nil {
				tt.setup(fake)
			}
			a := newTestAuthenticator(t, c)
			browser := newBrowser(t, tt.network)
			var got page
			var wg sync.WaitGroup
			tok, err := a.Authenticate(t.Context(), WithAuthURLCallback(func(_ context.Context, authURL string) error {
				u, _ := url.Parse(authURL)
				redirect := u.Query().Get("redirect_uri")
				if tt.register != nil {
					tt.register(fake, redirect)
				} else {
					registerRedirect(t, fake, authURL)
				}
				wg.Go(func() {
					for _, s := range tt.strays {
						p := visit(t, browser, redirect+s.path+"?"+s.query(a.State))
						if p.status != s.wantStatus {
							t.Errorf("stray %s?%s: status %d, want %d", s.path, s.query("STATE"), p.status, s.wantStatus)
						}
						assertPageHeaders(t, p)
					}
					got = visit(t, browser, authURL)
				})
				return nil
			}))
			wg.Wait()
			g.assertNoServerLeft(t)
			if tt.wantErr == nil {
				if err != nil || tok == nil || tok.AccessToken == "" {
					t.Fatalf("Authenticate = %v, %v; want a token", tok, err)
				}
			} else if !tt.wantErr(err) || tok != nil {
				t.Fatalf("Authenticate = %v, %v; not the error wanted", tok, err)
			}
			if got.status != tt.wantStatus || !strings.Contains(got.body, tt.wantPage) {
				t.Errorf("browser got %d %q; want %d and %q", got.status, got.body, tt.wantStatus, tt.wantPage)
			}
			assertPageHeaders(t, got)
			if code := lastCode(fake); code != "" && strings.Contains(got.body, code) {
				t.Errorf("page holds the code: %s", got.body)
			}
			if strings.Contains(got.body, a.State) {
				t.Errorf("page holds the state: %s", got.body)
			}
			if n := fake.CountGrant("authorization_code"); n > 1 {
				t.Errorf("%d code exchanges, want at most 1", n)
			}
		})
	}
}

// lastCode returns the code of the last exchange the fake saw, or "".
func lastCode(fake *faketwitch.Server) string {
	code := ""
	for _, r := range fake.Requests() {
		if r.Endpoint == "token" {
			code = r.Form.Get("code")
		}
	}
	return code
}

// gatedTransport holds every token request until release is closed, and says on entered when one
// arrives.
type gatedTransport struct {
	entered chan struct{}
	release chan struct{}
}

func (g *gatedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/token") {
		g.entered <- struct{}{}
		select {
		case <-g.release:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return defaultHTTPClient.Transport.RoundTrip(r)
}

// TestAuthenticateSecondCallbackIgnored sends a second redirect with the right state while the first
// one's code is being exchanged: it is turned away and only the first counts.
func TestAuthenticateSecondCallbackIgnored(t *testing.T) {
	g := checkGoroutines(t)
	c, fake := newTestClient(t)
	gate := &gatedTransport{entered: make(chan struct{}, 1), release: make(chan struct{})}
	c.HTTPClient = &http.Client{Transport: gate}
	a := newTestAuthenticator(t, c)
	browser := newBrowser(t, "")
	var first, second page
	var wg sync.WaitGroup
	tok, err := a.Authenticate(t.Context(), WithAuthURLCallback(func(_ context.Context, authURL string) error {
		redirect := registerRedirect(t, fake, authURL)
		wg.Go(func() { first = visit(t, browser, authURL) })
		wg.Go(func() {
			<-gate.entered
			second = visit(t, browser, redirect+"?code=another&state="+url.QueryEscape(a.State))
			close(gate.release)
		})
		return nil
	}))
	wg.Wait()
	g.assertNoServerLeft(t)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "" {
		t.Errorf("token = %+v", tok)
	}
	if first.status != http.StatusOK || first.body != defaultDocument {
		t.Errorf("first callback got %d %q", first.status, first.body)
	}
	if second.status != http.StatusConflict {
		t.Errorf("second callback got %d %q, want 409", second.status, second.body)
	}
	if n := fake.CountGrant("authorization_code"); n != 1 {
		t.Errorf("%d code exchanges, want 1", n)
	}
}

// TestAuthenticateEnds checks that ctx and Stop end a flow within milliseconds, while it waits for
// the browser and while it exchanges the code, and that a busy port is an error at once.
func TestAuthenticateEnds(t *testing.T) {
	const quick = 500 * time.Millisecond // generous for -race on a loaded machine; it takes ~1 ms
	tests := []struct {
		name       string
		inExchange bool // end the flow while the code is being exchanged
		end        func(cancel context.CancelFunc, a *UserAuthenticator)
		want       error
	}{
		{"ctx cancelled while waiting", false, func(cancel context.CancelFunc, _ *UserAuthenticator) { cancel() }, context.Canceled},
		{"Stop while waiting", false, func(_ context.CancelFunc, a *UserAuthenticator) { a.Stop() }, ErrStopped},
		{"ctx cancelled during the exchange", true, func(cancel context.CancelFunc, _ *UserAuthenticator) { cancel() }, context.Canceled},
		{"Stop during the exchange", true, func(_ context.CancelFunc, a *UserAuthenticator) { a.Stop() }, ErrStopped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := checkGoroutines(t)
			c, fake := newTestClient(t)
			if tt.inExchange {
				fake.Fail("token", faketwitch.Fault{Hang: true})
			}
			a := newTestAuthenticator(t, c)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			ready := make(chan string, 1)
			var got page
			var wg sync.WaitGroup
			var ended time.Time
			wg.Go(func() {
				authURL := <-ready
				if tt.inExchange {
					wg.Go(func() { got = visit(t, newBrowser(t, ""), authURL) })
					for fake.CountGrant("authorization_code") == 0 {
						time.Sleep(time.Millisecond) // bounded by the browser's timeout
					}
				}
				ended = time.Now()
				tt.end(cancel, a)
			})
			tok, err := a.Authenticate(ctx, WithAuthURLCallback(func(_ context.Context, authURL string) error {
				registerRedirect(t, fake, authURL)
				ready <- authURL
				return nil
			}))
			took := time.Since(ended)
			wg.Wait()
			g.assertNoServerLeft(t)
			if !errors.Is(err, tt.want) || tok != nil {
				t.Fatalf("Authenticate = %v, %v; want %v", tok, err, tt.want)
			}
			if took > quick {
				t.Errorf("Authenticate returned %v after the end, want < %v", took, quick)
			}
			if tt.inExchange && got.status != http.StatusBadGateway {
				t.Errorf("browser got %d %q, want 502", got.status, got.body)
			}
		})
	}

	t.Run("port busy", func(t *testing.T) {
		checkGoroutines(t)
		c, _ := newTestClient(t)
		for _, host := range []string{"127.0.0.1", "::1"} {
			if host == "::1" && !hasIPv6(t) {
				continue
			}
			busy, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
			if err != nil {
				t.Fatal(err)
			}
			port := busy.Addr().(*net.TCPAddr).Port
			a := newTestAuthenticator(t, c)
			a.Port, a.URL = port, "" // http://localhost:<port>
			start := time.Now()
			_, err = a.Authenticate(t.Context(), WithAuthURLCallback(func(context.Context, string) error {
				t.Error("the flow went on with the port busy")
				return nil
			}))
			if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), strconv.Itoa(port)) {
				t.Errorf("%s busy: err = %v, want EADDRINUSE naming port %d", host, err, port)
			}
			if took := time.Since(start); took > quick {
				t.Errorf("%s busy: took %v", host, took)
			}
			busy.Close()
			assertPortFree(t, port) // nothing bound on the other address was left open
		}
	})

	t.Run("Stop during WithUserToken", func(t *testing.T) {
		checkGoroutines(t)
		c, fake := newTestClient(t)
		fake.Fail("token", faketwitch.Fault{Hang: true})
		a := newTestAuthenticator(t, c)
		var wg sync.WaitGroup
		wg.Go(func() {
			for fake.CountGrant("authorization_code") == 0 {
				time.Sleep(time.Millisecond) // bounded by the exchange's own timeout
			}
			a.Stop()
		})
		_, err := a.Authenticate(t.Context(), WithUserToken("code"))
		wg.Wait()
		if !errors.Is(err, ErrStopped) {
			t.Errorf("err = %v, want ErrStopped", err)
		}
	})

	t.Run("Stop before and after", func(t *testing.T) {
		g := checkGoroutines(t)
		c, fake := newTestClient(t)
		a := newTestAuthenticator(t, c)
		a.Stop() // nothing under way: does nothing
		browser := newBrowser(t, "")
		tok, err := authenticate(t, t.Context(), a, fake, func(u, _ string) { visit(t, browser, u) })
		g.assertNoServerLeft(t)
		if err != nil || tok == nil {
			t.Fatalf("Authenticate after Stop = %v, %v", tok, err)
		}
		a.Stop()
		a.Stop()
	})
}

// TestAuthenticateOptions covers how the authorize URL reaches the person, and WithUserToken.
func TestAuthenticateOptions(t *testing.T) {
	t.Run("OpenBrowser gets the URL", func(t *testing.T) {
		g := checkGoroutines(t)
		c, fake := newTestClient(t)
		a := newTestAuthenticator(t, c)
		browser := newBrowser(t, "")
		var wg sync.WaitGroup
		a.OpenBrowser = func(u string) error {
			registerRedirect(t, fake, u)
			wg.Go(func() { visit(t, browser, u) })
			return nil
		}
		tok, err := a.Authenticate(t.Context())
		wg.Wait()
		g.assertNoServerLeft(t)
		if err != nil || tok == nil {
			t.Fatalf("Authenticate = %v, %v", tok, err)
		}
	})

	for _, tt := range []struct {
		name        string
		opts        []AuthenticateOption
		browserFail bool
	}{
		{name: "WithoutBrowser logs the URL", opts: []AuthenticateOption{WithoutBrowser()}},
		{name: "a failed OpenBrowser logs the URL", browserFail: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := checkGoroutines(t)
			c, fake := newTestClient(t)
			a := newTestAuthenticator(t, c)
			if tt.browserFail {
				a.OpenBrowser = func(string) error { return errors.New("no display") }
			}
			logged := make(chan slog.Record, 10)
			var logs bytes.Buffer
			var mu sync.Mutex
			c.Logger = slog.New(recordHandler(func(r slog.Record) {
				mu.Lock()
				defer mu.Unlock()
				logs.WriteString(r.Message)
				r.Attrs(func(a slog.Attr) bool { logs.WriteString(" " + a.String()); return true })
				logs.WriteString("\n")
				logged <- r
			}))
			browser := newBrowser(t, "")
			var wg sync.WaitGroup
			wg.Go(func() {
				for r := range logged {
					if r.Level != slog.LevelInfo {
						continue
					}
					var u string
					r.Attrs(func(a slog.Attr) bool {
						if a.Key == "url" {
							u = a.Value.String()
						}
						return true
					})
					registerRedirect(t, fake, u)
					visit(t, browser, u)
					return
				}
			})
			tok, err := a.Authenticate(t.Context(), tt.opts...)
			close(logged)
			wg.Wait()
			g.assertNoServerLeft(t)
			if err != nil || tok == nil {
				t.Fatalf("Authenticate = %v, %v", tok, err)
			}
			mu.Lock()
			defer mu.Unlock()
			out := logs.String()
			if !strings.Contains(out, "open this URL to log in") {
				t.Errorf("log has no URL line:\n%s", out)
			}
			if tt.browserFail && !strings.Contains(out, "no display") {
				t.Errorf("log does not say the browser failed:\n%s", out)
			}
			code := lastCode(fake)
			for _, s := range []string{code, tok.AccessToken, tok.RefreshToken, faketwitch.ClientSecret} {
				if strings.Contains(out, s) {
					t.Errorf("log holds %q:\n%s", s, out)
				}
			}
			// The state is logged only inside the URL the person must open.
			if n := strings.Count(out, a.State); n != 1 {
				t.Errorf("state appears %d times in the log, want once (in the URL):\n%s", n, out)
			}
		})
	}

	t.Run("nowhere to send the URL", func(t *testing.T) {
		checkGoroutines(t)
		c, _ := newTestClient(t)
		for _, opts := range [][]AuthenticateOption{{WithoutBrowser()}, nil} {
			a := newTestAuthenticator(t, c)
			a.OpenBrowser = func(string) error { return errors.New("no display") }
			if _, err := a.Authenticate(t.Context(), opts...); err == nil || !strings.Contains(err.Error(), "Logger") {
				t.Errorf("err = %v, want one that says why", err)
			}
		}
	})

	t.Run("callback error ends the flow", func(t *testing.T) {
		checkGoroutines(t)
		c, _ := newTestClient(t)
		a := newTestAuthenticator(t, c)
		boom := errors.New("boom")
		_, err := a.Authenticate(t.Context(), WithAuthURLCallback(func(context.Context, string) error { return boom }))
		if !errors.Is(err, boom) {
			t.Errorf("err = %v, want boom", err)
		}
	})

	t.Run("WithUserToken", func(t *testing.T) {
		checkGoroutines(t)
		c, fake := newTestClient(t)
		a := NewUserAuthenticator(c, testScopes)
		a.OpenBrowser = func(string) error { t.Error("OpenBrowser called"); return nil }
		// A person opened AuthURL; Twitch sent the code to a page this program does not serve.
		noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noRedirect.Get(a.AuthURL())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(loc.String(), DefaultRedirectURL) {
			t.Fatalf("redirected to %s", loc)
		}
		fake.ResetRequests()
		tok, err := a.Authenticate(t.Context(), WithUserToken(loc.Query().Get("code")))
		if err != nil || tok.AccessToken == "" {
			t.Fatalf("Authenticate = %v, %v", tok, err)
		}
		if reqs := fake.Requests(); len(reqs) != 1 || reqs[0].Form.Get("redirect_uri") != DefaultRedirectURL {
			t.Errorf("requests = %+v", reqs)
		}
		if _, err := a.Authenticate(t.Context(), WithUserToken("")); err == nil {
			t.Error("empty code accepted")
		}
		if _, err := a.Authenticate(t.Context(), WithUserToken("used")); !errors.As(err, new(*APIError)) {
			t.Errorf("bad code: err = %v, want an *APIError", err)
		}
	})

	t.Run("no Client", func(t *testing.T) {
		var a UserAuthenticator
		if _, err := a.Authenticate(t.Context()); !errors.Is(err, errNoClient) {
			t.Errorf("err = %v", err)
		}
		if _, err := a.MockAuthenticate(t.Context(), "1"); !errors.Is(err, errNoClient) {
			t.Errorf("mock: err = %v", err)
		}
	})
}

// recordHandler is a slog.Handler that calls f with every record.
type recordHandler func(slog.Record)

func (recordHandler) Enabled(context.Context, slog.Level) bool        { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error { h(r); return nil }
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h recordHandler) WithGroup(string) slog.Handler                 { return h }

func TestAuthURL(t *testing.T) {
	a := NewUserAuthenticator(NewClient("my-id", "my-secret"), []Scope{ScopeChatRead, ScopeUserBot})
	a.State = "st8"
	want := DefaultAuthBaseURL + "authorize?client_id=my-id&force_verify=false" +
		"&redirect_uri=http%3A%2F%2Flocalhost%3A17563&response_type=code&scope=chat%3Aread+user%3Abot&state=st8"
	if got := a.AuthURL(); got != want {
		t.Errorf("AuthURL =\n%s\nwant\n%s", got, want)
	}
	a.URL, a.Port, a.ForceVerify = "", 8080, true
	u, _ := url.Parse(a.AuthURL())
	if q := u.Query(); q.Get("redirect_uri") != "http://localhost:8080" || q.Get("force_verify") != "true" {
		t.Errorf("query = %v", q)
	}
	if strings.Contains(a.AuthURL(), "my-secret") {
		t.Error("AuthURL holds the secret")
	}
	if d := NewUserAuthenticator(NewClient("x", ""), nil); d.State == "" || d.State == a.State ||
		d.Host != "localhost" || d.Port != DefaultPort || d.URL != DefaultRedirectURL || d.Document == "" || d.OpenBrowser == nil {
		t.Errorf("defaults = %+v", d)
	}
}

func TestListen(t *testing.T) {
	ipv6 := hasIPv6(t)
	tests := []struct {
		host string
		want []string // the addresses listened on, port left out
	}{
		{"localhost", []string{"127.0.0.1", "::1"}},
		{"", []string{"127.0.0.1", "::1"}},
		{"127.0.0.1", []string{"127.0.0.1"}},
		{"[::1]", []string{"::1"}},
		{"0.0.0.0", []string{"0.0.0.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			want := tt.want
			if !ipv6 {
				want = slices.DeleteFunc(slices.Clone(want), func(s string) bool { return strings.Contains(s, ":") })
				if len(want) == 0 {
					t.Skip("no IPv6")
				}
			}
			s, err := listen(t.Context(), tt.host, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer s.close(t.Context())
			var got []string
			for _, ln := range s.lns {
				addr := ln.Addr().(*net.TCPAddr)
				if addr.Port != s.port {
					t.Errorf("%s bound port %d, want %d", addr, addr.Port, s.port)
				}
				got = append(got, addr.IP.String())
			}
			if !slices.Equal(got, want) {
				t.Errorf("listening on %v, want %v", got, want)
			}
		})
	}
	if _, err := listen(t.Context(), "localhost", 70000); err == nil {
		t.Error("port 70000 accepted")
	}
	if _, err := listen(t.Context(), "no-such-host.invalid", 0); err == nil {
		t.Error("unresolvable host accepted")
	}
}

func TestMockAuthenticate(t *testing.T) {
	c, fake := newTestClient(t)
	a := NewUserAuthenticator(c, testScopes)
	access, err := a.MockAuthenticate(t.Context(), faketwitch.UserID)
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.ValidateToken(t.Context(), access)
	if err != nil {
		t.Fatal(err)
	}
	if v.UserID != faketwitch.UserID || !slices.Equal(v.Scopes, testScopes) {
		t.Errorf("validation = %+v", v)
	}
	r := fake.Requests()[0]
	want := url.Values{"client_id": {faketwitch.ClientID}, "client_secret": {faketwitch.ClientSecret},
		"grant_type": {"user_token"}, "user_id": {faketwitch.UserID}, "scope": {"chat:read chat:edit"}}
	if r.Method != http.MethodPost || r.Endpoint != "authorize" || !equalValues(r.Query, want) {
		t.Errorf("request: %s %s %v", r.Method, r.Endpoint, r.Query)
	}
	_, err = a.MockAuthenticate(t.Context(), "no-such-user")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Endpoint != "authorize" || strings.Contains(err.Error(), faketwitch.ClientSecret) {
		t.Errorf("unknown user: err = %v", err)
	}
}

// FuzzCallbackQuery feeds the redirect handler arbitrary queries: it must turn away every request
// without the state or longer than Twitch's, honour at most one that has it, and never echo the
// state or unescaped input.
func FuzzCallbackQuery(f *testing.F) {
	const state = "0b7e4c4e-8a3f-4f7e-9a55-2f3c1d9e6b10"
	for _, q := range []string{
		"code=good&scope=chat%3Aread&state=" + state,
		"code=bad&state=" + state,
		"error=access_denied&error_description=The+user+denied+you+access&state=" + state,
		"error=redirect_mismatch&error_description=%3Cscript%3Ex%3C%2Fscript%3E&state=" + state,
		"state=" + state,
		"code=good&state=wrong",
		"code=good",
		"state=" + state + "&state=x&code=good",
		"code=%zz&state=" + state,
		"code=good;state=" + state,
		"",
		"code=" + strings.Repeat("c", maxCallbackParam+1) + "&state=" + state,
		"error=server_error&error_description=" + strings.Repeat("d", maxCallbackQuery) + "&state=" + state,
	} {
		f.Add(q)
	}
	const document = "<p>ok</p>"
	f.Fuzz(func(t *testing.T, rawQuery string) {
		h := &callbackHandler{
			hosts: map[string]bool{"example.com:80": true}, defPort: "80", // httptest.NewRequest's Host
			path: "/", state: []byte(state), document: document,
			exchange: func(code string) (*oauth2.Token, error) {
				if code == "good" {
					return &oauth2.Token{AccessToken: "tok"}, nil
				}
				return nil, &APIError{Endpoint: "token", StatusCode: 400, Message: "Invalid authorization code"}
			},
			result: make(chan callbackResult, 1),
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.RawQuery = rawQuery
		q := req.URL.Query()
		stateOK := q.Get("state") == state
		fits := len(rawQuery) <= maxCallbackQuery && len(q.Get("code")) <= maxCallbackParam
		worthy := stateOK && fits && (q.Get("error") != "" || q.Get("code") != "")
		for i := range 2 {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			body := rec.Body.String()
			if rec.Header().Get("Content-Type") != "text/html; charset=utf-8" || rec.Header().Get("Cache-Control") != "no-store" {
				t.Fatalf("headers %v", rec.Header())
			}
			if strings.Contains(body, state) {
				t.Fatalf("page echoes the state: %s", body)
			}
			for _, vs := range q {
				for _, v := range vs {
					if strings.ContainsAny(v, "<>\"") && strings.Contains(body, v) && !strings.Contains(messagePage+document, v) {
						t.Fatalf("page echoes %q unescaped: %s", v, body)
					}
				}
			}
			var res *callbackResult
			select {
			case r := <-h.result:
				res = &r
			default:
			}
			switch {
			case !worthy:
				if res != nil || rec.Code != http.StatusBadRequest {
					t.Fatalf("query %q: status %d, result %v; want 400 and none", rawQuery, rec.Code, res)
				}
			case i == 1:
				if res != nil || rec.Code != http.StatusConflict {
					t.Fatalf("second: status %d, result %v; want 409 and none", rec.Code, res)
				}
			case res == nil:
				t.Fatalf("query %q: no result", rawQuery)
			case q.Get("error") != "":
				var ae *APIError
				if !errors.As(res.err, &ae) || ae.Endpoint != "authorize" ||
					errors.Is(res.err, ErrAccessDenied) != (q.Get("error") == "access_denied") {
					t.Fatalf("query %q: err = %v", rawQuery, res.err)
				}
			case q.Get("code") == "good":
				if res.err != nil || rec.Code != http.StatusOK || body != document {
					t.Fatalf("query %q: %d %q, err %v", rawQuery, rec.Code, body, res.err)
				}
			default:
				if res.err == nil || rec.Code != http.StatusBadGateway {
					t.Fatalf("query %q: %d, err %v", rawQuery, rec.Code, res.err)
				}
			}
		}
	})
}

// chromium returns the path of a Chromium binary, or "".
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// missingTool ends a test that needs a program this machine lacks: it skips, saying how to
// install it, except under CI (CI set), where a skipped test would hide a missing install step
// and the test fails instead.
func missingTool(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed, and CI must run this test (.ci/run installs it)", what)
	}
	t.Skipf("%s is not installed (.ci/run installs it; on Debian: apt-get install chromium)", what)
}

// TestAuthenticateChromium runs the flow in a real browser: headless Chromium opens the authorize
// URL, follows the fake Twitch's redirect to the authenticator over localhost, and renders
// Document, whose script proves it ran.
func TestAuthenticateChromium(t *testing.T) {
	bin := chromium()
	if bin == "" {
		missingTool(t, "chromium")
	}
	c, fake := newTestClient(t)
	a := newTestAuthenticator(t, c)
	a.Host = "localhost"
	a.Document = `<!doctype html><html><head><meta charset="utf-8"><title>done</title></head>` +
		`<body><h1 id="marker">not rendered</h1>` +
		`<script>document.getElementById("marker").textContent = "rendered by " + "the browser";</script></body></html>`
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var dom, stderr bytes.Buffer
	var cmd *exec.Cmd
	exited := make(chan error, 1)
	tok, err := a.Authenticate(ctx, WithAuthURLCallback(func(_ context.Context, authURL string) error {
		registerRedirect(t, fake, authURL)
		cmd = exec.CommandContext(ctx, bin,
			"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir="+t.TempDir(), "--dump-dom", authURL)
		cmd.Stdout, cmd.Stderr = &dom, &stderr
		cmd.WaitDelay = 5 * time.Second
		if err := cmd.Start(); err != nil {
			return err
		}
		go func() { exited <- cmd.Wait() }()
		return nil
	}))
	if cmd != nil {
		if err != nil {
			cancel() // kill it: it will not get a page
		}
		if werr := <-exited; werr != nil && err == nil {
			t.Errorf("chromium: %v\n%s", werr, stderr.String())
		}
	}
	if err != nil {
		t.Fatalf("Authenticate: %v\nchromium stderr:\n%s", err, stderr.String())
	}
	if tok.AccessToken == "" {
		t.Errorf("token = %+v", tok)
	}
	if !strings.Contains(dom.String(), `<h1 id="marker">rendered by the browser</h1>`) {
		t.Errorf("chromium rendered:\n%s\nstderr:\n%s", dom.String(), stderr.String())
	}
}

// BenchmarkAuthenticateFlow runs the whole loopback flow: listen on 127.0.0.1 and ::1, the browser
// (an HTTP client) opens the authorize URL and follows the redirect, the code is exchanged, Document
// is served and the server is closed.
func BenchmarkAuthenticateFlow(b *testing.B) {
	c, fake := newTestClient(b)
	browser := newBrowser(b, "")
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		a := newTestAuthenticator(b, c)
		tok, err := a.Authenticate(ctx, WithAuthURLCallback(func(_ context.Context, authURL string) error {
			registerRedirect(b, fake, authURL)
			resp, err := browser.Get(authURL)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != http.StatusOK {
				return errors.New(resp.Status)
			}
			return nil
		}))
		if err != nil || tok.AccessToken == "" {
			b.Fatal(tok, err)
		}
	}
}

// TestAuthenticateBlockingOpener: an OpenBrowser that blocks for as long as the browser runs (as
// pkg/browser does on some systems) holds up neither the login nor Stop.
func TestAuthenticateBlockingOpener(t *testing.T) {
	t.Run("login completes", func(t *testing.T) {
		c, fake := newTestClient(t)
		a := newTestAuthenticator(t, c)
		browser := newBrowser(t, "")
		release := make(chan struct{})
		openerDone := make(chan struct{})
		a.OpenBrowser = func(u string) error {
			defer close(openerDone)
			registerRedirect(t, fake, u)
			visit(t, browser, u)
			<-release // the browser stays open
			return nil
		}
		tok, err := a.Authenticate(t.Context())
		close(release)
		<-openerDone
		if err != nil || tok == nil {
			t.Fatalf("Authenticate = %v, %v", tok, err)
		}
	})
	t.Run("Stop", func(t *testing.T) {
		c, _ := newTestClient(t)
		a := newTestAuthenticator(t, c)
		release := make(chan struct{})
		openerDone := make(chan struct{})
		opened := make(chan struct{})
		a.OpenBrowser = func(string) error {
			defer close(openerDone)
			close(opened)
			<-release
			return nil
		}
		go func() { <-opened; a.Stop() }()
		_, err := a.Authenticate(t.Context())
		close(release)
		<-openerDone
		if !errors.Is(err, ErrStopped) {
			t.Errorf("err = %v, want ErrStopped", err)
		}
	})
}

// TestAuthenticateTabClosedDuringExchange: the browser gives up on the redirect while the code is
// being exchanged; the exchange runs under the flow's context, so the login still succeeds.
func TestAuthenticateTabClosedDuringExchange(t *testing.T) {
	c, fake := newTestClient(t)
	a := newTestAuthenticator(t, c)
	fake.Fail("token", faketwitch.Fault{Delay: 300 * time.Millisecond, Pass: true, Count: 1})
	impatient := newBrowser(t, "")
	impatient.Timeout = 100 * time.Millisecond
	tok, err := authenticate(t, t.Context(), a, fake, func(u, _ string) {
		if resp, err := impatient.Get(u); err == nil {
			resp.Body.Close()
			t.Error("the browser got an answer before the exchange ended")
		}
	})
	if err != nil || tok == nil {
		t.Fatalf("Authenticate = %v, %v; want the token despite the closed tab", tok, err)
	}
}
