package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// TestReconnectUsesRefreshedToken: after the registry refreshed the chat token (the old one dead
// at Twitch), a dropped connection is reconnected with the new token, at the first try, and the
// bot joins its channel again.
func TestReconnectUsesRefreshedToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	srv := twitchoauthtest.NewServer(t)
	c := srv.Client()
	srv.AddUser("1000", "coolbot")
	users := twitchoauth.NewUserTokens(c, &twitchoauth.FileStore{Path: filepath.Join(t.TempDir(), "user_token.json")})
	first := srv.IssueUserToken("1000", twitchoauth.ScopeChatRead, twitchoauth.ScopeChatEdit)
	if _, err := users.AddUserForToken(ctx, first, "chat"); err != nil {
		t.Fatal(err)
	}

	// The chat server takes a token the fake Twitch says is live, as Twitch's does.
	events := make(chan chatEvent, 16)
	live := func(token string) bool { _, err := c.ValidateToken(ctx, token); return err == nil }
	chat, err := startFakeChat(live, func(e chatEvent) { events <- e })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(chat.Close)

	joined := make(chan struct{}, 16)
	took := make(chan *oauth2.Token, 16)
	botCtx, stopBot := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() {
		ran <- runBot(botCtx, users, bot{
			login: "coolbot", channel: "coolchannel", addr: chat.Addr(),
			joined:    func() { joined <- struct{}{} },
			tookToken: func(tok *oauth2.Token) { took <- tok },
		})
	}()
	// joinedWith waits for a login, checks that its PASS is want's, and waits for the bot to be in
	// its channel.
	joinedWith := func(when string, want, old *oauth2.Token) {
		t.Helper()
		login := next(ctx, t, ran, when+": the login", events)
		switch {
		case old != nil && login.pass == twitchoauth.IRCPassword(old):
			t.Fatalf("%s: PASS is the old token, dead since the refresh (chat server took it: %v)", when, login.ok)
		case login.pass != twitchoauth.IRCPassword(want):
			t.Fatalf("%s: PASS is not the registry's current token (chat server took it: %v)", when, login.ok)
		case !login.ok:
			t.Fatalf("%s: the chat server refused the current token", when)
		}
		if e := next(ctx, t, ran, when+": the JOIN", events); e.channel != "#coolchannel" {
			t.Fatalf("%s: joined %q, want #coolchannel", when, e.channel)
		}
		next(ctx, t, ran, when+": the bot's join", joined)
	}

	if tok := next(ctx, t, ran, "the first token", took); tok.AccessToken != first.AccessToken {
		t.Fatal("the bot did not start with the registry's token")
	}
	joinedWith("first connect", first, nil)

	// Twitch ends the token early; the registry refreshes it (as Run would at its next validation).
	src, err := users.SourceForIntent("chat")
	if err != nil {
		t.Fatal(err)
	}
	old, err := src.TokenContext(ctx) // ForceRefresh wants the source's own token, not a copy
	if err != nil || old.AccessToken != first.AccessToken {
		t.Fatalf("the source's token before the refresh: %v, or not the first one", err)
	}
	srv.Expire(old.AccessToken)
	fresh, err := src.ForceRefresh(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.AccessToken == first.AccessToken {
		t.Fatal("the refresh returned the old token")
	}
	if _, err := c.ValidateToken(ctx, first.AccessToken); !errors.Is(err, twitchoauth.ErrInvalidToken) {
		t.Fatalf("the old token at Twitch: %v, want it dead (ErrInvalidToken)", err)
	}
	if tok := next(ctx, t, ran, "the refreshed token to reach the IRC client", took); tok.AccessToken != fresh.AccessToken {
		t.Fatal("the IRC client took another token than the refreshed one")
	}

	chat.DropAll()
	joinedWith("reconnect after the drop", fresh, first)

	stopBot()
	if err := <-ran; err != nil {
		t.Fatalf("runBot: %v", err)
	}
	if n := len(events); n != 0 {
		t.Errorf("the chat server saw %d more logins or joins", n)
	}
}

// next returns the next value from ch, failing the test if the bot stops or ctx ends first.
func next[T any](ctx context.Context, t *testing.T, ran <-chan error, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case err := <-ran:
		t.Fatalf("waiting for %s: the bot stopped: %v", what, err)
	case <-ctx.Done():
		t.Fatalf("waiting for %s: %v", what, ctx.Err())
	}
	panic("unreachable")
}

// TestDemo runs the offline demo that `go run .` runs: it ends without error, says what happened,
// and prints no token.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := demo(t.Context(), &out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"chat server: coolbot logged in with a live token: welcome\n  chat server: coolbot joined #coolchannel",
		"the IRC client has the new token for its next connect\n",
		"reconnects:\n  chat server: coolbot logged in with a live token: welcome\n  chat server: coolbot joined #coolchannel",
		"The bot never sent a dead token.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if regexp.MustCompile(`[a-z0-9]{30}`).MatchString(got) {
		t.Errorf("the demo printed a token:\n%s", got)
	}
}
