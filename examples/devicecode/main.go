// Command devicecode logs a user in with the device code flow: for a machine without a browser,
// the user enters a code on any other device. A public client (no secret) works too:
//
//	TWITCH_CLIENT_ID=... go run ./examples/devicecode
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/twitchoauth/twitchoauth"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	c := twitchoauth.NewClient(os.Getenv("TWITCH_CLIENT_ID"), os.Getenv("TWITCH_CLIENT_SECRET"))
	if c.ClientID == "" {
		log.Fatal("set TWITCH_CLIENT_ID (or run examples/twitchtoken -device for an offline demo)")
	}
	flow := twitchoauth.NewCodeFlow(c, []twitchoauth.Scope{twitchoauth.ScopeChatRead})
	code, uri, err := flow.GetCode(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("Open %s and enter %s (expires in %s)\n", uri, code, time.Until(flow.ExpiresAt()).Round(time.Second))

	tok, err := flow.WaitForAuthComplete(ctx) // polls at Twitch's interval until the user decides
	switch {
	case errors.Is(err, twitchoauth.ErrAccessDenied):
		log.Fatal("you declined")
	case errors.Is(err, twitchoauth.ErrDeviceCodeExpired):
		log.Fatal("the code expired; run again")
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println("access token: ", tok.AccessToken)
	fmt.Println("refresh token:", tok.RefreshToken)
}
