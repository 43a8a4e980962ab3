package twitchoauth_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/twitchoauth/twitchoauth"
)

// A desktop program logs the user in: the browser opens on Twitch's consent page, and the token comes
// back once they click Authorize. Register http://localhost:17563 as a redirect URL of the app first.
func ExampleUserAuthenticator_Authenticate() {
	ctx := context.Background()
	c := twitchoauth.NewClient(os.Getenv("TWITCH_CLIENT_ID"), os.Getenv("TWITCH_CLIENT_SECRET"))
	auth := twitchoauth.NewUserAuthenticator(c, []twitchoauth.Scope{twitchoauth.ScopeChatRead, twitchoauth.ScopeChatEdit})
	tok, err := auth.Authenticate(ctx)
	if errors.Is(err, twitchoauth.ErrAccessDenied) {
		log.Fatal("you declined: the bot cannot chat without your consent")
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("logged in; refresh token kept:", tok.RefreshToken != "")
}

// On a machine without a browser, print the URL for the person to open elsewhere. The server still
// waits on localhost, so the browser that opens the URL must run on this machine (or reach its port).
func ExampleWithAuthURLCallback() {
	ctx := context.Background()
	c := twitchoauth.NewClient(os.Getenv("TWITCH_CLIENT_ID"), os.Getenv("TWITCH_CLIENT_SECRET"))
	auth := twitchoauth.NewUserAuthenticator(c, []twitchoauth.Scope{twitchoauth.ScopeChatRead})
	tok, err := auth.Authenticate(ctx, twitchoauth.WithAuthURLCallback(func(_ context.Context, authURL string) error {
		_, err := fmt.Fprintln(os.Stderr, "Open this URL to log in:", authURL)
		return err
	}))
	if err != nil {
		log.Fatal(err)
	}
	_ = tok
}

// A headless program with no server: the person opens AuthURL, approves, and pastes the code that
// Twitch put in the redirect URL's query.
func ExampleWithUserToken() {
	ctx := context.Background()
	c := twitchoauth.NewClient(os.Getenv("TWITCH_CLIENT_ID"), os.Getenv("TWITCH_CLIENT_SECRET"))
	auth := twitchoauth.NewUserAuthenticator(c, []twitchoauth.Scope{twitchoauth.ScopeChatRead})
	fmt.Println("Open", auth.AuthURL(), "and paste the code= value of the page it sends you to:")
	var code string
	if _, err := fmt.Scanln(&code); err != nil {
		log.Fatal(err)
	}
	tok, err := auth.Authenticate(ctx, twitchoauth.WithUserToken(code))
	if err != nil {
		log.Fatal(err)
	}
	_ = tok
}

func ExampleUserAuthenticator_AuthURL() {
	c := twitchoauth.NewClient("my-client-id", "my-secret")
	auth := twitchoauth.NewUserAuthenticator(c, []twitchoauth.Scope{twitchoauth.ScopeChatRead, twitchoauth.ScopeChatEdit})
	auth.State = "a-random-state" // NewUserAuthenticator sets a random UUID
	fmt.Println(auth.AuthURL())
	// Output: https://id.twitch.tv/oauth2/authorize?client_id=my-client-id&force_verify=false&redirect_uri=http%3A%2F%2Flocalhost%3A17563&response_type=code&scope=chat%3Aread+chat%3Aedit&state=a-random-state
}

// Tests against twitch-cli's mock API (`twitch-cli mock-api start`) get a user token without a browser.
func ExampleUserAuthenticator_MockAuthenticate() {
	ctx := context.Background()
	c := twitchoauth.NewClient("mock-client-id", "mock-client-secret") // from `twitch-cli mock-api generate`
	c.AuthBaseURL = "http://localhost:8080/auth/"
	auth := twitchoauth.NewUserAuthenticator(c, []twitchoauth.Scope{twitchoauth.ScopeChatRead})
	accessToken, err := auth.MockAuthenticate(ctx, "mock-user-id")
	if err != nil {
		log.Fatal(err)
	}
	_ = accessToken
}
