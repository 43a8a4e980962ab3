package twitchoauth

import (
	"cmp"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"

	"golang.org/x/oauth2"
)

// consent opens authURL at the fake as a browser would, without following its redirect, and
// returns the callback URL the fake sends the browser to: the redirect URL with the code and state.
func consent(t testing.TB, authURL string) string {
	t.Helper()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(authURL)
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || loc == "" {
		t.Fatalf("authorize answered %s, Location %q", resp.Status, loc)
	}
	return loc
}

// TestAuthenticateDNSRebinding: a page of another site, whose name an attacker made resolve to this
// machine (DNS rebinding), sends the callback with the right state and a fresh code. The server
// turns it away by its Host header, the code is not exchanged, and the real redirect that follows
// still logs the user in.
func TestAuthenticateDNSRebinding(t *testing.T) {
	g := checkGoroutines(t)
	c, fake := newTestClient(t)
	a := newTestAuthenticator(t, c)
	browser := newBrowser(t, "tcp4")
	var real page
	tok, err := authenticate(t, t.Context(), a, fake, func(authURL, redirect string) {
		callback := consent(t, authURL)
		port := strconv.Itoa(portOf(t, redirect))
		for _, host := range []string{
			"evil.example:" + port,
			"evil.example",
			"localhost.evil.example:" + port,
			"localhost:" + strconv.Itoa(portOf(t, redirect)+1),
		} {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, callback, nil)
			if err != nil {
				t.Error(err)
				return
			}
			req.Host = host
			resp, err := browser.Do(req)
			if err != nil {
				t.Errorf("Host %s: %v", host, err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode < 400 || resp.StatusCode > 499 {
				t.Errorf("Host %s: callback answered %s, want a 4xx", host, resp.Status)
			}
		}
		if n := fake.CountGrant("authorization_code"); n != 0 {
			t.Errorf("a callback to another host had its code exchanged (%d token requests)", n)
		}
		real = visit(t, browser, callback)
	})
	g.assertNoServerLeft(t)
	if err != nil || tok == nil || tok.AccessToken == "" {
		t.Fatalf("Authenticate = %v, %v; want the token of the real redirect", tok, err)
	}
	if real.status != http.StatusOK || real.body != defaultDocument {
		t.Errorf("the real redirect got %d %q, want 200 and Document", real.status, real.body)
	}
	if n := fake.CountGrant("authorization_code"); n != 1 {
		t.Errorf("%d code exchanges, want 1", n)
	}
}

// TestCallbackHost checks which Host headers the redirect server answers: the redirect URL's host
// and port (its scheme's default when it names none) and the loopback names with the port bound,
// whatever their case and with or without a trailing dot; nothing else.
func TestCallbackHost(t *testing.T) {
	type tc struct {
		host string
		ok   bool
	}
	tests := []struct {
		redirect string
		port     int // the port bound
		hosts    []tc
	}{
		{"http://localhost:17563", 17563, []tc{
			{"localhost:17563", true},
			{"LocalHost:17563", true},
			{"localhost.:17563", true},
			{"127.0.0.1:17563", true},
			{"[::1]:17563", true},
			{"[0:0:0:0:0:0:0:1]:17563", true},
			{"localhost", false}, // port 80
			{"localhost:80", false},
			{"localhost:17564", false},
			{"127.0.0.2:17563", false},
			{"evil.example:17563", false},
			{"evil.example", false},
			{"localhost.evil.example:17563", false},
			{"localhost..:17563", false},
			{"[localhost]:17563", false},
			{"::1:17563", false},
			{"[::1]17563", false},
			{"localhost:0", false},
			{"localhost:99999", false},
			{"localhost:17563@evil.example", false},
			{"evil.example/localhost:17563", false},
			{"", false},
		}},
		{"http://localhost:17563/callback", 0, []tc{ // a URL the caller set, with Port 0: both ports
			{"localhost:17563", true},
			{"localhost:0", false},
		}},
		{"http://localhost/callback", 8080, []tc{ // no port in the URL: 80
			{"localhost", true},
			{"localhost:80", true},
			{"localhost.", true},
			{"localhost:8080", true},
			{"localhost:443", false},
			{"evil.example", false},
		}},
		{"https://Login.Example.com/cb", 17563, []tc{ // behind a TLS proxy: 443
			{"login.example.com", true},
			{"login.example.com:443", true},
			{"LOGIN.EXAMPLE.COM.:443", true},
			{"localhost:17563", true},
			{"login.example.com:80", false},
			{"login.example.com:17563", false},
			{"example.com", false},
		}},
		{"http://mybox.lan:17563", 17563, []tc{ // Host "0.0.0.0", the redirect URL names the LAN name
			{"mybox.lan:17563", true},
			{"MyBox.LAN.:17563", true},
			{"localhost:17563", true},
			{"192.168.1.10:17563", false},
			{"mybox.lan.evil.example:17563", false},
			{"evil.example:17563", false},
		}},
		{"http://mybox.lan.:17563", 17563, []tc{ // the trailing dot in the URL
			{"mybox.lan:17563", true},
			{"mybox.lan.:17563", true},
		}},
		{"http://192.168.1.10:17563", 17563, []tc{
			{"192.168.1.10:17563", true},
			{"[::ffff:192.168.1.10]:17563", true},
			{"192.168.1.11:17563", false},
		}},
		{"http://[fd00::1]:17563", 17563, []tc{
			{"[fd00::1]:17563", true},
			{"[FD00:0::1]:17563", true},
			{"fd00::1:17563", false},
			{"[fd00::2]:17563", false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.redirect, func(t *testing.T) {
			const state = "the-state"
			h, err := newCallbackHandler(t.Context(), &Client{}, tt.redirect, tt.port, state, "done")
			if err != nil {
				t.Fatal(err)
			}
			u, _ := url.Parse(tt.redirect)
			for _, hc := range tt.hosts {
				h.honoured.Store(false)
				h.exchange = func(string) (*oauth2.Token, error) { return &oauth2.Token{AccessToken: "tok"}, nil }
				req := httptest.NewRequestWithContext(t.Context(), http.MethodGet,
					cmp.Or(u.Path, "/")+"?code=c&state="+state, nil)
				req.Host = hc.host
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				var honoured bool
				select {
				case <-h.result:
					honoured = true
				default:
				}
				if hc.ok && (rec.Code != http.StatusOK || !honoured) {
					t.Errorf("Host %q: %d, honoured %v; want 200 and the callback honoured", hc.host, rec.Code, honoured)
				}
				if !hc.ok && (rec.Code != http.StatusMisdirectedRequest || honoured) {
					t.Errorf("Host %q: %d, honoured %v; want 421 and the callback turned away", hc.host, rec.Code, honoured)
				}
			}
		})
	}
}
