package twitchoauthtest_test

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// webApp starts a web app that mounts a WebLogin with OpenID for srv's app, its callback
// registered with srv, and returns its URL; OnLogin writes who logged in, OnError what failed.
func webApp(srv *twitchoauthtest.Server) (appURL string, closeApp func()) {
	mux := http.NewServeMux()
	app := httptest.NewServer(mux)
	redirect := app.URL + "/auth/twitch/callback"
	srv.AddRedirectURL(redirect) // as registered in the developer console
	wl := twitchoauth.NewWebLogin(srv.Client(), nil, redirect, []byte("a key of thirty-two bytes or more"))
	wl.OpenID = true
	wl.OnLogin = func(w http.ResponseWriter, r *http.Request, res *twitchoauth.WebLoginResult) {
		fmt.Fprintf(w, "signed in as %s", res.Claims.PreferredUsername)
	}
	wl.OnError = func(w http.ResponseWriter, r *http.Request, err error) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "refused: invalid id_token: %v", errors.Is(err, twitchoauth.ErrInvalidIDToken))
	}
	mux.Handle("GET /auth/twitch", wl.LoginHandler())
	mux.Handle("GET /auth/twitch/callback", wl.CallbackHandler())
	return app.URL, app.Close
}

// signIn plays a browser (with a cookie jar) through the app's login and returns the last page.
func signIn(appURL string) string {
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	resp, err := browser.Get(appURL + "/auth/twitch")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	return string(page)
}

// A web app's "Sign in with Twitch" against the fake: a forged id_token is refused, and a key
// rotation is followed.
func ExampleServer_FailIDToken() {
	srv := twitchoauthtest.New()
	defer srv.Close()
	srv.AuthorizeAs("1234", "streamer")
	appURL, closeApp := webApp(srv)
	defer closeApp()

	fmt.Println(signIn(appURL))
	srv.FailIDToken(twitchoauthtest.IDTokenAlgNone) // an unsigned token
	fmt.Println(signIn(appURL))
	srv.RotateKey()
	fmt.Println(signIn(appURL))
	fmt.Println("key set fetches:", len(srv.Requests("keys")))
	// Output:
	// signed in as streamer
	// refused: invalid id_token: true
	// signed in as streamer
	// key set fetches: 2
}
