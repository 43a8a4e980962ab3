module github.com/twitchoauth/twitchoauth/stores/redisstore

go 1.25.0

require (
	github.com/redis/go-redis/v9 v9.22.0
	github.com/twitchoauth/twitchoauth v0.0.0
	golang.org/x/oauth2 v0.36.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/coreos/go-oidc/v3 v3.21.0 // indirect
	github.com/go-jose/go-jose/v4 v4.1.9 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/pkg/browser v0.0.0-20240102092130-5ac0b6a4141c // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
)

replace github.com/twitchoauth/twitchoauth => ../..
