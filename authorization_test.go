package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// newHelixClient is newTestClient with HelixBaseURL pointed at the fake too.
func newHelixClient(t testing.TB) (*Client, *faketwitch.Server) {
	t.Helper()
	c, fake := newTestClient(t)
	c.HelixBaseURL = fake.HelixURL()
	return c, fake
}

// addUsers registers n users with the fake, from ids(n), and gives each a login of the client
// with scopes.
func addUsers(fake *faketwitch.Server, clientID string, n int, scopes ...string) []string {
	users := ids(n)
	for _, id := range users {
		fake.AddUser(id, "user"+id, "")
		fake.IssueToken(clientID, id, scopes, 0)
	}
	return users
}

// askedIDs returns the user_id of each request the fake got for Get Authorization By User.
func askedIDs(fake *faketwitch.Server) [][]string {
	var out [][]string
	for _, r := range fake.Requests() {
		if r.Endpoint == faketwitch.AuthorizationsEndpoint {
			out = append(out, r.Query["user_id"])
		}
	}
	return out
}

// TestUserAuthorizationsBatches: 25 users are asked for in 3 requests of 10, 10 and 5, one per
// user however often it is named; the answer has one entry per ID given, in the order given,
// with Twitch's scopes, and an ID Twitch does not list comes back Unknown and not authorized.
func TestUserAuthorizationsBatches(t *testing.T) {
	c, fake := newHelixClient(t)
	users := addUsers(fake, c.ClientID, 24, "chat:read", "chat:edit")
	users = append(users, "999999") // no such user
	app := NewAppTokenSource(c)
	ask := append(slices.Clone(users), users[3]) // named twice
	fake.ResetRequests()

	got, err := c.UserAuthorizations(t.Context(), app, ask...)
	if err != nil {
		t.Fatal(err)
	}
	asked := askedIDs(fake)
	if sizes := []int{len(asked[0]), len(asked[1]), len(asked[2])}; len(asked) != 3 || !slices.Equal(sizes, []int{10, 10, 5}) {
		t.Fatalf("requests asked for %v, want 3 of 10, 10 and 5 user IDs", asked)
	}
	if all := slices.Concat(asked...); !slices.Equal(all, users) {
		t.Errorf("asked for %v, want each user once, in order: %v", all, users)
	}
	if len(got) != len(ask) {
		t.Fatalf("%d authorizations for %d IDs", len(got), len(ask))
	}
	for i, a := range got {
		if a.UserID != ask[i] {
			t.Fatalf("authorization %d is user %s's, want %s's", i, a.UserID, ask[i])
		}
	}
	want := UserAuthorization{UserID: users[3], Login: "user" + users[3], Name: "User" + users[3],
		Scopes: []Scope{ScopeChatEdit, ScopeChatRead}, HasAuthorized: true}
	if a := got[3]; !a.HasAuthorized || a.Unknown || a.Login != want.Login || a.Name != want.Name || !slices.Equal(a.Scopes, want.Scopes) {
		t.Errorf("got %+v, want %+v", a, want)
	}
	if a := got[len(got)-1]; a.UserID != users[3] || !a.HasAuthorized {
		t.Errorf("the ID named twice: %+v, want it answered again", a)
	}
	if a := got[24]; !a.Unknown || a.HasAuthorized || a.Scopes != nil || a.Login != "" {
		t.Errorf("the unknown user: %+v, want Unknown and not authorized", a)
	}

	// Nothing to ask: nothing sent. An empty ID: refused before anything is sent.
	fake.ResetRequests()
	if got, err := c.UserAuthorizations(t.Context(), app); got != nil || err != nil {
		t.Errorf("no IDs: %v, %v; want nil, nil", got, err)
	}
	if _, err := c.UserAuthorizations(t.Context(), app, "1", ""); err == nil {
		t.Error("an empty ID: no error")
	}
	if n := len(askedIDs(fake)); n != 0 {
		t.Errorf("%d requests sent, want none", n)
	}
}

// TestUserAuthorizationsErrors: Twitch's refusals become *APIErrors with the endpoint, status and
// wait, a 401 Is ErrInvalidToken, the batches answered before a failure are returned with it, and
// no error text holds the app token.
func TestUserAuthorizationsErrors(t *testing.T) {
	const endpoint = faketwitch.AuthorizationsEndpoint
	tests := []struct {
		name      string
		setup     func(fake *faketwitch.Server, token string) // token: the one sent
		userToken bool                                        // send a user token instead of an app token
		want      error
		status    int
		retry     time.Duration
		answered  int // authorizations returned with the error
	}{
		{name: "user token", userToken: true, want: ErrInvalidToken, status: 401},
		{name: "rate limited", setup: func(fake *faketwitch.Server, token string) {
			fake.Fail(endpoint, faketwitch.Fault{Status: 429, Count: 1, Header: map[string]string{"Ratelimit-Reset": fmt.Sprint(time.Now().Add(30 * time.Second).Unix())},
				Body: `{"error":"Too Many Requests","status":429,"message":"Too Many Requests"}`})
		}, status: 429, retry: 30 * time.Second},
		{name: "second batch fails", setup: func(fake *faketwitch.Server, token string) {
			fake.Fail(endpoint, faketwitch.Fault{Pass: true, Count: 1})
			fake.Fail(endpoint, faketwitch.Fault{Status: 503, Count: 1, Header: map[string]string{"Retry-After": "7"},
				Body: `{"error":"Service Unavailable","status":503,"message":"Service Unavailable"}`})
		}, status: 503, retry: 7 * time.Second, answered: 10},
		{name: "not JSON", setup: func(fake *faketwitch.Server, token string) {
			fake.Fail(endpoint, faketwitch.Fault{Status: 200, Count: 1, Body: "<html>ok</html>"})
		}, status: 200},
		{name: "echoes the token", setup: func(fake *faketwitch.Server, token string) {
			fake.Fail(endpoint, faketwitch.Fault{Status: 400, Count: 1, Body: `{"error":"Bad Request","status":400,"message":"bad token ` + token + `"}`})
		}, status: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, fake := newHelixClient(t)
			users := addUsers(fake, c.ClientID, 15, "chat:read")
			var src oauth2.TokenSource
			var token string
			if tc.userToken {
				token, _ = fake.IssueToken(c.ClientID, users[0], nil, 0)
				src = oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token})
			} else {
				tok, err := NewAppTokenSource(c).TokenContext(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				token, src = tok.AccessToken, oauth2.StaticTokenSource(tok)
			}
			if tc.setup != nil {
				tc.setup(fake, token)
			}
			got, err := c.UserAuthorizations(t.Context(), src, users...)
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v, want an *APIError", err)
			}
			if ae.Endpoint != "authorization/users" || ae.StatusCode != tc.status {
				t.Errorf("endpoint %q status %d, want %q %d", ae.Endpoint, ae.StatusCode, "authorization/users", tc.status)
			}
			if d := ae.RetryAfter; d > tc.retry || d < tc.retry-2*time.Second {
				t.Errorf("RetryAfter %v, want about %v", d, tc.retry)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want one that Is %v", err, tc.want)
			}
			if tc.want == nil && errors.Is(err, ErrInvalidToken) {
				t.Errorf("error %v Is ErrInvalidToken", err)
			}
			if len(got) != tc.answered {
				t.Errorf("%d authorizations returned with the error, want %d", len(got), tc.answered)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("the error's text holds the token sent (not printed here)")
			}
		})
	}
}

// TestUserAuthorizationsRenewsAppToken: an AppTokenSource's token that Twitch ended early is
// found dead on the 401, fetched again once, and the batch asked again with the new one.
func TestUserAuthorizationsRenewsAppToken(t *testing.T) {
	c, fake := newHelixClient(t)
	users := addUsers(fake, c.ClientID, 3, "chat:read")
	app := NewAppTokenSource(c)
	old, err := app.TokenContext(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	fake.ExpireAccessToken(old.AccessToken)
	got, err := c.UserAuthorizations(t.Context(), app, users...)
	if err != nil || len(got) != 3 || !got[0].HasAuthorized {
		t.Fatalf("%+v, %v; want 3 authorized users", got, err)
	}
	if n := fake.CountGrant("client_credentials"); n != 2 {
		t.Errorf("%d app tokens fetched, want 2: the first and its renewal", n)
	}
	if n := len(askedIDs(fake)); n != 2 {
		t.Errorf("%d requests, want 2: refused, then asked again", n)
	}
}

// TestUserAuthorizationsContext: a ctx that ends while Twitch has not answered ends the call
// with ctx's error.
func TestUserAuthorizationsContext(t *testing.T) {
	c, fake := newHelixClient(t)
	users := addUsers(fake, c.ClientID, 1)
	app := NewAppTokenSource(c)
	if _, err := app.TokenContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	fake.Fail(faketwitch.AuthorizationsEndpoint, faketwitch.Fault{Hang: true})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := c.UserAuthorizations(ctx, app, users...)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want one that Is context.DeadlineExceeded", err)
	}
	var ae *APIError
	if errors.As(err, &ae) || !strings.HasPrefix(err.Error(), "twitchoauth: authorization/users: ") {
		t.Errorf("error %q, want ctx's, named after the endpoint", err)
	}
}

// TestUserAuthorizationsHooks: the Helix request reaches Client.Hooks as every request does,
// named "authorization/users", with Helix's host and the answer's status.
func TestUserAuthorizationsHooks(t *testing.T) {
	c, fake := newHelixClient(t)
	users := addUsers(fake, c.ClientID, 2)
	app := NewAppTokenSource(c)
	if _, err := app.TokenContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []RequestEvent
	c.Hooks = &Hooks{RequestEnd: func(_ context.Context, e RequestEvent) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, e)
	}}
	if _, err := c.UserAuthorizations(t.Context(), app, users...); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	helix, _ := url.Parse(c.HelixBaseURL)
	if len(seen) != 1 || seen[0].Endpoint != "authorization/users" || seen[0].Status != 200 || seen[0].Host != helix.Host || seen[0].Method != "GET" {
		t.Errorf("hooks heard %+v, want one GET of authorization/users at %s answered 200", seen, helix.Host)
	}
}
