package twitchoauth_test

import (
	"fmt"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
)

func ExampleBuildScope() {
	fmt.Println(twitchoauth.BuildScope([]twitchoauth.Scope{twitchoauth.ScopeChatRead, twitchoauth.ScopeChatEdit}))
	// Output: chat:read chat:edit
}

func ExampleParseScopes() {
	for _, s := range twitchoauth.ParseScopes("chat:read  moderator:manage:future_thing") {
		fmt.Println(s)
	}
	// Output:
	// chat:read
	// moderator:manage:future_thing
}

func ExampleAllScopes() {
	all := twitchoauth.AllScopes()
	fmt.Println(len(all), all[0], all[len(all)-1])
	// Output: 81 analytics:read:extensions whispers:read
}

func ExampleTokenScopes() {
	// Twitch's token endpoint sends "scope" as a JSON array; decoded, it looks like this.
	tok := (&oauth2.Token{AccessToken: "…"}).WithExtra(map[string]any{"scope": []any{"chat:read", "user:bot"}})
	fmt.Println(twitchoauth.TokenScopes(tok))
	// Output: [chat:read user:bot]
}
