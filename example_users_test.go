package twitchoauth_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// A bot that chats as its own account and acts in a broadcaster's channel with the broadcaster's
// token: one registry keeps both, and one Run validates them.
func ExampleUserTokens() {
	fake := twitchoauthtest.New() // a fake Twitch; use Twitch's own with a real client ID and secret
	defer fake.Close()
	bot := fake.IssueUserToken(twitchoauthtest.UserID, twitchoauth.ScopeUserBot, twitchoauth.ScopeUserWriteChat)
	fake.AddUser("67890", "streamer")
	channel := fake.IssueUserToken("67890", twitchoauth.ScopeChannelBot)

	c := fake.Client()
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
	botV, err := users.AddUserForToken(ctx, bot, "chat")
	if err != nil {
		log.Fatal(err)
	}
	chV, err := users.AddUserForToken(ctx, channel, "chatbot:67890")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("added", botV.Login, "and", chV.Login, "->", users.Users())

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- users.Run(runCtx) }() // validates every token hourly, spread over the hour

	src, err := users.SourceForIntent("chat")
	if err != nil {
		log.Fatal(err)
	}
	tok, err := src.TokenContext(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("IRC password starts with", strings.TrimSuffix(twitchoauth.IRCPassword(tok), tok.AccessToken))
	inChannel, _ := users.SourceForIntent("chatbot:67890")
	_ = inChannel.HTTPClient() // Helix calls in the streamer's channel, with the streamer's token

	stop()
	<-done
	// Output:
	// added fakeuser and streamer -> [12345 67890]
	// IRC password starts with oauth:
}
