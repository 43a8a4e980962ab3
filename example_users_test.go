package twitchoauth_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// A bot that chats as its own account and acts in a broadcaster's channel with the broadcaster's
// token: one registry keeps both, and one Run validates them.
func ExampleUserTokens() {
	fake, base, botAccess, botRefresh := fakeTwitch("user:bot", "user:write:chat")
	defer fake.Close()
	fake.AddUser("67890", "streamer", "")
	chAccess, chRefresh := fake.IssueToken(faketwitch.ClientID, "67890", []string{"channel:bot"}, 0)

	c := twitchoauth.NewClient(faketwitch.ClientID, faketwitch.ClientSecret)
	c.AuthBaseURL = base
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// Tokens live in dir/user_token.<user id>.json; pass nil for the working directory, or a
	// shared store (Redis) for replicas.
	users := twitchoauth.NewUserTokens(c, &twitchoauth.FileStore{Path: filepath.Join(dir, "user_token.json")})
	users.OnRevoked = func(userID string, err error) { log.Printf("user %s must log in again", userID) }

	ctx := context.Background()
	bot, err := users.AddUserForToken(ctx, &oauth2.Token{AccessToken: botAccess, RefreshToken: botRefresh}, "chat")
	if err != nil {
		log.Fatal(err)
	}
	ch, err := users.AddUserForToken(ctx, &oauth2.Token{AccessToken: chAccess, RefreshToken: chRefresh}, "chatbot:67890")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("added", bot.Login, "and", ch.Login, "->", users.Users())

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- users.Run(runCtx) }() // validates every token hourly, spread over the hour

	src, err := users.SourceForIntent("chat")
	if err != nil {
		log.Fatal(err)
	}
	tok, err := src.Token()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("IRC password starts with", strings.TrimSuffix(twitchoauth.IRCPassword(tok), tok.AccessToken))
	channel, _ := users.SourceForIntent("chatbot:67890")
	_ = channel.HTTPClient() // Helix calls in the streamer's channel, with the streamer's token

	stop()
	<-done
	// Output:
	// added fakeuser and streamer -> [12345 67890]
	// IRC password starts with oauth:
}
