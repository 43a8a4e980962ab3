package twitchoauth_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/twitchoauth/twitchoauth"
)

// A program without a browser logs the user in with the device code grant: it shows a code and a
// URL, and the user approves on any device.
func ExampleCodeFlow() {
	ctx := context.Background()
	c := twitchoauth.NewClient("your-client-id", "") // a public client needs no secret
	flow := twitchoauth.NewCodeFlow(c, []twitchoauth.Scope{twitchoauth.ScopeChatRead, twitchoauth.ScopeChatEdit})

	code, uri, err := flow.GetCode(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("Open %s and enter %s within %v\n", uri, code, time.Until(flow.ExpiresAt()).Round(time.Minute))

	tok, err := flow.WaitForAuthComplete(ctx)
	switch {
	case errors.Is(err, twitchoauth.ErrAccessDenied):
		log.Fatal("you declined")
	case errors.Is(err, twitchoauth.ErrDeviceCodeExpired):
		log.Fatal("too late: run again for a new code")
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println("logged in with", twitchoauth.TokenScopes(tok), "until", tok.Expiry.Format(time.Kitchen))
}
