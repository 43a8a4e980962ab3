// Command browserlogin logs a user in through the browser and prints the token: the library's
// UserAuthenticator in its default form. Register http://localhost:17563 as a redirect URL of your
// app in the Twitch developer console, then:
//
//	TWITCH_CLIENT_ID=... TWITCH_CLIENT_SECRET=... go run ./examples/browserlogin
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/twitchoauth/twitchoauth"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	c := twitchoauth.NewClient(os.Getenv("TWITCH_CLIENT_ID"), os.Getenv("TWITCH_CLIENT_SECRET"))
	if c.ClientID == "" {
		log.Fatal("set TWITCH_CLIENT_ID and TWITCH_CLIENT_SECRET (or run examples/twitchtoken for an offline demo)")
	}
	auth := twitchoauth.NewUserAuthenticator(c, []twitchoauth.Scope{twitchoauth.ScopeChatRead, twitchoauth.ScopeChatEdit})
	fmt.Println("Log in to Twitch in the browser window that opens (Ctrl+C to cancel)…")
	tok, err := auth.Authenticate(ctx) // listens on localhost:17563, opens the browser, waits
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("access token: ", tok.AccessToken)
	fmt.Println("refresh token:", tok.RefreshToken)
	fmt.Println("expires:      ", tok.Expiry)
	fmt.Println("scopes:       ", twitchoauth.TokenScopes(tok))
}
