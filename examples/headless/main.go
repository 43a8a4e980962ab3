// Command headless shows the login inside your own web server, for an app that already serves
// HTTP: it sends the visitor to UserAuthenticator.AuthURL, checks the state Twitch sends back, and
// trades the code with WithUserToken; the library starts no server and opens no browser. Register
// http://localhost:17563/callback as a redirect URL of your app, then:
//
//	TWITCH_CLIENT_ID=... TWITCH_CLIENT_SECRET=... go run ./examples/headless
//
// and open http://localhost:17563/login.
package main

import (
	"crypto/subtle"
	"fmt"
	"html"
	"log"
	"net/http"
	"os"

	"github.com/twitchoauth/twitchoauth"
)

func main() {
	c := twitchoauth.NewClient(os.Getenv("TWITCH_CLIENT_ID"), os.Getenv("TWITCH_CLIENT_SECRET"))
	if c.ClientID == "" {
		log.Fatal("set TWITCH_CLIENT_ID and TWITCH_CLIENT_SECRET")
	}
	auth := twitchoauth.NewUserAuthenticator(c, []twitchoauth.Scope{twitchoauth.ScopeUserReadEmail})
	auth.URL = "http://localhost:17563/callback" // must match the redirect URL registered with Twitch

	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		// A real app keeps a state per visitor (in a cookie-bound session); one will do here.
		http.Redirect(w, r, auth.AuthURL(), http.StatusFound)
	})
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(auth.State)) != 1 {
			http.Error(w, "state does not match: start again at /login", http.StatusBadRequest)
			return
		}
		if e := q.Get("error"); e != "" {
			http.Error(w, "Twitch said: "+e, http.StatusForbidden)
			return
		}
		tok, err := auth.Authenticate(r.Context(), twitchoauth.WithUserToken(q.Get("code")))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		info, err := c.GetUserInfo(r.Context(), tok.AccessToken)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, "Hello %s! Your token is in the server's hands now.", html.EscapeString(info.PreferredUsername))
	})
	log.Println("open http://localhost:17563/login")
	log.Fatal(http.ListenAndServe("localhost:17563", mux))
}
