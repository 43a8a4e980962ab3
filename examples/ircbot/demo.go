package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// demo runs the bot against a fake Twitch on this machine: it joins, Twitch ends its token early
// and the registry refreshes it, the chat server drops the connection, and the bot logs in again
// with the new token.
func demo(ctx context.Context, w io.Writer) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ctx, cancelTimeout := context.WithTimeoutCause(ctx, 10*time.Second, errors.New("the demo took over 10 s"))
	defer cancelTimeout()
	fake := twitchoauthtest.New()
	defer fake.Close()
	c := fake.Client()
	dir, err := os.MkdirTemp("", "ircbot-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var mu sync.Mutex // the chat server's goroutines print too
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, format+"\n", args...)
	}
	say("No Twitch app configured (TWITCH_CLIENT_ID), so this is an offline demo against a fake Twitch.")

	// The bot account logs in once; on the fake, its token is simply issued.
	fake.AddUser("1000", "coolbot")
	users := twitchoauth.NewUserTokens(c, &twitchoauth.FileStore{Path: filepath.Join(dir, "user_token.json")})
	if _, err := users.AddUserForToken(ctx, fake.IssueUserToken("1000", twitchoauth.ScopeChatRead, twitchoauth.ScopeChatEdit), "chat"); err != nil {
		return err
	}

	// A chat server that, like Twitch's, takes a live token only.
	var refused atomic.Int32
	live := func(token string) bool { _, err := c.ValidateToken(ctx, token); return err == nil }
	chat, err := startFakeChat(live, func(e chatEvent) {
		switch {
		case e.channel != "":
			say("  chat server: %s joined %s", e.nick, e.channel)
		case e.ok:
			say("  chat server: %s logged in with a live token: welcome", e.nick)
		default:
			refused.Add(1)
			say("  chat server: %s logged in with a dead token: refused", e.nick)
		}
	})
	if err != nil {
		return err
	}
	defer chat.Close()

	say("\nThe bot connects:")
	joined := make(chan struct{}, 8)
	took := make(chan *oauth2.Token, 8)
	botCtx, stopBot := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() {
		err := runBot(botCtx, users, bot{
			login: "coolbot", channel: "coolchannel", addr: chat.Addr(),
			joined:    func() { joined <- struct{}{} },
			tookToken: func(tok *oauth2.Token) { took <- tok },
		})
		ran <- err
		cancel(fmt.Errorf("the bot stopped: %v", err)) // ends the waits below at once
	}()
	stop := sync.OnceValue(func() error { stopBot(); return <-ran })
	defer stop()
	if _, err := wait(ctx, took); err != nil {
		return err
	}
	if _, err := wait(ctx, joined); err != nil {
		return err
	}

	say("\nTwitch ends the bot's token early; UserTokens.Run finds it at its hourly validation and")
	say("refreshes it (here at once). Subscribe hands the new token to client.SetIRCToken:")
	src, err := users.SourceForIntent("chat")
	if err != nil {
		return err
	}
	old, err := src.TokenContext(ctx)
	if err != nil {
		return err
	}
	fake.Expire(old.AccessToken)
	next, err := src.ForceRefresh(ctx, old)
	if err != nil {
		return err
	}
	switch tok, err := wait(ctx, took); {
	case err != nil:
		return err
	case tok.AccessToken != next.AccessToken:
		return errors.New("the IRC client took another token than the refreshed one")
	}
	say("  the IRC client has the new token for its next connect")

	say("\nThe chat server restarts and drops the connection; go-twitch-irc reconnects:")
	chat.DropAll()
	if _, err := wait(ctx, joined); err != nil {
		return err
	}
	if err := stop(); err != nil {
		return err
	}
	if n := refused.Load(); n > 0 {
		return fmt.Errorf("the bot sent a dead token %d times", n)
	}
	say("\nThe bot never sent a dead token.")
	return nil
}

// wait returns the next value from ch, or an error once ctx ends.
func wait[T any](ctx context.Context, ch <-chan T) (T, error) {
	select {
	case v := <-ch:
		return v, nil
	case <-ctx.Done():
		var zero T
		return zero, context.Cause(ctx)
	}
}
