package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/stores/sqlstore"
	_ "github.com/twitchoauth/twitchoauth/stores/sqlstore/sqlite" // the driver "sqlite"; for PostgreSQL: .../sqlstore/postgres, "pgx" and sqlstore.Postgres
)

// A Store over the *sql.DB a service already has. The tables are created at the first use; the
// Store never closes db.
func ExampleNew() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sqlstore-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", filepath.Join(dir, "app.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	store := sqlstore.New(db, sqlstore.SQLite)
	if err := store.Save(ctx, "12345", &twitchoauth.StoredToken{AccessToken: "access", RefreshToken: "refresh", UserID: "12345", Login: "somebroadcaster"}); err != nil {
		log.Fatal(err)
	}
	st, err := store.Load(ctx, "12345")
	if err != nil {
		log.Fatal(err)
	}
	// A service hands the Store to its registry, each replica over its own pool:
	//
	//	users := twitchoauth.NewUserTokens(c, store)
	//	go users.Run(ctx)
	fmt.Println(st.Login)
	// Output: somebroadcaster
}

// A Store from a DSN, with the driver that the imported sqlstore/sqlite links in (for
// PostgreSQL: sqlstore/postgres, sqlstore.Postgres and a connection string). Its Close closes the
// database it opened.
func ExampleOpen() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sqlstore-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, err := sqlstore.Open(ctx, sqlstore.SQLite, filepath.Join(dir, "tokens.db"))
	if err != nil {
		log.Fatal(err) // without the driver's package: "... import _ \"github.com/.../sqlstore/sqlite\""
	}
	defer store.Close()

	if err := store.Save(ctx, "12345", &twitchoauth.StoredToken{AccessToken: "access", RefreshToken: "refresh", Login: "somebroadcaster"}); err != nil {
		log.Fatal(err)
	}
	keys, err := store.Keys(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(keys)
	// Output: [12345]
}

// Tokens sealed at rest, under the key of ID "2026-01"; rows sealed with "2025-01" stay readable
// and are sealed with the new key at their next write, or by Reseal.
func ExampleKeyring() {
	newKey, oldKey := make([]byte, 32), make([]byte, 32) // in production: from a secret store
	newKey[0], oldKey[0] = 1, 2
	keyring, err := sqlstore.NewKeyring("2026-01", map[string][]byte{"2026-01": newKey, "2025-01": oldKey})
	if err != nil {
		log.Fatal(err)
	}
	store := sqlstore.New(nil, sqlstore.Postgres) // the service's *sql.DB in place of nil
	store.Keyring = keyring
	fmt.Println(keyring)
	// Output: twitchoauth.Keyring(current "2026-01", keys 2025-01,2026-01)
}
