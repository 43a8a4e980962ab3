// Package drivers is where sqlstore's driver packages (sqlstore/postgres, sqlstore/sqlite) leave
// what sqlstore needs of their database/sql driver, so that sqlstore imports no driver and a
// program links only the driver whose package it imports. It imports neither sqlstore nor a
// driver, so sqlstore's own tests may import the driver packages.
package drivers

import (
	"context"
	"sync"
)

// The dialects, as Register and Lookup name them.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

// Driver is what a driver package registers for its dialect.
type Driver struct {
	// Name is the name its database/sql driver is registered under ("pgx", "sqlite"), with which
	// sqlstore.Open opens a DSN.
	Name string
	// Listener (PostgreSQL) returns the LISTEN side of a connection, given what
	// (*sql.Conn).Raw hands over, or false when the connection is not the driver's.
	Listener func(driverConn any) (Listener, bool)
}

// Listener is a PostgreSQL connection on which a watch LISTENs. Its methods run on the one
// connection, one at a time.
type Listener interface {
	// Exec runs a statement that returns no rows (LISTEN, UNLISTEN).
	Exec(ctx context.Context, query string) error
	// WaitForNotification waits for the next notification and returns its channel and payload;
	// ok is false for one that the connection's own handler took, whose channel and payload are
	// not known.
	WaitForNotification(ctx context.Context) (channel, payload string, ok bool, err error)
	// Ping checks that the connection answers.
	Ping(ctx context.Context) error
	// IsClosed reports whether the connection is closed: lost, or closed by the driver after a
	// statement failed on it.
	IsClosed() bool
}

var (
	mu         sync.RWMutex
	registered = map[string]Driver{}
)

// Register makes d the driver of dialect. A driver package calls it from its init function.
func Register(dialect string, d Driver) {
	mu.Lock()
	defer mu.Unlock()
	registered[dialect] = d
}

// Lookup returns the driver registered for dialect, if a package linked into the program
// registered one.
func Lookup(dialect string) (Driver, bool) {
	mu.RLock()
	defer mu.RUnlock()
	d, ok := registered[dialect]
	return d, ok
}
