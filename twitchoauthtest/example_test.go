package twitchoauthtest_test

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

// In a test, start the server with NewServer(t), which closes it when the test ends. These
// examples have no t, so they use New and Close.

func Example() {
	srv := twitchoauthtest.New()
	defer srv.Close()
	srv.AddUser("1234", "streamer")
	tok := srv.IssueUserToken("1234", twitchoauth.ScopeChatRead)

	c := srv.Client() // the code under test gets this Client
	v, err := c.ValidateToken(context.Background(), tok.AccessToken)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v.Login, v.UserID, v.Scopes)
	fmt.Println(srv.Requests("validate")[0].Authorization == "OAuth "+tok.AccessToken)
	// Output:
	// streamer 1234 [chat:read]
	// true
}

// The browser login: the Server's OpenBrowser plays the browser, in the goroutine Authenticate
// runs it in, and the AuthorizeAs user approves on the consent page.
func ExampleServer_OpenBrowser() {
	ctx := context.Background()
	srv := twitchoauthtest.New()
	defer srv.Close()
	srv.AuthorizeAs("1234", "streamer")

	c := srv.Client()
	auth := twitchoauth.NewUserAuthenticator(c, []twitchoauth.Scope{twitchoauth.ScopeChatRead})
	auth.URL, auth.Port = "", 0 // a free port, so that tests can run in parallel
	auth.OpenBrowser = srv.OpenBrowser
	tok, err := auth.Authenticate(ctx)
	if err != nil {
		log.Fatal(err)
	}
	v, err := c.ValidateToken(ctx, tok.AccessToken)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v.Login, twitchoauth.TokenScopes(tok))
	fmt.Println(srv.Requests("token")[0].Form.Get("grant_type"))
	// Output:
	// streamer [chat:read]
	// authorization_code
}

// The user clicks Cancel on the consent page.
func ExampleServer_DenyAuthorize() {
	srv := twitchoauthtest.New()
	defer srv.Close()
	srv.DenyAuthorize(true)

	auth := twitchoauth.NewUserAuthenticator(srv.Client(), []twitchoauth.Scope{twitchoauth.ScopeChatRead})
	auth.URL, auth.Port = "", 0
	auth.OpenBrowser = srv.OpenBrowser
	_, err := auth.Authenticate(context.Background())
	fmt.Println(errors.Is(err, twitchoauth.ErrAccessDenied))
	// Output: true
}

// The device flow: the user enters the code on another device and approves. The Server announces
// a 1 s polling interval, so this takes a second.
func ExampleServer_ApproveDevice() {
	ctx := context.Background()
	srv := twitchoauthtest.New()
	defer srv.Close()
	srv.AuthorizeAs("1234", "streamer")

	flow := twitchoauth.NewCodeFlow(srv.PublicClient(), []twitchoauth.Scope{twitchoauth.ScopeChatRead})
	code, _, err := flow.GetCode(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.ApproveDevice(code); err != nil {
		log.Fatal(err)
	}
	tok, err := flow.WaitForAuthComplete(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(twitchoauth.TokenScopes(tok))

	// A public client's refresh token works once: store the new one.
	next, err := srv.PublicClient().RefreshAccessToken(ctx, tok.RefreshToken)
	if err != nil {
		log.Fatal(err)
	}
	_, err = srv.PublicClient().RefreshAccessToken(ctx, tok.RefreshToken)
	fmt.Println(next.RefreshToken != tok.RefreshToken, errors.Is(err, twitchoauth.ErrInvalidRefreshToken))
	// Output:
	// [chat:read]
	// true true
}

func ExampleServer_DenyDevice() {
	ctx := context.Background()
	srv := twitchoauthtest.New()
	defer srv.Close()

	flow := twitchoauth.NewCodeFlow(srv.PublicClient(), []twitchoauth.Scope{twitchoauth.ScopeChatRead})
	code, _, err := flow.GetCode(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.DenyDevice(code); err != nil {
		log.Fatal(err)
	}
	_, err = flow.WaitForAuthComplete(ctx)
	fmt.Println(errors.Is(err, twitchoauth.ErrAccessDenied))
	// Output: true
}

// Bind keeps the token in a file: the first start logs in through the browser, later ones use and
// validate the stored token.
func Example_bind() {
	srv := twitchoauthtest.New()
	defer srv.Close()
	dir, err := os.MkdirTemp("", "bind")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	start := func() {
		h := twitchoauth.NewUserAuthenticationStorageHelper(srv.Client(), []twitchoauth.Scope{twitchoauth.ScopeChatRead})
		h.StoragePath = filepath.Join(dir, "user_token.json")
		h.AuthGenerator = func(ctx context.Context, c *twitchoauth.Client, scopes []twitchoauth.Scope) (*oauth2.Token, error) {
			fmt.Println("logging in")
			auth := twitchoauth.NewUserAuthenticator(c, scopes)
			auth.URL, auth.Port = "", 0
			auth.OpenBrowser = srv.OpenBrowser
			return auth.Authenticate(ctx)
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
		fmt.Println("token with", twitchoauth.TokenScopes(tok))
	}
	start()
	start()
	fmt.Println(len(srv.Requests("token")), "login,", len(srv.Requests("validate")), "validations")
	// Output:
	// logging in
	// token with [chat:read]
	// token with [chat:read]
	// 1 login, 2 validations
}

// A bot that slept through its token's 4 hours refreshes it on first use.
func ExampleServer_ExpireAll() {
	srv := twitchoauthtest.New()
	defer srv.Close()
	tok := srv.IssueUserToken(twitchoauthtest.UserID, twitchoauth.ScopeChatRead)
	tok.Expiry = time.Now().Add(-time.Minute) // what the bot sees: its token has expired
	srv.ExpireAll()                           // what Twitch sees

	src := twitchoauth.NewUserTokenSource(srv.Client(), tok, func(*oauth2.Token) error {
		fmt.Println("storing the new pair")
		return nil
	})
	ctx := context.Background()
	fresh, err := src.TokenContext(ctx)
	if err != nil {
		log.Fatal(err)
	}
	_, err = srv.Client().ValidateToken(ctx, fresh.AccessToken)
	fmt.Println(fresh.AccessToken != tok.AccessToken, err, twitchoauth.TokenScopes(fresh))
	// Output:
	// storing the new pair
	// true <nil> [chat:read]
}

// The user disconnects the app: the grant is gone. The token source then fails at once, without a
// request, until a new login hands it a token.
func ExampleServer_Revoke() {
	srv := twitchoauthtest.New()
	defer srv.Close()
	tok := srv.IssueUserToken(twitchoauthtest.UserID, twitchoauth.ScopeChatRead)
	tok.Expiry = time.Now().Add(-time.Minute) // due for a refresh
	src := twitchoauth.NewUserTokenSource(srv.Client(), tok, nil)

	ctx := context.Background()
	srv.Revoke(tok.AccessToken)
	_, err := src.TokenContext(ctx)
	fmt.Println(errors.Is(err, twitchoauth.ErrInvalidRefreshToken))
	_, err = src.TokenContext(ctx)
	fmt.Println(errors.Is(err, twitchoauth.ErrInvalidRefreshToken), len(srv.Requests("token")), "refresh sent")

	src.SetToken(srv.IssueUserToken(twitchoauthtest.UserID, twitchoauth.ScopeChatRead)) // after a new login
	_, err = src.TokenContext(ctx)
	fmt.Println(err)
	// Output:
	// true
	// true 1 refresh sent
	// <nil>
}

// A fake Helix answers 401 as Twitch's API does. The token source's HTTP client asks /validate
// about a refused token: a dead one is refreshed and the request sent again; for a missing scope
// the 401 reaches the caller.
func ExampleServer_RequireToken() {
	srv := twitchoauthtest.New()
	defer srv.Close()
	mux := http.NewServeMux()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"data":[]}`) })
	mux.Handle("/helix/users", srv.RequireToken(ok))
	mux.Handle("/helix/chat/messages", srv.RequireToken(ok, twitchoauth.ScopeUserWriteChat))
	helix := httptest.NewServer(mux)
	defer helix.Close()

	tok := srv.IssueUserToken(twitchoauthtest.UserID, twitchoauth.ScopeChatRead)
	hc := twitchoauth.NewUserTokenSource(srv.Client(), tok, nil).HTTPClient()
	srv.Expire(tok.AccessToken) // Twitch ends the token before its Expiry

	for _, path := range []string{"/helix/users", "/helix/chat/messages"} {
		resp, err := hc.Get(helix.URL + path)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(path, resp.StatusCode)
	}
	fmt.Println(len(srv.Requests("validate")), "validations,", len(srv.Requests("token")), "refresh")
	// Output:
	// /helix/users 200
	// /helix/chat/messages 401
	// 2 validations, 1 refresh
}

// Twitch's clock moves on: 3 of the token's 4 hours pass, then the last one.
func ExampleServer_Advance() {
	ctx := context.Background()
	srv := twitchoauthtest.New()
	defer srv.Close()
	tok := srv.IssueUserToken(twitchoauthtest.UserID)
	c := srv.Client()

	srv.Advance(3 * time.Hour)
	v, err := c.ValidateToken(ctx, tok.AccessToken)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v.ExpiresIn.Round(time.Minute))
	srv.Advance(time.Hour)
	_, err = c.ValidateToken(ctx, tok.AccessToken)
	fmt.Println(errors.Is(err, twitchoauth.ErrInvalidToken))
	// Output:
	// 1h0m0s
	// true
}

func ExampleServer_Fail() {
	ctx := context.Background()
	srv := twitchoauthtest.New()
	defer srv.Close()
	tok := srv.IssueUserToken(twitchoauthtest.UserID)
	c := srv.Client()

	srv.Fail("validate", http.StatusServiceUnavailable, 1) // the next validation only
	_, err := c.ValidateToken(ctx, tok.AccessToken)
	var apiErr *twitchoauth.APIError
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.StatusCode, apiErr.Message)
	}
	_, err = c.ValidateToken(ctx, tok.AccessToken)
	fmt.Println(err)
	// Output:
	// 503 Service Unavailable
	// <nil>
}

// Twitch does not answer: the code under test must give up when its context ends.
func ExampleServer_Hang() {
	srv := twitchoauthtest.New()
	defer srv.Close()
	tok := srv.IssueUserToken(twitchoauthtest.UserID)
	srv.Hang("token", 1)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := srv.Client().RefreshAccessToken(ctx, tok.RefreshToken)
	fmt.Println(errors.Is(err, context.DeadlineExceeded))
	// Output: true
}

// A slow Twitch: the answer comes, late.
func ExampleServer_Delay() {
	srv := twitchoauthtest.New()
	defer srv.Close()
	tok := srv.IssueUserToken(twitchoauthtest.UserID)
	srv.Delay("validate", 20*time.Millisecond, 1)

	start := time.Now()
	_, err := srv.Client().ValidateToken(context.Background(), tok.AccessToken)
	fmt.Println(err, time.Since(start) >= 20*time.Millisecond)
	// Output: <nil> true
}

// What the code under test sent, secrets included: here, that a refresh carries its secrets in
// the form body and none in the URL.
func ExampleServer_Requests() {
	srv := twitchoauthtest.New()
	defer srv.Close()
	tok := srv.IssueUserToken(twitchoauthtest.UserID)
	if _, err := srv.Client().RefreshAccessToken(context.Background(), tok.RefreshToken); err != nil {
		log.Fatal(err)
	}
	r := srv.Requests("token")[0]
	fmt.Println(r.Method, r.Form.Get("grant_type"), r.Form.Get("client_secret") == twitchoauthtest.ClientSecret,
		r.Form.Get("refresh_token") == tok.RefreshToken, len(r.Query))
	// Output: POST refresh_token true true 0
}
