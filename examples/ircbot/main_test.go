package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
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

// TestMain runs the reader's role when the demo starts the test binary as its reader, as it
// starts the program under go run.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "-role" {
		if err := run(os.Args[1:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestDemo runs the offline demo that `go run .` runs, a writer in this process and a reader bot
// in another: the reader's IRC client takes the writer's refreshed token within readerBound and
// reconnects with it, the reader sends nothing to the token endpoint, and its process has ended
// when the demo returns. Every wait is for a line of the reader's or an event of the chat server.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	var out bytes.Buffer
	var mu sync.Mutex // the demo prints from several goroutines; its say orders them
	run, err := demo(ctx, lockedWriter{&mu, &out})
	mu.Lock()
	got := out.String()
	mu.Unlock()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, got)
	}
	switch {
	case run.refreshed == nil:
		t.Fatal("the writer did not refresh")
	case run.readerTook <= 0 || run.readerTook > readerBound:
		t.Errorf("the reader's IRC client took the new token %v after the refresh, want within %v", run.readerTook, readerBound)
	case run.reconnectPass != twitchoauth.IRCPassword(run.refreshed):
		t.Error("the reader's reconnect did not send the writer's new token as its PASS")
	}
	if run.writerSent != 1 || run.tokenRequests != run.writerSent {
		t.Errorf("the token endpoint received %d requests, the writer sent %d: want 1, the writer's refresh", run.tokenRequests, run.writerSent)
	}
	if run.readerSent != 0 {
		t.Errorf("the reader says it sent %d requests to the token endpoint", run.readerSent)
	}
	// The reader process has been waited for (Wait returned: it exited and was reaped), and it
	// exited of its own accord, not killed.
	if run.reader == nil || !run.reader.Exited() || run.reader.ExitCode() != 0 {
		t.Errorf("the reader process: %v, want exited with status 0", run.reader)
	}
	for _, want := range []string{
		"  reader: " + lineJoined + "coolchannel\n",
		"the reader's IRC client had the new token",
		"  reader: " + lineToken + tokenID(run.refreshed) + "\n",
		"  reader: " + lineRequests + "0" + lineNoneSent + "\n",
		"the reader sent none.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if regexp.MustCompile(`[a-z0-9]{30}`).MatchString(got) {
		t.Errorf("the demo printed a token:\n%s", got)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
