package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// readerBound is how soon after the writer stored a new token the demo wants the reader's IRC
// client to have it: the FileStore's watch looks every 200 ms.
const readerBound = 5 * time.Second

// demoRun is what the demo saw, for its test.
type demoRun struct {
	refreshed     *oauth2.Token    // the writer's new token
	readerTook    time.Duration    // from the writer's refresh to the reader's new IRC password
	reconnectPass string           // the PASS of the reader's login after the drop
	readerSent    int              // the requests to the token endpoint the reader says it sent
	tokenRequests int              // the requests the fake Twitch's token endpoint received
	writerSent    int              // those the writer sent
	reader        *os.ProcessState // the reader process, once it ended
}

// demo runs the writer and a reader bot against a fake Twitch on this machine: this process is
// the writer, which refreshes the bot's token (UserTokens.KeepFresh), and it starts this program
// again as the reader (UserTokens.ReadOnly), which chats on a fake chat server with the token the
// writer stores. The reader's IRC client gets each new token, and its reconnect logs in with it.
func demo(ctx context.Context, w io.Writer) (*demoRun, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, 30*time.Second, errors.New("the demo took over 30 s"))
	defer cancel()
	fake := twitchoauthtest.New()
	defer fake.Close()
	dir, err := os.MkdirTemp("", "ircbot-demo-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var mu sync.Mutex // the chat server's and the reader's goroutines print too
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, format+"\n", args...)
	}
	say("No Twitch app configured (TWITCH_CLIENT_ID), so this is an offline demo against a fake Twitch.")
	var run demoRun

	// The writer: this process. The bot account logs in once; on the fake, its token is simply
	// issued. It lives 4 hours, and the fake's clock moves on 3 hours 50 minutes and 30 seconds:
	// the validation as the user is added says it expires in 9 minutes 30 seconds. KeepFresh
	// refreshes a token 10 minutes before it expires, so the writer's Run, started once the
	// reader chats, refreshes it at once.
	fake.AddUser("1000", "coolbot")
	c := fake.Client()
	writerSent := countRequests(c)
	writer := twitchoauth.NewUserTokens(c, twitchoauth.NewFileStore(dir))
	writer.KeepFresh = true
	type storedToken struct {
		tok *oauth2.Token
		at  time.Time
	}
	stored := make(chan storedToken, 8)
	writer.OnRefresh = func(_ string, tok *oauth2.Token) { stored <- storedToken{tok, time.Now()} }
	first := fake.IssueUserToken("1000", twitchoauth.ScopeChatRead, twitchoauth.ScopeChatEdit)
	fake.Advance(4*time.Hour - 10*time.Minute + 30*time.Second)
	if _, err := writer.AddUserForToken(ctx, first, "chat"); err != nil {
		return nil, err
	}
	if _, err := wait(ctx, stored); err != nil {
		return nil, err
	}
	// A chat server that, like Twitch's, takes a live token only.
	live := func(token string) bool { _, err := fake.Client().ValidateToken(ctx, token); return err == nil }
	logins := make(chan chatEvent, 8)
	chat, err := startFakeChat(live, func(e chatEvent) {
		switch {
		case e.channel != "":
			say("  chat server: %s joined %s", e.nick, e.channel)
			return
		case e.ok:
			say("  chat server: %s logged in with a live token: welcome", e.nick)
		default:
			say("  chat server: %s logged in with a dead token: refused", e.nick)
		}
		logins <- e
	})
	if err != nil {
		return nil, err
	}
	defer chat.Close()

	say("\nThis process is the writer (UserTokens.KeepFresh): it holds the bot's token, which expires in")
	say("9.5 minutes, in a token directory. It starts a reader bot (UserTokens.ReadOnly): this program")
	say("again, a second process, with -role reader on that directory:")
	rd, err := startReader(ctx, say, "-role", "reader", "-stop-on-eof", "-dir", dir,
		"-auth-url", fake.URL, "-irc", chat.Addr(), "-channel", "coolchannel")
	if err != nil {
		return nil, err
	}
	defer rd.stop()
	if _, err := rd.expect(ctx, lineJoined); err != nil {
		return nil, err
	}
	if e, err := wait(ctx, logins); err != nil {
		return nil, err
	} else if !e.ok || e.pass != twitchoauth.IRCPassword(first) {
		return nil, errors.New("the reader's first login was not with the writer's token")
	}

	say("\nThe writer's Run starts. It refreshes a token 10 minutes before it expires, so this one at")
	say("once, and stores it; the reader hears of the file and hands the token to its IRC client:")
	runCtx, stopWriter := context.WithCancel(ctx)
	var writerDone sync.WaitGroup
	writerDone.Go(func() { writer.Run(runCtx) })
	defer writerDone.Wait()
	defer stopWriter()
	st, err := wait(ctx, stored)
	if err != nil {
		return nil, err
	}
	next, refreshedAt := st.tok, st.at
	run.refreshed = next
	say("  writer: refreshed token %s, stored token %s", tokenID(first), tokenID(next))
	for {
		id, err := rd.expect(ctx, lineToken)
		if err != nil {
			return nil, err
		}
		if id == tokenID(first) {
			continue // the old one again: not a change
		}
		if id != tokenID(next) {
			return nil, fmt.Errorf("the reader's IRC client took token %s, not the writer's %s", id, tokenID(next))
		}
		run.readerTook = time.Since(refreshedAt)
		break
	}
	say("  the reader's IRC client had the new token %.1f s after the writer stored it", run.readerTook.Seconds())
	if run.readerTook > readerBound {
		return nil, fmt.Errorf("the reader took the new token %v after the refresh, over %v", run.readerTook, readerBound)
	}

	say("\nTwitch ends the old token, the chat server drops the connection, and go-twitch-irc")
	say("reconnects with the new password:")
	fake.Expire(first.AccessToken)
	chat.DropAll()
	e, err := wait(ctx, logins)
	if err != nil {
		return nil, err
	}
	run.reconnectPass = e.pass
	if !e.ok || e.pass != twitchoauth.IRCPassword(next) {
		return nil, errors.New("the reader's reconnect did not log in with the writer's new token")
	}
	if _, err := rd.expect(ctx, lineJoined); err != nil {
		return nil, err
	}

	say("\nThe writer closes the reader's standard input; the reader disconnects and exits:")
	rd.stdin.Close()
	count, err := rd.expect(ctx, lineRequests)
	if err != nil {
		return nil, err
	}
	if run.readerSent, err = strconv.Atoi(strings.TrimSuffix(count, lineNoneSent)); err != nil {
		return nil, fmt.Errorf("the reader's count of requests: %w", err)
	}
	if run.reader, err = rd.stop(); err != nil {
		return nil, err
	}
	say("  the reader process (pid %d) exited: %v", run.reader.Pid(), run.reader)
	stopWriter()
	writerDone.Wait()
	run.writerSent = int(writerSent.token.Load())
	run.tokenRequests = len(fake.Requests("token"))
	say("\nTwitch's token endpoint received %d request(s), the writer's %d: the reader sent none.", run.tokenRequests, run.writerSent)
	if run.tokenRequests != run.writerSent || run.readerSent != 0 {
		return nil, errors.New("the reader sent a request to the token endpoint")
	}
	return &run, nil
}

// readerProcess is the reader bot the demo runs: this program again, as a second process.
type readerProcess struct {
	cmd   *exec.Cmd
	stdin io.Closer
	lines chan string // its output, line by line; closed when it closed its output
	ended sync.WaitGroup
	stop  func() (*os.ProcessState, error) // ends it: see startReader
}

// startReader starts this program with args, printing each line of its output (and its errors)
// through say. Its stop closes the process's standard input (which -stop-on-eof makes it take as
// the end), waits for it to exit, kills it if it has not within 5 seconds, and returns how it
// ended; it is safe to call more than once. Nothing is left running once stop returns.
func startReader(ctx context.Context, say func(string, ...any), args ...string) (*readerProcess, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "TWITCH_CLIENT_ID="+twitchoauthtest.ClientID, "TWITCH_CLIENT_SECRET=")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout // the same pipe: log.Fatal's line comes too
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &readerProcess{cmd: cmd, stdin: stdin, lines: make(chan string, 256)}
	say("  reader: pid %d", cmd.Process.Pid)
	p.ended.Go(func() {
		defer close(p.lines)
		lines := bufio.NewScanner(out)
		for lines.Scan() {
			say("  reader: %s", lines.Text())
			select {
			case p.lines <- lines.Text():
			default: // nobody waits for so many lines
			}
		}
	})
	p.stop = sync.OnceValues(func() (*os.ProcessState, error) {
		stdin.Close()
		exited := make(chan error, 1)
		go func() {
			p.ended.Wait() // its output read to the end, as Wait wants
			exited <- cmd.Wait()
		}()
		t := time.NewTimer(5 * time.Second)
		defer t.Stop()
		select {
		case err := <-exited:
			return cmd.ProcessState, err
		case <-t.C:
			cmd.Process.Kill()
			<-exited
			return cmd.ProcessState, errors.New("the reader did not exit within 5 s of its stdin closing: killed")
		}
	})
	return p, nil
}

// expect returns the rest of the reader's next line that starts with prefix, skipping others.
func (p *readerProcess) expect(ctx context.Context, prefix string) (string, error) {
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				return "", fmt.Errorf("the reader ended before printing %q", prefix)
			}
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				return rest, nil
			}
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for the reader to print %q: %w", prefix, context.Cause(ctx))
		}
	}
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
