package twitchoauth_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
)

// eventSubSession stands for an EventSub WebSocket connection (a library of your choice): each
// (re)connect gets a welcome message with a new session ID, and the session's subscriptions must
// be made again within 10 seconds.
type eventSubSession interface {
	Welcome(ctx context.Context) (sessionID string, err error)
}

// An EventSub WebSocket loses its subscriptions with its connection. Subscribe again at every
// welcome, through the source's Helix client, which takes the token at that moment: hours after
// the start, a token captured then is dead, and every subscription would be answered 401 "Invalid
// OAuth token". The Helix client also refuses a webhook or conduit subscription made with a user
// token, before anything is sent (ErrWrongTokenKind): those take an AppTokenSource's client.
func ExampleUserTokenSource_HTTPClient_eventSub() {
	var src *twitchoauth.UserTokenSource // e.g. users.Source(broadcasterID)
	var ws eventSubSession
	run := func(ctx context.Context) error {
		helix := src.HTTPClient() // made once: every request takes the current token
		for {
			sessionID, err := ws.Welcome(ctx) // after each (re)connect
			if err != nil {
				return err
			}
			body := fmt.Sprintf(`{"type":"channel.chat.message","version":"1",`+
				`"condition":{"broadcaster_user_id":"1234","user_id":"1234"},`+
				`"transport":{"method":"websocket","session_id":%q}}`, sessionID)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost,
				"https://api.twitch.tv/helix/eventsub/subscriptions", strings.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := helix.Do(req) // the token of this moment; a dead one is refreshed once
			if err != nil {
				return err
			}
			resp.Body.Close()
		}
	}
	_ = run
}

// A long-lived connection that keeps a token of its own, such as an IRC chat client, hears of
// every new one: Subscribe hands it the token held now, then each refresh, each token another
// replica stored, and each new login, in order (see examples/ircbot for a chat bot).
func ExampleUserTokenSource_Subscribe() {
	var src *twitchoauth.UserTokenSource  // e.g. users.SourceForIntent("chat")
	var setPassword func(password string) // e.g. go-twitch-irc's Client.SetIRCToken
	stop := src.Subscribe(func(tok *oauth2.Token) {
		setPassword(twitchoauth.IRCPassword(tok)) // the next reconnect logs in with it
	})
	defer stop()
}
