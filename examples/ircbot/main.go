// Command ircbot is a Twitch chat bot that never reconnects with a dead token. It chats as the
// user with the "chat" intent of a UserTokens registry, over go-twitch-irc, and hands the IRC
// client every new token the registry gets (UserTokenSource.Subscribe → Client.SetIRCToken), so
// that each reconnect, however many hours later, logs in with the current one.
//
// Without a Twitch app configured it runs offline against a fake Twitch (identity server and chat
// server, both on this machine) and exits. It runs two processes: this one is the writer, which
// holds the bot's token and refreshes it, and it starts itself again as a reader bot that chats
// with the token the writer stores, and never refreshes:
//
//	go run .
//
// With an app, register http://localhost:17563 as a redirect URL of it. One process that logs
// the bot account in through the browser on its first run, keeps its token in
// ./user_token.<user id>.json, and chats:
//
//	TWITCH_CLIENT_ID=... TWITCH_CLIENT_SECRET=... go run . -channel yourchannel
//
// Or a writer and N reader bots on one machine, sharing a token directory. The writer logs the
// bot account in on its first run and refreshes the token 10 minutes before it expires
// (UserTokens.KeepFresh); it does not chat. Each reader (UserTokens.ReadOnly) chats in its
// channel, takes each token the writer stores within 200 ms, and needs no client secret:
//
//	TWITCH_CLIENT_ID=... TWITCH_CLIENT_SECRET=... go run . -role writer -dir /var/lib/ircbot
//	TWITCH_CLIENT_ID=... go run . -role reader -dir /var/lib/ircbot -channel one
//	TWITCH_CLIENT_ID=... go run . -role reader -dir /var/lib/ircbot -channel two
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
	"sync"
	"syscall"

	twitch "github.com/gempir/go-twitch-irc/v4"
	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil && !errors.Is(err, flag.ErrHelp) {
		log.Fatal(err)
	}
}

// run is the program with its command line, args without the program's name.
func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("ircbot", flag.ContinueOnError)
	role := fs.String("role", "", `"writer" keeps the bot's token fresh in -dir; "reader" chats with the token the writer stores; "" does both in one process`)
	dir := fs.String("dir", ".", "the directory of the token files, shared by the writer and its readers")
	channel := fs.String("channel", "", "the channel to join (default: the bot's own)")
	authURL := fs.String("auth-url", "", "the identity server's base URL (default: Twitch's; the demo's reader is given the fake's)")
	irc := fs.String("irc", "", `a plain-TCP chat server's "host:port" (default: Twitch's, over TLS; the demo's reader is given the fake's)`)
	stopOnEOF := fs.Bool("stop-on-eof", false, "exit when standard input closes (how the demo's writer ends its reader)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *stopOnEOF {
		go func() {
			io.Copy(io.Discard, os.Stdin) // returns when the parent closes its end, or ends
			stop()
		}()
	}

	c := twitchoauth.NewClient(os.Getenv("TWITCH_CLIENT_ID"), os.Getenv("TWITCH_CLIENT_SECRET"))
	if *authURL != "" {
		c.AuthBaseURL = *authURL
	}
	switch *role {
	case "reader":
		return runReader(ctx, c, reader{dir: *dir, channel: *channel, addr: *irc}, out)
	case "writer":
		return runWriter(ctx, c, *dir, out)
	case "":
	default:
		return fmt.Errorf("-role %q: want writer, reader or none", *role)
	}
	if c.ClientID == "" {
		_, err := demo(ctx, out)
		return err
	}

	users := twitchoauth.NewUserTokens(c, twitchoauth.NewFileStore(*dir)) // <dir>/user_token.<user id>.json
	users.OnRevoked = func(userID string, err error) {
		log.Printf("the bot account (user %s) disconnected the app; run again to log in", userID)
		stop()
	}
	if err := logIn(ctx, c, users); err != nil {
		return err
	}
	// Run validates the token hourly; one Twitch ended early is refreshed, and the bot hears of it.
	go users.Run(ctx)

	// The IRC NICK is the bot account's login: Validate says whose the token is (and refreshes one
	// Twitch ended early, while the bot was off).
	src, err := users.SourceForIntent("chat")
	if err != nil {
		return err
	}
	v, err := src.Validate(ctx)
	if err != nil {
		return err
	}
	if *channel == "" {
		*channel = v.Login
	}
	return runBot(ctx, users, bot{
		login:     v.Login,
		channel:   *channel,
		addr:      *irc,
		joined:    func() { log.Printf("joined #%s", *channel) },
		tookToken: func(*oauth2.Token) { log.Print("the IRC client has the current token for its next connect") },
	})
}

// logIn reads the registry's users from its store, and logs the bot account in through the
// browser when none has the "chat" intent.
func logIn(ctx context.Context, c *twitchoauth.Client, users *twitchoauth.UserTokens) error {
	if err := users.Sync(ctx); err != nil {
		return err
	}
	if _, err := users.SourceForIntent("chat"); !errors.Is(err, twitchoauth.ErrTokenNotFound) {
		return err
	}
	a := twitchoauth.NewUserAuthenticator(c, []twitchoauth.Scope{twitchoauth.ScopeChatRead, twitchoauth.ScopeChatEdit})
	tok, err := a.Authenticate(ctx)
	if err != nil {
		return err
	}
	_, err = users.AddUserForToken(ctx, tok, "chat")
	return err
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
