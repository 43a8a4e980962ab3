package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	twitchoauthotel "github.com/twitchoauth/twitchoauth/otel"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// demoUsers is how many channels the offline demo's bot serves.
const demoUsers = 20

// demo runs a registry of demoUsers users against a fake Twitch, makes every kind of event happen
// once, scrapes its own /metrics and /healthz, and prints what they say. With addr set, it then
// serves them there until ctx ends.
func demo(ctx context.Context, w io.Writer, addr string) error {
	fake := twitchoauthtest.New()
	defer fake.Close()
	dir, err := os.MkdirTemp("", "prometheus-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(w, "No Twitch app configured (TWITCH_CLIENT_ID), so this is an offline demo against a fake Twitch\n"+
		"at %s: a bot with %d channels, its metrics scraped as Prometheus would.\n\n", fake.URL, demoUsers)

	c := fake.Client()
	h, mp, err := metrics(c)
	if err != nil {
		return err
	}
	defer mp.Shutdown(context.Background())
	users := twitchoauth.NewUserTokens(c, twitchoauth.NewFileStore(dir))
	users.KeepRevoked = true // a revoked user stays, counted, until they log in again
	stopObserving, err := twitchoauthotel.ObserveUserTokens(users, twitchoauthotel.Options{MeterProvider: mp})
	if err != nil {
		return err
	}
	defer stopObserving()
	// Every token the demo saw, to look for in what it serves. OnRefresh may be called by Run's
	// goroutine too.
	var mu sync.Mutex
	var secrets []string
	users.OnRefresh = func(_ string, tok *oauth2.Token) {
		mu.Lock()
		defer mu.Unlock()
		secrets = append(secrets, tok.AccessToken, tok.RefreshToken)
	}
	var ids []string
	for i := range demoUsers {
		id := fmt.Sprint(5000 + i)
		fake.AddUser(id, "channel"+id)
		tok := fake.IssueUserToken(id, twitchoauth.ScopeChannelBot)
		if _, err := users.AddUserForToken(ctx, tok, "chatbot:"+id); err != nil {
			return err
		}
		ids = append(ids, id)
	}

	// Run validates every token hourly, spread over the hour, and keeps the users going.
	runCtx, stopRun := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- users.Run(runCtx) }()
	defer func() { stopRun(); <-ran }()

	// The events: every channel's token used; a third refreshed; one streamer disconnects the bot;
	// one refresh meets a 503; one validation a 429.
	for i, id := range ids {
		src, err := users.Source(id)
		if err != nil {
			return err
		}
		if _, err := src.TokenContext(ctx); err != nil {
			return err
		}
		if i%3 == 0 {
			if _, err := src.ForceRefresh(ctx, nil); err != nil {
				return err
			}
		}
	}
	gone, _ := users.Source(ids[len(ids)-1])
	if tok, err := gone.TokenContext(ctx); err == nil {
		fake.Revoke(tok.AccessToken)
	}
	if _, err := gone.ForceRefresh(ctx, nil); !errors.Is(err, twitchoauth.ErrInvalidRefreshToken) {
		return fmt.Errorf("the revoked user's refresh: %v; want the grant gone", err)
	}
	fake.Fail("token", http.StatusServiceUnavailable, 1)
	flaky, _ := users.Source(ids[1])
	if _, err := flaky.ForceRefresh(ctx, nil); err == nil {
		return errors.New("a refresh answered 503 succeeded")
	}
	fake.RateLimit("validate", time.Second, 1)
	if tok, err := users.Source(ids[2]); err == nil {
		if t, err := tok.TokenContext(ctx); err == nil {
			c.ValidateToken(ctx, t.AccessToken) // answered 429, counted as rate_limited
		}
	}

	listenAddr := addr
	if listenAddr == "" {
		listenAddr = "127.0.0.1:0"
	}
	ln, err := listen(listenAddr)
	if err != nil {
		return err
	}
	sctx, stopServing := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- serveUntil(sctx, ln, serveMux(h, users)) }()
	defer func() { stopServing(); <-served }()

	base := "http://" + ln.Addr().String()
	body, err := get(ctx, base+"/metrics")
	if err != nil {
		return err
	}
	mu.Lock()
	seen := slices.Clone(secrets)
	mu.Unlock()
	for _, s := range seen {
		if strings.Contains(body, s) {
			return errors.New("/metrics holds a token")
		}
	}
	fmt.Fprintf(w, "GET %s/metrics (the library's series, without their buckets and scope labels):\n", base)
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if (strings.HasPrefix(line, "twitchoauth_") || strings.HasPrefix(line, "http_client_")) && !strings.Contains(line, "_bucket{") {
			fmt.Fprintf(w, "  %s\n", dropScope(line))
		}
	}
	health, err := get(ctx, base+"/healthz")
	if err != nil && !strings.Contains(err.Error(), "503") {
		return err
	}
	fmt.Fprintf(w, "\nGET %s/healthz names who must log in again:\n  %s\n", base, strings.TrimSpace(health))
	if addr != "" {
		fmt.Fprintf(w, "\nServing on %s until Ctrl-C.\n", base)
		<-ctx.Done()
	}
	return nil
}

// get returns the body of url's answer.
func get(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(data), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(data), nil
}

// dropScope leaves out the labels every series has (the instrumentation scope's), for a shorter
// line.
func dropScope(line string) string {
	for _, l := range []string{"otel_scope_name", "otel_scope_schema_url", "otel_scope_version"} {
		for {
			i := strings.Index(line, l+`="`)
			if i < 0 {
				break
			}
			j := strings.Index(line[i+len(l)+2:], `"`)
			if j < 0 {
				break
			}
			end := i + len(l) + 2 + j + 1
			if end < len(line) && line[end] == ',' {
				end++
			}
			line = line[:i] + line[end:]
		}
	}
	return strings.Replace(strings.Replace(line, ",}", "}", 1), "{}", "", 1)
}
