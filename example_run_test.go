package twitchoauth_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// These examples run against twitchoauthtest's fake of Twitch's identity server, so their output is
// checked. In your code leave AuthBaseURL alone (it defaults to Twitch's) and use your app's ID and
// secret.

// fakeTwitch starts the fake; it returns the base URL to put in AuthBaseURL, a user token of the
// fake's user with these scopes, and its refresh token.
func fakeTwitch(scopes ...twitchoauth.Scope) (fake *twitchoauthtest.Server, base, access, refresh string) {
	fake = twitchoauthtest.New()
	tok := fake.IssueUserToken(twitchoauthtest.UserID, scopes...)
	return fake, fake.URL, tok.AccessToken, tok.RefreshToken
}

func ExampleClient_ValidateToken() {
	fake, base, access, _ := fakeTwitch(twitchoauth.ScopeChatRead)
	defer fake.Close()

	c := twitchoauth.NewClient(twitchoauthtest.ClientID, twitchoauthtest.ClientSecret)
	c.AuthBaseURL = base
	v, err := c.ValidateToken(context.Background(), access)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v.Login, v.UserID, v.Scopes, v.IsUserToken())

	_, err = c.ValidateToken(context.Background(), "expired-or-revoked")
	fmt.Println(errors.Is(err, twitchoauth.ErrInvalidToken))
	// Output:
	// fakeuser 12345 [chat:read] true
	// true
}

func ExampleClient_RefreshAccessToken() {
	fake, base, _, refresh := fakeTwitch(twitchoauth.ScopeChatRead, twitchoauth.ScopeChatEdit)
	defer fake.Close()

	c := twitchoauth.NewClient(twitchoauthtest.ClientID, twitchoauthtest.ClientSecret)
	c.AuthBaseURL = base
	tok, err := c.RefreshAccessToken(context.Background(), refresh)
	if err != nil {
		log.Fatal(err)
	}
	// Store both: the refresh token may have changed.
	fmt.Println(twitchoauth.TokenScopes(tok), tok.RefreshToken != "", time.Until(tok.Expiry) > 3*time.Hour)

	_, err = c.RefreshAccessToken(context.Background(), "revoked-refresh-token")
	if errors.Is(err, twitchoauth.ErrInvalidRefreshToken) {
		fmt.Println("the user must log in again")
	}
	// Output:
	// [chat:read chat:edit] true true
	// the user must log in again
}

func ExampleClient_RevokeToken() {
	fake, base, access, _ := fakeTwitch()
	defer fake.Close()

	c := twitchoauth.NewClient(twitchoauthtest.ClientID, twitchoauthtest.ClientSecret)
	c.AuthBaseURL = base
	fmt.Println(c.RevokeToken(context.Background(), access))
	err := c.RevokeToken(context.Background(), access) // already invalid: pyTwitchAPI's False
	fmt.Println(errors.Is(err, twitchoauth.ErrInvalidToken))
	// Output:
	// <nil>
	// true
}

func ExampleClient_GetUserInfo() {
	fake, base, access, _ := fakeTwitch(twitchoauth.ScopeUserReadEmail)
	defer fake.Close()

	c := twitchoauth.NewClient(twitchoauthtest.ClientID, twitchoauthtest.ClientSecret)
	c.AuthBaseURL = base
	info, err := c.GetUserInfo(context.Background(), access)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info.Subject, info.PreferredUsername, info.Email, info.EmailVerified)
	// Output: 12345 fakeuser fakeuser@example.com true
}

func ExampleClient_AppAccessToken() {
	fake, base, _, _ := fakeTwitch()
	defer fake.Close()

	c := twitchoauth.NewClient(twitchoauthtest.ClientID, twitchoauthtest.ClientSecret)
	c.AuthBaseURL = base
	tok, err := c.AppAccessToken(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	v, err := c.ValidateToken(context.Background(), tok.AccessToken)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("user token: %v, refresh token: %q\n", v.IsUserToken(), tok.RefreshToken)
	// Output: user token: false, refresh token: ""
}

func ExampleValidateToken() {
	fake, base, access, _ := fakeTwitch(twitchoauth.ScopeChatRead)
	defer fake.Close()

	v, err := twitchoauth.ValidateToken(context.Background(), access, twitchoauth.WithAuthBaseURL(base))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v.ClientID, v.Login)
	// Output: fake-client-id fakeuser
}

func ExampleRefreshAccessToken() {
	fake, base, _, refresh := fakeTwitch(twitchoauth.ScopeChatRead)
	defer fake.Close()

	tok, err := twitchoauth.RefreshAccessToken(context.Background(), refresh, twitchoauthtest.ClientID, twitchoauthtest.ClientSecret,
		twitchoauth.WithAuthBaseURL(base), twitchoauth.WithHTTPClient(&http.Client{Timeout: 10 * time.Second}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.TokenType, twitchoauth.TokenScopes(tok))
	// Output: bearer [chat:read]
}

func ExampleRevokeToken() {
	fake, base, access, _ := fakeTwitch()
	defer fake.Close()

	err := twitchoauth.RevokeToken(context.Background(), twitchoauthtest.ClientID, access, twitchoauth.WithAuthBaseURL(base))
	fmt.Println(err)
	// Output: <nil>
}

func ExampleGetUserInfo() {
	fake, base, access, _ := fakeTwitch()
	defer fake.Close()

	info, err := twitchoauth.GetUserInfo(context.Background(), access, twitchoauth.WithAuthBaseURL(base))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info.Raw["iss"])
	// Output: https://id.twitch.tv/oauth2
}

func ExampleAPIError() {
	fake, base, _, _ := fakeTwitch()
	defer fake.Close()

	c := twitchoauth.NewClient(twitchoauthtest.ClientID, twitchoauthtest.ClientSecret)
	c.AuthBaseURL = base
	_, err := c.RefreshAccessToken(context.Background(), "not-a-refresh-token")
	var apiErr *twitchoauth.APIError
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.Endpoint, apiErr.StatusCode, apiErr.Message)
	}
	fmt.Println(err) // never holds the token
	// Output:
	// token 400 Invalid refresh token
	// twitchoauth: token answered 400: Invalid refresh token
}

func ExampleUserAuthenticator_Authenticate_offline() {
	fake, base, _, _ := fakeTwitch()
	defer fake.Close()

	c := twitchoauth.NewClient(twitchoauthtest.ClientID, twitchoauthtest.ClientSecret)
	c.AuthBaseURL = base
	auth := twitchoauth.NewUserAuthenticator(c, []twitchoauth.Scope{twitchoauth.ScopeChatRead})
	auth.URL, auth.Port = "", 0         // any free port, http://localhost:<port>
	auth.OpenBrowser = fake.OpenBrowser // a browser in which the user approves at once
	tok, err := auth.Authenticate(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(twitchoauth.TokenScopes(tok))
	// Output: [chat:read]
}

func ExampleCodeFlow_WaitForAuthComplete() {
	fake, base, _, _ := fakeTwitch()
	defer fake.Close() // it announces a 1 s polling interval; Twitch's is 5 s

	c := twitchoauth.NewClient(twitchoauthtest.PublicClientID, "") // a public client: no secret
	c.AuthBaseURL = base
	flow := twitchoauth.NewCodeFlow(c, []twitchoauth.Scope{twitchoauth.ScopeChatRead})
	code, _, err := flow.GetCode(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("interval:", flow.Interval())
	fake.ApproveDevice(code) // the user enters the code and approves
	tok, err := flow.WaitForAuthComplete(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(twitchoauth.TokenScopes(tok), tok.RefreshToken != "")
	// Output:
	// interval: 1s
	// [chat:read] true
}

func ExampleUserAuthenticationStorageHelper_Bind() {
	fake, base, _, _ := fakeTwitch()
	defer fake.Close()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)

	c := twitchoauth.NewClient(twitchoauthtest.ClientID, twitchoauthtest.ClientSecret)
	c.AuthBaseURL = base
	scopes := []twitchoauth.Scope{twitchoauth.ScopeChatRead, twitchoauth.ScopeChatEdit}
	bind := func() {
		h := twitchoauth.NewUserAuthenticationStorageHelper(c, scopes)
		h.StoragePath = filepath.Join(dir, "user_token.json")
		h.AuthGenerator = func(ctx context.Context, c *twitchoauth.Client, scopes []twitchoauth.Scope) (*oauth2.Token, error) {
			fmt.Println("logging in") // by default: the browser login
			return fake.IssueUserToken(twitchoauthtest.UserID, scopes...), nil
		}
		ctx := context.Background()
		src, err := h.Bind(ctx)
		if err != nil {
			log.Fatal(err)
		}
		tok, err := src.TokenContext(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("token holds", twitchoauth.TokenScopes(tok))
	}
	bind() // first start: no file yet
	bind() // later starts: the stored token, validated
	// Output:
	// logging in
	// token holds [chat:read chat:edit]
	// token holds [chat:read chat:edit]
}

func ExampleNewUserTokenSource() {
	fake, base, _, refresh := fakeTwitch(twitchoauth.ScopeChatRead)
	defer fake.Close()

	c := twitchoauth.NewClient(twitchoauthtest.ClientID, twitchoauthtest.ClientSecret)
	c.AuthBaseURL = base
	expired := &oauth2.Token{AccessToken: "old", RefreshToken: refresh, Expiry: time.Now().Add(-time.Minute)}
	src := twitchoauth.NewUserTokenSource(c, expired, func(tok *oauth2.Token) error {
		fmt.Println("persist the new pair here") // called before anyone sees the new token
		return nil
	})
	ctx := context.Background()
	tok, err := src.TokenContext(ctx)
	if err != nil {
		log.Fatal(err)
	}
	again, _ := src.TokenContext(ctx)
	fmt.Println(tok.AccessToken != "old", again == tok)
	// Output:
	// persist the new pair here
	// true true
}

func ExampleUserTokenSource_HTTPClient() {
	fake, base, access, refresh := fakeTwitch()
	defer fake.Close()
	helix := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println(r.Header.Get("Client-Id"), r.Header.Get("Authorization") == "Bearer "+access)
	}))
	defer helix.Close()

	c := twitchoauth.NewClient(twitchoauthtest.ClientID, twitchoauthtest.ClientSecret)
	c.AuthBaseURL = base
	src := twitchoauth.NewUserTokenSource(c, &oauth2.Token{AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(time.Hour)}, nil)
	resp, err := src.HTTPClient().Get(helix.URL + "/helix/users") // https://api.twitch.tv/helix/users in real life
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	// Output: fake-client-id true
}

func ExampleNewStoreTokenSource() {
	fake, base, access, refresh := fakeTwitch(twitchoauth.ScopeChannelBot)
	defer fake.Close()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)

	c := twitchoauth.NewClient(twitchoauthtest.ClientID, twitchoauthtest.ClientSecret)
	c.AuthBaseURL = base
	// One store, many broadcasters: each token under its user ID. A shared store (see
	// stores/redisstore) lets replicas share them; here, files beside tokens.json.
	store := &twitchoauth.FileStore{Path: filepath.Join(dir, "tokens.json")}
	err := store.Save(context.Background(), twitchoauthtest.UserID, &twitchoauth.StoredToken{
		AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(-time.Minute), // expired
		UserID: twitchoauthtest.UserID, Scopes: []twitchoauth.Scope{twitchoauth.ScopeChannelBot},
	})
	if err != nil {
		log.Fatal(err)
	}
	src := twitchoauth.NewStoreTokenSource(c, store, twitchoauthtest.UserID, nil)
	tok, err := src.TokenContext(context.Background()) // refreshed under the user's lock, and saved
	if err != nil {
		log.Fatal(err)
	}
	st, _ := store.Load(context.Background(), twitchoauthtest.UserID)
	fmt.Println(st.AccessToken == tok.AccessToken, st.AccessToken != access, st.Scopes)
	// Output: true true [channel:bot]
}

func ExampleMissingScopeError() {
	err := error(&twitchoauth.MissingScopeError{Missing: []twitchoauth.Scope{twitchoauth.ScopeChatEdit}})
	var missing *twitchoauth.MissingScopeError
	if errors.Is(err, twitchoauth.ErrMissingScope) && errors.As(err, &missing) {
		fmt.Println("ask again for", missing.Missing)
	}
	// Output: ask again for [chat:edit]
}

func ExampleDecodeStoredToken() {
	// The file pyTwitchAPI's UserAuthenticationStorageHelper writes holds just these two keys.
	st, err := twitchoauth.DecodeStoredToken([]byte(`{"token": "abc", "refresh": "def"}`))
	fmt.Println(st.AccessToken, st.RefreshToken, err)

	_, err = twitchoauth.DecodeStoredToken([]byte(`{"token": "abc", `))
	fmt.Println(errors.Is(err, twitchoauth.ErrTokenCorrupt), err)
	// Output:
	// abc def <nil>
	// true twitchoauth: stored token is unreadable: not valid JSON (at byte 17)
}
