package drivers_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"
	"testing"

	"github.com/twitchoauth/twitchoauth/stores/sqlstore"
)

// This test binary links sqlstore and neither driver package, as a program that forgot to import
// one: what needs the driver fails at once, saying which package to import.

// unreachable is a connector that never connects.
type unreachable struct{}

func (unreachable) Connect(context.Context) (driver.Conn, error) {
	return nil, errors.New("connected, though no statement should have been run")
}
func (unreachable) Driver() driver.Driver { return nil }

func TestWithoutDriverPackage(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		dialect sqlstore.Dialect
		dsn     string
		want    string
	}{
		{sqlstore.Postgres, "postgres://127.0.0.1:1/app", `import _ "github.com/twitchoauth/twitchoauth/stores/sqlstore/postgres"`},
		{sqlstore.SQLite, ":memory:", `import _ "github.com/twitchoauth/twitchoauth/stores/sqlstore/sqlite"`},
	} {
		t.Run(tc.dialect.String(), func(t *testing.T) {
			s, err := sqlstore.Open(ctx, tc.dialect, tc.dsn)
			if err == nil {
				s.Close()
				t.Fatal("Open: no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v; want an error that says %s", err, tc.want)
			}
		})
	}
	t.Run("WatchPostgreSQL", func(t *testing.T) {
		db := sql.OpenDB(unreachable{})
		defer db.Close()
		err := sqlstore.New(db, sqlstore.Postgres).WatchChanges(ctx, func(key string) { t.Errorf("changed(%q) called", key) })
		want := `import _ "github.com/twitchoauth/twitchoauth/stores/sqlstore/postgres"`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("WatchChanges: %v; want an error that says %s, at once", err, want)
		}
	})
}
