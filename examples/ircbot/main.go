// Command ircbot is a Twitch chat bot that never reconnects with a dead token. It chats as the
// user with the "chat" intent of a UserTokens registry, over go-twitch-irc, and hands the IRC
// client every new token the registry gets (UserTokenSource.Subscribe → Client.SetIRCToken), so
// that each reconnect, however many hours later, logs in with the current one.
//
// Without a Twitch app configured it runs offline against a fake Twitch (identity server and chat
// server, both on this machine) and exits:
//
//	go run .
//
// With one, register http://localhost:17563 as a redirect URL of your app. The first run logs the
// bot account in through the browser and keeps its token in ./user_token.<user id>.json:
//
//	TWITCH_CLIENT_ID=... TWITCH_CLIENT_SECRET=... go run . -channel yourchannel
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"os"
	"os/signal"
	"sync"
	"syscall"

	twitch "github.com/gempir/go-twitch-irc/v4"
	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
)

func main() {
	channel := flag.String("channel", "", "the channel to join (default: the bot's own)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
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
		log.Printf("the bot account (user %s) disconnected the app; run again to log in", userID)
		stop()
	}
	if err := users.Sync(ctx); err != nil {
		log.Fatal(err)
	}
	if _, err := users.SourceForIntent("chat"); errors.Is(err, twitchoauth.ErrTokenNotFound) {
		a := twitchoauth.NewUserAuthenticator(c, []twitchoauth.Scope{twitchoauth.ScopeChatRead, twitchoauth.ScopeChatEdit})
		tok, err := a.Authenticate(ctx)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := users.AddUserForToken(ctx, tok, "chat"); err != nil {
			log.Fatal(err)
		}
	}
	// Run validates the token hourly; one Twitch ended early is refreshed, and the bot hears of it.
	go users.Run(ctx)

	// The IRC NICK is the bot account's login: Validate says whose the token is (and refreshes one
	// Twitch ended early, while the bot was off).
	src, err := users.SourceForIntent("chat")
	if err != nil {
		log.Fatal(err)
	}
	v, err := src.Validate(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if *channel == "" {
		*channel = v.Login
	}
	err = runBot(ctx, users, bot{
		login:     v.Login,
		channel:   *channel,
		joined:    func() { log.Printf("joined #%s", *channel) },
		tookToken: func(*oauth2.Token) { log.Print("the IRC client has the current token for its next connect") },
	})
	if err != nil {
		log.Fatal(err)
	}
}

// bot says who chats where; its func fields let the demo and the test watch.
type bot struct {
	login   string // the bot account's login name, its IRC NICK
	channel string // without "#"
	addr    string // a plain-TCP IRC server's "host:port"; "" is Twitch's, over TLS

	joined    func()              // if set, called after each join: the first, and after every reconnect
	tookToken func(*oauth2.Token) // if set, called after the client took tok for its next connect
}

// runBot chats as the user with the "chat" intent until ctx ends; it returns nil then. go-twitch-irc
// reconnects by itself after a dropped connection, with the password SetIRCToken last set; its
// Connect returns, and so does runBot, when Twitch refuses the login or cannot be reached.
func runBot(ctx context.Context, u *twitchoauth.UserTokens, b bot) error {
	src, err := u.SourceForIntent("chat")
	if err != nil {
		return err
	}
	client := twitch.NewClient(b.login, "") // the password is set below, before Connect
	if b.addr != "" {
		client.IrcAddress, client.TLS = b.addr, false
	}
	setPassword := func(tok *oauth2.Token) {
		client.SetIRCToken(twitchoauth.IRCPassword(tok))
		if b.tookToken != nil {
			b.tookToken(tok)
		}
	}

	// Subscribe hands the client the token held now, then every new one: each becomes the
	// password of the next connect. (go-twitch-irc reads the password on reconnect without a
	// lock: see README.md.)
	if _, err := src.TokenContext(ctx); err != nil { // a fresh token to start with
		return err
	}
	first := make(chan struct{})
	var once sync.Once
	unsubscribe := src.Subscribe(func(tok *oauth2.Token) {
		setPassword(tok)
		once.Do(func() { close(first) })
	})
	defer unsubscribe()
	select {
	case <-first:
	case <-ctx.Done():
		return nil
	}

	client.OnSelfJoinMessage(func(twitch.UserJoinMessage) {
		if b.joined != nil {
			b.joined()
		}
	})
	client.Join(b.channel) // joined again after every reconnect
	connected := make(chan error, 1)
	go func() { connected <- client.Connect() }()
	select {
	case err := <-connected:
		return err
	case <-ctx.Done():
		// Disconnect fails in the instant of a reconnect; then the process is left to end it.
		if client.Disconnect() == nil {
			<-connected
		}
		return nil
	}
}
