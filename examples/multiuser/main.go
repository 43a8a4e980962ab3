// Command multiuser is a bot that serves several channels: it chats as its own account and acts in
// each channel with the token of the broadcaster who connected it. One UserTokens (twurple's
// RefreshingAuthProvider) keeps every user's token in ./user_token.<user id>.json, refreshes each
// when it must, and validates them all from one goroutine; an AppTokenSource holds the app token
// that EventSub subscriptions take.
//
// Without a Twitch app configured it runs offline against a fake Twitch and exits:
//
//	go run ./examples/multiuser
//
// With one, register http://localhost:17563 as a redirect URL of your app. Log the bot account in
// with the "chat" intent, then each broadcaster with "chatbot:<their user id>" (the bot prints it):
//
//	TWITCH_CLIENT_ID=... TWITCH_CLIENT_SECRET=... go run ./examples/multiuser -add -intents chat
//	TWITCH_CLIENT_ID=... TWITCH_CLIENT_SECRET=... go run ./examples/multiuser -add -broadcaster
//
// Without -add it loads the stored users and validates them hourly until Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

func main() {
	add := flag.Bool("add", false, "log a user in through the browser and add them")
	intents := flag.String("intents", "", "comma-separated intents of the user added, e.g. chat")
	broadcaster := flag.Bool("broadcaster", false, "give the user added the intent chatbot:<their user id>")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	c := twitchoauth.NewClient(os.Getenv("TWITCH_CLIENT_ID"), os.Getenv("TWITCH_CLIENT_SECRET"))
	if c.ClientID == "" {
		if err := demo(ctx, os.Stdout); err != nil {
			log.Fatal(err)
		}
		return
	}
	users := twitchoauth.NewUserTokens(c, nil) // ./user_token.<user id>.json
	users.OnRevoked = func(userID string, err error) {
		log.Printf("user %s disconnected the bot; they must log in again", userID)
	}
	if *add {
		scopes := []twitchoauth.Scope{twitchoauth.ScopeUserBot, twitchoauth.ScopeUserReadChat, twitchoauth.ScopeUserWriteChat}
		if *broadcaster {
			scopes = []twitchoauth.Scope{twitchoauth.ScopeChannelBot}
		}
		a := twitchoauth.NewUserAuthenticator(c, scopes)
		a.ForceVerify = true // the bot account and the broadcasters are different Twitch users
		tok, err := a.Authenticate(ctx)
		if err != nil {
			log.Fatal(err)
		}
		var in []string
		if *intents != "" {
			in = strings.Split(*intents, ",")
		}
		if *broadcaster { // the intent names the broadcaster's channel: their user ID
			v, err := c.ValidateToken(ctx, tok.AccessToken)
			if err != nil {
				log.Fatal(err)
			}
			in = append(in, "chatbot:"+v.UserID)
		}
		v, err := users.AddUserForToken(ctx, tok, in...)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("added %s (user ID %s) with intents %v\n", v.Login, v.UserID, users.Intents(v.UserID))
		return
	}
	if err := users.Sync(ctx); err != nil {
		log.Fatal(err)
	}
	for _, id := range users.Users() {
		fmt.Printf("user %s: intents %v\n", id, users.Intents(id))
	}
	fmt.Println("validating hourly; Ctrl-C ends")
	if err := users.Run(ctx); !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

// demo runs the bot's token work against a fake Twitch on this machine: the bot account and three
// broadcasters are added, the bot chats and acts in each channel with the right token, a token
// Twitch killed is refreshed, a broadcaster disconnects the bot, another leaves.
func demo(ctx context.Context, w io.Writer) error {
	fake := twitchoauthtest.New()
	defer fake.Close()
	c := fake.Client()
	dir, err := os.MkdirTemp("", "multiuser-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(w, "No Twitch app configured (TWITCH_CLIENT_ID), so this is an offline demo against a fake Twitch\n"+
		"at %s. Tokens are kept in %s.\n\n", fake.URL, dir)

	users := twitchoauth.NewUserTokens(c, &twitchoauth.FileStore{Path: filepath.Join(dir, "user_token.json")})
	users.OnRefresh = func(userID string, _ *oauth2.Token) {
		fmt.Fprintf(w, "  OnRefresh: user %s has a new token (already stored)\n", userID)
	}
	users.OnRevoked = func(userID string, err error) {
		fmt.Fprintf(w, "  OnRevoked: user %s disconnected the bot; removed until they log in again\n", userID)
	}
	// Each user logs in once; on the fake, the tokens are simply issued.
	login := func(id, name string, scopes ...twitchoauth.Scope) *oauth2.Token {
		fake.AddUser(id, name)
		return fake.IssueUserToken(id, scopes...)
	}
	if _, err := users.AddUserForToken(ctx, login("1000", "coolbot", twitchoauth.ScopeUserBot, twitchoauth.ScopeUserReadChat, twitchoauth.ScopeUserWriteChat), "chat"); err != nil {
		return err
	}
	channels := []struct{ id, name string }{{"2001", "alice"}, {"2002", "bob"}, {"2003", "carol"}}
	for _, ch := range channels {
		if _, err := users.AddUserForToken(ctx, login(ch.id, ch.name, twitchoauth.ScopeChannelBot), "chatbot:"+ch.id); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "Users: %v\n", users.Users())

	// One goroutine validates every token hourly, spread over the hour.
	runCtx, stopRun := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- users.Run(runCtx) }()
	defer func() { stopRun(); <-ran }()

	bot, err := users.SourceForIntent("chat")
	if err != nil {
		return err
	}
	tok, err := bot.TokenContext(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Chat as the bot: PASS %s… (IRCPassword; never log it)\n", twitchoauth.IRCPassword(tok)[:len("oauth:")])
	for _, ch := range channels {
		src, err := users.SourceForIntent("chatbot:" + ch.id)
		if err != nil {
			return err
		}
		v, err := src.Validate(ctx) // whose token, with which scopes
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "Channel %s: Helix calls go out with %s's token (scopes %v) via src.HTTPClient()\n", ch.name, v.Login, v.Scopes)
	}
	app := twitchoauth.NewAppTokenSource(c)
	appTok, err := app.TokenContext(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "EventSub subscriptions use the app token (expires in %v) via app.HTTPClient()\n\n",
		time.Until(appTok.Expiry).Round(time.Hour))

	fmt.Fprintln(w, "Twitch kills alice's token early; the next validation (or Helix 401) refreshes it:")
	alice, _ := users.Source("2001")
	old, _ := alice.TokenContext(ctx)
	fake.Expire(old.AccessToken)
	if _, err := alice.ForceRefresh(ctx, old); err != nil {
		return err
	}

	fmt.Fprintln(w, "Bob disconnects the bot in his Twitch settings:")
	bob, _ := users.Source("2002")
	dead, _ := bob.TokenContext(ctx)
	fake.Revoke(dead.AccessToken)
	if _, err := bob.ForceRefresh(ctx, dead); !errors.Is(err, twitchoauth.ErrInvalidRefreshToken) {
		return fmt.Errorf("bob's refresh: %v, want ErrInvalidRefreshToken", err)
	}

	fmt.Fprintln(w, "Carol asks the bot to leave her channel; her grant is revoked:")
	if err := users.Remove(ctx, "2003", true); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nUsers now: %v\n", users.Users())
	return nil
}
