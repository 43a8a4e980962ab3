package twitchoauth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// An audit asks Twitch what each registered user granted the app, and lists those who need a new
// login: here a streamer whose grant lacks a scope the moderation intent needs, and one who
// disconnected the app. A nightly job runs it with a cap on its calls and keeps the cursor, so
// that a long audit spreads over several runs.
func ExampleUserTokens_Audit() {
	fake := twitchoauthtest.New() // a fake Twitch; use Twitch's own with a real client ID and secret
	defer fake.Close()
	fake.AddUser("1001", "alice")
	fake.AddUser("1002", "bob")
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	users := twitchoauth.NewUserTokens(fake.Client(), twitchoauth.NewFileStore(dir))
	ctx := context.Background()
	for _, add := range []struct {
		userID string
		scopes []twitchoauth.Scope
		intent string
	}{
		{twitchoauthtest.UserID, []twitchoauth.Scope{twitchoauth.ScopeUserBot, twitchoauth.ScopeUserWriteChat}, "chat"},
		{"1001", []twitchoauth.Scope{twitchoauth.ScopeChannelBot}, "mod:1001"}, // lacks moderator:manage:banned_users
		{"1002", []twitchoauth.Scope{twitchoauth.ScopeChannelBot}, "chatbot:1002"},
	} {
		if _, err := users.AddUserForToken(ctx, fake.IssueUserToken(add.userID, add.scopes...), add.intent); err != nil {
			log.Fatal(err)
		}
	}
	bob, _ := users.Source("1002")
	tok, _ := bob.TokenContext(ctx)
	fake.Revoke(tok.AccessToken) // bob disconnects the app

	opts := twitchoauth.AuditOptions{
		App: twitchoauth.NewAppTokenSource(fake.Client()), // the program's own, shared with its Helix calls
		IntentScopes: func(intent string) []twitchoauth.Scope {
			switch {
			case intent == "chat":
				return []twitchoauth.Scope{twitchoauth.ScopeUserBot, twitchoauth.ScopeUserWriteChat}
			case strings.HasPrefix(intent, "mod:"):
				return []twitchoauth.Scope{twitchoauth.ScopeChannelBot, twitchoauth.ScopeModeratorManageBannedUsers}
			case strings.HasPrefix(intent, "chatbot:"):
				return []twitchoauth.Scope{twitchoauth.ScopeChannelBot}
			}
			return nil
		},
		Interval: 500 * time.Millisecond, // at most 2 calls (20 users) a second
		MaxCalls: 100,                    // 1,000 users a run; the next run goes on from Cursor
		Cursor:   "",                     // the previous run's res.Cursor, kept by the job
	}
	res, err := users.Audit(ctx, opts)
	if err != nil {
		log.Printf("audit stopped at user %s: %v", res.Cursor, err) // the next run resumes there
	}
	for _, f := range res.Findings {
		fmt.Println(f.UserID, f.Login, f.Problem, f.Intents, f.Missing)
	}
	fmt.Println("done:", res.Done, "users checked:", res.Checked)
	out, _ := json.Marshal(res.Findings[1]) // or serve res as JSON on an admin page: it holds no token
	fmt.Println(string(out))
	// Output:
	// 1001 alice missing_scopes [mod:1001] [moderator:manage:banned_users]
	// 1002 bob not_authorized [chatbot:1002] []
	// done: true users checked: 3
	// {"user_id":"1002","user_login":"bob","problem":"not_authorized","intents":["chatbot:1002"]}
}
