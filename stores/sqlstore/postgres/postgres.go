// Package postgres links PostgreSQL's driver into a program that keeps its tokens with
// [sqlstore]: pgx's database/sql driver (github.com/jackc/pgx/v5/stdlib, driver name "pgx"),
// which [sqlstore.Open] opens a DSN with, and the LISTEN through which
// [sqlstore.Store.WatchChanges] hears of the other replicas' writes. Import it for its side
// effect, beside sqlstore:
//
//	import (
//		"github.com/twitchoauth/twitchoauth/stores/sqlstore"
//		_ "github.com/twitchoauth/twitchoauth/stores/sqlstore/postgres"
//	)
//
//	store, err := sqlstore.Open(ctx, sqlstore.Postgres, os.Getenv("DATABASE_URL"))
//
// or, over a pool of the program's own, sql.Open("pgx", dsn) and [sqlstore.New]. A program that
// imports it and not sqlstore/sqlite links no SQLite.
//
// [sqlstore]: https://pkg.go.dev/github.com/twitchoauth/twitchoauth/stores/sqlstore
// [sqlstore.Open]: https://pkg.go.dev/github.com/twitchoauth/twitchoauth/stores/sqlstore#Open
// [sqlstore.New]: https://pkg.go.dev/github.com/twitchoauth/twitchoauth/stores/sqlstore#New
// [sqlstore.Store.WatchChanges]: https://pkg.go.dev/github.com/twitchoauth/twitchoauth/stores/sqlstore#Store.WatchChanges
package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/twitchoauth/twitchoauth/stores/sqlstore/internal/drivers"
)

func init() {
	drivers.Register(drivers.Postgres, drivers.Driver{Name: "pgx", Listener: listener})
}

// listener returns the pgx connection under a connection of pgx's database/sql driver.
func listener(driverConn any) (drivers.Listener, bool) {
	sc, ok := driverConn.(*stdlib.Conn)
	if !ok {
		return nil, false
	}
	return conn{sc.Conn()}, true
}

// conn is a pgx connection as a watch LISTENs on it.
type conn struct{ pc *pgx.Conn }

func (c conn) Exec(ctx context.Context, query string) error {
	_, err := c.pc.Exec(ctx, query)
	return err
}

func (c conn) WaitForNotification(ctx context.Context) (channel, payload string, ok bool, err error) {
	n, err := c.pc.WaitForNotification(ctx)
	if err != nil || n == nil {
		return "", "", false, err
	}
	return n.Channel, n.Payload, true, nil
}

func (c conn) Ping(ctx context.Context) error { return c.pc.Ping(ctx) }

func (c conn) IsClosed() bool { return c.pc.IsClosed() }
