// Command storagehelix is the start of a bot: it keeps its user token in user_token.json (logging
// in through the browser only when it must), then calls Twitch's Helix API with a client that
// sends the token and refreshes it when it expires or Twitch rejects it.
//
//	TWITCH_CLIENT_ID=... TWITCH_CLIENT_SECRET=... go run ./examples/storagehelix
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
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
		log.Fatal("set TWITCH_CLIENT_ID and TWITCH_CLIENT_SECRET")
	}
	h := twitchoauth.NewUserAuthenticationStorageHelper(c, []twitchoauth.Scope{twitchoauth.ScopeChatRead, twitchoauth.ScopeUserBot})
	src, err := h.Bind(ctx) // validates or refreshes the stored token; logs in only when it must
	if err != nil {
		log.Fatal(err)
	}
	// Twitch asks apps to validate their tokens hourly.
	go src.KeepValidated(ctx, time.Hour)

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://api.twitch.tv/helix/users", nil)
	if err != nil {
		log.Fatal(err)
	}
	resp, err := src.HTTPClient().Do(req) // sets Authorization and Client-Id
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var users struct {
		Data []struct {
			Login       string `json:"login"`
			DisplayName string `json:"display_name"`
			CreatedAt   string `json:"created_at"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&users); err != nil || len(users.Data) == 0 {
		log.Fatalf("helix answered %s: %v", resp.Status, err)
	}
	u := users.Data[0]
	fmt.Printf("The bot runs as %s (%s), on Twitch since %s\n", u.DisplayName, u.Login, u.CreatedAt)
}
