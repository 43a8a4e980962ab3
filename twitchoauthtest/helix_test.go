package twitchoauthtest_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// TestUserAuthorizations: what a bot author's test sets up with the Server's own methods is what
// Get Authorization By User answers, over loopback and in memory: the scopes of IssueUserToken's
// logins, not authorized after Revoke, unknown for a user never added; and the endpoint takes the
// Server's faults and is recorded.
func TestUserAuthorizations(t *testing.T) {
	check := func(t *testing.T, srv *twitchoauthtest.Server) {
		c := srv.Client()
		if c.HelixBaseURL != srv.HelixURL || !strings.HasSuffix(srv.HelixURL, "/helix/") {
			t.Errorf("HelixBaseURL %q, HelixURL %q", c.HelixBaseURL, srv.HelixURL)
		}
		srv.AddUser("1001", "alice")
		srv.AddUser("1002", "bob")
		srv.IssueUserToken("1001", twitchoauth.ScopeChatRead)
		srv.IssueUserToken("1001", twitchoauth.ScopeChatEdit)
		srv.Revoke(srv.IssueUserToken("1002", twitchoauth.ScopeChatRead).AccessToken)
		app := twitchoauth.NewAppTokenSource(c)

		got, err := c.UserAuthorizations(t.Context(), app, "1001", "1002", "1003")
		if err != nil {
			t.Fatal(err)
		}
		if a := got[0]; !a.HasAuthorized || a.Login != "alice" || !slices.Equal(a.Scopes, []twitchoauth.Scope{twitchoauth.ScopeChatEdit, twitchoauth.ScopeChatRead}) {
			t.Errorf("alice: %+v, want both logins' scopes", a)
		}
		if a := got[1]; a.HasAuthorized || a.Unknown || a.Login != "bob" {
			t.Errorf("bob: %+v, want listed and not authorized", a)
		}
		if a := got[2]; !a.Unknown || a.HasAuthorized {
			t.Errorf("1003: %+v, want unknown", a)
		}
		reqs := srv.Requests(twitchoauthtest.AuthorizationsEndpoint)
		if len(reqs) != 1 || !slices.Equal(reqs[0].Query["user_id"], []string{"1001", "1002", "1003"}) || reqs[0].Method != "GET" {
			t.Errorf("requests %+v, want one GET naming the three users", reqs)
		}

		srv.RateLimit(twitchoauthtest.AuthorizationsEndpoint, 20*time.Second, 1)
		var ae *twitchoauth.APIError
		if _, err := c.UserAuthorizations(t.Context(), app, "1001"); !errors.As(err, &ae) || ae.StatusCode != 429 || ae.RetryAfter != 20*time.Second {
			t.Errorf("rate limited: %v, want a 429 asking for 20 s", err)
		}
	}
	t.Run("loopback", func(t *testing.T) { check(t, twitchoauthtest.NewServer(t)) })
	t.Run("in memory", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) { check(t, twitchoauthtest.NewInMemory(t)) })
	})
}
