package twitchoauth

import (
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// TestFreshUntilAgreesWithFresh: the time a cached token stays fresh, kept beside it so that Token
// need not read the token, says what fresh says of the token itself, also at the edges of what
// a time in nanoseconds holds.
func TestFreshUntilAgreesWithFresh(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name string
		tok  *oauth2.Token
	}{
		{"nil", nil},
		{"no access token", &oauth2.Token{Expiry: now.Add(time.Hour)}},
		{"no expiry", &oauth2.Token{AccessToken: "a"}},
		{"an hour left", &oauth2.Token{AccessToken: "a", Expiry: now.Add(time.Hour)}},
		{"within the margin", &oauth2.Token{AccessToken: "a", Expiry: now.Add(expiryMargin / 2)}},
		{"expired", &oauth2.Token{AccessToken: "a", Expiry: now.Add(-time.Second)}},
		{"marked rejected", &oauth2.Token{AccessToken: "a", Expiry: time.Unix(1, 0)}},
		{"year 3000", &oauth2.Token{AccessToken: "a", Expiry: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"year 1", &oauth2.Token{AccessToken: "a", Expiry: time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC)}},
		{"year 1600", &oauth2.Token{AccessToken: "a", Expiry: time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)}},
	} {
		var tc2 tokenCache
		tc2.init(&Client{}, tc.tok)
		if got, want := tc2.cached() != nil, fresh(tc.tok); got != want {
			t.Errorf("%s: cached says fresh %v, fresh says %v", tc.name, got, want)
		}
	}
}
