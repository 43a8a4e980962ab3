module github.com/twitchoauth/twitchoauth/examples/ircbot

go 1.25.0

require (
	github.com/gempir/go-twitch-irc/v4 v4.2.0
	github.com/twitchoauth/twitchoauth v0.0.0
	golang.org/x/oauth2 v0.36.0
)

require (
	github.com/coreos/go-oidc/v3 v3.21.0 // indirect
	github.com/go-jose/go-jose/v4 v4.1.9 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/pkg/browser v0.0.0-20240102092130-5ac0b6a4141c // indirect
	golang.org/x/sys v0.1.0 // indirect
)

replace github.com/twitchoauth/twitchoauth => ../..
