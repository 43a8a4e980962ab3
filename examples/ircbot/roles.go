package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"path"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
)

// What a reader prints, one line each, for a person and for the demo's writer, which reads its
// output.
const (
	lineToken    = "IRC password set: token "               // + tokenID
	lineJoined   = "joined #"                               // + channel
	lineRequests = "requests to the token endpoint: "       // + the count, then why
	lineNoneSent = " (a reader never refreshes: none sent)" // after a count of 0
)

// runWriter keeps the bot account's token fresh in dir for the readers, until ctx ends: it logs
// the account in on the first run, and refreshes the token 10 minutes before it expires. It does
// not chat.
func runWriter(ctx context.Context, c *twitchoauth.Client, dir string, out io.Writer) error {
	users := twitchoauth.NewUserTokens(c, twitchoauth.NewFileStore(dir))
	users.KeepFresh = true
	users.OnRevoked = func(userID string, err error) {
		log.Printf("the bot account (user %s) disconnected the app; run the writer again to log in", userID)
	}
	users.OnRefresh = func(userID string, tok *oauth2.Token) {
		fmt.Fprintf(out, "stored a new token for user %s, expiring %s\n", userID, tok.Expiry.Format(time.TimeOnly))
	}
	if err := logIn(ctx, c, users); err != nil {
		return err
	}
	fmt.Fprintf(out, "keeping the chat token fresh in %s; start readers with -role reader -dir %s\n", dir, dir)
	if err := users.Run(ctx); !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// reader is what a reader bot is told.
type reader struct {
	dir     string // the writer's token directory
	channel string // without "#"; "" is the bot's own
	addr    string // a plain-TCP IRC server's "host:port"; "" is Twitch's, over TLS
}

// runReader chats as the user with the "chat" intent in r.dir until ctx ends, with the token the
// writer last stored there: UserTokens.ReadOnly never refreshes, and Run hands the IRC client
// each token the writer stores within 200 ms (FileStore watches its files). It prints what it does
// to out, and at the end how many requests it sent to the token endpoint: none.
func runReader(ctx context.Context, c *twitchoauth.Client, r reader, out io.Writer) error {
	sent := countRequests(c)
	store := twitchoauth.NewFileStore(r.dir)
	users := twitchoauth.NewUserTokens(c, store)
	users.ReadOnly = true
	if err := users.Sync(ctx); err != nil {
		return err
	}
	// Run watches the store: as its watch begins, and from then on, every token the writer stores
	// is taken up, also one stored since Sync.
	runCtx, stopRun := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { users.Run(runCtx) })
	defer wg.Wait()
	defer stopRun()
	login, err := chatLogin(ctx, users, store)
	if err != nil {
		return err
	}
	if r.channel == "" {
		r.channel = login
	}
	fmt.Fprintf(out, "read-only replica, watching %s; chats as %s\n", r.dir, login)

	err = runBot(ctx, users, bot{
		login: login, channel: r.channel, addr: r.addr,
		joined:    func() { fmt.Fprintf(out, "%s%s\n", lineJoined, r.channel) },
		tookToken: func(tok *oauth2.Token) { fmt.Fprintf(out, "%s%s\n", lineToken, tokenID(tok)) },
	})
	if n := sent.token.Load(); n > 0 {
		return errors.Join(err, fmt.Errorf("the reader sent %d requests to the token endpoint", n))
	}
	fmt.Fprintf(out, "%s0%s\n", lineRequests, lineNoneSent)
	return err
}

// chatLogin returns the login of the user with the "chat" intent, their IRC NICK, as the writer
// stored it: a reader sends nothing to Twitch's identity server, not even a validation.
func chatLogin(ctx context.Context, users *twitchoauth.UserTokens, store twitchoauth.TokenStore) (string, error) {
	for _, id := range users.Users() {
		if !slices.Contains(users.Intents(id), "chat") {
			continue
		}
		st, err := store.Load(ctx, id)
		if err != nil {
			return "", err
		}
		return st.Login, nil
	}
	return "", fmt.Errorf("no user has the chat intent in the store: start the writer first: %w", twitchoauth.ErrTokenNotFound)
}

// requestCounter counts the requests a Client sends, by endpoint.
type requestCounter struct {
	next  http.RoundTripper
	token atomic.Int64 // to the token endpoint: refreshes, code exchanges
}

// countRequests makes c count its requests.
func countRequests(c *twitchoauth.Client) *requestCounter {
	hc := &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if c.HTTPClient != nil {
		*hc = *c.HTTPClient
	}
	rc := &requestCounter{next: hc.Transport}
	if rc.next == nil {
		rc.next = http.DefaultTransport
	}
	hc.Transport = rc
	c.HTTPClient = hc
	return rc
}

func (rc *requestCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	if path.Base(req.URL.Path) == "token" {
		rc.token.Add(1)
	}
	return rc.next.RoundTrip(req)
}

// tokenID names an access token in a log line without giving it away: the start of its SHA-256.
func tokenID(tok *oauth2.Token) string {
	sum := sha256.Sum256([]byte(tok.AccessToken))
	return hex.EncodeToString(sum[:4])
}
