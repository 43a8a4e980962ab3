// Package sqlite links SQLite's driver into a program that keeps its tokens with [sqlstore]:
// modernc.org/sqlite (driver name "sqlite", pure Go: CGO_ENABLED=0 builds keep working), which
// [sqlstore.Open] opens a file with. Import it for its side effect, beside sqlstore:
//
//	import (
//		"github.com/twitchoauth/twitchoauth/stores/sqlstore"
//		_ "github.com/twitchoauth/twitchoauth/stores/sqlstore/sqlite"
//	)
//
//	store, err := sqlstore.Open(ctx, sqlstore.SQLite, "/var/lib/bot/tokens.db")
//
// or, over a pool of the program's own, sql.Open("sqlite", path) and [sqlstore.New]. A program
// that imports it and not sqlstore/postgres links no PostgreSQL driver.
//
// [sqlstore]: https://pkg.go.dev/github.com/twitchoauth/twitchoauth/stores/sqlstore
// [sqlstore.Open]: https://pkg.go.dev/github.com/twitchoauth/twitchoauth/stores/sqlstore#Open
// [sqlstore.New]: https://pkg.go.dev/github.com/twitchoauth/twitchoauth/stores/sqlstore#New
package sqlite

import (
	_ "modernc.org/sqlite" // registers the database/sql driver "sqlite"

	"github.com/twitchoauth/twitchoauth/stores/sqlstore/internal/drivers"
)

func init() {
	drivers.Register(drivers.SQLite, drivers.Driver{Name: "sqlite"})
}
