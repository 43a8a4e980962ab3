package storebench

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
	"github.com/twitchoauth/twitchoauth/stores/redisstore"
	"github.com/twitchoauth/twitchoauth/stores/sqlstore"
	_ "github.com/twitchoauth/twitchoauth/stores/sqlstore/postgres" // sqlstore.Open's drivers
	_ "github.com/twitchoauth/twitchoauth/stores/sqlstore/sqlite"
)

// store is what the benchmarks need of a store: every one here is all of these.
type store interface {
	twitchoauth.TokenStore
	twitchoauth.LeaseLocker
	twitchoauth.ConditionalSaver
}

// stores are the stores measured, in the order they are printed. Each open returns an empty store
// of its own (its own directory, key prefix or tables), on a connection pool of its own closed
// when tb ends, or skips tb when the program it needs is not installed.
var stores = []struct {
	name string
	open func(tb testing.TB) store
}{
	{"file", func(tb testing.TB) store {
		// Each write synced to disk, with its directory.
		return twitchoauth.NewFileStore(tb.TempDir())
	}},
	{"redis", func(tb testing.TB) store {
		rdb := redis.NewClient(&redis.Options{Addr: needRedis(tb)})
		tb.Cleanup(func() { rdb.Close() })
		return &redisstore.Store{Client: rdb, Prefix: fmt.Sprintf("bench%d:", serial.Add(1))}
	}},
	{"postgres", func(tb testing.TB) store {
		return openSQL(tb, sqlstore.Postgres, needPostgres(tb))
	}},
	{"sqlite", func(tb testing.TB) store {
		// WAL mode (Open's), synchronous FULL (SQLite's default).
		return openSQL(tb, sqlstore.SQLite, filepath.Join(tb.TempDir(), "tokens.db"))
	}},
}

// serial numbers the stores' key prefixes and tables.
var serial atomic.Int64

// openSQL opens dsn with sqlstore.Open, on tables of their own, closed when tb ends.
func openSQL(tb testing.TB, dialect sqlstore.Dialect, dsn string) *sqlstore.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), 30*time.Second)
	defer cancel()
	s, err := sqlstore.Open(ctx, dialect, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	s.Prefix = fmt.Sprintf("bench%d_", serial.Add(1))
	return s
}

// benchToken is a token of the size Twitch's are, numbered i.
func benchToken(i int) *twitchoauth.StoredToken {
	return &twitchoauth.StoredToken{AccessToken: fmt.Sprintf("%030d", i), RefreshToken: fmt.Sprintf("r%049d", i),
		Expiry: time.Now().Add(4 * time.Hour).Round(0), Scopes: []twitchoauth.Scope{twitchoauth.ScopeChatRead, "chat:edit"},
		UserID: "12345678", Login: "somebroadcaster", ClientID: faketwitch.ClientID}
}
