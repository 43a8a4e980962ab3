// Command weblogin is a small web app with "Connect with Twitch": a streamer clicks the link, logs
// in on Twitch, and the app shows who logged in. It mounts the library's WebLogin handlers on its
// own server, as a bot's dashboard would, with "Sign in with Twitch" (OIDC) on.
//
// With no Twitch app configured it runs offline against a fake Twitch on this machine, drives one
// login with an HTTP client playing the browser, prints who logged in, and exits:
//
//	go run ./examples/weblogin
//
// With an app registered in the Twitch developer console (redirect URL
// http://localhost:8080/auth/twitch/callback):
//
//	export TWITCH_CLIENT_ID=... TWITCH_CLIENT_SECRET=...
//	export WEBLOGIN_COOKIE_KEY=$(openssl rand -hex 32)   # the same on every replica
//	go run ./examples/weblogin -addr localhost:8080
//
// and open http://localhost:8080.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"sync"
	"time"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	addr := flag.String("addr", "localhost:8080", "address to serve the app on")
	demo := flag.Bool("demo", false, "run offline against a fake Twitch (the default with no TWITCH_CLIENT_ID)")
	flag.Parse()

	if *demo || os.Getenv("TWITCH_CLIENT_ID") == "" {
		if err := runDemo(ctx, os.Stdout); err != nil {
			log.Fatal(err)
		}
		return
	}
	key, err := hex.DecodeString(os.Getenv("WEBLOGIN_COOKIE_KEY"))
	if err != nil || len(key) < twitchoauth.MinCookieKeyLen {
		log.Fatal("set WEBLOGIN_COOKIE_KEY to 32 random bytes in hex: openssl rand -hex 32")
	}
	if os.Getenv("TWITCH_CLIENT_SECRET") == "" {
		log.Fatal("set TWITCH_CLIENT_SECRET to the app's client secret: the web login trades each code for a token with it")
	}
	c := twitchoauth.NewClient(os.Getenv("TWITCH_CLIENT_ID"), os.Getenv("TWITCH_CLIENT_SECRET"))
	app := newApp(c, "http://"+*addr+"/auth/twitch/callback", key)
	srv := &http.Server{Addr: *addr, Handler: app, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	log.Printf("open http://%s", *addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// app is the web app: a home page, the two WebLogin handlers, and sessions kept in memory.
type app struct {
	*http.ServeMux
	mu       sync.Mutex
	sessions map[string]*twitchoauth.WebLoginResult // by session cookie
}

const sessionCookie = "session"

func newApp(c *twitchoauth.Client, redirectURL string, cookieKey []byte) *app {
	a := &app{ServeMux: http.NewServeMux(), sessions: map[string]*twitchoauth.WebLoginResult{}}
	wl := twitchoauth.NewWebLogin(c, []twitchoauth.Scope{twitchoauth.ScopeUserReadEmail}, redirectURL, cookieKey)
	wl.OpenID = true
	wl.OnLogin = a.onLogin
	a.Handle("GET /auth/twitch", wl.LoginHandler())
	a.Handle("GET /auth/twitch/callback", wl.CallbackHandler())
	a.HandleFunc("GET /{$}", a.home)
	return a
}

// onLogin starts a session for the user who logged in and sends the browser home. A real bot
// would store res.Token here (it refreshes with twitchoauth.NewUserTokenSource).
func (a *app) onLogin(w http.ResponseWriter, r *http.Request, res *twitchoauth.WebLoginResult) {
	id := rand.Text()
	a.mu.Lock()
	a.sessions[id] = res
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil})
	to := res.ReturnTo
	if to == "" {
		to = "/"
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

var homePage = template.Must(template.New("home").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Bot dashboard</title></head><body>
{{if .}}<h1>Signed in as {{.Claims.PreferredUsername}}</h1>
<p>Twitch user ID {{.Claims.Subject}}{{with .Claims.Email}}, email {{.}}{{end}}; the bot may use: {{range .Validation.Scopes}}{{.}} {{end}}</p>
{{else}}<h1>Bot dashboard</h1><p><a href="/auth/twitch?return_to=/">Connect with Twitch</a></p>{{end}}
</body></html>
`))

func (a *app) home(w http.ResponseWriter, r *http.Request) {
	var res *twitchoauth.WebLoginResult
	if ck, err := r.Cookie(sessionCookie); err == nil {
		a.mu.Lock()
		res = a.sessions[ck.Value]
		a.mu.Unlock()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	homePage.Execute(w, res)
}

// runDemo serves the app on a free loopback port against a fake Twitch, and plays a streamer's
// browser through one login.
func runDemo(ctx context.Context, out io.Writer) error {
	fake := twitchoauthtest.New()
	defer fake.Close()
	fake.AuthorizeAs("98765", "streamer")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	redirect := base + "/auth/twitch/callback"
	fake.AddRedirectURL(redirect) // as registered in the developer console
	a := newApp(fake.Client(), redirect, []byte(rand.Text()+rand.Text()))
	srv := &http.Server{Handler: a, ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() { srv.Serve(ln) })
	defer wg.Wait()
	defer srv.Close()

	fmt.Fprintf(out, "No Twitch app configured (TWITCH_CLIENT_ID), so this is an offline demo against a fake\n"+
		"Twitch at %s. The app serves %s.\n\n", fake.URL, base)
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Transport: &http.Transport{Proxy: nil}, Timeout: time.Minute}
	defer browser.CloseIdleConnections()

	page, err := fetch(ctx, browser, base+"/")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "1. The dashboard says: %q, with a \"Connect with Twitch\" link\n", heading(page))
	fmt.Fprintln(out, "2. The streamer clicks it: the app sets a signed login cookie and sends the browser to Twitch;\n"+
		"   they approve, and Twitch sends the browser back to the callback, which checks the cookie,\n"+
		"   trades the code, validates the token and verifies the id_token")
	page, err = fetch(ctx, browser, base+"/auth/twitch?return_to=/")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "3. Back on the dashboard: %q\n", heading(page))
	if heading(page) != "Signed in as streamer" {
		return fmt.Errorf("the login did not work; the page says:\n%s", page)
	}
	fmt.Fprintf(out, "\nDemo finished. To run it for real, register an app with the redirect URL\n"+
		"http://localhost:8080/auth/twitch/callback and see go doc ./examples/weblogin.\n")
	return nil
}

// fetch GETs u with the browser, following redirects, and returns the page.
func fetch(ctx context.Context, browser *http.Client, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := browser.Do(req)
	if err != nil {
		// Not the *url.Error itself: the URL it names may be the callback's, with the code and state.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = fmt.Errorf("%s %s: %w", uerr.Op, req.URL.Path, uerr.Err)
		}
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s answered %s: %s", resp.Request.URL.Path, resp.Status, body)
	}
	return string(body), nil
}

// heading returns a page's first <h1>.
func heading(page string) string {
	if m := regexp.MustCompile(`<h1>([^<]*)</h1>`).FindStringSubmatch(page); m != nil {
		return m[1]
	}
	return ""
}
